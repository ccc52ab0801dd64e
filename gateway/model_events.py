"""What the model sends during a call, routed: each event of the call's Live session to the
part of the call it concerns (the playout, the Live keeper, the tools, the transcript, the
call's figures). The bridge builds one when the call starts, with everything it needs, and
hands it each session to read; it also tells it when the caller spoke, which is how the
response latency of each turn is measured (end of the caller's speech to the first reply).
The call's stall watchdog (:mod:`gateway.watchdog`), if it has one, is told the same.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from gateway import live
from gateway.errors import LiveProtocolError
from gateway.live_keeper import LiveKeeper, LiveLink
from gateway.playout import CallerPlayout
from gateway.record import CallStats, Transcript
from gateway.stall import StallTrigger
from gateway.tools import ToolDispatcher
from gateway.watchdog import StallWatchdog


class ModelEvents:
    """``protocol_error`` counts a message that is not the Live API's (and may end the call);
    ``updated`` says the call's record has news (an interruption, a finished turn)."""

    def __init__(self, playout: CallerPlayout, keeper: LiveKeeper, tools: ToolDispatcher, *,
                 transcript: Transcript, stats: CallStats, log: Any,
                 protocol_error: Callable[[Exception], None],
                 updated: Callable[[], None], watchdog: StallWatchdog | None = None) -> None:
        self.playout = playout
        self.keeper = keeper
        self.tools = tools
        self.transcript = transcript
        self.stats = stats
        self.log = log
        self._protocol_error = protocol_error
        self._updated = updated
        self.watchdog = watchdog
        self._last_speech: float | None = None  # when the caller last spoke, unanswered

    def caller_spoke(self, at: float) -> None:
        self._last_speech = at
        if self.watchdog is not None:
            self.watchdog.caller_spoke(at)

    async def read(self, session: LiveLink) -> None:
        """Route every message of ``session`` until it closes (raises LiveClosedError if it
        dropped)."""
        async for frame in session.frames():
            received = time.perf_counter()
            try:
                events = live.parse_server_message(frame)
            except LiveProtocolError as exc:
                self._protocol_error(exc)
                continue
            for event in events:
                self.dispatch(event, received)

    def _response_latency(self, seconds: float) -> None:
        self._last_speech = None
        self.stats.response_latency.observe(seconds)
        self.stats.turn_latency_ms.append(round(seconds * 1000, 1))

    def dispatch(self, event: live.LiveEvent, received: float) -> None:
        playout, keeper, tools, watchdog = self.playout, self.keeper, self.tools, self.watchdog
        match event:
            case live.ModelAudio():
                if playout.turn_sent_ms == 0 and self._last_speech is not None:
                    self._response_latency(received - self._last_speech)
                playout.audio(event, received)
                if watchdog is not None:
                    watchdog.model_answered(received)
            case live.Interrupted():
                playout.interrupted(received)
                if watchdog is not None:
                    watchdog.asked(StallTrigger.INTERRUPTED, received)
                self._updated()
            case live.TurnComplete():
                playout.turn_complete(event, received)
                self._updated()
            case live.InputTranscript():
                self.transcript.add("caller", event.text)
                if watchdog is not None:
                    watchdog.heard_caller(received)
            case live.OutputTranscript():
                self.transcript.add("agent", event.text)
            case live.ToolCall():
                if watchdog is not None:
                    watchdog.model_answered(received)
                playout.open_turn()
                tools.handle_tool_call(event, received)
            case live.ToolCallCancellation():
                tools.handle_cancellation(event)
            case live.ResumptionUpdate():
                keeper.on_resumption(event)
            case live.GoAway():
                self.log.info("live_go_away", time_left_s=event.time_left_s)
                keeper.go_away(event.time_left_s, playout.turn_done)
            case live.Usage():
                self.stats.tokens_total += event.total_tokens
                self.stats.tokens_prompt += event.prompt_tokens
                self.stats.tokens_response += event.response_tokens
            case live.Unknown():
                self.log.debug("live_unknown_message", keys=list(event.keys))
            case _:
                pass
