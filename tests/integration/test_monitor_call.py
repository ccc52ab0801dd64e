"""The live-call monitor fed by a real call: a phone call over loopback sockets to a gateway
bridged to the simulated Live server, watched from the start as the console watches."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from gateway.monitor import CallMonitor
from gateway.rig.phone import When
from tests.cases import CASES
from tests.integration.test_carrier_calls import CALL, line, say

TWILIO = next(c for c in CASES if c.carrier.value == "twilio")


async def watch(monitor: CallMonitor) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every call's changes until the first call ends, and that call's own stream."""
    everything: list[dict[str, Any]] = []
    one: list[dict[str, Any]] = []
    reader: asyncio.Task[None] | None = None

    async def follow(call_id: str) -> None:
        async for event in monitor.subscribe(call_id):
            one.append(event)

    async for event in monitor.subscribe():
        everything.append(event)
        if event["type"] == "call" and reader is None:
            reader = asyncio.create_task(follow(event["call"]["call_id"]))
        if event["type"] == "ended":
            break
    assert reader is not None
    await reader  # ends with the call's "ended"
    return everything, one


async def test_a_call_is_seen_live_who_speaks_what_is_said_and_its_tools(
        tmp_path: Path) -> None:
    script = [say("caller_book_table", When.START, 300),
              say("caller_seven_thirty"),
              say("caller_barge_in", When.BARGE_IN, 2000),
              say("caller_goodbye")]
    async with line(TWILIO, CALL, tmp_path) as ln:
        watcher = asyncio.create_task(watch(ln.gateway.monitor))
        result, _ = await ln.call(script, tail_ms=10_000)
        everything, one = await watcher
        assert ln.gateway.monitor.active() == []
    summary = ln.summary(result)
    assert everything[0] == {"type": "snapshot", "calls": []}
    infos = [e["call"] for e in everything if e["type"] == "call"]
    assert {i["call_id"] for i in infos} == {result.call_sid}
    assert {i["carrier"] for i in infos} == {"twilio"}
    speaking = [i["speaking"] for i in infos]
    assert "caller" in speaking and "agent" in speaking
    assert infos[-1]["interruptions"] == 1
    assert infos[-1]["last_turn_latency_ms"] == summary.stats.turn_latency_ms[-1]
    assert everything[-1] == {"type": "ended", "call_id": result.call_sid,
                              "end_kind": "agent_ended", "end_reason": summary.end.detail}

    # The call's own stream: its transcript line by line, as the record has it at the end.
    assert one[0]["type"] == "snapshot" and one[-1]["type"] == "ended"
    lines: dict[int, dict[str, Any]] = {}
    for event in one:
        if event["type"] == "transcript":
            lines[event["line"]] = event
    assert [(e["role"], e["text"], e["interrupted"], e["heard"]) for e in lines.values()] == [
        (t.role, t.text, t.interrupted, t.heard) for t in summary.transcript]
    tools = [e for e in one if e["type"] in ("tool_call", "tool_result")]
    assert [(e["type"], e["id"]) for e in tools] == [("tool_call", "end-1"),
                                                    ("tool_result", "end-1")]
    assert tools[0]["name"] == "end_call" and tools[0]["args"] == {
        "reason": "caller said goodbye"}
    assert tools[1]["outcome"] == "ok"
    assert "+1555" not in json.dumps(everything + one)  # no phone number, ever
