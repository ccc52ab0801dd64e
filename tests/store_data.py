"""Call summaries and records for the store and recorder tests."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from gateway.ending import EndKind, EndReason
from gateway.record import CallStats, CallSummary, TranscriptLine
from gateway.store.model import CallRecord, ToolRow, record_of
from gateway.tools import ToolRecord

T0 = 1_750_000_000.25  # epoch seconds


def summary(sid: str = "CA1", *, turns: int = 2, started: float = T0,
            duration_s: float = 12.5) -> CallSummary:
    stats = CallStats(frames_in=600, media_out=450, media_dropped_full=2, interruptions=1,
                      tokens_prompt=100, tokens_response=40, tokens_total=140)
    stats.live.frames_lost = 3
    stats.live.reconnects = 1
    stats.live.reconnect_gap.observe(0.25)
    stats.turn_latency_ms.extend([812.5, 790.0])
    lines = [TranscriptLine(0.5, "caller", "Hi, a table for two."),
             TranscriptLine(2.0, "agent", "We have seven or nine o'clock.", True, "We have"),
             TranscriptLine(4.0, "caller", "Eight?"),
             TranscriptLine(6.0, "agent", "Eight it is. Goodbye!")][:turns]
    tools = [ToolRecord("t1", "book", {"people": 2, "when": "20:00"}, {"ok": True}, None, 0.012),
             ToolRecord("t2", "lookup", {"q": "x"}, None, "lookup failed: boom", 0.5),
             ToolRecord("t3", "slow", {}, None, None, 1.0, cancelled=True)]
    return CallSummary(carrier="twilio", call_sid=sid, stream_sid="MZ" + sid,
                       agent="assistant",
                       end=EndReason(EndKind.CALLER_HUNG_UP, "caller hung up"),
                       started=started, duration_s=duration_s, stats=stats, transcript=lines,
                       custom_parameters={"From": "+15550100", "To": "+15550199"},
                       tool_calls=tools, caller="+15550100", callee="+15550199")


def record(sid: str = "CA1", *, ended: bool = True, turns: int = 2,
           started: float = T0) -> CallRecord:
    made = record_of(summary(sid, turns=turns, started=started), ended=ended,
                     now=started + 13)
    assert made is not None
    return made


def with_turns(rec: CallRecord, *lines: TranscriptLine) -> CallRecord:
    return dataclasses.replace(rec, turns=lines)


def with_tools(rec: CallRecord, *tools: ToolRow) -> CallRecord:
    return dataclasses.replace(rec, tool_calls=tools)


def later(rec: CallRecord, seconds: float) -> CallRecord:
    return dataclasses.replace(rec, updated_at=rec.updated_at + timedelta(seconds=seconds))


def at(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)
