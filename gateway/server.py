"""The aiohttp server: TwiML, the Media Streams WebSocket, health, and the registry of calls.

Each ``/media`` connection gets its own :class:`CallBridge`; whatever one call does, the handler
catches it, so a broken stream can never take another call down. Shutdown is explicit, as in
uvicorn: stop accepting, give active calls a grace period, then cancel what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import socket
import struct
from collections import Counter, deque
from collections.abc import AsyncIterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit
from xml.sax.saxutils import quoteattr

import structlog
from aiohttp import WebSocketError, WSCloseCode, WSMsgType, web

from gateway import live, signing
from gateway.agent import Agent
from gateway.audio import pcm16_to_ulaw
from gateway.bridge import CallBridge
from gateway.bridge_config import BridgeSettings, CallServices
from gateway.config import Settings
from gateway.live_client import open_session
from gateway.live_keeper import LiveConnector
from gateway.metrics import GatewayMetrics
from gateway.overload import LoopLag
from gateway.record import CallSummary
from gateway.registry import (
    DEFAULT_AGENT,
    DEFAULT_AGENT_NAME,
    AgentRegistry,
    discover_agents,
)
from gateway.store import CallRecorder, store_from_env
from gateway.tasks import cancel_and_wait
from gateway.twilio import FrameTooLarge
from gateway.twilio_rest import TwilioCredentials, TwilioRest
from gateway.wav import read_wav
from gateway.wsframe import server_text_frame

# Twilio frames are ~300 bytes; anything near this is not a Media Stream. aiohttp refuses a
# bigger frame from its header, before reading it, and closes with 1009.
MAX_FRAME_BYTES: Final = 64 * 1024
# The kernel's buffers for each caller socket, fixed rather than autotuned. Left to Linux, a
# caller that stops reading soaks up ~1.8 MB (minutes of reply audio) before a send even
# blocks, and one sending faster than real time parks megabytes in our receive buffer. 64 KiB
# each way (the kernel doubles it) still holds seconds of audio (Twilio sends ~15 KB/s, a
# reply bursts at a few times that), enough for any round trip.
CALLER_SOCKET_BUFFER: Final = 64 * 1024
# Our close frame out and the caller's back; past this the connection is cut.
CALLER_CLOSE_TIMEOUT_S: Final = 5.0
FINISHED_KEPT: Final = 200
# Parameters from Twilio's webhook that the bridge uses; passed on as <Parameter>s because the
# stream's `start` message does not carry them.
_FORWARDED_FIELDS: Final = ("From", "To", "CallSid", "Direction")
SHUTDOWN_REASON: Final = "gateway shutting down"
# After the grace period, how long calls asked to end get to close before they are cancelled.
DRAIN_CLOSE_S: Final = 2.0
# What a caller hears when we cannot take the call: Twilio speaks it, then hangs up.
BUSY_TWIML: Final = ('<?xml version="1.0" encoding="UTF-8"?><Response>'
                     "<Say>All lines are busy. Please call again later.</Say>"
                     "<Hangup/></Response>")

log = structlog.get_logger("gateway.server")


class AiohttpCaller:
    """:class:`gateway.bridge_config.CallerSocket` over an aiohttp WebSocket.

    ``transport`` (the request's) lets a close cut a connection whose peer stopped reading:
    aiohttp's own close would wait for it forever, holding the bytes queued for it.
    """

    def __init__(self, ws: web.WebSocketResponse,
                 transport: asyncio.Transport | None = None) -> None:
        self.ws = ws
        self.transport = transport
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, CALLER_SOCKET_BUFFER)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, CALLER_SOCKET_BUFFER)

    async def receive(self) -> str | bytes | None:
        # ws.receive() itself, not `async for`: two fewer layers of async iteration on
        # every 20 ms frame of every call.
        msg = await self.ws.receive()
        kind = msg.type
        if kind is WSMsgType.TEXT or kind is WSMsgType.BINARY:
            data: str | bytes = msg.data  # bytes are not Twilio's: the bridge closes with 1003
            return data
        if (kind is WSMsgType.ERROR and isinstance(msg.data, WebSocketError)
                and msg.data.code == WSCloseCode.MESSAGE_TOO_BIG):
            # Already closed with 1009 by aiohttp; tell the bridge why, not "hung up".
            raise FrameTooLarge(MAX_FRAME_BYTES)
        return None  # closing, closed, or an error that ends the stream

    def send_nowait(self, text: str) -> bool:
        # The frame goes straight to the transport when nothing is waiting in our buffer:
        # no task switch, no timer. Whole frames only, so it cannot split one of aiohttp's
        # (its close and pong frames are whole writes too). Not after a close has begun.
        transport = self.transport
        if (transport is None or self.ws.closed or transport.is_closing()
                or transport.get_write_buffer_size()):
            return False
        transport.write(server_text_frame(text.encode()))
        return True

    async def send(self, text: str) -> None:
        try:
            await self.ws.send_str(text)
        except (ConnectionResetError, RuntimeError) as exc:
            raise ConnectionError(str(exc)) from exc

    async def close(self, code: int, reason: str) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing() and \
                transport.get_write_buffer_size() > transport.get_write_buffer_limits()[1]:
            # Writing is paused: the peer is not reading, and a close frame would only queue
            # behind the bytes it is not taking.
            self._abort()
            return
        # A close reason is at most 123 bytes; cut on a character boundary.
        message = reason.encode()[:120].decode("utf-8", "ignore").encode()
        try:
            async with asyncio.timeout(CALLER_CLOSE_TIMEOUT_S):
                await self.ws.close(code=code, message=message)
        except TimeoutError:
            self._abort()
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            # aiohttp (3.14) re-awaits the drain future that a timed-out send left cancelled,
            # raising CancelledError in a task nobody cancelled: the peer is stuck; cut it.
            self._abort()

    def _abort(self) -> None:
        """Cut the connection and drop what is queued for it, in our buffers and the kernel's."""
        if self.transport is None:
            return
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            # Linger 0: close() resets the connection instead of the kernel going on trying
            # to deliver the send buffer to a peer that does not read it.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()


class Gateway:
    """The running service: settings, the live-call registry, and the routes."""

    def __init__(self, settings: Settings, connect_live: LiveConnector | None = None,
                 services: CallServices | None = None) -> None:
        self.settings = settings
        self.services = services or CallServices(
            agents=AgentRegistry(agents={DEFAULT_AGENT_NAME: default_agent(settings)}),
            unavailable_prompt=load_prompt())
        self.connect_live: LiveConnector = connect_live or functools.partial(
            open_session, settings.endpoint, setup_timeout=settings.setup_timeout_s)
        self.calls: dict[asyncio.Task[object], CallBridge] = {}
        self.lag = LoopLag(settings.max_loop_lag_ms / 1000)
        self._lag_task: asyncio.Task[None] | None = None
        self.finished: deque[CallSummary] = deque(maxlen=FINISHED_KEPT)
        self.accepting = True
        self._call_done = asyncio.Event()
        # Refusals and rejections by reason; /metrics exports them (requests_refused_total).
        self.counters: Counter[str] = Counter()
        # Every gateway has metrics, also one given its services by a test: appended here.
        self.metrics = GatewayMetrics(active_calls=self.active_calls, refusals=self.counters,
                                      loop_lag=lambda: self.lag.lag_s)
        self.services = dataclasses.replace(
            self.services, observers=(*self.services.observers, self.metrics))
        # /media handlers past admission whose bridge is not registered yet (upgrading).
        self._opening: set[asyncio.Task[object]] = set()
        self.drain_started = asyncio.Event()
        self._drain_task: asyncio.Task[None] | None = None
        self._drain_deadline = 0.0
        self._ending_calls = False  # past the grace period: new bridges are ended at once

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/twiml", self.twiml)
        app.router.add_get("/twiml", self.twiml)
        app.router.add_get("/media", self.media)
        app.router.add_get("/media/{agent}", self.media)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics.handle)
        app.on_startup.append(self._on_startup)
        app.on_shutdown.append(self._on_shutdown)
        app.on_cleanup.append(self._on_cleanup)  # after the drain: every call_ended is queued
        return app

    def bridge_settings(self) -> BridgeSettings:
        s = self.settings
        return BridgeSettings(
            session=live.SessionConfig(model=s.endpoint.model, voice=s.voice,
                                       language=s.language,
                                       system_instruction=s.system_instruction),
            mark_interval_ms=s.mark_interval_ms,
            max_held_frames=s.max_caller_buffer_frames,
            fallback_number=s.fallback_number,
            recordings_dir=Path(s.recordings_dir), record_all=s.record_all,
            capture_dir=Path(s.capture_dir) if s.capture_dir else None,
            max_queued_media=s.outbound_queue_items,
        )

    # -- routes --------------------------------------------------------------------------

    def stream_url(self, request: web.Request) -> str:
        if self.settings.public_url:
            parts = urlsplit(self.settings.public_url)
            scheme = "ws" if parts.scheme in ("http", "ws") else "wss"
            return f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}/media"
        return f"wss://{request.host}/media"

    async def twiml(self, request: web.Request) -> web.Response:
        form = await request.post() if request.method == "POST" else request.query
        # Only a form-encoded POST body is signed; a GET's parameters are part of the URL.
        signed = [(k, v) for k, v in form.items() if isinstance(v, str)] \
            if request.method == "POST" \
            and request.content_type == "application/x-www-form-urlencoded" else []
        if (rejected := self.check_signature(request, signed)) is not None:
            return rejected
        if (refusal := self.admission_refusal()) is not None:
            self.counters[f"twiml_refused_{refusal}"] += 1
            log.warning("call_refused", route="twiml", reason=refusal,
                        active_calls=self.active_calls(), max_calls=self.settings.max_calls,
                        loop_lag_ms=round(self.lag.lag_s * 1000, 1))
            return web.Response(text=BUSY_TWIML, content_type="text/xml")
        params = "".join(
            f"<Parameter name={quoteattr(name)} value={quoteattr(str(form[name]))}/>"
            for name in _FORWARDED_FIELDS if isinstance(form.get(name), str) and form[name])
        body = ('<?xml version="1.0" encoding="UTF-8"?>'
                f"<Response><Connect><Stream url={quoteattr(self.stream_url(request))}>"
                f"{params}</Stream></Connect><Hangup/></Response>")
        return web.Response(text=body, content_type="text/xml")

    async def healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "active_calls": len(self.calls)})

    async def readyz(self, _request: web.Request) -> web.Response:
        # Not ready only while draining. Being at capacity is not "unready": a load balancer
        # flapping on it would turn calls into Twilio errors instead of our busy message.
        if not self.accepting:
            return web.json_response({"status": "draining"}, status=503)
        return web.json_response({"status": "ready"})

    def active_calls(self) -> int:
        return len(self.calls) + len(self._opening)

    def admission_refusal(self) -> str | None:
        """Why a new call cannot be taken now ("draining", "capacity", "overloaded"), or None.

        Counts running bridges and streams being upgraded. A call that /twiml admitted holds
        no slot until Twilio opens its stream (usually well under a second later), so a burst
        of webhooks can admit a few calls more than there are slots left; their streams are
        then refused with 503 and Twilio hangs up. We accept that race rather than keep
        per-CallSid reservations that would need expiry when a stream never comes.
        """
        if not self.accepting:
            return "draining"
        if self.active_calls() >= self.settings.max_calls:
            return "capacity"
        if self.lag.overloaded:
            return "overloaded"
        return None

    def check_signature(self, request: web.Request, params: list[tuple[str, str]], *,
                        websocket: bool = False) -> web.Response | None:
        """A 403 response if signing is on and the request is not Twilio's, else None."""
        token = self.settings.twilio_auth_token
        if token is None:
            return None
        signature = request.headers.get(signing.SIGNATURE_HEADER)
        urls = [u for base in self._public_bases(request)
                for u in signing.signed_url_candidates(base, request.raw_path,
                                                       websocket=websocket)]
        if signing.is_valid(token.reveal(), urls, params, signature):
            return None
        reason = "missing" if not signature else "invalid"
        self.counters["signature_rejected"] += 1
        # Never the header's value: a valid signature for another URL is still a credential.
        log.warning("signature_rejected", reason=reason, method=request.method,
                    path=request.path, remote=request.remote)
        return web.Response(status=403, text=f"{reason} X-Twilio-Signature\n")

    def _public_bases(self, request: web.Request) -> list[str]:
        """Origins (plus path prefix) Twilio may have used to reach us."""
        if self.settings.public_url:
            return [self.settings.public_url]
        # Without VOICEGW_PUBLIC_URL, TwiML points Twilio at wss://<Host>, so the webhook was
        # most likely https through a TLS-terminating proxy; also try the scheme we saw. The
        # Host header is the caller's to choose, but forging a signature still needs the token.
        return list(dict.fromkeys([f"https://{request.host}",
                                   f"{request.scheme}://{request.host}"]))

    async def media(self, request: web.Request) -> web.StreamResponse:
        # Everything here is decided before the upgrade, so a refused stream costs no Live
        # session; admission and registration happen with no await in between.
        if (rejected := self.check_signature(request, [], websocket=True)) is not None:
            return rejected
        if (refusal := self.admission_refusal()) is not None:
            self.counters[f"media_refused_{refusal}"] += 1
            log.warning("call_refused", route="media", reason=refusal,
                        active_calls=self.active_calls(), max_calls=self.settings.max_calls,
                        loop_lag_ms=round(self.lag.lag_s * 1000, 1))
            text = {"draining": "shutting down", "capacity": "too many calls"}.get(
                refusal, "overloaded")
            return web.Response(status=503, text=text)
        task = asyncio.current_task()
        assert task is not None
        self._opening.add(task)
        # However the upgrade ends (even by cancellation), the slot is given back.
        task.add_done_callback(self._forget_opening)
        # compress=False: base64 mu-law hardly deflates, and compressing every reply frame
        # costs CPU; it also keeps the frames written in place (send_nowait) like the rest.
        ws = web.WebSocketResponse(max_msg_size=MAX_FRAME_BYTES, heartbeat=None,
                                   compress=False)
        await ws.prepare(request)
        bridge = CallBridge(AiohttpCaller(ws, request.transport), self.connect_live,
                            self.bridge_settings(), self.services, path=request.path)
        self.calls[task] = bridge
        self._opening.discard(task)
        if self._ending_calls:  # upgraded while the drain was ending calls
            bridge.request_end(SHUTDOWN_REASON)
        try:
            summary = await bridge.run()
            self.finished.append(summary)
        finally:
            del self.calls[task]
            self._call_done.set()
        return ws

    async def wait_idle(self) -> None:
        """Wait until no call is running or being set up (its record is kept by then)."""
        while self.calls or self._opening:
            self._call_done.clear()
            await self._call_done.wait()

    def _forget_opening(self, task: asyncio.Task[object]) -> None:
        if task in self._opening:
            self._opening.discard(task)
            self._call_done.set()

    # -- shutdown ------------------------------------------------------------------------

    async def drain(self, grace_s: float) -> None:
        """Stop taking calls, let active ones finish by themselves for ``grace_s``, then end
        each cleanly (``request_end``: peers closed normally, record kept) and cancel only
        those still running :data:`DRAIN_CLOSE_S` later.

        Calling it again while a drain runs joins that drain; a shorter ``grace_s`` brings its
        deadline forward (a second SIGTERM means "stop waiting for the calls").
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(grace_s, 0.0)
        if self._drain_task is None:
            self.accepting = False
            self._drain_deadline = deadline
            self.drain_started.set()
            log.info("drain_started", active_calls=self.active_calls(), grace_s=grace_s)
            self._drain_task = asyncio.create_task(self._drain(), name="gateway-drain")
        elif deadline < self._drain_deadline and not self._drain_task.done():
            self._drain_deadline = deadline
            self._call_done.set()  # wake the wait so that it sees the new deadline
            log.info("drain_hurried", grace_s=grace_s)
        # Shielded: a caller that gives up waiting must not abandon the calls half-drained.
        await asyncio.shield(self._drain_task)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        ended = cancelled = 0
        if not await self._wait_for_calls():
            self._ending_calls = True
            bridges = list(self.calls.values())
            for bridge in bridges:
                bridge.request_end(SHUTDOWN_REASON)
            ended = len(bridges)
            log.info("drain_ending_calls", count=ended, close_s=DRAIN_CLOSE_S)
            self._drain_deadline = loop.time() + DRAIN_CLOSE_S
            if not await self._wait_for_calls():
                stragglers: list[asyncio.Task[object]] = [*self.calls, *self._opening]
                for task in stragglers:
                    task.cancel()
                cancelled = len(stragglers)
                await asyncio.wait(stragglers, timeout=DRAIN_CLOSE_S)
                log.warning("calls_cancelled_at_shutdown", count=cancelled)
        log.info("drain_finished", ended_by_gateway=ended, cancelled=cancelled)

    async def _wait_for_calls(self) -> bool:
        """True once no call is running or upgrading; False if the deadline passes first."""
        loop = asyncio.get_running_loop()
        while self.calls or self._opening:
            if loop.time() >= self._drain_deadline:
                return False
            self._call_done.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(self._drain_deadline):
                    await self._call_done.wait()
        return True

    async def _on_startup(self, _app: web.Application) -> None:
        endpoint = self.settings.endpoint
        log.info("gateway_started", host=self.settings.host, port=self.settings.port,
                 live_url=endpoint.safe_url(), live_kind=endpoint.kind, model=endpoint.model,
                 public_url=self.settings.public_url, max_calls=self.settings.max_calls,
                 signed_requests=self.settings.twilio_auth_token is not None,
                 agents=sorted(self.services.agents.agents) if self.services.agents else [],
                 twilio_rest=self.services.rest is not None)
        for recorder in self._recorders():
            await recorder.start()
        if self.services.trace is not None:
            self.services.trace.start()
        self._lag_task = asyncio.create_task(self.lag.run(), name="loop-lag")

    def _recorders(self) -> list[CallRecorder]:
        return [o for o in self.services.observers if isinstance(o, CallRecorder)]

    async def _on_cleanup(self, _app: web.Application) -> None:
        lag, self._lag_task = self._lag_task, None
        if lag is not None:
            await cancel_and_wait(lag)
        for recorder in self._recorders():
            await recorder.aclose()  # writes what is still queued, within a timeout
        if self.services.trace is not None:
            await self.services.trace.aclose()

    async def _on_shutdown(self, _app: web.Application) -> None:
        await self.drain(self.settings.shutdown_grace_s)
        if self.services.rest is not None:
            await self.services.rest.aclose()


def default_agent(settings: Settings) -> Agent:
    """The plain ``assistant``, with the server's voice, language and instructions."""
    return Agent(name=DEFAULT_AGENT_NAME, instructions=settings.system_instruction,
                 voice=settings.voice or "Kore", language=settings.language or "en-US")


def build_services(settings: Settings, env: Mapping[str, str] | None = None) -> CallServices:
    """Everything calls share, from the environment: agents, routing, Twilio REST."""
    agents = discover_agents()
    if agents[DEFAULT_AGENT_NAME] is DEFAULT_AGENT:  # not replaced by a plugin
        agents[DEFAULT_AGENT_NAME] = default_agent(settings)
    credentials = TwilioCredentials.from_env(env)
    # Call records are on by default (SQLite file); VOICEGW_DATABASE=off turns them off.
    store = store_from_env(env)
    return CallServices(agents=AgentRegistry.from_env(env, agents=agents),
                        rest=TwilioRest(credentials) if credentials else None,
                        unavailable_prompt=load_prompt(),
                        observers=(CallRecorder(store),) if store is not None else ())


def load_prompt(name: str = "line_unavailable") -> bytes:
    """A bundled recorded prompt as raw 8 kHz mu-law, ready to send to Twilio."""
    path = Path(str(resources.files("gateway").joinpath("assets", "prompts", f"{name}.wav")))
    return pcm16_to_ulaw(read_wav(path)[0])


@contextlib.asynccontextmanager
async def running(gateway: Gateway, host: str = "127.0.0.1",
                  port: int = 0) -> AsyncIterator[int]:
    """Serve ``gateway`` in this event loop (tests, the demo); yields the bound port."""
    runner = web.AppRunner(gateway.app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    try:
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()
