"""Real phone lines, side by side: the caller-path processing off (today) and on, over a grid
of echo and noise, with real speech, through whole calls on loopback.

Each cell of the grid is a line (`gateway.rig.line`): the agent's own voice coming back at a
return loss of 6, 12 or 20 dB after 40, 120 or 250 ms, under pink noise at 10 or 20 dB SNR.
For each cell and each mode, through one gateway (Twilio's μ-law line, the commonest) and the
simulated Live server (whose energy detector hears echo as speech, as the real service's does;
``vad_noise_margin_db: 10``, so steady noise alone is not a turn):

* **false barge-ins per 100 agent turns**: calls whose caller says a short line, then stays
  silent through each long reply; every ``interrupted`` the simulator sends is false;
* **true barge-ins**: calls whose caller talks over each reply 1.5 s into it; detected when
  the reply stopped at the phone, with the reaction time at the phone (talk-over start to
  silence, 20 ms resolution);
* **word error rate** of what reached the model (pocketsphinx on the simulator's copy of the
  caller's audio, against the words the caller said), in the true-barge-in calls;
* the gateway's **CPU per 20 ms** and **added delay** of its processing, from its own figures.

Calls run at real time: the canceller's reference is timed by the gateway's clock, as the
carrier plays it. Every cell's calls run at once, one mode after the other.

Run: .venv/bin/python benchmarks/real_lines.py [--turns 10] [--barge-ins 8] [--calls 2]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import time
from dataclasses import dataclass

import numpy as np
from echo_noise_processing import edits, norm
from pocketsphinx import Decoder

from gateway.caller_processing import LineProcessing
from gateway.config import Settings, custom_endpoint
from gateway.rig.line_spec import parse_line
from gateway.rig.peers.twilio import TwilioPeer
from gateway.rig.phone import CallResult, Utterance, When, load_utterance, place_call
from gateway.rig.simulator import SimulatorServer, scenario_from_dict
from gateway.rig.simulator.record import SessionRecord
from gateway.rig.simulator.speech import fixture, speech_dir
from gateway.server import Gateway, running

RETURN_LOSS_DB = (6, 12, 20)
DELAY_MS = (40, 120, 250)
SNR_DB = (10, 20)
REPLY = "agent_options"  # 8.7 s: long enough to be talked over, or echoed at length
DETECTED_WITHIN_MS = 1500.0  # a reply still playing this long after the talk-over: missed
MODES = {"off": LineProcessing(echo_cancellation=False, noise_suppression=False),
         "on": LineProcessing()}


def say(name: str, when: When, delay_ms: int) -> Utterance:
    return Utterance(load_utterance(speech_dir() / f"{name}.wav"), when, delay_ms)


@dataclass
class Cell:
    rl: int
    delay: int
    snr: int

    def spec(self, seed: int) -> str:
        return f"echo={self.rl}dB@{self.delay}ms,noise=pink@{self.snr}dB,seed={seed}"


@dataclass
class Figures:
    turns: int = 0
    false_barge_ins: int = 0
    barge_ins: int = 0
    detected: int = 0
    reactions: list[float] = dataclasses.field(default_factory=list)
    words: int = 0
    errors: int = 0


def wer_counts(reference: str, hypothesis: str) -> tuple[int, int]:
    """(word edits, reference words), scored as the echo and noise benchmark scores them."""
    ref = norm(reference)
    return edits(ref, norm(hypothesis)), len(ref)


def transcribe(pcm16k: bytes) -> str:
    decoder = Decoder(samprate=16000, logfn="/dev/null")
    decoder.start_utt()
    decoder.process_raw(pcm16k, full_utt=True)
    decoder.end_utt()
    hyp = decoder.hyp()
    return hyp.hypstr if hyp is not None else ""


async def phase(cell: Cell, mode: str, script: list[Utterance], calls: int, replies: int,
                speed: float) -> tuple[list[CallResult], list[SessionRecord], Gateway]:
    """``calls`` calls saying ``script`` on the cell's line, through one gateway in ``mode``."""
    scenario = scenario_from_dict({"speed": speed, "vad_noise_margin_db": 10,
                                   "keep_audio_s": 600,
                                   "turns": [{"reply": REPLY}] * (replies + 4)})
    async with SimulatorServer(scenario) as sim:
        settings = Settings(endpoint=custom_endpoint(sim.url, "bench"),
                            line_processing=MODES[mode], stall_timeout_s=0.0)
        gateway = Gateway(settings)
        async with running(gateway) as port:
            url = f"ws://127.0.0.1:{port}/twilio/media"
            results = list(await asyncio.gather(*(
                place_call(url, list(script), speed=speed, peer=TwilioPeer(),
                           line=parse_line(cell.spec(seed=i)), max_s=900.0, tail_ms=600)
                for i in range(calls))))
            await sim.wait_until(lambda: all(s.closed is not None for s in sim.sessions),
                                 timeout=60.0)  # dozens of real-time calls share the cores
        return results, list(sim.sessions), gateway


def scripts(turns: int, barge_ins: int, calls: int) -> tuple[list[Utterance],
                                                            list[Utterance], str, int, int]:
    per_call = max(1, turns // calls)
    silent = [say("caller_goodbye", When.START, 300)]
    silent += [say("caller_goodbye", When.AFTER_REPLY, 600)] * (per_call - 1)
    over = max(1, barge_ins // calls)
    talking = [say("caller_book_table", When.START, 300)]
    talking += [say("caller_barge_in", When.BARGE_IN, 1500)] * over
    said = " ".join(fixture(n).text for n in ["caller_book_table"] + ["caller_barge_in"] * over)
    return silent, talking, said, per_call, over


async def run_cell(cell: Cell, mode: str, args: argparse.Namespace) -> Figures:
    silent, talking, said, per_call, over = scripts(args.turns, args.barge_ins, args.calls)
    figures = Figures()
    quiet, talk = await asyncio.gather(
        phase(cell, mode, silent, args.calls, per_call, args.speed),
        phase(cell, mode, talking, args.calls, over + 1, args.speed))
    for session in quiet[1]:
        figures.turns += session.turns_completed
        figures.false_barge_ins += session.interruptions
    for result in talk[0]:
        figures.barge_ins += over
        quick = [ms for ms in result.barge_in_ms if ms <= DETECTED_WITHIN_MS]
        figures.detected += min(len(quick), over)
        figures.reactions += quick
    for session in talk[1]:
        edits, words = wer_counts(said, transcribe(bytes(session.audio)))
        figures.errors += edits
        figures.words += words
    return figures


def row(cell: Cell, mode: str, f: Figures) -> str:
    false_per_100 = 100 * f.false_barge_ins / max(f.turns, 1)
    detected = 100 * f.detected / max(f.barge_ins, 1)
    p95 = float(np.percentile(f.reactions, 95)) if f.reactions else float("nan")
    wer = 100 * f.errors / max(f.words, 1)
    return (f"| {cell.rl} dB | {cell.delay} ms | {cell.snr} dB | {mode} | "
            f"{false_per_100:.0f} ({f.false_barge_ins}/{f.turns}) | "
            f"{detected:.0f} % ({f.detected}/{f.barge_ins}) | {p95:.0f} ms | {wer:.0f} % |")


async def run(args: argparse.Namespace) -> None:
    cells = [Cell(rl, d, snr) for rl, d, snr in itertools.product(args.rl, args.delay, args.snr)]
    print("| return loss | delay | SNR | processing | false barge-ins per 100 turns "
          "| true barge-ins detected | reaction p95 (phone) | WER to the model |")
    print("|---|---|---|---|---|---|---|---|")
    totals = {mode: Figures() for mode in MODES}
    by_cell: dict[tuple[int, str], Figures] = {}
    started = time.perf_counter()
    for mode in MODES:  # every cell's calls at once, at real time; the modes one after other
        results = await asyncio.gather(*(run_cell(cell, mode, args) for cell in cells))
        for i, figures in enumerate(results):
            by_cell[(i, mode)] = figures
            t = totals[mode]
            for name in ("turns", "false_barge_ins", "barge_ins", "detected", "words",
                         "errors"):
                setattr(t, name, getattr(t, name) + getattr(figures, name))
            t.reactions += figures.reactions
    for i, cell in enumerate(cells):
        for mode in MODES:
            print(row(cell, mode, by_cell[(i, mode)]))
    for mode, t in totals.items():
        print(row(Cell(0, 0, 0), mode, t).replace("| 0 dB | 0 ms | 0 dB |", "| all | all | all |"))
    print(f"({time.perf_counter() - started:.0f} s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--turns", type=int, default=10, help="silent-caller agent turns per cell")
    ap.add_argument("--barge-ins", type=int, default=8, help="talk-overs per cell")
    ap.add_argument("--calls", type=int, default=2, help="calls per cell and phase")
    ap.add_argument("--speed", type=float, default=1.0, help="1: the canceller's reference "
                    "is timed by the gateway's real clock, so the calls must be real time")
    ap.add_argument("--rl", type=int, nargs="+", default=list(RETURN_LOSS_DB))
    ap.add_argument("--delay", type=int, nargs="+", default=list(DELAY_MS))
    ap.add_argument("--snr", type=int, nargs="+", default=list(SNR_DB))
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()
