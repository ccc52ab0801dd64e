"""How long a caller waits when the model goes quiet, and whether the call goes on after.

Calls through real loopback sockets (phone -> gateway -> simulated Live server), at real time
by default, with the gateway's default watchdog (2 s to the nudge, 1 s for each later step).
The caller says three things; the model stalls on the second (scenario ``stall``):

* ``nudge``: it answers once it receives a text input (the watchdog's step 1);
* ``session``: text does not wake it; only a resumed session does (step 2);
* ``none``: it never stalls: the same calls' ordinary turn latency, for comparison.

For each path it prints, from the phone's side, the time from the end of the caller's speech
to the first reply audio heard for the stalled turn (p50, p95, max), the same for the other
turns, how the gateway recorded each stall, and whether the turn after the stall was answered
as usual. The issue's target: stalled turn p95 <= 3.5 s.

Run: .venv/bin/python benchmarks/stall_recovery.py [--calls 20] [--concurrency 10]
     [--speed 1] [--timeout-s 2.0] [--step-s 1.0]
(At --speed S the call runs S times faster and the watchdog's times are divided by S; the
figures are in the call's own time, so they stay comparable, but the loop's lag weighs S
times more.)
"""

from __future__ import annotations

import argparse
import asyncio
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import structlog

from gateway.config import Settings, custom_endpoint
from gateway.rig.phone import CallResult, Utterance, When, load_utterance, place_call
from gateway.rig.simulator import SimulatorServer
from gateway.rig.simulator.scenario import scenario_from_dict
from gateway.rig.simulator.speech import speech_dir
from gateway.server import Gateway, running
from gateway.stall import DEFAULT_STEP_S, DEFAULT_TIMEOUT_S

PATHS = ("nudge", "session", "none")


def say(name: str, when: When = When.AFTER_REPLY, delay_ms: int = 600) -> Utterance:
    return Utterance(load_utterance(speech_dir() / f"{name}.wav"), when, delay_ms)


SCRIPT = [say("caller_book_table", When.START, 300), say("caller_seven_thirty"),
          say("caller_goodbye")]


def turns(stall: str) -> list[dict[str, str]]:
    second = {"caller_text": "Seven thirty.", "reply": "agent_moved"}
    if stall != "none":
        second["stall"] = stall
    return [{"caller_text": "A table for two tomorrow, please.", "reply": "agent_greeting"},
            second, {"caller_text": "Thanks, goodbye.", "reply": "agent_goodbye"}]


@dataclass
class PathResult:
    stalled_ms: list[float] = field(default_factory=list)  # the second turn
    other_ms: list[float] = field(default_factory=list)  # the first and third
    outcomes: Counter[str] = field(default_factory=Counter)
    went_on: int = 0  # calls whose third turn was answered
    unanswered: int = 0
    restarts: int = 0
    calls: int = 0


def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


async def run_path(stall: str, calls: int, concurrency: int, speed: float, timeout_s: float,
                   step_s: float) -> PathResult:
    out = PathResult()
    scenario = scenario_from_dict({"speed": speed, "turns": turns(stall)})
    async with SimulatorServer(scenario) as sim:
        settings = Settings(endpoint=custom_endpoint(sim.url, "bench-model"),
                            stall_timeout_s=timeout_s / speed, stall_step_s=step_s / speed,
                            max_calls=calls + 1)
        gateway = Gateway(settings)
        async with running(gateway) as port:
            gate = asyncio.Semaphore(concurrency)

            async def one() -> CallResult:
                async with gate:
                    return await place_call(f"ws://127.0.0.1:{port}/media", list(SCRIPT),
                                            speed=speed, max_s=300.0, reply_wait_s=15.0)

            results = await asyncio.gather(*(one() for _ in range(calls)))
            await gateway.wait_idle()
    for result in results:
        out.calls += 1
        out.unanswered += result.unanswered
        lat = result.response_ms
        if len(lat) >= 2:
            out.stalled_ms.append(lat[1])
        out.other_ms += lat[:1] + lat[2:3]
        out.went_on += len(lat) == 3 and result.unanswered == 0
    for summary in gateway.finished:
        out.restarts += summary.stats.live.restarts
        for record in summary.stats.stalls.records:
            out.outcomes[record.outcome.value] += 1
    return out


def line(values: Sequence[float]) -> str:
    return (f"p50 {pct(values, 50):6.0f}  p95 {pct(values, 95):6.0f}  "
            f"max {max(values, default=math.nan):6.0f}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20, help="calls per path")
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--timeout-s", type=float, default=DEFAULT_TIMEOUT_S)
    parser.add_argument("--step-s", type=float, default=DEFAULT_STEP_S)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    print(f"{args.calls} calls per path, {args.concurrency} at a time, speed {args.speed:g}; "
          f"watchdog: nudge after {args.timeout_s:g} s, then {args.step_s:g} s per step")
    print("end of the caller's speech -> first reply audio heard at the phone (ms)")
    print(f"{'path':<8} {'stalled turn':<38} {'other turns':<38} stalls recorded"
          f"{'':<21} next turn answered")
    for stall in PATHS:
        r = await run_path(stall, args.calls, args.concurrency, args.speed, args.timeout_s,
                           args.step_s)
        recorded = ", ".join(f"{k} {v}" for k, v in sorted(r.outcomes.items())) or "none"
        print(f"{stall:<8} {line(r.stalled_ms):<38} {line(r.other_ms):<38} "
              f"{recorded:<36} {r.went_on}/{r.calls}"
              f"{f' (unanswered {r.unanswered})' if r.unanswered else ''}"
              f"{f'; restarts {r.restarts}' if r.restarts else ''}")
    print("target: stalled turn p95 <= 3500 ms")


if __name__ == "__main__":
    asyncio.run(main())
