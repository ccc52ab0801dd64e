"""A call's record as stored: a frozen copy of a :class:`CallSummary` at one moment.

The summary an observer is handed shares the bridge's live ``CallStats``, which the call goes on
changing after the hook returns; :func:`record_of` copies what is kept, on the call's own task,
so the background writer stores one consistent moment and never reads state that is changing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gateway.record import CallSummary, TranscriptLine
from gateway.stall import StallRecord
from gateway.tools import ToolRecord


@dataclass(frozen=True, slots=True)
class ToolRow:
    id: str
    name: str
    args: Mapping[str, Any]
    result: Mapping[str, Any] | None
    error: str | None
    latency_ms: float
    outcome: str  # ok | error | cancelled

    @classmethod
    def of(cls, record: ToolRecord) -> ToolRow:
        return cls(record.id, record.name, record.args, record.result, record.error,
                   round(record.latency_s * 1000, 3), record.outcome)


@dataclass(frozen=True, slots=True)
class CallRecord:
    call_sid: str
    stream_sid: str | None
    agent: str | None
    caller: str | None
    dialled: str | None
    started_at: datetime
    ended_at: datetime | None  # None while the call runs (or if the gateway died during it)
    end_reason: str | None
    duration_s: float
    frames_in: int
    frames_out: int
    frames_dropped: int
    longest_gap_ms: float | None
    interruptions: int
    live_reconnects: int
    reconnect_gaps: Mapping[str, float]
    tokens_prompt: int
    tokens_response: int
    tokens_total: int
    response_latency_ms: tuple[float, ...]
    updated_at: datetime
    turns: tuple[TranscriptLine, ...] = ()
    tool_calls: tuple[ToolRow, ...] = ()
    longest_reply_gap_ms: float | None = None  # schema 2; None in records written before
    carrier: str = "twilio"  # schema 3; every earlier call was Twilio's
    end_kind: str | None = None  # schema 3: gateway.ending.EndKind's value, once ended
    stalls: tuple[StallRecord, ...] = ()  # schema 4: the model went quiet, and how it ended


@dataclass(frozen=True, slots=True)
class CallListing:
    """One line of ``voicegw calls list``."""

    call_sid: str
    started_at: datetime
    duration_s: float
    agent: str | None
    caller: str | None
    end_reason: str | None
    ended: bool
    turns: int
    interruptions: int
    carrier: str = "twilio"
    end_kind: str | None = None


@dataclass(frozen=True, slots=True)
class CallQuery:
    """A search of the call records (the console's list): each filter given narrows it."""

    since: datetime | None = None  # started at or after (aware)
    until: datetime | None = None  # started before (aware)
    agent: str | None = None
    carrier: str | None = None
    end_kind: str | None = None
    text: str | None = None  # in any line of the transcript, ignoring case
    page: int = 1  # from 1
    per_page: int = 50


@dataclass(frozen=True, slots=True)
class CallPage:
    """One page of a search, newest first, and how many calls match in all."""

    calls: tuple[CallListing, ...]
    total: int


def utc(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


def record_of(summary: CallSummary, *, ended: bool, now: float) -> CallRecord | None:
    """The record of ``summary`` as it is now; None for a stream that never said who it is."""
    if not summary.call_sid:
        return None
    stats = summary.stats
    live = stats.live
    gap = live.reconnect_gap
    gaps = gap.summary()
    return CallRecord(
        call_sid=summary.call_sid, stream_sid=summary.stream_sid, agent=summary.agent,
        caller=summary.caller, dialled=summary.callee, carrier=summary.carrier,
        end_kind=summary.end.kind.value if ended else None,
        started_at=utc(summary.started),
        ended_at=utc(summary.started + summary.duration_s) if ended else None,
        end_reason=summary.end_reason if ended else None,
        duration_s=summary.duration_s,
        frames_in=stats.frames_in, frames_out=stats.media_out,
        # Caller audio the model never got, plus reply audio the caller never got.
        frames_dropped=live.frames_lost + stats.media_dropped_full,
        longest_gap_ms=round(gap.max * 1000, 1) if gap.count else None,
        interruptions=stats.interruptions, live_reconnects=live.reconnects,
        # The keeper folds gaps into a histogram (fixed memory), so this is its summary.
        reconnect_gaps={"count": gaps.count, "mean_ms": round(gaps.mean_ms, 1),
                        "p95_ms": round(gaps.p95_ms, 1), "max_ms": round(gaps.max_ms, 1),
                        "swaps": live.swaps, "drops": live.drops,
                        "frames_replayed": live.frames_replayed},
        tokens_prompt=stats.tokens_prompt, tokens_response=stats.tokens_response,
        tokens_total=stats.tokens_total,
        response_latency_ms=tuple(stats.turn_latency_ms),
        longest_reply_gap_ms=stats.reply_gap_max_ms,
        updated_at=utc(now),
        turns=tuple(summary.transcript),
        tool_calls=tuple(ToolRow.of(t) for t in summary.tool_calls),
        stalls=tuple(stats.stalls.records),
    )
