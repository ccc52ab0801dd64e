"""One bridge per call: Twilio Media Stream <-> one Live session.

The bridge owns the call's tasks (one ``TaskGroup``: caller pump, model pump, caller writer),
its queues, its resamplers and its logger. It speaks to its two peers only through small
protocols (:class:`gateway.bridge_config.CallerSocket`, :class:`gateway.live_keeper.LiveLink`),
so it never imports aiohttp or websockets; the server and the tests plug sockets in.

What the caller hears (reply audio, marks, barge-in) is :class:`gateway.playout.CallerPlayout`;
keeping the Live session alive across ``goAway`` and drops is
:class:`gateway.live_keeper.LiveKeeper`. The bridge routes events between them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import time
from collections.abc import Coroutine
from typing import Any, Final, NoReturn

import structlog

from gateway import live, twilio
from gateway.agent import Agent, CallContext
from gateway.audio import Resampler, peak, ulaw_to_pcm16
from gateway.bridge_config import BridgeSettings, CallerSocket, CallServices
from gateway.callctl import CallController, CallEnding, first_reason
from gateway.capture import CaptureWriter
from gateway.errors import (
    GatewayError,
    LiveClosedError,
    LiveProtocolError,
    TwilioProtocolError,
)
from gateway.faults import caller_fault_close
from gateway.live_keeper import LiveConnector, LiveFault, LiveKeeper, LiveLink
from gateway.log import mask_number
from gateway.playout import CallerPlayout
from gateway.record import CallStats, CallSummary, Transcript, notify
from gateway.recording import WavRecorder
from gateway.registry import DEFAULT_AGENT, UnknownAgentError
from gateway.tools import ToolDispatcher

MAX_PROTOCOL_ERRORS: Final = 50  # a peer this broken is not a phone call any more
# A frame peaking above this counts as the caller speaking (-35 dBFS: above line noise,
# and low enough to catch the quiet end of a word), for the per-turn response latency.
SPEECH_PEAK: Final = 600
# A flood of buffered frames holds the event loop for at most this many (~0.3 ms) at a time.
YIELD_EVERY_FRAMES: Final = 8


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
        self._tg: asyncio.TaskGroup | None = None
        self.keeper = LiveKeeper(connect_live, self._spawn, self._delivered,
                                 max_frames=settings.max_held_frames,
                                 max_attempts=settings.max_live_attempts, log=self.log,
                                 resumption=settings.session.session_resumption,
                                 stats=self.stats.live,
                                 overlap_s=settings.resume_overlap_s)
        self._started_event = asyncio.Event()
        self.transcript = Transcript(self._t0)
        self.playout = CallerPlayout(caller, self.twilio, self.stats, self.transcript,
                                     max_queued=settings.max_queued_media,
                                     mark_interval_ms=settings.mark_interval_ms, log=self.log)
        trace = self.services.trace
        self.timings = self.playout.timings = trace.call(self._t0) if trace else None
        self._params: dict[str, str] = {}
        self.agent: Agent | None = None
        self.control = CallController(self.services.rest, self.log)
        self.ctx: CallContext | None = None
        self.tools: ToolDispatcher | None = None
        self.end_reason = "not started"
        self._end_requested: str | None = None
        self._last_speech: float | None = None  # when the caller last spoke, unanswered
        self.recorder: WavRecorder | None = None
        self.capture = (CaptureWriter(settings.capture_dir, self._t0, self.log)
                        if settings.capture_dir else None)
        self._end_event = asyncio.Event()

    # -- lifecycle -----------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        assert self._tg is not None
        return self._tg.create_task(coro)

    @property
    def resumption_handle(self) -> str | None:
        return self.keeper.handle

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
                tg.create_task(self.playout.writer(), name="caller-writer")
                tg.create_task(self._start_watchdog(), name="start-watchdog")
                tg.create_task(self.control.run(self.playout), name="call-control")
                tg.create_task(self._end_watch(), name="end-watch")
                if self.capture is not None:
                    tg.create_task(self.capture.run(), name="capture")
        except* CallEnding as group:
            self.end_reason = first_reason(group)
        except* Exception as group:
            self.end_reason = "internal error"
            self.log.error("call_failed", exc_info=group.exceptions[0])
        finally:
            if self.tools is not None:
                await self.tools.aclose()
            await self._close_peers()
            for keeper in (self.recorder, self.capture):
                if keeper is not None:
                    await keeper.finish()
            if self.timings is not None:
                self.timings.end(time.perf_counter())
        summary = self.summary()
        self._notify("call_ended", summary)
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

    def _notify(self, what: str, summary: CallSummary | None = None) -> None:
        if self.services.observers:
            notify(self.services.observers, what, summary or self.summary(), self.log)

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
        await self.keeper.aclose()
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
        # Each kind of broken input has one outcome, tabled in the README ("Hostile input"):
        # ignored and counted, or the stream closed with a code saying why.
        handled = 0
        try:
            while (frame := await self.caller.receive()) is not None:
                received = time.perf_counter()
                if self.capture is not None and isinstance(frame, str):
                    self.capture.add(frame, received)
                try:
                    if isinstance(frame, bytes):  # adapters yield bytes for binary frames
                        raise twilio.BinaryFrame(call_sid=self.twilio.call_sid)
                    event = self.twilio.receive(frame)
                except twilio.UnknownEvent as exc:
                    self._unknown_event(exc)
                    continue
                except TwilioProtocolError as exc:
                    close = self._caller_fault(exc)
                    if close is not None:
                        await self._reject_caller(*close)
                    continue
                try:
                    await self._dispatch_twilio(event, received)
                except LiveClosedError as exc:
                    raise CallEnding(f"live session closed: {exc.code} {exc.reason}".rstrip()) \
                        from exc
                # Frames already buffered are read and forwarded without suspending, so a
                # caller sending faster than real time would hold the event loop for as long
                # as its buffer lasts. Yielding every few frames keeps every other call's
                # audio flowing; yielding on every one cost a loop turn per frame.
                handled += 1
                if handled % YIELD_EVERY_FRAMES == 0:
                    await asyncio.sleep(0)
        except twilio.FrameTooLarge as exc:  # the adapter has already closed with 1009
            close = self._caller_fault(exc)
            await self._reject_caller(*(close or (1009, exc.message)))
        raise CallEnding("caller disconnected")

    def _caller_fault(self, exc: TwilioProtocolError) -> tuple[int, str] | None:
        """Count and log one broken Twilio frame; the (code, reason) to close with, if any."""
        self.stats.protocol_errors += 1
        self.log.warning("protocol_error", peer="twilio", error=str(exc),
                         count=self.stats.protocol_errors)
        return caller_fault_close(exc, self.stats.protocol_errors, MAX_PROTOCOL_ERRORS)

    def _unknown_event(self, exc: twilio.UnknownEvent) -> None:
        # Twilio may add events; ending calls over one would turn its next release into an
        # outage. Counted apart from protocol errors, logged the first time and every 100th.
        self.stats.unknown_events += 1
        if self.stats.unknown_events % 100 == 1:
            self.log.warning("unknown_event", name=exc.event, count=self.stats.unknown_events)

    async def _reject_caller(self, code: int, reason: str) -> NoReturn:
        """Close the caller's stream with ``code`` and end the call with ``reason``."""
        self.log.warning("caller_rejected", code=code, reason=reason)
        # Closed here rather than in _close_peers (which says 1000) so the code reaches the
        # peer; the writer defers to this reason if it trips over the closing socket.
        await self.caller.close(code, reason)
        raise CallEnding(reason)

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
                self.playout.mark(event)
            case twilio.Dtmf():
                await self.handle_dtmf(event)
            case twilio.Stop():
                raise CallEnding("caller hung up")
            case twilio.Connected():
                pass

    def handle_start(self, event: twilio.Start) -> None:
        self._params = dict(event.custom_parameters)
        self.log = self.log.bind(call_sid=event.call_sid, stream_sid=event.stream_sid)
        self.control.log = self.keeper.log = self.playout.log = self.log
        self.control.call_sid = event.call_sid
        if self.capture is not None:
            self.capture.name = event.call_sid
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
        self.keeper.log = self.playout.log = self.log
        self.ctx = CallContext.for_call(agent, call_sid=event.call_sid,
                                        stream_sid=event.stream_sid, parameters=self._params,
                                        control=self.control)
        self.tools = ToolDispatcher(agent, self.ctx, self._send_live, log=self.log)
        self.log.info("call_started", caller=mask_number(self._params.get("From")),
                      dialled=mask_number(self._params.get("To")))
        self._notify("call_started")
        self._start_recording(agent, event.call_sid)
        self._tg.create_task(self._model_pump(agent), name="model-pump")

    def _start_recording(self, agent: Agent, call_sid: str) -> None:
        folder = self.settings.recordings_dir
        if folder is None or not (self.settings.record_all or agent.record):
            return
        self.recorder = WavRecorder(folder / f"{call_sid}.wav", self.log)
        self.playout.recording = self.recorder.audio
        self._spawn(self.recorder.run())

    async def _apologise(self, reason: str, *, ending: bool = True) -> None:
        """Play the recorded apology and wait until it has been heard; then end the call."""
        prompt = self.services.unavailable_prompt
        self.playout.prompt(prompt)
        if prompt:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(len(prompt) / 8000 + 5):
                    await self.playout.play_out("apology")
        if ending:
            raise CallEnding(reason)

    async def handle_media(self, event: twilio.Media, received: float) -> None:
        self.stats.frames_in += 1
        # Every frame goes through the resampler, sent or not, so its state stays continuous.
        pcm8 = ulaw_to_pcm16(event.payload)
        if self.playout.recording is not None:
            self.playout.recording.caller(event.payload, received)
        if peak(pcm8) >= SPEECH_PEAK:
            self._last_speech = received
        pcm = self._in_resampler.process(pcm8)
        # Kept first: if a swap starts while this send is in flight, the replay has it too.
        frame = self.keeper.remember(event.payload, received)
        session = self.keeper.session
        if session is None:
            return  # no session yet, or a swap: the keeper replays it to the next one
        message = live.audio_message(pcm)
        try:
            if not session.send_nowait(message):
                await session.send(message)
        except LiveClosedError:
            return  # the model pump reconnects; the keeper replays this frame
        self.keeper.written(frame)

    def _delivered(self, received: float, written: float) -> None:
        self.stats.frames_forwarded += 1
        self.stats.forward_latency.observe(written - received)
        if self.timings is not None:
            self.timings.forwarded(written)

    async def handle_dtmf(self, event: twilio.Dtmf) -> None:
        self.log.info("dtmf", digit=event.digit)
        if self.ctx is not None:
            self.ctx.dtmf.append(event.digit)
        # While no session is open, the keeper holds the notice for the next one.
        await self.keeper.send_text(live.text_message(f"The caller pressed {event.digit}."))

    # -- model -> caller -----------------------------------------------------------------

    async def _send_live(self, text: str) -> None:
        await self.keeper.send_text(text)

    async def _model_pump(self, agent: Agent) -> None:
        base = agent.session_config(self.settings.session)

        def setup_for(handle: str | None) -> str:
            return live.build_setup(dataclasses.replace(base, resumption_handle=handle))

        while True:
            try:
                session = await self.keeper.connect(setup_for)
            except LiveFault as fault:
                await self._fail_over(fault)
            if self.state is CallState.CONNECTING:
                await self._first_session(agent)
            else:
                self._notify("call_updated")  # a reconnect: its gap goes on the record
            try:
                await self._pump_session(session)
            except LiveClosedError as exc:
                try:
                    self.keeper.lost(exc)
                except LiveFault as fault:
                    await self._fail_over(fault)
                self.playout.turn_lost()

    async def _first_session(self, agent: Agent) -> None:
        self._move(CallState.ACTIVE)
        self.log.info("live_ready", held_frames=self.stats.frames_in)
        greeting = agent.greeting_prompt()
        if greeting:
            await self.keeper.send_text(live.text_message(greeting))

    async def _pump_session(self, session: LiveLink) -> None:
        async for frame in session.frames():
            received = time.perf_counter()
            try:
                events = live.parse_server_message(frame)
            except LiveProtocolError as exc:
                self._protocol_error("live", exc)
                continue
            for event in events:
                await self._dispatch_live(event, received)

    async def _fail_over(self, fault: LiveFault) -> NoReturn:
        """The Live API cannot serve the call: apologise, then hang up or transfer."""
        why = fault.decision.why
        self.log.error("live_unavailable", fault=fault.decision.fault.value, why=why,
                       fallback=mask_number(self.settings.fallback_number))
        await self._apologise(f"live unavailable: {why}", ending=False)
        number = self.settings.fallback_number
        if number and await self.control.redirect(number, why="live unavailable"):
            raise CallEnding(f"live unavailable ({fault.decision.fault.value}); "
                             f"transferred to {mask_number(number)}")
        raise CallEnding(f"live unavailable ({fault.decision.fault.value}): {why}")

    def _response_latency(self, seconds: float) -> None:
        self._last_speech = None
        self.stats.response_latency.observe(seconds)
        self.stats.turn_latency_ms.append(round(seconds * 1000, 1))

    async def _dispatch_live(self, event: live.LiveEvent, received: float) -> None:
        match event:
            case live.ModelAudio():
                if self.playout.turn_sent_ms == 0 and self._last_speech is not None:
                    self._response_latency(received - self._last_speech)
                self.playout.audio(event, received)
            case live.Interrupted():
                self.playout.interrupted(received)
                self._notify("call_updated")
            case live.TurnComplete():
                self.playout.turn_complete(event)
                self._notify("call_updated")
            case live.InputTranscript():
                self.transcript.add("caller", event.text)
            case live.OutputTranscript():
                self.transcript.add("agent", event.text)
            case live.ToolCall():
                self.playout.open_turn()
                assert self.tools is not None
                self.tools.handle_tool_call(event, received)
            case live.ToolCallCancellation():
                assert self.tools is not None
                self.tools.handle_cancellation(event)
            case live.ResumptionUpdate():
                self.keeper.on_resumption(event)
            case live.GoAway():
                self.log.info("live_go_away", time_left_s=event.time_left_s)
                self.keeper.go_away(event.time_left_s, self.playout.turn_done)
            case live.Usage():
                self.stats.tokens_total += event.total_tokens
                self.stats.tokens_prompt += event.prompt_tokens
                self.stats.tokens_response += event.response_tokens
            case live.Unknown():
                self.log.debug("live_unknown_message", keys=list(event.keys))
            case _:
                pass
