"""What the gateway keeps about one call: counters, timings, the transcript, tool calls.

Everything here has a fixed bound (histograms, a capped transcript), so a call of any length
costs the same memory.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from gateway.ending import EndKind, EndReason
from gateway.live_keeper import KeeperStats
from gateway.stall import StallStats
from gateway.stats import Histogram

TRANSCRIPT_LINES: Final = 500


@dataclass(slots=True)
class CallStats:
    frames_in: int = 0
    protocol_errors: int = 0
    unknown_events: int = 0  # carrier events we do not know: ignored, not protocol errors
    media_out: int = 0
    media_dropped_barge_in: int = 0  # reply chunks queued but never sent: interrupted
    media_dropped_full: int = 0  # reply chunks refused: the caller's socket was not reading
    flow_pauses: int = 0  # times the carrier asked for no more reply audio for now
    interruptions: int = 0
    marks_sent: int = 0
    marks_heard: int = 0
    tokens_total: int = 0
    tokens_prompt: int = 0
    # Longest silence inside a reply as the caller heard it: audio written after what was
    # already sent had finished playing (the model streaming slower than real time).
    reply_gap_max_ms: float = 0.0
    tokens_response: int = 0
    reply_latency: Histogram = field(default_factory=Histogram)  # Live audio in -> caller
    barge_in: Histogram = field(default_factory=Histogram)  # `interrupted` in -> `clear` out
    live: KeeperStats = field(default_factory=KeeperStats)  # reconnects, replays, losses
    # End of the caller's speech (gateway's energy detector) -> first reply audio, per turn.
    response_latency: Histogram = field(default_factory=Histogram)
    turn_latency_ms: deque[float] = field(default_factory=lambda: deque(maxlen=TRANSCRIPT_LINES))
    stalls: StallStats = field(default_factory=StallStats)  # the model went quiet: how it ended

    @property
    def frames_forwarded(self) -> int:
        """Caller frames that reached a Live session (the keeper forwards them)."""
        return self.live.frames_forwarded

    @property
    def forward_latency(self) -> Histogram:
        """Caller frame in -> written to the Live session."""
        return self.live.forward_latency


@dataclass(frozen=True, slots=True)
class TranscriptLine:
    at: float  # seconds since the call started
    role: str  # "caller" | "agent"
    text: str
    interrupted: bool = False
    # For an interrupted agent line: the part the caller heard before talking over it,
    # estimated from the marks the carrier confirmed (heard ms / sent ms of the reply's text).
    heard: str | None = None


class Transcript:
    """Transcription fragments joined into lines, one per speaker turn.

    ``changed`` (the live-call monitor's) is told each line as it is added, grows or is
    marked interrupted, by its index counted from the call's first line (which the cap on
    the lines kept does not shift)."""

    def __init__(self, t0: float,
                 changed: Callable[[int, TranscriptLine], None] | None = None) -> None:
        self._t0 = t0
        self._lines: deque[TranscriptLine] = deque(maxlen=TRANSCRIPT_LINES)
        self._changed = changed
        self._count = 0  # lines ever added

    def add(self, role: str, text: str) -> None:
        last = self._lines[-1] if self._lines else None
        if last is not None and last.role == role and not last.interrupted:
            line = self._lines[-1] = TranscriptLine(last.at, role, last.text + text)
        else:
            at = time.perf_counter() - self._t0
            line = TranscriptLine(at, role, text.lstrip())
            self._lines.append(line)
            self._count += 1
        if self._changed is not None:
            self._changed(self._count - 1, line)

    def mark_agent_interrupted(self, heard_fraction: float | None = None) -> None:
        for i in range(len(self._lines) - 1, -1, -1):
            line = self._lines[i]
            if line.role == "agent":
                heard = None if heard_fraction is None else _prefix(line.text, heard_fraction)
                line = self._lines[i] = TranscriptLine(line.at, line.role, line.text, True,
                                                       heard)
                if self._changed is not None:
                    self._changed(self._count - len(self._lines) + i, line)
                return

    def lines(self) -> list[TranscriptLine]:
        return list(self._lines)


def _prefix(text: str, fraction: float) -> str:
    """The first ``fraction`` of ``text``, cut back to a word boundary."""
    cut = int(len(text) * min(1.0, max(0.0, fraction)))
    if cut >= len(text):
        return text
    return text[:cut].rsplit(" ", 1)[0] if " " in text[:cut] else ""


NOT_ENDED: Final = EndReason(EndKind.INTERNAL_ERROR, "not ended")


@dataclass(slots=True)
class CallSummary:
    carrier: str  # gateway.carriers.core.Carrier's value
    call_sid: str | None  # the carrier's id for the call
    stream_sid: str | None
    agent: str | None
    end: EndReason  # NOT_ENDED until the call is over
    started: float
    duration_s: float
    stats: CallStats
    transcript: list[TranscriptLine]
    custom_parameters: dict[str, str]
    tool_calls: list[Any] = field(default_factory=list)  # gateway.tools.ToolRecord
    tool_stats: Any = None  # gateway.tools.ToolStats
    caller: str | None = None
    callee: str | None = None

    @property
    def end_reason(self) -> str:
        return self.end.detail

    def log_fields(self) -> dict[str, Any]:
        """The ``call_ended`` log line's figures."""
        stats = self.stats
        return {"reason": self.end.detail, "kind": self.end.kind.value, "agent": self.agent,
                "duration_s": round(self.duration_s, 3), "frames_in": stats.frames_in,
                "frames_forwarded": stats.frames_forwarded, "media_out": stats.media_out,
                "interruptions": stats.interruptions, "tool_calls": len(self.tool_calls),
                "forward_latency": stats.forward_latency.summary().format(),
                "barge_in": stats.barge_in.summary().format()}


class CallObserver(Protocol):
    """Told what happens on each call: call records, metrics.

    Called from the call's own task with a snapshot; must return at once (queue the work,
    never await or block), since the same task carries the call's audio.
    """

    def call_started(self, summary: CallSummary) -> None: ...
    def call_updated(self, summary: CallSummary) -> None:
        """After each model turn (completed or interrupted) and each Live reconnect."""
    def call_ended(self, summary: CallSummary) -> None: ...


def notify(observers: tuple[CallObserver, ...], what: str, summary: CallSummary,
           log: Any) -> None:
    """Tell each observer; one that fails is logged and never affects the call."""
    for observer in observers:
        try:
            getattr(observer, what)(summary)
        except Exception:
            log.exception("observer_failed", observer=type(observer).__name__, hook=what)
