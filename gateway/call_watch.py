"""What the live-call monitor (:mod:`gateway.monitor`) sees of one call, told by the call's
collaborators as things happen: the transcript as each line grows
(:class:`gateway.record.Transcript`), tool calls as they start and finish
(:class:`gateway.tools.ToolDispatcher`), and on every caller frame
(:class:`gateway.caller_path.CallerPath`) who is speaking: the caller, while a frame loud
enough to be speech came within :data:`CALLER_HOLD_S`; the agent, while reply audio sent to
the caller is still playing by the playout's clock. Only changes reach the monitor.

The bridge builds one per call from the monitor its services carry (none: every hook returns
at once). Per-call layer: no I/O, nothing awaited.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final

from gateway import live
from gateway.monitor import CallMonitor, Speaking
from gateway.record import TranscriptLine
from gateway.tools import ToolRecord

# Speech comes in syllables with short gaps; a caller quiet this long has stopped speaking.
CALLER_HOLD_S: Final = 0.3


class CallWatch:
    def __init__(self, monitor: CallMonitor | None) -> None:
        self.monitor = monitor
        self.call_id: str | None = None
        self._playing: Callable[[float], bool] = _never
        self._last_speech = -math.inf
        self._speaking = Speaking.NONE

    def begin(self, call_id: str, playing: Callable[[float], bool]) -> None:
        """The call is ``call_id``; ``playing(now)`` says whether reply audio is playing."""
        self.call_id = call_id
        self._playing = playing

    def line(self, index: int, line: TranscriptLine) -> None:
        if self.monitor is not None and self.call_id is not None:
            self.monitor.transcript(self.call_id, index, line)

    def frame(self, at: float, speech: bool) -> None:
        """A caller frame received at ``at`` (perf_counter); ``speech``: loud enough."""
        monitor, call_id = self.monitor, self.call_id
        if monitor is None or call_id is None:
            return
        if speech:
            self._last_speech = at
        who = Speaking.of(at - self._last_speech < CALLER_HOLD_S, self._playing(at))
        if who is not self._speaking:
            self._speaking = who
            monitor.speaking(call_id, who)

    def tool_started(self, call: live.FunctionCall) -> None:
        if self.monitor is not None and self.call_id is not None:
            self.monitor.tool_started(self.call_id, call.id, call.name, call.args)

    def tool_finished(self, record: ToolRecord) -> None:
        if self.monitor is not None and self.call_id is not None:
            self.monitor.tool_finished(self.call_id, record.id, outcome=record.outcome,
                                       result=record.result, error=record.error,
                                       latency_ms=record.latency_s * 1000)


def _never(_now: float) -> bool:
    return False
