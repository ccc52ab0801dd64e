"""GatewayMetrics without a server: reason labels, delta bookkeeping, histogram buckets."""

from __future__ import annotations

import pytest
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gateway.ending import EndKind, EndReason
from gateway.metrics import END_REASONS, REFUSAL_REASONS, GatewayMetrics
from gateway.record import NOT_ENDED, CallStats, CallSummary
from gateway.tools import ToolStats

TWILIO = {"carrier": "twilio"}


def _summary(stats: CallStats, kind: EndKind | None = None,
             tools: ToolStats | None = None, carrier: str = "twilio") -> CallSummary:
    end = NOT_ENDED if kind is None else EndReason(kind, kind.value.replace("_", " "))
    return CallSummary(carrier=carrier, call_sid="CA1", stream_sid="MZ1", agent="assistant",
                       end=end, started=0.0, duration_s=1.0, stats=stats, transcript=[],
                       custom_parameters={}, tool_stats=tools)


def _samples(metrics: GatewayMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(metrics.registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _value(metrics: GatewayMetrics, name: str, **labels: str) -> float:
    return _samples(metrics)[(name, tuple(sorted(labels.items())))]


def test_end_kinds_are_a_fixed_set_of_labels() -> None:
    assert set(END_REASONS) == {kind.value for kind in EndKind}
    assert all(r.isidentifier() for r in END_REASONS)


def test_two_updates_and_the_end_count_each_frame_once() -> None:
    metrics = GatewayMetrics(carriers=["twilio"])
    stats = CallStats()
    metrics.call_started(_summary(stats))
    assert _value(metrics, "voicegw_active_calls") == 1

    stats.frames_in, stats.media_out = 50, 10
    stats.forward_latency.observe(0.0003)
    stats.response_latency.observe(0.8)
    metrics.call_updated(_summary(stats))
    stats.frames_in, stats.media_out, stats.media_dropped_barge_in = 120, 30, 7
    stats.live.swaps = 1
    stats.forward_latency.observe(0.0004)
    stats.barge_in.observe(0.00015)
    metrics.call_updated(_summary(stats))
    stats.frames_in = 130  # frames after the last turn: only call_ended sees them
    stats.forward_latency.observe(0.002)
    metrics.call_ended(_summary(stats, EndKind.CALLER_HUNG_UP))

    assert _value(metrics, "voicegw_caller_frames_total", **TWILIO) == 130
    assert _value(metrics, "voicegw_reply_frames_total", **TWILIO) == 30
    assert _value(metrics, "voicegw_frames_dropped_total", **TWILIO, kind="reply_barge_in") == 7
    assert _value(metrics, "voicegw_live_reconnects_total", **TWILIO, kind="swap") == 1
    assert _value(metrics, "voicegw_live_reconnects_total", **TWILIO, kind="drop") == 0
    assert _value(metrics, "voicegw_inbound_forward_latency_seconds_count", **TWILIO) == 3
    assert _value(metrics, "voicegw_inbound_forward_latency_seconds_sum", **TWILIO) == \
        pytest.approx(0.0027)
    assert _value(metrics, "voicegw_response_latency_seconds_count", **TWILIO) == 1
    assert _value(metrics, "voicegw_barge_in_reaction_seconds_count", **TWILIO) == 1
    assert _value(metrics, "voicegw_calls_total", **TWILIO, reason="caller_hung_up") == 1
    assert _value(metrics, "voicegw_active_calls") == 0
    assert metrics.tracked_calls == 0

    # A call whose only hook is call_ended (its agent was unknown) is counted whole.
    other = CallStats(frames_in=5)
    metrics.call_ended(_summary(other, EndKind.CALLER_DISCONNECTED))
    assert _value(metrics, "voicegw_caller_frames_total", **TWILIO) == 135


def test_interleaved_calls_are_kept_apart() -> None:
    metrics = GatewayMetrics(carriers=["twilio"])
    a, b = CallStats(), CallStats()
    metrics.call_started(_summary(a))
    metrics.call_started(_summary(b))
    a.frames_in, b.frames_in = 10, 100
    metrics.call_updated(_summary(a))
    metrics.call_updated(_summary(b))
    a.frames_in, b.frames_in = 20, 200
    metrics.call_updated(_summary(b))
    metrics.call_ended(_summary(a, EndKind.AGENT_ENDED))
    assert _value(metrics, "voicegw_caller_frames_total", **TWILIO) == 220
    assert _value(metrics, "voicegw_active_calls") == 1
    metrics.call_ended(_summary(b, EndKind.SHUTDOWN))
    assert _value(metrics, "voicegw_calls_total", **TWILIO, reason="agent_ended") == 1
    assert _value(metrics, "voicegw_calls_total", **TWILIO, reason="shutdown") == 1
    assert ("voicegw_calls_total", (("carrier", "twilio"), ("reason", "other"))) \
        not in _samples(metrics)  # every ending has a kind: there is no catch-all


def test_histogram_buckets_match_the_call_histogram() -> None:
    metrics = GatewayMetrics(carriers=["twilio"])
    stats = CallStats()
    metrics.call_started(_summary(stats))
    samples = [0.000015, 0.00009, 0.00011, 0.0007, 0.0031, 0.04, 0.3, 7.0, 500.0]
    for i, seconds in enumerate(samples):
        stats.forward_latency.observe(seconds)
        if i % 3 == 0:
            metrics.call_updated(_summary(stats))
    metrics.call_ended(_summary(stats, EndKind.CALLER_HUNG_UP))

    buckets = {s.labels["le"]: s.value for f in text_string_to_metric_families(
        generate_latest(metrics.registry).decode()) for s in f.samples
        if s.name == "voicegw_inbound_forward_latency_seconds_bucket"
        and s.labels["carrier"] == "twilio"}
    assert buckets["+Inf"] == len(samples)
    for le, count in buckets.items():
        if le != "+Inf":  # the bounds are the call histogram's edges, 4 digits
            assert count == sum(1 for s in samples if s <= float(le)), le
    values = list(buckets.values())
    assert values == sorted(values)


def test_tool_outcomes_count_a_timeout_once() -> None:
    metrics = GatewayMetrics(carriers=["twilio"])
    stats, tools = CallStats(), ToolStats()
    metrics.call_started(_summary(stats))
    for seconds in (0.01, 0.02, 5.0, 0.3, 0.001):  # ok, ok, timeout, error, cancelled
        tools.run_time.observe(seconds)
    tools.calls, tools.errors, tools.timeouts, tools.cancelled = 5, 2, 1, 1
    metrics.call_updated(_summary(stats, tools=tools))
    metrics.call_ended(_summary(stats, EndKind.CALLER_HUNG_UP, tools))
    outcomes = {o: _value(metrics, "voicegw_tool_calls_total", **TWILIO, outcome=o)
                for o in ("ok", "error", "timeout", "cancelled")}
    assert outcomes == {"ok": 2, "error": 1, "timeout": 1, "cancelled": 1}
    assert _value(metrics, "voicegw_tool_latency_seconds_count", **TWILIO) == 5


def test_refusals_and_active_calls_come_from_the_gateway() -> None:
    counters = {("twilio", "signature"): 2, ("twilio", "capacity"): 4,
                ("telnyx", "draining"): 4}
    metrics = GatewayMetrics(active_calls=lambda: 7, refusals=counters,
                             carriers=["twilio", "telnyx"])
    assert _value(metrics, "voicegw_requests_refused_total", **TWILIO, reason="signature") == 2
    assert _value(metrics, "voicegw_requests_refused_total", **TWILIO, reason="capacity") == 4
    assert _value(metrics, "voicegw_requests_refused_total", carrier="telnyx",
                  reason="draining") == 4
    assert _value(metrics, "voicegw_active_calls") == 7
    # Every fixed label value is there from the start, at 0, for each carrier served.
    for carrier in ("twilio", "telnyx"):
        for reason in END_REASONS:
            assert _value(metrics, "voicegw_calls_total", carrier=carrier, reason=reason) == 0
        for reason in REFUSAL_REASONS:
            assert ("voicegw_requests_refused_total",
                    (("carrier", carrier), ("reason", reason))) in _samples(metrics)


def test_each_carriers_calls_are_counted_under_its_own_label() -> None:
    metrics = GatewayMetrics(carriers=["twilio", "vonage"])
    a, b = CallStats(frames_in=10), CallStats(frames_in=25)
    metrics.call_ended(_summary(a, EndKind.CALLER_HUNG_UP))
    metrics.call_ended(_summary(b, EndKind.REFUSED, carrier="vonage"))
    assert _value(metrics, "voicegw_caller_frames_total", **TWILIO) == 10
    assert _value(metrics, "voicegw_caller_frames_total", carrier="vonage") == 25
    assert _value(metrics, "voicegw_calls_total", carrier="vonage", reason="refused") == 1
    # A refused stream token is a refused request too.
    assert _value(metrics, "voicegw_requests_refused_total", carrier="vonage",
                  reason="token") == 1
    assert _value(metrics, "voicegw_requests_refused_total", **TWILIO, reason="token") == 0
