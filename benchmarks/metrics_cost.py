"""CPU cost of the metrics observer, per hook and per call, and of rendering ``/metrics``.

Each simulated call is a 3-minute conversation: 20 turns of 450 caller frames (9 s) and
150 reply messages each, a response latency per turn, a barge-in every 5th turn and a tool
call every 10th, so every histogram the observer diffs has realistic contents. Only the
observer's hooks are timed, not the building of the snapshots.
Run: .venv/bin/python benchmarks/metrics_cost.py
"""

from __future__ import annotations

import random
import statistics
import time

from prometheus_client.exposition import generate_latest

from gateway.ending import EndKind, EndReason
from gateway.metrics import GatewayMetrics
from gateway.record import NOT_ENDED, CallStats, CallSummary
from gateway.tools import ToolStats

TURNS = 20
FRAMES_PER_TURN = 450
REPLIES_PER_TURN = 150
CALLS = 100
RENDERS = 200


def _summary(stats: CallStats, tools: ToolStats, end: EndReason = NOT_ENDED) -> CallSummary:
    return CallSummary(carrier="twilio", call_sid="CA1", stream_sid="MZ1", agent="assistant",
                       end=end, started=0.0, duration_s=180.0, stats=stats, transcript=[],
                       custom_parameters={}, tool_stats=tools)


def one_call(metrics: GatewayMetrics, rng: random.Random,
             updated_us: list[float], ended_us: list[float]) -> None:
    stats, tools = CallStats(), ToolStats()
    metrics.call_started(_summary(stats, tools))
    for turn in range(TURNS):
        for _ in range(FRAMES_PER_TURN):
            stats.frames_in += 1
            stats.live.frames_forwarded += 1
            stats.forward_latency.observe(rng.lognormvariate(-8.5, 0.4))  # ~0.2 ms
        stats.media_out += REPLIES_PER_TURN
        stats.response_latency.observe(rng.uniform(0.5, 1.2))
        if turn % 5 == 4:
            stats.interruptions += 1
            stats.media_dropped_barge_in += 20
            stats.barge_in.observe(rng.uniform(0.0002, 0.001))
        if turn % 10 == 9:
            tools.calls += 1
            tools.run_time.observe(rng.uniform(0.01, 0.3))
        summary = _summary(stats, tools)
        t0 = time.perf_counter()
        metrics.call_updated(summary)
        updated_us.append((time.perf_counter() - t0) * 1e6)
    stats.frames_in += 25  # the goodbye after the last turn
    summary = _summary(stats, tools, EndReason(EndKind.CALLER_HUNG_UP, "caller hung up"))
    t0 = time.perf_counter()
    metrics.call_ended(summary)
    ended_us.append((time.perf_counter() - t0) * 1e6)


def _render_ms(render: object, n: int = RENDERS) -> tuple[float, int]:
    assert callable(render)
    size = 0
    t0 = time.perf_counter()
    for _ in range(n):
        size = len(render())
    return (time.perf_counter() - t0) / n * 1000, size


def main() -> None:
    rng = random.Random(7)
    metrics = GatewayMetrics()
    updated_us: list[float] = []
    ended_us: list[float] = []
    for _ in range(CALLS):
        one_call(metrics, rng, updated_us, ended_us)
    per_call = (sum(updated_us) + sum(ended_us)) / CALLS
    frames = TURNS * FRAMES_PER_TURN + 25
    print(f"observer, {CALLS} calls of {TURNS} turns ({frames} caller frames, 3 min each):")
    print(f"  call_updated: median {statistics.median(updated_us):.1f} us, "
          f"p99 {statistics.quantiles(updated_us, n=100)[98]:.1f} us")
    print(f"  call_ended:   median {statistics.median(ended_us):.1f} us")
    print(f"  per call:     {per_call:.0f} us in total = {per_call * 1000 / frames:.1f} ns "
          f"per caller frame ({per_call / 180e6 * 100:.5f} % of one core over the call)")

    # The exposition depends on how many metrics there are, not how many calls were seen.
    full_ms, size = _render_ms(lambda: generate_latest(metrics.registry))
    own_ms, _ = _render_ms(lambda: list(metrics.collect()))
    print(f"/metrics with {CALLS} finished calls: {full_ms:.2f} ms to render "
          f"({size} bytes; the gateway's own families {own_ms:.2f} ms of it, the rest is "
          "text formatting and process_* from /proc)")
    few = GatewayMetrics()
    for _ in range(2):
        one_call(few, rng, [], [])
    few_ms, _ = _render_ms(lambda: generate_latest(few.registry))
    print(f"/metrics with 2 finished calls: {few_ms:.2f} ms (same work: aggregates only)")


if __name__ == "__main__":
    main()
