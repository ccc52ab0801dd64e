"""Asterisk AudioSocket: how soon a barge-in silences the caller, and how much reply audio is
ever queued ahead of the caller's ear, measured at the phone.

AudioSocket has no clear: whatever the gateway has sent, Asterisk plays. So the gateway paces
replies itself (``gateway.playout.Pacer``), never more than the lead (80 ms) ahead of what the
caller hears, and a barge-in drops what it still holds. This runs whole calls over TCP on
loopback: the rig's Asterisk peer (``gateway.rig.peers.audiosocket``) plays what arrives in
real time, as Asterisk's channel does, and the simulated Live server streams each reply faster
than real time (``--model-speed``, as the real service bursts audio), then stops it with
``interrupted`` when the caller talks over it. Each caller barges in ``--barge-ins`` times.

Figures, over every barge-in of every call:

* ``interrupted`` -> silence at the phone: from the moment the simulator sent
  ``interrupted`` (its clock, ``time.monotonic``, the same as the phone's) to the moment the
  phone's playback ran out of reply audio (the phone's playback is continuous; its bookkeeping
  ticks every 20 ms, and the end of the last message is computed exactly);
* the most reply audio that was waiting at the phone at any moment of each call.

Run: .venv/bin/python benchmarks/audiosocket_barge_in.py [--calls 10] [--barge-ins 5]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import statistics
import tempfile

from gateway.audiosocket_server import AudioSocketConfig
from gateway.bridge_config import CallServices
from gateway.config import Settings, custom_endpoint
from gateway.rig.peers.audiosocket import AudioSocketPeer
from gateway.rig.phone import CallResult, Utterance, When, load_utterance, place_call
from gateway.rig.simulator import SimulatorServer, scenario_from_dict
from gateway.rig.simulator.speech import speech_dir
from gateway.server import Gateway, load_prompt, running


def say(name: str, when: When, delay_ms: int) -> Utterance:
    return Utterance(load_utterance(speech_dir() / f"{name}.wav"), when, delay_ms)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(calls: int, barge_ins: int, model_speed: float) -> None:
    turns = [{"caller_text": "Hi, I'd like to book a table for two tomorrow evening.",
              "reply": "agent_options"}]
    turns += [{"caller_text": "Actually, wait, can we make it eight?",
               "reply": "agent_options"}] * barge_ins
    script = [say("caller_book_table", When.START, 300)]
    # Each barge-in 1.2 s into the reply: by then the model has sent seconds of it.
    script += [say("caller_barge_in", When.BARGE_IN, 1200)] * barge_ins
    scenario = scenario_from_dict({"speed": model_speed, "turns": turns})
    with tempfile.TemporaryDirectory() as tmp:
        async with SimulatorServer(scenario) as sim:
            gateway = Gateway(
                Settings(endpoint=custom_endpoint(sim.url, "bench"), recordings_dir=tmp),
                services=CallServices(unavailable_prompt=load_prompt()), carriers={},
                audiosocket=AudioSocketConfig("127.0.0.1", 0))
            async with running(gateway):
                url = f"tcp://127.0.0.1:{gateway.audiosocket_port}"
                results = await asyncio.gather(*(
                    place_call(url, list(script), peer=AudioSocketPeer(), max_s=120.0,
                               tail_ms=400) for _ in range(calls)))
            sessions = list(sim.sessions)
    report(results, [t for s in sessions for t in s.interrupted_at], barge_ins * calls)


def report(results: list[CallResult], interrupted: list[float], expected: int) -> None:
    quiet = sorted(t for r in results for t in r.quiet_at)
    latencies = []
    for t in interrupted:
        i = bisect.bisect_left(quiet, t)
        if i < len(quiet):
            latencies.append((quiet[i] - t) * 1000)
    peaks = [r.peak_queued_ms for r in results]
    print(f"barge-ins: {len(interrupted)} interrupted (of {expected} scripted), "
          f"{len(latencies)} matched to the phone going quiet")
    if latencies:
        print(f"interrupted -> silence at the phone (ms): p50 {statistics.median(latencies):.1f}"
              f"  p95 {percentile(latencies, 0.95):.1f}  max {max(latencies):.1f}")
    print(f"reply audio queued ahead of the caller's ear (ms, per call's peak): "
          f"median {statistics.median(peaks):.1f}  max {max(peaks):.1f}")
    print(f"underruns (gaps inside a reply): {sum(r.underruns for r in results)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=10)
    ap.add_argument("--barge-ins", type=int, default=5)
    ap.add_argument("--model-speed", type=float, default=4.0,
                    help="how much faster than real time the model streams its replies")
    args = ap.parse_args()
    asyncio.run(run(args.calls, args.barge_ins, args.model_speed))


if __name__ == "__main__":
    main()
