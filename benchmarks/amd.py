"""Answering-machine detection (``gateway/amd.py``) on a corpus of answered calls.

The corpus (``gateway/rig/amd_corpus.py``): people picking up and voicemail greetings spoken
by flite and espeak-ng in many voices, rates and pitches, on an 8 kHz mu-law line with noise,
most greetings ending in a beep. Each clip is fed to a fresh detector in 20 ms frames, as the
bridge would (at 16 kHz by default, through the gateway's own 8->16 kHz resampler, whose delay
is added to the truth's times; ``--rate 8000`` feeds the line's audio as it is).

Printed: **accuracy** (a person is right when answered HUMAN or UNKNOWN, which the gateway
treats as a person; UNKNOWNs are counted apart too), **decision time** (audio from the answer
to the verdict, median and p95), **beeps found** (a Beep whose end is within 300 ms of the true
end, of the greetings that have one) and how long after the tone's true end it was reported,
**false beeps** (a beep verdict on a person's clip, or a beep reported before a greeting's real
beep began), **greeting over** (no-beep greetings: reported after the greeting really ended, and
how long after), **CPU** (µs per 20 ms frame, frames until the detector is done, this machine),
and each failure by category.

Run: .venv/bin/python benchmarks/amd.py [--seed N] [--folder DIR] [--rate 8000|16000]
(makes the corpus in a temporary folder with flite, espeak-ng and sox unless ``--folder`` holds
one already; about 15 s)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from gateway.amd import Beep, Cue, GreetingOver, MachineDetector, Verdict
from gateway.audio import Resampler
from gateway.dialing.model import AnsweredBy
from gateway.rig.amd_corpus import Clip, load_corpus, make_corpus
from gateway.wav import read_wav

BEEP_TOLERANCE_MS = 300.0
PASSES = 3  # the CPU figure is the best pass: other work on the machine only adds


@dataclass
class Outcome:
    clip: Clip
    verdict: Verdict | None = None
    beep: Beep | None = None
    beep_reported_ms: float | None = None
    over: GreetingOver | None = None
    frames: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)


def run_clip(clip: Clip, folder: Path, rate: int) -> Outcome:
    pcm, src = read_wav(folder / f"{clip.name}.wav")
    if rate != src:
        pcm = Resampler(src, rate).process(pcm + bytes(2 * src // 10))  # flush the filter
    detector = MachineDetector(rate)
    out = Outcome(clip)
    step = 2 * rate // 50
    for at in range(0, len(pcm), step):
        started = time.perf_counter()
        events = detector.feed(pcm[at:at + step])
        out.seconds += time.perf_counter() - started
        out.frames += 1
        for event in events:
            if isinstance(event, Verdict):
                out.verdict = event
            elif isinstance(event, Beep):
                out.beep, out.beep_reported_ms = event, (at + step) / 2 / rate * 1000
            else:
                out.over = event
        if detector.done:
            break
    return out


def judge(out: Outcome, delay_ms: float) -> None:
    clip, v = out.clip, out.verdict
    got = v.answered_by if v else None
    if clip.human:
        if got not in (AnsweredBy.HUMAN, AnsweredBy.UNKNOWN):
            out.failures.append(f"person taken for {got} ({v.why if v else ''})")
        return
    if got is not AnsweredBy.MACHINE:
        out.failures.append(f"machine taken for {got} ({v.why if v else ''})")
    if clip.beep_end_s is not None:
        true_end = clip.beep_end_s * 1000 + delay_ms
        if out.beep is None:
            out.failures.append("beep missed" + (" (greeting over first)" if out.over else ""))
        elif abs(out.beep.end_ms - true_end) > BEEP_TOLERANCE_MS:
            out.failures.append(f"beep end off by {out.beep.end_ms - true_end:+.0f} ms")
    elif out.over is not None and out.over.at_ms < clip.speech_end_s * 1000 + delay_ms:
        out.failures.append("greeting over before the greeting ended")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def report(outs: list[Outcome], delay_ms: float, cost_us: float) -> None:
    humans = [o for o in outs if o.clip.human]
    machines = [o for o in outs if not o.clip.human]
    ok = [o for o in outs if not any(f.startswith(("person", "machine")) for f in o.failures)]
    ok_h = [o for o in ok if o.clip.human]
    ok_m = [o for o in ok if not o.clip.human]
    print(f"accuracy: {len(ok) / len(outs):.1%} overall, humans {len(ok_h)}/{len(humans)}, "
          f"machines {len(ok_m)}/{len(machines)}")
    unknown = Counter(o.verdict.why.value for o in outs
                      if o.verdict and o.verdict.answered_by is AnsweredBy.UNKNOWN)
    print(f"  UNKNOWN (treated as a person): {sum(unknown.values())} {dict(unknown)}")
    cues = Counter((o.clip.human, o.verdict.why.value) for o in outs if o.verdict)
    print("  cues: " + ", ".join(f"{'human' if h else 'machine'}/{c} {n}"
                                 for (h, c), n in sorted(cues.items())))
    for name, group in (("all", outs), ("humans", humans), ("machines", machines)):
        times = [o.verdict.at_ms for o in group if o.verdict]
        print(f"decision time ({name}): median {statistics.median(times) / 1000:.2f} s, "
              f"p95 {pct(times, 0.95) / 1000:.2f} s")
    beeps = [o for o in machines if o.clip.beep_end_s is not None]
    found = [o for o in beeps if o.beep is not None and abs(
        o.beep.end_ms - (o.clip.beep_end_s or 0) * 1000 - delay_ms) <= BEEP_TOLERANCE_MS]
    errors = [abs(o.beep.end_ms - (o.clip.beep_end_s or 0) * 1000 - delay_ms)
              for o in found if o.beep]
    late = [(o.beep_reported_ms or 0) - (o.clip.beep_end_s or 0) * 1000 - delay_ms
            for o in found]
    print(f"beeps found within {BEEP_TOLERANCE_MS:.0f} ms of their end: {len(found)}/"
          f"{len(beeps)} ({len(found) / max(1, len(beeps)):.1%}); end error median "
          f"{statistics.median(errors or [0]):.0f} ms, p95 {pct(errors, 0.95):.0f} ms; reported "
          f"median {statistics.median(late or [0]):.0f} ms after the true end")
    false_h = sum(1 for o in humans if o.verdict and o.verdict.why is Cue.BEEP)
    false_m = sum(1 for o in beeps if o.beep and o.beep.start_ms + BEEP_TOLERANCE_MS
                  < (o.clip.beep_start_s or 0) * 1000 + delay_ms)
    print(f"false beeps: {false_h} on {len(humans)} person clips, {false_m} in "
          f"{len(beeps)} greetings before their beep")
    silent = [o for o in machines if o.clip.beep_end_s is None]
    overs = [o.over.at_ms - o.clip.speech_end_s * 1000 - delay_ms for o in silent if o.over]
    after = sum(1 for d in overs if d >= 0)
    print(f"greeting over (no beep): {after}/{len(silent)} after the greeting's end, median "
          f"{statistics.median(overs or [0]) / 1000:.2f} s after it")
    frames = sum(o.frames for o in outs)
    print(f"CPU: {cost_us:.1f} µs per 20 ms frame ({frames} frames until done; the best "
          f"of {PASSES} passes)")
    failed = [o for o in outs if o.failures]
    if failed:
        print("failures:")
    for o in sorted(failed, key=lambda o: (o.clip.category, o.clip.name)):
        c = o.clip
        print(f"  [{c.category}] {c.name} {'; '.join(o.failures)} | {c.voice} {c.noise} "
              f"speech@{c.speech_dbov:.0f}dBov | "
              f"speech {c.speech_start_s:.1f}-{c.speech_end_s:.1f} s | {c.text[:70]!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--folder", type=Path, help="reuse (or make) the corpus here")
    parser.add_argument("--rate", type=int, default=16000, choices=(8000, 16000))
    parser.add_argument("--humans", type=int, default=48)
    parser.add_argument("--machines", type=int, default=48)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.folder or Path(tmp)
        if not (folder / "index.json").exists():
            make_corpus(folder, args.seed, args.humans, args.machines)
        clips = load_corpus(folder)
        delay = Resampler(8000, args.rate).delay_ms
        passes = [[run_clip(c, folder, args.rate) for c in clips] for _ in range(PASSES)]
        outs = passes[0]
        for o in outs:
            judge(o, delay)
        cost = min(sum(o.seconds for o in p) / max(1, sum(o.frames for o in p))
                   for p in passes) * 1e6
        print(f"AMD on {len(clips)} clips (seed {args.seed}, {args.rate} Hz)")
        report(outs, delay, cost)


if __name__ == "__main__":
    main()
