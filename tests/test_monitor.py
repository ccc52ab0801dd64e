"""The live-call monitor: snapshots, per-call streams, bounded watchers, no phone numbers."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import pytest

from gateway.ending import EndKind, EndReason
from gateway.monitor import SUBSCRIPTION_EVENTS, CallMonitor, Speaking, Subscription
from gateway.record import TranscriptLine
from tests.store_data import summary

INFO_KEYS = {"call_id", "carrier", "agent", "started_at", "duration_s", "speaking",
             "interruptions", "last_turn_latency_ms"}


def drain(sub: Subscription) -> list[dict[str, Any]]:
    """What is queued, without waiting (the monitor never makes a watcher wait for a push)."""
    async def take() -> list[dict[str, Any]]:
        out = []
        while sub.pending:
            out.append(await sub.__anext__())
        return out
    return asyncio.run(take())


def started_monitor(sid: str = "CA1") -> CallMonitor:
    monitor = CallMonitor()
    monitor.call_started(summary(sid))
    return monitor


def test_an_all_calls_subscription_starts_with_a_snapshot_and_sees_starts_changes_ends(
) -> None:
    monitor = started_monitor("CA1")
    sub = monitor.subscribe()
    monitor.call_started(summary("CA2"))
    monitor.speaking("CA2", Speaking.CALLER)
    monitor.speaking("CA2", Speaking.CALLER)  # no change: no event
    monitor.transcript("CA2", 0, TranscriptLine(1.0, "caller", "hi"))  # per-call detail only
    ended = dataclasses.replace(summary("CA2"), end=EndReason(EndKind.CALLER_HUNG_UP, "bye"))
    monitor.call_ended(ended)
    events = drain(sub)
    assert [e["type"] for e in events] == ["snapshot", "call", "call", "ended"]
    assert [c["call_id"] for c in events[0]["calls"]] == ["CA1"]
    assert set(events[1]["call"]) == INFO_KEYS
    assert events[2]["call"]["speaking"] == "caller"
    assert events[3] == {"type": "ended", "call_id": "CA2", "end_kind": "caller_hung_up",
                         "end_reason": "bye"}
    assert [c["call_id"] for c in monitor.active()] == ["CA1"]


def test_a_call_subscription_carries_the_transcript_tools_and_ends_with_the_call() -> None:
    monitor = started_monitor()
    monitor.transcript("CA1", 0, TranscriptLine(0.5, "caller", "A table"))
    monitor.tool_started("CA1", "t1", "book", {"people": 2})
    sub = monitor.subscribe("CA1")
    monitor.transcript("CA1", 0, TranscriptLine(0.5, "caller", "A table for two"))
    monitor.transcript("CA1", 1, TranscriptLine(2.0, "agent", "Seven or nine", True, "Seven"))
    monitor.tool_finished("CA1", "t1", outcome="ok", result={"booked": True}, error=None,
                          latency_ms=12.34)
    monitor.call_updated(summary("CA1"))  # one interruption, last turn 790 ms
    monitor.call_ended(summary("CA1"))
    events = drain(sub)
    snapshot = events[0]
    assert snapshot["type"] == "snapshot"
    assert [line["text"] for line in snapshot["transcript"]] == ["A table"]
    assert snapshot["tools"] == [{"id": "t1", "name": "book", "args": {"people": 2},
                                  "at": snapshot["tools"][0]["at"], "outcome": None,
                                  "result": None, "error": None, "latency_ms": None}]
    assert [e["type"] for e in events[1:]] == ["transcript", "transcript", "tool_result",
                                               "call", "ended"]
    assert events[1]["line"] == 0 and events[1]["text"] == "A table for two"
    assert events[2] == {"type": "transcript", "call_id": "CA1", "line": 1, "role": "agent",
                         "text": "Seven or nine", "at": 2.0, "interrupted": True,
                         "heard": "Seven"}
    assert events[3]["latency_ms"] == 12.3 and events[3]["result"] == {"booked": True}
    assert events[4]["call"]["interruptions"] == 1
    assert events[4]["call"]["last_turn_latency_ms"] == 790.0
    assert sub.closed
    with pytest.raises(KeyError):
        monitor.subscribe("CA1")


def test_a_late_watcher_sees_the_tool_result_in_its_snapshot() -> None:
    monitor = started_monitor()
    monitor.tool_started("CA1", "t1", "book", {})
    monitor.tool_finished("CA1", "t1", outcome="error", result=None, error="boom",
                          latency_ms=5.0)
    [snapshot] = drain(monitor.subscribe("CA1"))
    assert snapshot["tools"][0] | {"at": 0} == {"id": "t1", "name": "book", "args": {},
                                                "at": 0, "outcome": "error", "result": None,
                                                "error": "boom", "latency_ms": 5.0}


def test_unknown_calls_raise_for_watchers_and_are_ignored_by_hooks() -> None:
    monitor = CallMonitor()
    with pytest.raises(KeyError):
        monitor.subscribe("nope")
    monitor.speaking("nope", Speaking.AGENT)
    monitor.transcript("nope", 0, TranscriptLine(0, "caller", "x"))
    monitor.tool_started("nope", "t", "x", {})
    monitor.tool_finished("nope", "t", outcome="ok", result={}, error=None, latency_ms=1)
    monitor.call_updated(summary("nope"))
    monitor.call_ended(summary("nope"))
    assert monitor.active() == []


def test_a_watcher_that_falls_behind_is_told_it_lagged_and_ended_the_call_goes_on() -> None:
    monitor = started_monitor()
    slow = monitor.subscribe("CA1")
    for i in range(SUBSCRIPTION_EVENTS + 10):
        monitor.transcript("CA1", i, TranscriptLine(i, "caller", f"word {i}"))
    assert drain(slow) == [{"type": "lagged"}]
    assert slow.closed and slow.lagged
    # A fresh watcher gets a fresh snapshot; the dropped one is no longer told anything.
    fresh = monitor.subscribe("CA1")
    monitor.speaking("CA1", Speaking.BOTH)
    assert [e["type"] for e in drain(fresh)] == ["snapshot", "call"]
    assert drain(slow) == []


def test_closing_a_subscription_ends_its_iteration_and_stops_delivery() -> None:
    monitor = started_monitor()
    sub = monitor.subscribe()

    async def read() -> list[dict[str, Any]]:
        got = []
        async for event in sub:
            got.append(event)
            if event["type"] == "call":
                sub.close()
        return got

    async def run() -> list[dict[str, Any]]:
        reader = asyncio.create_task(read())
        await asyncio.sleep(0)  # the reader takes the snapshot and waits
        monitor.speaking("CA1", Speaking.AGENT)
        monitor.speaking("CA1", Speaking.NONE)
        return await reader

    got = asyncio.run(run())
    assert [e["type"] for e in got] == ["snapshot", "call"]
    monitor.speaking("CA1", Speaking.CALLER)  # delivered to nobody, raises nothing


def test_no_phone_number_reaches_any_event() -> None:
    monitor = CallMonitor()
    sub = monitor.subscribe()
    monitor.call_started(summary("CA1"))
    call = monitor.subscribe("CA1")
    monitor.call_updated(summary("CA1"))
    monitor.call_ended(summary("CA1"))
    text = json.dumps(drain(sub) + drain(call))
    assert "+1555" not in text and "5550100" not in text and "5550199" not in text


def test_a_second_stream_with_the_same_call_id_replaces_the_first() -> None:
    monitor = started_monitor()
    first = monitor.subscribe("CA1")
    monitor.call_started(summary("CA1"))
    events = drain(first)
    assert events[-1]["type"] == "ended" and events[-1]["end_kind"] == "replaced"
    assert len(monitor.active()) == 1


def test_speaking_states_by_who_is_heard() -> None:
    assert [Speaking.of(c, a).value for c in (False, True) for a in (False, True)] == [
        "none", "agent", "caller", "both"]
