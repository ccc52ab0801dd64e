"""GatewayMetrics without a server: reason labels, delta bookkeeping, histogram buckets."""

from __future__ import annotations

import pytest
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gateway.metrics import END_REASONS, GatewayMetrics, end_reason_label
from gateway.record import CallStats, CallSummary
from gateway.tools import ToolStats


def _summary(stats: CallStats, reason: str = "not started",
             tools: ToolStats | None = None) -> CallSummary:
    return CallSummary(call_sid="CA1", stream_sid="MZ1", agent="assistant", end_reason=reason,
                       started=0.0, duration_s=1.0, stats=stats, transcript=[],
                       custom_parameters={}, tool_stats=tools)


def _samples(metrics: GatewayMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(metrics.registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _value(metrics: GatewayMetrics, name: str, **labels: str) -> float:
    return _samples(metrics)[(name, tuple(sorted(labels.items())))]


@pytest.mark.parametrize(("reason", "label"), [
    ("caller hung up", "caller_hung_up"),
    ("caller disconnected", "caller_disconnected"),
    ("caller socket not reading: a send blocked 1 s", "caller_disconnected"),
    ("caller socket closed while writing", "caller_disconnected"),
    ("agent ended the call: caller said goodbye", "agent_ended"),
    ("transfer failed; call ended", "agent_ended"),
    ("transferred to +1555***0111", "transferred"),
    ("call was already over when transferring", "caller_hung_up"),
    ("live unavailable (quota): Live API quota: try later", "live_unavailable"),
    ("live unavailable (transient); transferred to +1555***0111", "live_unavailable"),
    ("live session closed: 1011 internal", "live_unavailable"),
    ("unknown agent 'nosuch'", "unknown_agent"),
    ("no start event within 10 s", "start_timeout"),
    ("gateway shutting down", "shutdown"),
    ("internal error", "internal_error"),
    ("too many protocol errors (51)", "protocol_error"),
    ("too many protocol errors from live", "protocol_error"),
    ("second start on one stream", "protocol_error"),
    ("stop before start", "protocol_error"),
    ("bad start: unsupported media format audio/x-l16/16000/1", "protocol_error"),
    ("binary frames are not accepted", "protocol_error"),
    ("frame larger than 65536 bytes", "protocol_error"),
    ("not started", "other"),
    ("CA0123456789abcdef +15550100 something new", "other"),  # never raw text in a label
])
def test_end_reasons_map_to_a_fixed_set(reason: str, label: str) -> None:
    assert end_reason_label(reason) == label
    assert label in END_REASONS


def test_two_updates_and_the_end_count_each_frame_once() -> None:
    metrics = GatewayMetrics()
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
    metrics.call_ended(_summary(stats, "caller hung up"))

    assert _value(metrics, "voicegw_caller_frames_total") == 130
    assert _value(metrics, "voicegw_reply_frames_total") == 30
    assert _value(metrics, "voicegw_frames_dropped_total", kind="reply_barge_in") == 7
    assert _value(metrics, "voicegw_live_reconnects_total", kind="swap") == 1
    assert _value(metrics, "voicegw_live_reconnects_total", kind="drop") == 0
    assert _value(metrics, "voicegw_inbound_forward_latency_seconds_count") == 3
    assert _value(metrics, "voicegw_inbound_forward_latency_seconds_sum") == \
        pytest.approx(0.0027)
    assert _value(metrics, "voicegw_response_latency_seconds_count") == 1
    assert _value(metrics, "voicegw_barge_in_reaction_seconds_count") == 1
    assert _value(metrics, "voicegw_calls_total", reason="caller_hung_up") == 1
    assert _value(metrics, "voicegw_active_calls") == 0
    assert metrics.tracked_calls == 0

    # A call whose only hook is call_ended (its agent was unknown) is counted whole.
    other = CallStats(frames_in=5)
    metrics.call_ended(_summary(other, "caller disconnected"))
    assert _value(metrics, "voicegw_caller_frames_total") == 135


def test_interleaved_calls_are_kept_apart() -> None:
    metrics = GatewayMetrics()
    a, b = CallStats(), CallStats()
    metrics.call_started(_summary(a))
    metrics.call_started(_summary(b))
    a.frames_in, b.frames_in = 10, 100
    metrics.call_updated(_summary(a))
    metrics.call_updated(_summary(b))
    a.frames_in, b.frames_in = 20, 200
    metrics.call_updated(_summary(b))
    metrics.call_ended(_summary(a, "agent ended the call: bye"))
    assert _value(metrics, "voicegw_caller_frames_total") == 220
    assert _value(metrics, "voicegw_active_calls") == 1
    metrics.call_ended(_summary(b, "gateway shutting down"))
    assert _value(metrics, "voicegw_calls_total", reason="agent_ended") == 1
    assert _value(metrics, "voicegw_calls_total", reason="shutdown") == 1
    assert _value(metrics, "voicegw_calls_total", reason="other") == 0


def test_histogram_buckets_match_the_call_histogram() -> None:
    metrics = GatewayMetrics()
    stats = CallStats()
    metrics.call_started(_summary(stats))
    samples = [0.000015, 0.00009, 0.00011, 0.0007, 0.0031, 0.04, 0.3, 7.0, 500.0]
    for i, seconds in enumerate(samples):
        stats.forward_latency.observe(seconds)
        if i % 3 == 0:
            metrics.call_updated(_summary(stats))
    metrics.call_ended(_summary(stats, "caller hung up"))

    buckets = {s.labels["le"]: s.value for f in text_string_to_metric_families(
        generate_latest(metrics.registry).decode()) for s in f.samples
        if s.name == "voicegw_inbound_forward_latency_seconds_bucket"}
    assert buckets["+Inf"] == len(samples)
    for le, count in buckets.items():
        if le != "+Inf":  # the bounds are the call histogram's edges, 4 digits
            assert count == sum(1 for s in samples if s <= float(le)), le
    values = list(buckets.values())
    assert values == sorted(values)


def test_tool_outcomes_count_a_timeout_once() -> None:
    metrics = GatewayMetrics()
    stats, tools = CallStats(), ToolStats()
    metrics.call_started(_summary(stats))
    for seconds in (0.01, 0.02, 5.0, 0.3, 0.001):  # ok, ok, timeout, error, cancelled
        tools.run_time.observe(seconds)
    tools.calls, tools.errors, tools.timeouts, tools.cancelled = 5, 2, 1, 1
    metrics.call_updated(_summary(stats, tools=tools))
    metrics.call_ended(_summary(stats, "caller hung up", tools))
    outcomes = {o: _value(metrics, "voicegw_tool_calls_total", outcome=o)
                for o in ("ok", "error", "timeout", "cancelled")}
    assert outcomes == {"ok": 2, "error": 1, "timeout": 1, "cancelled": 1}
    assert _value(metrics, "voicegw_tool_latency_seconds_count") == 5


def test_refusals_and_active_calls_come_from_the_gateway() -> None:
    counters = {"signature_rejected": 2, "twiml_refused_capacity": 1,
                "media_refused_capacity": 3, "media_refused_draining": 4}
    metrics = GatewayMetrics(active_calls=lambda: 7, refusals=counters)
    assert _value(metrics, "voicegw_requests_refused_total", reason="signature") == 2
    assert _value(metrics, "voicegw_requests_refused_total", reason="capacity") == 4
    assert _value(metrics, "voicegw_requests_refused_total", reason="draining") == 4
    assert _value(metrics, "voicegw_active_calls") == 7
    # Every fixed label value is there from the start, at 0.
    for reason in END_REASONS:
        assert _value(metrics, "voicegw_calls_total", reason=reason) == 0
