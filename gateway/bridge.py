"""One bridge per call: Twilio Media Stream <-> one Live session.

The bridge owns the call's tasks (one ``TaskGroup``: caller pump, model pump, caller writer),
its queues, its resamplers and its logger. It speaks to its two peers only through the small
protocols below, so it never imports aiohttp or websockets; the server and the tests plug
sockets in.

Barge-in is the path that matters most to a caller. When the Live service says ``interrupted``,
the model pump, in one synchronous step, drops every queued reply frame and mark of the turn,
resets the output resampler (so no filter tail of the old reply leaks) and queues ``clear``; the
next reply audio can only be queued after that, so none of the interrupted turn is written
after the ``clear``.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import structlog

from gateway import live, twilio
from gateway.audio import Resampler, pcm16_to_ulaw, ulaw_to_pcm16
from gateway.errors import (
    GatewayError,
    LiveClosedError,
    LiveConnectError,
    LiveProtocolError,
    TwilioProtocolError,
)
from gateway.log import mask_number
from gateway.outbound import Kind, OutboundQueue, Outgoing
from gateway.stats import Histogram

MAX_PROTOCOL_ERRORS: Final = 50  # a peer this broken is not a phone call any more
TRANSCRIPT_LINES: Final = 500


class CallerSocket(Protocol):
    """The provider's WebSocket, as the bridge needs it."""

    def frames(self) -> AsyncIterator[str | bytes]: ...
    async def send(self, text: str) -> None:
        """Raises ConnectionError once the socket is closed."""
    async def close(self, code: int, reason: str) -> None: ...


class LiveLink(Protocol):
    """An open Live session (``gateway.live_client.LiveSession``)."""

    def frames(self) -> AsyncIterator[str | bytes]: ...
    async def send(self, text: str) -> None: ...
    async def close(self, code: int = 1000, reason: str = "") -> None: ...


LiveConnector = Callable[[str], Awaitable[LiveLink]]


class CallState(enum.Enum):
    WAITING = "waiting"  # socket open, no `start` yet
    CONNECTING = "connecting"  # `start` seen, Live session opening; caller audio is held
    ACTIVE = "active"
    ENDED = "ended"


_MOVES: Final = {
    CallState.WAITING: {CallState.CONNECTING, CallState.ENDED},
    CallState.CONNECTING: {CallState.ACTIVE, CallState.ENDED},
    CallState.ACTIVE: {CallState.ENDED},
    CallState.ENDED: set[CallState](),
}


class CallEnded(GatewayError):
    """Raised inside the call's task group to end the call; ``reason`` is logged."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True, slots=True)
class BridgeSettings:
    session: live.SessionConfig
    mark_interval_ms: int = 200
    max_held_frames: int = 500  # caller audio held while the Live session opens (10 s)
    max_queued_media: int = 1500  # reply chunks waiting for the caller's socket
    start_timeout_s: float = 10.0


@dataclass(slots=True)
class CallStats:
    frames_in: int = 0
    frames_forwarded: int = 0
    frames_held_dropped: int = 0
    protocol_errors: int = 0
    media_out: int = 0
    media_dropped_barge_in: int = 0  # reply chunks queued but never sent: interrupted
    media_dropped_full: int = 0  # reply chunks refused: the caller's socket was not reading
    interruptions: int = 0
    marks_sent: int = 0
    marks_heard: int = 0
    forward_latency: Histogram = field(default_factory=Histogram)  # Twilio frame in -> Live
    reply_latency: Histogram = field(default_factory=Histogram)  # Live audio in -> caller
    barge_in: Histogram = field(default_factory=Histogram)  # `interrupted` in -> `clear` out
    tokens_total: int = 0


@dataclass(frozen=True, slots=True)
class TranscriptLine:
    at: float  # seconds since the call started
    role: str  # "caller" | "agent"
    text: str
    interrupted: bool = False


@dataclass(slots=True)
class CallSummary:
    call_sid: str | None
    stream_sid: str | None
    end_reason: str
    started: float
    duration_s: float
    stats: CallStats
    transcript: list[TranscriptLine]
    custom_parameters: dict[str, str]


class CallBridge:
    def __init__(self, caller: CallerSocket, connect_live: LiveConnector,
                 settings: BridgeSettings) -> None:
        self.caller = caller
        self.connect_live = connect_live
        self.settings = settings
        self.state = CallState.WAITING
        self.twilio = twilio.TwilioStream()
        self.stats = CallStats()
        self.log = structlog.get_logger("gateway.call")
        self.started = time.time()
        self._t0 = time.perf_counter()
        self._in_resampler = Resampler(twilio.SAMPLE_RATE, live.INPUT_RATE)
        self._out_rate = live.OUTPUT_RATE
        self._out_resampler = Resampler(self._out_rate, twilio.SAMPLE_RATE)
        self._out = OutboundQueue(settings.max_queued_media)
        self._held: deque[tuple[str, float]] = deque()
        self._live: LiveLink | None = None
        self._tg: asyncio.TaskGroup | None = None
        self._started_event = asyncio.Event()
        self._turn = 0
        self._turn_sent_ms = 0.0
        self._last_mark_ms = 0.0
        self._heard: tuple[int, float] = (0, 0.0)  # (turn, ms) the caller has heard, from marks
        self._transcript: deque[TranscriptLine] = deque(maxlen=TRANSCRIPT_LINES)
        self._params: dict[str, str] = {}
        self.end_reason = "not started"
        self.resumption_handle: str | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def _move(self, new: CallState) -> None:
        if new not in _MOVES[self.state]:
            raise GatewayError(f"illegal call state move {self.state.value} -> {new.value}")
        self.state = new

    async def run(self) -> CallSummary:
        """Run the call to its end; never raises for anything a peer does."""
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                tg.create_task(self._caller_pump(), name="caller-pump")
                tg.create_task(self._writer(), name="caller-writer")
                tg.create_task(self._start_watchdog(), name="start-watchdog")
        except* CallEnded as group:
            self.end_reason = _first_reason(group)
        except* Exception as group:
            self.end_reason = "internal error"
            self.log.error("call_failed", exc_info=group.exceptions[0])
        finally:
            await self._close_peers()
        summary = self.summary()
        self.log.info("call_ended", reason=self.end_reason,
                      duration_s=round(summary.duration_s, 3),
                      frames_in=self.stats.frames_in,
                      frames_forwarded=self.stats.frames_forwarded,
                      media_out=self.stats.media_out, interruptions=self.stats.interruptions,
                      forward_latency=self.stats.forward_latency.summary().format(),
                      barge_in=self.stats.barge_in.summary().format())
        return summary

    def summary(self) -> CallSummary:
        return CallSummary(
            call_sid=self.twilio.call_sid, stream_sid=self.twilio.stream_sid,
            end_reason=self.end_reason, started=self.started,
            duration_s=time.perf_counter() - self._t0, stats=self.stats,
            transcript=list(self._transcript), custom_parameters=dict(self._params))

    async def _close_peers(self) -> None:
        if self.state is not CallState.ENDED:
            self._move(CallState.ENDED)
        if self._live is not None:
            try:
                await self._live.close(1000, "call ended")
            except Exception as exc:  # the session may already be gone
                self.log.debug("live_close_failed", error=repr(exc))
        try:
            await self.caller.close(1000, self.end_reason[:120])
        except Exception as exc:
            self.log.debug("caller_close_failed", error=repr(exc))

    async def _start_watchdog(self) -> None:
        try:
            async with asyncio.timeout(self.settings.start_timeout_s):
                await self._started_event.wait()
        except TimeoutError:
            raise CallEnded(f"no start event within {self.settings.start_timeout_s:g} s") \
                from None

    # -- caller -> model -----------------------------------------------------------------

    async def _caller_pump(self) -> None:
        async for frame in self.caller.frames():
            received = time.perf_counter()
            try:
                event = self.twilio.receive(frame)
            except TwilioProtocolError as exc:
                self._protocol_error("twilio", exc)
                continue
            try:
                await self._dispatch_twilio(event, received)
            except LiveClosedError as exc:
                raise CallEnded(f"live session closed: {exc.code} {exc.reason}".rstrip()) \
                    from exc
        raise CallEnded("caller disconnected")

    def _protocol_error(self, peer: str, exc: Exception) -> None:
        self.stats.protocol_errors += 1
        self.log.warning("protocol_error", peer=peer, error=str(exc))
        if self.stats.protocol_errors > MAX_PROTOCOL_ERRORS:
            raise CallEnded(f"too many protocol errors from {peer}")

    async def _dispatch_twilio(self, event: twilio.TwilioEvent, received: float) -> None:
        match event:
            case twilio.Media():
                await self.handle_media(event, received)
            case twilio.Start():
                self.handle_start(event)
            case twilio.Mark():
                self.handle_mark(event)
            case twilio.Dtmf():
                await self.handle_dtmf(event)
            case twilio.Stop():
                raise CallEnded("caller hung up")
            case twilio.Connected():
                pass

    def handle_start(self, event: twilio.Start) -> None:
        self._params = dict(event.custom_parameters)
        self.log = self.log.bind(call_sid=event.call_sid, stream_sid=event.stream_sid)
        self.log.info("call_started", caller=mask_number(self._params.get("From")),
                      dialled=mask_number(self._params.get("To")))
        self._move(CallState.CONNECTING)
        self._started_event.set()
        assert self._tg is not None
        self._tg.create_task(self._model_pump(), name="model-pump")

    async def handle_media(self, event: twilio.Media, received: float) -> None:
        self.stats.frames_in += 1
        pcm = self._in_resampler.process(ulaw_to_pcm16(event.payload))
        message = live.audio_message(pcm)
        if self._live is None:
            if len(self._held) >= self.settings.max_held_frames:
                self._held.popleft()
                self.stats.frames_held_dropped += 1
            self._held.append((message, received))
            return
        await self._live.send(message)
        self.stats.frames_forwarded += 1
        self.stats.forward_latency.observe(time.perf_counter() - received)

    def handle_mark(self, event: twilio.Mark) -> None:
        turn, _, ms = event.name.partition(":")
        try:
            heard = (int(turn), float(ms) if ms != "end" else self._turn_sent_ms)
        except ValueError:
            self.log.warning("unknown_mark", name=event.name[:64])
            return
        self.stats.marks_heard += 1
        self._heard = max(self._heard, heard)

    async def handle_dtmf(self, event: twilio.Dtmf) -> None:
        self.log.info("dtmf", digit=event.digit)
        if self._live is not None:
            await self._live.send(live.text_message(f"The caller pressed {event.digit}."))

    # -- model -> caller -----------------------------------------------------------------

    async def _model_pump(self) -> None:
        try:
            session = await self.connect_live(live.build_setup(self.settings.session))
        except (LiveConnectError, LiveClosedError) as exc:
            raise CallEnded(f"live session could not open: {exc}") from exc
        self._live = session
        self._move(CallState.ACTIVE)
        while self._held:
            message, received = self._held.popleft()
            await session.send(message)
            self.stats.frames_forwarded += 1
            self.stats.forward_latency.observe(time.perf_counter() - received)
        self.log.info("live_ready")
        try:
            async for frame in session.frames():
                received = time.perf_counter()
                try:
                    events = live.parse_server_message(frame)
                except LiveProtocolError as exc:
                    self._protocol_error("live", exc)
                    continue
                for event in events:
                    await self._dispatch_live(event, received)
        except LiveClosedError as exc:
            raise CallEnded(f"live session closed: {exc.code} {exc.reason}".rstrip()) from exc

    async def _dispatch_live(self, event: live.LiveEvent, received: float) -> None:
        match event:
            case live.ModelAudio():
                self.handle_model_audio(event, received)
            case live.Interrupted():
                self.handle_interrupted(received)
            case live.TurnComplete():
                self.handle_turn_complete(event)
            case live.InputTranscript():
                self._add_transcript("caller", event.text)
            case live.OutputTranscript():
                self._add_transcript("agent", event.text)
            case live.ToolCall():
                await self.handle_tool_call(event)
            case live.ResumptionUpdate():
                if event.handle:
                    self.resumption_handle = event.handle
            case live.GoAway():
                self.log.info("live_go_away", time_left_s=event.time_left_s)
            case live.Usage():
                self.stats.tokens_total += event.total_tokens
            case live.Unknown():
                self.log.debug("live_unknown_message", keys=list(event.keys))
            case _:
                pass

    def handle_model_audio(self, event: live.ModelAudio, received: float) -> None:
        if event.rate != self._out_rate:
            self._out_rate = event.rate
            self._out_resampler = Resampler(event.rate, twilio.SAMPLE_RATE)
        ulaw = pcm16_to_ulaw(self._out_resampler.process(event.pcm))
        if not ulaw:
            return
        if self._out.put(Outgoing(Kind.MEDIA, self.twilio.media(ulaw), received)):
            self._turn_sent_ms += len(ulaw) / 8.0
        else:
            self.stats.media_dropped_full += 1
            if self.stats.media_dropped_full % 100 == 1:  # first, then every 100th: no log storm
                self.log.warning("reply_audio_dropped", reason="caller socket not reading",
                                 dropped=self.stats.media_dropped_full)
        interval = self.settings.mark_interval_ms
        if interval and self._turn_sent_ms - self._last_mark_ms >= interval:
            self._queue_mark(f"{self._turn}:{self._turn_sent_ms:.0f}")
            self._last_mark_ms = self._turn_sent_ms

    def _queue_mark(self, name: str) -> None:
        self._out.put(Outgoing(Kind.MARK, self.twilio.mark(name), time.perf_counter()))
        self.stats.marks_sent += 1

    def handle_interrupted(self, received: float) -> None:
        dropped = self._out.drop_audio()
        self.stats.media_dropped_barge_in += dropped
        self._out_resampler.reset()
        self._out.put(Outgoing(Kind.CLEAR, self.twilio.clear(), received))
        self.stats.interruptions += 1
        heard_turn, heard_ms = self._heard
        heard = heard_ms if heard_turn == self._turn else 0.0
        self.log.info("barge_in", turn=self._turn, dropped_chunks=dropped,
                      sent_ms=round(self._turn_sent_ms), heard_ms=round(heard))
        self._mark_last_agent_line_interrupted()
        self._next_turn()

    def handle_turn_complete(self, event: live.TurnComplete) -> None:
        if self._turn_sent_ms:
            self._queue_mark(f"{self._turn}:end")
            self._next_turn()
        if event.reason:
            self.log.info("turn_complete", reason=event.reason)

    def _next_turn(self) -> None:
        self._turn += 1
        self._turn_sent_ms = 0.0
        self._last_mark_ms = 0.0

    async def handle_tool_call(self, event: live.ToolCall) -> None:
        # No tools are registered on the plain bridge: answer every call so the model is never
        # left waiting, and say why.
        assert self._live is not None
        responses = [live.FunctionResponse(c.id, c.name, {"error": f"no tool named {c.name!r}"})
                     for c in event.calls]
        self.log.warning("tool_call_unhandled", tools=[c.name for c in event.calls])
        await self._live.send(live.tool_response(responses))

    def _add_transcript(self, role: str, text: str) -> None:
        at = time.perf_counter() - self._t0
        last = self._transcript[-1] if self._transcript else None
        if last is not None and last.role == role and not last.interrupted:
            self._transcript[-1] = TranscriptLine(last.at, role, last.text + text)
        else:
            self._transcript.append(TranscriptLine(at, role, text.lstrip()))

    def _mark_last_agent_line_interrupted(self) -> None:
        for i in range(len(self._transcript) - 1, -1, -1):
            line = self._transcript[i]
            if line.role == "agent":
                self._transcript[i] = TranscriptLine(line.at, line.role, line.text, True)
                return

    # -- writer --------------------------------------------------------------------------

    async def _writer(self) -> None:
        while True:
            item = await self._out.get()
            try:
                await self.caller.send(item.text)
            except ConnectionError as exc:
                raise CallEnded("caller socket closed while writing") from exc
            done = time.perf_counter()
            if item.kind is Kind.MEDIA:
                self.stats.media_out += 1
                self.stats.reply_latency.observe(done - item.since)
            elif item.kind is Kind.CLEAR:
                self.stats.barge_in.observe(done - item.since)


def _first_reason(group: BaseExceptionGroup[Any]) -> str:
    for exc in group.exceptions:
        if isinstance(exc, CallEnded):
            return exc.reason
        if isinstance(exc, BaseExceptionGroup):
            return _first_reason(exc)
    return "ended"
