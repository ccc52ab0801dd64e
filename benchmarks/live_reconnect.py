"""What a caller notices when the Live connection is swapped or lost, and what a long call costs.

Three runs through real loopback sockets (phone -> gateway -> simulated Live server):

1. Real time: a goAway between turns, and the caller speaks again at once, during the swap.
   Prints the gateway's reconnect gap (old socket closed -> new session set up and the held
   audio replayed) and the response latency of that turn beside the turns without a swap.
2. Real time: a goAway mid-reply with too little time left to wait for the turn to end, and a
   dropped connection mid-reply: the caller-side silence (last audio of the cut reply -> first
   audio of the new session's reply) and what of it the reconnect itself took.
3. A 30-minute call compressed 60x, a goAway every 10 minutes: swaps, gaps, frame accounting,
   and the process's resident memory before and after (phone, gateway and simulator).

Run: .venv/bin/python benchmarks/live_reconnect.py
"""

from __future__ import annotations

import asyncio
import itertools
import os
import statistics
from typing import Any

import structlog

from gateway.config import Settings, custom_endpoint
from gateway.record import CallSummary
from gateway.rig.phone import CallResult, Utterance, When, load_utterance, place_call
from gateway.rig.simulator import SimulatorServer
from gateway.rig.simulator.record import SessionRecord
from gateway.rig.simulator.scenario import scenario_from_dict
from gateway.rig.simulator.speech import speech_dir
from gateway.server import Gateway, running

TURNS = [{"reply": "agent_options"}, {"reply": "agent_moved"}, {"reply": "agent_goodbye"},
         {"reply": "agent_moved"}]


def say(name: str, when: When = When.AFTER_REPLY, delay_ms: int = 600) -> Utterance:
    return Utterance(load_utterance(speech_dir() / f"{name}.wav"), when, delay_ms)


async def call(scenario: dict[str, Any], script: list[Utterance], speed: float
               ) -> tuple[CallResult, CallSummary, list[SessionRecord]]:
    async with SimulatorServer(scenario_from_dict({"speed": speed, **scenario})) as sim:
        gateway = Gateway(Settings(endpoint=custom_endpoint(sim.url, "bench-model")))
        async with running(gateway) as port:
            result = await place_call(f"ws://127.0.0.1:{port}/media", script, speed=speed,
                                      max_s=3600.0)
            await sim.wait_until(lambda: all(s.closed is not None for s in sim.sessions))
    [summary] = gateway.finished
    return result, summary, list(sim.sessions)


def gaps(summary: CallSummary) -> str:
    return summary.stats.live.reconnect_gap.summary().format()


def silences(result: CallResult, min_ms: float = 100.0) -> list[float]:
    """Pauses between reply audio arriving at the phone, longer than ``min_ms``."""
    media = [ms for ms, what in result.timeline if what == "media"]
    return [b - a for a, b in itertools.pairwise(media) if b - a > min_ms]


async def between_turns() -> None:
    script = [say("caller_book_table", When.START, 300),
              say("caller_seven_thirty", When.AFTER_REPLY, 0),  # speaks during the swap
              say("caller_goodbye", When.AFTER_REPLY, 600), say("caller_seven_thirty")]
    result, summary, sessions = await call({"turns": TURNS, "injections": [
        {"after_turn": 1, "go_away": {"time_left": "30s"}}]}, script, 1.0)
    lat = result.response_ms
    print("1. goAway between turns, real time, caller speaks during the swap")
    print(f"   sessions {len(sessions)}, swaps {summary.stats.live.swaps}, "
          f"drops {summary.stats.live.drops}; reconnect gap {gaps(summary)}")
    print(f"   response latency per turn (ms): {[round(x) for x in lat]}; "
          f"turn after the swap {lat[1]:.0f} vs median of the others "
          f"{statistics.median(lat[:1] + lat[2:]):.0f}")
    print(f"   frames sent {result.frames_sent}, forwarded {summary.stats.frames_forwarded}, "
          f"replayed {summary.stats.live.frames_replayed}, lost {summary.stats.live.frames_lost}")


async def mid_reply() -> None:
    script = [say("caller_book_table", When.START, 300), say("caller_goodbye")]
    for name, injection in [
            ("goAway mid-reply, 1 s left", {"during_turn": 1, "offset_ms": 2000,
                                            "go_away": {"time_left": "1s", "close": True}}),
            ("connection dropped mid-reply", {"during_turn": 1, "offset_ms": 2000,
                                              "drop": True})]:
        result, summary, sessions = await call({"turns": TURNS, "injections": [injection]},
                                               script, 1.0)
        print(f"2. {name}, real time")
        print(f"   sessions {len(sessions)}; reconnect gap {gaps(summary)}")
        print(f"   caller-side silences > 100 ms in reply audio (ms): "
              f"{[round(s) for s in silences(result)]} (includes the simulator's 300 ms "
              "response delay and its end-of-speech detection on the replayed audio)")
        print(f"   frames sent {result.frames_sent}, forwarded "
              f"{summary.stats.frames_forwarded}, replayed {summary.stats.live.frames_replayed}"
              f", lost {summary.stats.live.frames_lost}; unanswered {result.unanswered}")


async def long_call() -> None:
    minute = [say("caller_book_table", When.AFTER_REPLY, 54_000),
              say("caller_seven_thirty", When.AFTER_REPLY, 54_000)]
    script = [say("caller_book_table", When.START, 300), *(minute * 15)][:30]
    rss_before = rss_mb()
    result, summary, sessions = await call(
        {"connection_lifetime_s": 600, "go_away_before_s": 60}, script, 60.0)
    rss_after = rss_mb()
    live = summary.stats.live
    print("3. 30-minute call at 60x, connection lifetime 10 min, goAway 60 s before the cut")
    print(f"   call length {result.frames_sent * 0.02 / 60:.1f} min; sessions {len(sessions)}, "
          f"resumed {sum(s.resumed for s in sessions)}; swaps {live.swaps}, "
          f"drops {live.drops}")
    print(f"   reconnect gap (wall clock, at 60x load) {gaps(summary)}")
    print(f"   frames sent {result.frames_sent}, forwarded {summary.stats.frames_forwarded}, "
          f"replayed {live.frames_replayed}, received by the simulator "
          f"{sum(s.audio_chunks for s in sessions)} (forwarded + replayed, less any written "
          f"into a closing socket), lost {live.frames_lost}")
    print(f"   replies {sum(s.turns_completed for s in sessions)} for {len(script)} utterances"
          f", unanswered {result.unanswered}")
    print(f"   resident memory of the whole process: {rss_before:.1f} MB before the call, "
          f"{rss_after:.1f} MB after, of which the test phone's own recording of both "
          f"directions is {(len(result.said) + len(result.heard)) / 1e6:.1f} MB")


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


async def main() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    await between_turns()
    await mid_reply()
    await long_call()


if __name__ == "__main__":
    asyncio.run(main())
