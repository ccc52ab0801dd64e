"""One bridge per call: a carrier's media stream <-> one Live session.

The bridge reads the caller's socket and routes the carrier's neutral events
(:mod:`gateway.carriers.core`); it never names a carrier. Until the stream starts it holds only
the socket and the carrier's sans-I/O core. ``Started`` says who the call is and in which audio
formats each direction travels; only then, with the call's bound logger, its timings and its
recording, does the bridge build the call's collaborators, each given everything it needs:
what the caller hears (:class:`gateway.playout.CallerPlayout`), the Live session and the
forwarding of caller audio (:class:`gateway.live_keeper.LiveKeeper`), tools
(:class:`gateway.tools.ToolDispatcher`), call control (:class:`gateway.callctl.CallController`)
and the routing of what the model sends (:class:`gateway.model_events.ModelEvents`).

Every task of the call (the caller pump, the writer, the model pump, call control, the
recording, each tool call, a goAway swap) belongs to one ``TaskGroup``: when the call ends, all
of it ends. The bridge speaks to its peers through small protocols (the caller socket, the
Live link), so it never imports aiohttp or websockets; the server and the tests plug sockets
in.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import functools
import time
from collections.abc import Callable, Coroutine
from typing import Any, Final, NoReturn

import structlog

from gateway import live
from gateway.agent import Agent, CallContext
from gateway.answering import AnswerScreen, placed_call
from gateway.bridge_config import BridgeSettings, CallerSocket, CallServices
from gateway.call_watch import CallWatch
from gateway.callctl import CallController
from gateway.caller_path import CallerPath
from gateway.capture import CaptureWriter
from gateway.carriers import core
from gateway.carriers.core import CarrierProtocolError, CarrierStream, Started
from gateway.dialing.model import DialRecord
from gateway.ending import CallEnding, EndKind, EndReason, first_reason
from gateway.errors import GatewayError, LiveClosedError
from gateway.faults import caller_fault_close
from gateway.goodbye import play_prompt, say_goodbye
from gateway.handover import Handover, LineGate
from gateway.live_keeper import LiveConnector, LiveFault, LiveKeeper
from gateway.log import mask_number
from gateway.model_events import ModelEvents
from gateway.playout import CallerPlayout
from gateway.record import NOT_ENDED, CallStats, CallSummary, Transcript, notify
from gateway.recording import Feed, WavRecorder
from gateway.registry import DEFAULT_AGENT, UnknownAgentError
from gateway.stall import StallTrigger
from gateway.tokens import TokenVerdict
from gateway.tools import ToolDispatcher
from gateway.turns import LocalTurns
from gateway.watchdog import StallWatchdog, times_for

MAX_PROTOCOL_ERRORS: Final = 50  # a peer this broken is not a phone call any more
# A flood of buffered frames holds the event loop for at most this many (~0.3 ms) at a time.
YIELD_EVERY_FRAMES: Final = 8
# A carrier that never says "stop" ends a call by closing its socket normally.
_NORMAL_CLOSES: Final = frozenset({1000, 1001})


class CallState(enum.Enum):
    WAITING = "waiting"  # socket open, the stream has not said which call it is
    CONNECTING = "connecting"  # started; Live session opening; caller audio is held
    ACTIVE = "active"
    ENDED = "ended"


_MOVES: Final = {
    CallState.WAITING: {CallState.CONNECTING, CallState.ENDED},
    CallState.CONNECTING: {CallState.ACTIVE, CallState.ENDED},
    CallState.ACTIVE: {CallState.ENDED},
    CallState.ENDED: set[CallState](),
}


class CallBridge:
    def __init__(self, caller: CallerSocket, stream: CarrierStream, connect_live: LiveConnector,
                 settings: BridgeSettings, services: CallServices | None = None, *,
                 path: str | None = None) -> None:
        self.caller = caller
        self.stream = stream
        self.connect_live = connect_live
        self.settings = settings
        self.services = services or CallServices()
        self.path = path
        self.carrier = stream.carrier
        self.state = CallState.WAITING
        self.stats = CallStats()
        self.log = structlog.get_logger("gateway.call").bind(carrier=self.carrier.value)
        self.started = time.time()
        self._t0 = time.perf_counter()
        self.watch = CallWatch(self.services.monitor)  # what the live-call monitor sees
        self.transcript = Transcript(self._t0, self.watch.line)
        trace = self.services.trace
        self.timings = trace.call(self._t0) if trace else None
        self.capture = (CaptureWriter(settings.capture_dir, self.carrier.value, self._t0,
                                      self.log) if settings.capture_dir else None)
        self._tg: asyncio.TaskGroup | None = None
        self._started_event = asyncio.Event()
        self._end_event = asyncio.Event()
        self._end_requested: EndReason | None = None
        self.end = NOT_ENDED
        # What the start names; the collaborators below exist only from then on.
        self.call: Started | None = None
        self.agent: Agent | None = None
        self.playout: CallerPlayout | None = None
        self.keeper: LiveKeeper | None = None
        self.control: CallController | None = None
        self.ctx: CallContext | None = None
        self.tools: ToolDispatcher | None = None
        self.recorder: WavRecorder | None = None
        self.caller_path: CallerPath | None = None  # the caller's audio to the model, once started
        self.model: ModelEvents | None = None
        self.watchdog: StallWatchdog | None = None
        self.screen: AnswerScreen | None = None  # a call the gateway placed

    # -- lifecycle -----------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str | None = None
               ) -> asyncio.Task[None]:
        assert self._tg is not None
        return self._tg.create_task(coro, name=name)

    def _move(self, new: CallState) -> None:
        if new not in _MOVES[self.state]:
            raise GatewayError(f"illegal call state move {self.state.value} -> {new.value}")
        self.state = new

    @property
    def resumption_handle(self) -> str | None:
        return self.keeper.handle if self.keeper is not None else None

    async def run(self) -> CallSummary:
        """Run the call to its end; never raises for anything a peer does."""
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                tg.create_task(self._caller_pump(), name="caller-pump")
                tg.create_task(self._start_watchdog(), name="start-watchdog")
                tg.create_task(self._end_watch(), name="end-watch")
                if self.capture is not None:
                    tg.create_task(self.capture.run(), name="capture")
        except* CallEnding as group:
            self.end = first_reason(group) or NOT_ENDED
        except* Exception as group:
            self.end = EndReason(EndKind.INTERNAL_ERROR, "internal error")
            self.log.error("call_failed", exc_info=group.exceptions[0])
        finally:
            if self.tools is not None:
                await self.tools.aclose()
            if self.screen is not None:
                self.screen.close()
            await self._close_peers()
            for keeper in (self.recorder, self.capture):
                if keeper is not None:
                    await keeper.finish()
            if self.timings is not None:
                self.timings.end(time.perf_counter())
        summary = self.summary()
        self._notify("call_ended", summary)
        self.log.info("call_ended", **summary.log_fields())
        return summary

    def summary(self) -> CallSummary:
        call = self.call
        return CallSummary(
            carrier=self.carrier.value, call_sid=call.call_id if call else None,
            stream_sid=call.stream_id if call else None,
            agent=self.agent.name if self.agent else None, end=self.end,
            started=self.started, duration_s=time.perf_counter() - self._t0, stats=self.stats,
            transcript=self.transcript.lines(),
            custom_parameters=dict(call.parameters) if call else {},
            tool_calls=self.tools.records if self.tools else [],
            tool_stats=self.tools.stats if self.tools else None,
            caller=call.caller if call else None, callee=call.callee if call else None)

    def _notify(self, what: str, summary: CallSummary | None = None) -> None:
        if self.services.observers:
            notify(self.services.observers, what, summary or self.summary(), self.log)

    def request_end(self, kind: EndKind, detail: str) -> None:
        """Ask the call to end now, cleanly (peers closed, record kept): the server's drain."""
        if self._end_requested is None:
            self._end_requested = EndReason(kind, detail)
            self._end_event.set()

    async def _end_watch(self) -> None:
        await self._end_event.wait()
        reason = self._end_requested or EndReason(EndKind.SHUTDOWN, "ended by the gateway")
        raise CallEnding(reason.kind, reason.detail)

    async def _close_peers(self) -> None:
        if self.state is not CallState.ENDED:
            self._move(CallState.ENDED)
        if self.keeper is not None:
            await self.keeper.aclose()
        if self.call is not None:  # the carrier's last word: a hang-up, or why it ended
            await say_goodbye(self.caller, self.stream, self.end, self.log)
        try:
            await self.caller.close(1000, self.end.detail[:120])
        except Exception as exc:
            self.log.debug("caller_close_failed", error=repr(exc))

    async def _start_watchdog(self) -> None:
        try:
            async with asyncio.timeout(self.settings.start_timeout_s):
                await self._started_event.wait()
        except TimeoutError:
            raise CallEnding(EndKind.START_TIMEOUT, f"no start event within "
                             f"{self.settings.start_timeout_s:g} s") from None

    # -- caller -> model -----------------------------------------------------------------

    async def _caller_pump(self) -> None:
        # Each kind of broken input has one outcome, tabled in the README ("Hostile input"):
        # ignored and counted, or the stream closed with a code saying why.
        handled = 0
        stream = self.stream
        try:
            while (frame := await self.caller.receive()) is not None:
                received = time.perf_counter()
                if self.capture is not None:
                    self.capture.add(frame, received)
                try:
                    events = stream.receive(frame)
                except core.UnknownEvent as exc:
                    self._unknown_event(exc)
                    continue
                except CarrierProtocolError as exc:
                    close = self._caller_fault(exc)
                    if close is not None:
                        await self._reject_caller(*close)
                    continue
                for event in events:
                    await self._dispatch(event, received)
                # Frames already buffered are read and forwarded without suspending, so a
                # caller sending faster than real time would hold the event loop for as long
                # as its buffer lasts. Yielding every few frames keeps every other call's
                # audio flowing; yielding on every one cost a loop turn per frame.
                handled += 1
                if handled % YIELD_EVERY_FRAMES == 0:
                    await asyncio.sleep(0)
        except core.FrameTooLarge as exc:  # the adapter has already closed with 1009
            close = self._caller_fault(exc)
            await self._reject_caller(*(close or (1009, exc.message)))
        if not stream.caps.stop_event and self.caller.close_code in _NORMAL_CLOSES:
            raise CallEnding(EndKind.CALLER_HUNG_UP, "caller hung up")
        raise CallEnding(EndKind.CALLER_DISCONNECTED, "caller disconnected")

    def _caller_fault(self, exc: CarrierProtocolError) -> tuple[int, str] | None:
        """Count and log one broken carrier frame; the (code, reason) to close with, if any."""
        self.stats.protocol_errors += 1
        self.log.warning("protocol_error", peer=self.carrier.value, error=str(exc),
                         count=self.stats.protocol_errors)
        return caller_fault_close(exc, self.stats.protocol_errors, MAX_PROTOCOL_ERRORS)

    def _unknown_event(self, exc: core.UnknownEvent) -> None:
        # Carriers add events; ending calls over one would turn a carrier's next release into
        # an outage. Counted apart from protocol errors, logged the first time and every 100th.
        self.stats.unknown_events += 1
        if self.stats.unknown_events % 100 == 1:
            self.log.warning("unknown_event", name=exc.event, count=self.stats.unknown_events)

    async def _reject_caller(self, code: int, reason: str,
                             kind: EndKind = EndKind.PROTOCOL_ERROR) -> NoReturn:
        """Close the caller's stream with ``code`` and end the call with ``reason``."""
        self.log.warning("caller_rejected", code=code, reason=reason)
        # Closed here rather than in _close_peers (which says 1000) so the code reaches the
        # peer; the writer defers to this reason if it trips over the closing socket.
        await self.caller.close(code, reason)
        raise CallEnding(kind, reason)

    def _live_protocol_error(self, exc: Exception) -> None:
        self.stats.protocol_errors += 1
        self.log.warning("protocol_error", peer="live", error=str(exc))
        if self.stats.protocol_errors > MAX_PROTOCOL_ERRORS:
            raise CallEnding(EndKind.PROTOCOL_ERROR, "too many protocol errors from live")

    async def _dispatch(self, event: core.CarrierEvent, received: float) -> None:
        match event:
            case core.Audio():
                await self._audio(event.payload, received)
            case core.Started():
                await self._started(event)
            case core.Played():
                assert self.playout is not None
                self.playout.played(event)
            case core.Dtmf():
                await self._dtmf(event.digit)
            case core.Cleared():
                self.log.debug("carrier_cleared")
            case core.Stopped(fault=fault) if fault:
                self.log.warning("carrier_fault", fault=fault)
                raise CallEnding(EndKind.CALLER_DISCONNECTED, f"carrier ended the stream: "
                                                              f"{fault}")
            case core.Stopped():
                moved = self.control.moved if self.control else None
                raise CallEnding.of(moved or EndReason(EndKind.CALLER_HUNG_UP, "caller hung up"))
            case core.Paused():
                if self.playout is not None:
                    self.playout.pause()
            case core.Resumed():
                if self.playout is not None:
                    self.playout.resume()

    async def _audio(self, payload: bytes, received: float) -> None:
        self.stats.frames_in += 1
        if self.caller_path is not None:  # else no agent hears it, only the apology plays
            await self.caller_path.audio(payload, received)

    async def _dtmf(self, digit: str) -> None:
        self.log.info("dtmf", digit=digit)
        if self.ctx is not None:
            self.ctx.dtmf.append(digit)
        if self.keeper is not None:
            # While no session is open, the keeper holds the notice for the next one.
            await self.keeper.send_text(live.text_message(f"The caller pressed {digit}."))

    # -- the call starts -----------------------------------------------------------------

    async def _started(self, event: Started) -> None:
        params = dict(event.parameters)
        token = params.pop(core.TOKEN_PARAMETER, None)
        self._started_event.set()
        tokens = self.services.tokens.get(self.carrier)
        if tokens is not None:
            verdict = tokens.redeem(self.carrier.value, event.call_id, token)
            if verdict is not TokenVerdict.VALID:
                self.log.warning("stream_token_refused", verdict=verdict.value)
                await self._reject_caller(1008, f"stream token {verdict.value}",
                                          EndKind.REFUSED)
        params, placed = await placed_call(params, self.services.dials, self.log)
        self.call = event = dataclasses.replace(event, parameters=params)
        self.log = self.log.bind(call_sid=event.call_id, stream_sid=event.stream_id)
        if self.capture is not None:
            self.capture.name = event.call_id
        self._move(CallState.CONNECTING)
        try:
            agent = (self.services.agents.select(path=self.path, parameters=params,
                                                 dialled=event.callee)
                     if self.services.agents else DEFAULT_AGENT)
        except UnknownAgentError as exc:
            self.log.error("unknown_agent", error=str(exc), caller=mask_number(event.caller),
                           dialled=mask_number(event.callee))
            self._build_playout(event)
            self._spawn(self._apologise(EndKind.UNKNOWN_AGENT, f"unknown agent {exc.name!r}"))
            return
        self.agent = agent
        self.log = self.log.bind(agent=agent.name)
        self._build_call(event, agent, placed)
        self.log.info("call_started", caller=mask_number(event.caller),
                      dialled=mask_number(event.callee),
                      inbound=str(event.inbound), outbound=str(event.outbound))
        self._notify("call_started")

    def _build_playout(self, event: Started, agent: Agent | None = None) -> CallerPlayout:
        folder = self.settings.recordings_dir
        if agent is not None and folder is not None and (self.settings.record_all
                                                         or agent.record):
            self.recorder = WavRecorder(folder / f"{event.call_id}.wav", event.inbound.rate,
                                        self.log)
            self._spawn(self.recorder.run(), "recording")
        self.playout = CallerPlayout(
            self.caller, self.stream, event.outbound, self.stats, self.transcript,
            max_queued=self.settings.max_queued_media,
            mark_interval_ms=self.settings.mark_interval_ms, log=self.log,
            recording=self.recorder.audio if self.recorder else None, timings=self.timings,
            lead_ms=self.settings.pacing_lead_ms)
        self._spawn(self.playout.writer(), "caller-writer")
        return self.playout

    def _build_call(self, event: Started, agent: Agent, placed: DialRecord | None) -> None:
        playout = self._build_playout(event, agent)
        self.watch.begin(event.call_id, playout.playing)
        inbound = event.inbound
        clean = None
        if (build := self.services.processing) is not None:
            choice = self.settings.line_processing.for_agent(agent.echo_cancellation,
                                                             agent.noise_suppression)
            playout.reference = clean = build(choice, inbound.rate, event.outbound.rate)
        # A replay runs the carrier's bytes through a path of its own: a fresh resampler.
        replay = functools.partial(Feed, inbound, live.INPUT_RATE)
        self.keeper = LiveKeeper(
            self.connect_live, self._spawn, replay, log=self.log, stats=self.stats.live,
            retry=self.settings.live_retry, max_held_ms=self.settings.max_held_ms,
            resumption=self.settings.session.session_resumption,
            overlap_s=self.settings.resume_overlap_s, timings=self.timings)
        api, gate = self.services.call_control.get(self.carrier), LineGate()
        self.control = CallController(
            api, event.control, self.log, can_transfer=self.stream.caps.transfer,
            handover=Handover.for_call(
                event, self.carrier, agent, self.services.dials, api, playout=playout, gate=gate,
                send_text=self._send_live, spawn=self._spawn, log=self.log))
        self.ctx = CallContext.for_call(agent, event, control=self.control)
        updated = functools.partial(self._notify, "call_updated")
        times = times_for(self.settings.stall, agent.stall_timeout_s)
        if times.enabled:
            self.watchdog = StallWatchdog(
                times, keeper=self.keeper, playout=playout, apologise=self._apologise,
                tools_running=lambda: bool(self.tools and self.tools.running),
                stats=self.stats.stalls, log=self.log, updated=updated, t0=self._t0)
            self._spawn(self.watchdog.run(), "stall-watchdog")
        self.tools = ToolDispatcher(agent, self.ctx, self._send_live, self._spawn,
                                    log=self.log, responded=self.watchdog.tool_responded
                                    if self.watchdog else None, watch=self.watch)
        self.model = ModelEvents(playout, self.keeper, self.tools, transcript=self.transcript,
                                 stats=self.stats, log=self.log,
                                 protocol_error=self._live_protocol_error, updated=updated,
                                 watchdog=self.watchdog)
        self.screen = AnswerScreen.for_call(
            placed, event.parameters, self.services.dials, playout=playout, control=self.control,
            send_text=self._send_live, spawn=self._spawn, log=self.log,
            greeting=agent.greeting_prompt())
        self.caller_path = CallerPath(
            inbound, self.keeper, self.model, clean=clean, screen=self.screen, gate=gate,
            recording=self.recorder.audio if self.recorder else None,
            turns=LocalTurns.for_agent(agent.turn_taking, self.services.detectors,
                                       self.keeper.mark), watch=self.watch)
        self._spawn(self.control.run(playout), "call-control")
        self._spawn(self._model_pump(agent), "model-pump")

    async def _apologise(self, kind: EndKind, reason: str, *, ending: bool = True) -> None:
        """Play the recorded apology and wait until it has been heard; then end the call."""
        assert self.playout is not None
        await play_prompt(self.playout, self.services.unavailable_prompt, "apology")
        if ending:
            raise CallEnding(kind, reason)

    # -- model -> caller -----------------------------------------------------------------

    async def _send_live(self, text: str) -> None:
        assert self.keeper is not None
        await self.keeper.send_text(text)

    def _setup_for(self, agent: Agent) -> Callable[[str | None], str]:
        # A tool the carrier cannot carry out is not offered to the model at all.
        control = self.control
        withheld = frozenset(name for name, able in (
            ("transfer_call", control and control.can_transfer),
            ("warm_transfer", control and control.handover)) if not able)
        base = agent.session_config(self.settings.session, withheld=withheld)

        def setup_for(handle: str | None) -> str:
            return live.build_setup(dataclasses.replace(base, resumption_handle=handle))

        return setup_for

    async def _model_pump(self, agent: Agent) -> None:
        keeper, playout, model = self.keeper, self.playout, self.model
        assert keeper is not None
        assert playout is not None
        assert model is not None
        setup_for = self._setup_for(agent)
        while True:
            try:
                session = await keeper.connect(setup_for)
            except LiveFault as fault:
                await self._fail_over(fault)
            if self.state is CallState.CONNECTING:
                await self._first_session(agent)
            else:
                self._notify("call_updated")  # a reconnect: its gap goes on the record
            if self.watchdog is not None:
                self.watchdog.session_opened()
            try:
                await model.read(session)
            except LiveClosedError as exc:
                try:
                    keeper.dropped(exc)
                except LiveFault as fault:
                    await self._fail_over(fault)
                playout.turn_lost()
            else:
                keeper.swapped()  # we closed it for a goAway: the planned path

    async def _first_session(self, agent: Agent) -> None:
        assert self.keeper is not None
        self._move(CallState.ACTIVE)
        self.log.info("live_ready", held_frames=self.stats.frames_in)
        greeting = agent.greeting_prompt()
        if greeting and self.screen is None:  # a screened call greets once a person answers
            await self.keeper.send_text(live.text_message(greeting))
            if self.watchdog is not None:
                self.watchdog.asked(StallTrigger.PROMPTED)

    async def _fail_over(self, fault: LiveFault) -> NoReturn:
        """The Live API cannot serve the call: apologise, then hang up or transfer."""
        assert self.control is not None
        why = fault.decision.why
        self.log.error("live_unavailable", fault=fault.decision.fault.value, why=why,
                       fallback=mask_number(self.settings.fallback_number))
        await self._apologise(EndKind.LIVE_UNAVAILABLE, why, ending=False)
        number = self.settings.fallback_number
        if number and await self.control.redirect(number, why="live unavailable"):
            raise CallEnding(EndKind.LIVE_UNAVAILABLE,
                             f"live unavailable ({fault.decision.fault.value}); "
                             f"transferred to {mask_number(number)}")
        raise CallEnding(EndKind.LIVE_UNAVAILABLE,
                         f"live unavailable ({fault.decision.fault.value}): {why}")
