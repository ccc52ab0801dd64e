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
import contextlib
import enum
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

import structlog

from gateway import live, twilio
from gateway.agent import Agent, CallContext
from gateway.audio import Resampler, pcm16_to_ulaw, ulaw_to_pcm16
from gateway.callctl import CallController, CallEnding
from gateway.errors import (
    GatewayError,
    LiveClosedError,
    LiveConnectError,
    LiveProtocolError,
    TwilioProtocolError,
)
from gateway.log import mask_number
from gateway.outbound import Kind, OutboundQueue, Outgoing
from gateway.record import CallStats, CallSummary, Transcript
from gateway.registry import DEFAULT_AGENT, AgentRegistry, UnknownAgentError
from gateway.tools import ToolDispatcher
from gateway.twilio_rest import TwilioRest

MAX_PROTOCOL_ERRORS: Final = 50  # a peer this broken is not a phone call any more


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


@dataclass(frozen=True, slots=True)
class BridgeSettings:
    session: live.SessionConfig
    mark_interval_ms: int = 200
    max_held_frames: int = 500  # caller audio held while the Live session opens (10 s)
    max_queued_media: int = 1500  # reply chunks waiting for the caller's socket
    start_timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class CallServices:
    """What every call shares: the agents, the Twilio REST client, recorded prompts."""

    agents: AgentRegistry | None = None  # None: every call gets the plain default agent
    rest: TwilioRest | None = None
    unavailable_prompt: bytes = b""  # mu-law 8 kHz, played when a call cannot be served


class CallBridge:
    def __init__(self, caller: CallerSocket, connect_live: LiveConnector,
                 settings: BridgeSettings, services: CallServices | None = None, *,
                 path: str | None = None) -> None:
        self.caller = caller
        self.connect_live = connect_live
        self.settings = settings
        self.services = services or CallServices()
        self.path = path
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
        self._held_keys: deque[str] = deque(maxlen=64)  # keypad notices, held likewise
        self._live: LiveLink | None = None
        self._tg: asyncio.TaskGroup | None = None
        self._started_event = asyncio.Event()
        self._turn = 0
        self._turn_sent_ms = 0.0
        self._last_mark_ms = 0.0
        self._turn_open = False  # the model is mid-turn (audio or a tool call, no turnComplete)
        self._turn_done = asyncio.Event()
        self._turn_done.set()
        self._mark_waiters: dict[str, asyncio.Event] = {}
        self._heard: tuple[int, float] = (0, 0.0)  # (turn, ms) the caller has heard, from marks
        self.transcript = Transcript(self._t0)
        self._params: dict[str, str] = {}
        self.agent: Agent | None = None
        self.control = CallController(self.services.rest, self.log)
        self.ctx: CallContext | None = None
        self.tools: ToolDispatcher | None = None
        self.end_reason = "not started"
        self.resumption_handle: str | None = None
        self._end_requested: str | None = None
        self._end_event = asyncio.Event()

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
                tg.create_task(self.control.run(self), name="call-control")
                tg.create_task(self._end_watch(), name="end-watch")
        except* CallEnding as group:
            self.end_reason = _first_reason(group)
        except* Exception as group:
            self.end_reason = "internal error"
            self.log.error("call_failed", exc_info=group.exceptions[0])
        finally:
            if self.tools is not None:
                await self.tools.aclose()
            await self._close_peers()
        summary = self.summary()
        self.log.info("call_ended", reason=self.end_reason, agent=summary.agent,
                      duration_s=round(summary.duration_s, 3),
                      frames_in=self.stats.frames_in,
                      frames_forwarded=self.stats.frames_forwarded,
                      media_out=self.stats.media_out, interruptions=self.stats.interruptions,
                      tool_calls=len(summary.tool_calls),
                      forward_latency=self.stats.forward_latency.summary().format(),
                      barge_in=self.stats.barge_in.summary().format())
        return summary

    def summary(self) -> CallSummary:
        return CallSummary(
            call_sid=self.twilio.call_sid, stream_sid=self.twilio.stream_sid,
            agent=self.agent.name if self.agent else None,
            end_reason=self.end_reason, started=self.started,
            duration_s=time.perf_counter() - self._t0, stats=self.stats,
            transcript=self.transcript.lines(), custom_parameters=dict(self._params),
            tool_calls=self.tools.records if self.tools else [],
            tool_stats=self.tools.stats if self.tools else None)

    def request_end(self, reason: str) -> None:
        """Ask the call to end now, cleanly (peers closed, record kept): the server's drain."""
        if self._end_requested is None:
            self._end_requested = reason
            self._end_event.set()

    async def _end_watch(self) -> None:
        await self._end_event.wait()
        raise CallEnding(self._end_requested or "ended by the gateway")

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
            raise CallEnding(f"no start event within {self.settings.start_timeout_s:g} s") \
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
                raise CallEnding(f"live session closed: {exc.code} {exc.reason}".rstrip()) \
                    from exc
        raise CallEnding("caller disconnected")

    def _protocol_error(self, peer: str, exc: Exception) -> None:
        self.stats.protocol_errors += 1
        self.log.warning("protocol_error", peer=peer, error=str(exc))
        if self.stats.protocol_errors > MAX_PROTOCOL_ERRORS:
            raise CallEnding(f"too many protocol errors from {peer}")

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
                raise CallEnding("caller hung up")
            case twilio.Connected():
                pass

    def handle_start(self, event: twilio.Start) -> None:
        self._params = dict(event.custom_parameters)
        self.log = self.log.bind(call_sid=event.call_sid, stream_sid=event.stream_sid)
        self.control.log = self.log
        self.control.call_sid = event.call_sid
        self._move(CallState.CONNECTING)
        self._started_event.set()
        assert self._tg is not None
        try:
            agent = (self.services.agents.select(path=self.path, parameters=self._params)
                     if self.services.agents else DEFAULT_AGENT)
        except UnknownAgentError as exc:
            self.log.error("unknown_agent", error=str(exc), caller=mask_number(
                self._params.get("From")), dialled=mask_number(self._params.get("To")))
            self._tg.create_task(self._apologise(f"unknown agent {exc.name!r}"))
            return
        self.agent = agent
        self.log = self.log.bind(agent=agent.name)
        self.ctx = CallContext.for_call(agent, call_sid=event.call_sid,
                                        stream_sid=event.stream_sid, parameters=self._params,
                                        control=self.control)
        self.tools = ToolDispatcher(agent, self.ctx, self._send_live, log=self.log)
        self.log.info("call_started", caller=mask_number(self._params.get("From")),
                      dialled=mask_number(self._params.get("To")))
        self._tg.create_task(self._model_pump(agent), name="model-pump")

    async def _apologise(self, reason: str) -> None:
        """Play the recorded apology, wait until it has been heard, end the call."""
        prompt = self.services.unavailable_prompt
        for i in range(0, len(prompt), 1600):  # 200 ms per message
            self._out.put(Outgoing(Kind.MEDIA, self.twilio.media(prompt[i:i + 1600]),
                                   time.perf_counter()))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(len(prompt) / 8000 + 5):
                await self.play_out("apology")
        raise CallEnding(reason)

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
        waiter = self._mark_waiters.pop(event.name, None)
        if waiter is not None:
            waiter.set()
            return
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
        if self.ctx is not None:
            self.ctx.dtmf.append(event.digit)
        message = live.text_message(f"The caller pressed {event.digit}.")
        if self._live is None:  # the session is opening: tell the model once it is there
            self._held_keys.append(message)
            return
        await self._live.send(message)

    # -- model -> caller -----------------------------------------------------------------

    async def _send_live(self, text: str) -> None:
        if self._live is None:
            raise LiveClosedError(1006, "no Live session")
        await self._live.send(text)

    async def _model_pump(self, agent: Agent) -> None:
        setup = live.build_setup(agent.session_config(self.settings.session))
        try:
            session = await self.connect_live(setup)
        except (LiveConnectError, LiveClosedError) as exc:
            raise CallEnding(f"live session could not open: {exc}") from exc
        self._live = session
        self._move(CallState.ACTIVE)
        while self._held:
            message, received = self._held.popleft()
            await session.send(message)
            self.stats.frames_forwarded += 1
            self.stats.forward_latency.observe(time.perf_counter() - received)
        while self._held_keys:
            await session.send(self._held_keys.popleft())
        self.log.info("live_ready")
        greeting = agent.greeting_prompt()
        if greeting:
            await session.send(live.text_message(greeting))
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
            raise CallEnding(f"live session closed: {exc.code} {exc.reason}".rstrip()) from exc

    async def _dispatch_live(self, event: live.LiveEvent, received: float) -> None:
        match event:
            case live.ModelAudio():
                self.handle_model_audio(event, received)
            case live.Interrupted():
                self.handle_interrupted(received)
            case live.TurnComplete():
                self.handle_turn_complete(event)
            case live.InputTranscript():
                self.transcript.add("caller", event.text)
            case live.OutputTranscript():
                self.transcript.add("agent", event.text)
            case live.ToolCall():
                self._open_turn()
                assert self.tools is not None
                self.tools.handle_tool_call(event, received)
            case live.ToolCallCancellation():
                assert self.tools is not None
                self.tools.handle_cancellation(event)
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
        self._open_turn()
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
        self.transcript.mark_agent_interrupted()
        self._next_turn()

    def handle_turn_complete(self, event: live.TurnComplete) -> None:
        if self._turn_sent_ms:
            self._queue_mark(f"{self._turn}:end")
        self._next_turn()
        if event.reason:
            self.log.info("turn_complete", reason=event.reason)

    def _open_turn(self) -> None:
        if not self._turn_open:
            self._turn_open = True
            self._turn_done.clear()

    def _next_turn(self) -> None:
        if self._turn_sent_ms:
            self._turn += 1
        self._turn_sent_ms = 0.0
        self._last_mark_ms = 0.0
        self._turn_open = False
        self._turn_done.set()

    # -- call control (gateway.callctl.Playout) ------------------------------------------

    async def wait_turn_done(self) -> None:
        await self._turn_done.wait()

    async def play_out(self, name: str) -> None:
        # Echoed when everything queued before it has played, or at once on a clear.
        waiter = self._mark_waiters[name] = asyncio.Event()
        self._queue_mark(name)
        await waiter.wait()

    # -- writer --------------------------------------------------------------------------

    async def _writer(self) -> None:
        while True:
            item = await self._out.get()
            try:
                await self.caller.send(item.text)
            except ConnectionError as exc:
                raise CallEnding("caller socket closed while writing") from exc
            done = time.perf_counter()
            if item.kind is Kind.MEDIA:
                self.stats.media_out += 1
                self.stats.reply_latency.observe(done - item.since)
            elif item.kind is Kind.CLEAR:
                self.stats.barge_in.observe(done - item.since)


def _first_reason(group: BaseExceptionGroup[Any]) -> str:
    for exc in group.exceptions:
        if isinstance(exc, CallEnding):
            return exc.reason
        if isinstance(exc, BaseExceptionGroup):
            return _first_reason(exc)
    return "ended"
