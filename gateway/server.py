"""The aiohttp server: each carrier's answer webhook and media socket, health, metrics, and the
registry of calls.

For every carrier served (:mod:`gateway.carrier_setup`), ``/NAME/answer`` writes the answer
document that points the call at ``/NAME/media``, and each media socket gets its own
:class:`CallBridge`; whatever one call does, the handler catches it, so a broken stream can
never take another call down. Twilio's ``/twiml`` and ``/media`` keep working as before.
Shutdown is explicit, as in uvicorn: stop accepting, give active calls a grace period, then
cancel what is left (:mod:`gateway.drain`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import socket
from collections import Counter, deque
from collections.abc import AsyncIterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Final

import structlog
from aiohttp import web

from gateway import live
from gateway.agent import Agent
from gateway.audiosocket_server import AudioSocketConfig, AudioSocketServer
from gateway.bridge import CallBridge
from gateway.bridge_config import BridgeSettings, CallServices, Prompt
from gateway.browser_route import BrowserRoute
from gateway.caller_socket import MAX_FRAME_BYTES, AiohttpCaller
from gateway.carrier_setup import CarrierSetup, all_setups, enabled
from gateway.carriers.audiosocket_routes import RouteBook
from gateway.carriers.basic_auth import BasicAuthCheck
from gateway.carriers.core import Carrier
from gateway.carriers.hooks import (
    Verdict,
    WebhookError,
)
from gateway.config import Settings, is_loopback
from gateway.console.auth import Authorize, ConsoleAuth
from gateway.console.service import Console, serving_beside
from gateway.console.settings import ConsoleSettings
from gateway.dialing.api import DialApi
from gateway.dialing.service import DialService
from gateway.dialing.setup import OutboundSettings, build_dial_service
from gateway.drain import SHUTDOWN_REASON, Drain
from gateway.ending import EndKind
from gateway.listen import listen
from gateway.live_client import open_session
from gateway.live_keeper import LiveConnector
from gateway.live_token_client import TokenMinter
from gateway.metrics import GatewayMetrics
from gateway.monitor import CallMonitor
from gateway.overload import LoopLag
from gateway.record import CallSummary
from gateway.registry import DEFAULT_AGENT, DEFAULT_AGENT_NAME, AgentRegistry, discover_agents
from gateway.stall import StallTimes
from gateway.store import CallRecorder, store_from_env
from gateway.store.campaigns import CampaignStore
from gateway.tasks import cancel_and_wait
from gateway.token_route import TokenRoute
from gateway.tokens import StreamTokens
from gateway.voice_dsp import build_processing
from gateway.wav import read_wav
from gateway.webhook_routes import WebhookRoutes, document

FINISHED_KEPT: Final = 200

log = structlog.get_logger("gateway.server")


WORKER_HEADER: Final = "Voicegw-Worker"


class Gateway:
    """The running service: settings, the carriers served, the live-call registry, routes."""

    def __init__(self, settings: Settings, connect_live: LiveConnector | None = None,
                 services: CallServices | None = None,
                 carriers: Mapping[Carrier, CarrierSetup] | None = None, *,
                 audiosocket: AudioSocketConfig | None = None,
                 audiosocket_auth: BasicAuthCheck | None = None,
                 browser: Authorize | None = None,
                 console: ConsoleSettings | None = None,
                 token_auth: Authorize | None = None,
                 token_minter: TokenMinter | None = None,
                 outbound: OutboundSettings | None = None) -> None:
        """``token_auth`` (by default the console's operator check, when the console is
        enabled): with it, ``POST /v1/tokens`` mints ephemeral Live API tokens (through
        ``token_minter``, by default one for the Live endpoint's host); without it that
        route is not served. ``outbound`` (its API token) serves ``/v1/calls``, placing calls
        on the carriers that have REST credentials."""
        self.settings = settings
        self.webhooks = WebhookRoutes(self)
        # Without explicit carriers (tests, the demo): every one, unsigned.
        self.carriers = dict(carriers) if carriers is not None else all_setups({})
        self.services = services or CallServices(
            agents=AgentRegistry(agents={DEFAULT_AGENT_NAME: default_agent(settings)}),
            unavailable_prompt=load_prompt())
        self.connect_live: LiveConnector = connect_live or functools.partial(
            open_session, settings.endpoint, setup_timeout=settings.setup_timeout_s)
        self.calls: dict[asyncio.Task[object], CallBridge] = {}
        self.lag = LoopLag(settings.max_loop_lag_ms / 1000)
        self._lag_task: asyncio.Task[None] | None = None
        self._sweep_task: asyncio.Task[None] | None = None  # placed calls whose end was lost
        self.finished: deque[CallSummary] = deque(maxlen=FINISHED_KEPT)
        # Refusals by (carrier, reason); /metrics exports them (requests_refused_total).
        self.counters: Counter[tuple[str, str]] = Counter()
        # Every gateway has metrics, also one given its services by a test: appended here.
        served = [c.value for c in self.carriers]
        if audiosocket is not None:
            served.append(Carrier.AUDIOSOCKET.value)
        # The browser carrier (the console's talk page), behind the console's operator check.
        console_auth = ConsoleAuth.of(console) if console is not None else None
        browser = browser or console_auth
        self.browser = BrowserRoute(self, browser) if browser is not None else None
        if browser is not None:
            served.append(Carrier.BROWSER.value)
        self.metrics = GatewayMetrics(active_calls=self.active_calls, refusals=self.counters,
                                      loop_lag=lambda: self.lag.lag_s, carriers=served)
        self.tokens = StreamTokens(settings.stream_secret.reveal().encode()
                                   if settings.stream_secret else None,
                                   ttl_s=settings.stream_token_ttl_s)
        tokens = {c: self.tokens for c, s in self.carriers.items() if s.needs_token}
        # One live-call monitor per gateway: the console's live view and the browser's socket.
        self.monitor = self.services.monitor or CallMonitor()
        observers = tuple(o for o in self.services.observers if o is not self.monitor)
        self.services = dataclasses.replace(
            self.services, observers=(*observers, self.metrics, self.monitor), tokens=tokens,
            monitor=self.monitor,
            call_control={**{c: s.call_control for c, s in self.carriers.items()
                             if s.call_control is not None}, **self.services.call_control},
            # Echo cancellation, noise suppression: which of them a call gets is a setting.
            processing=self.services.processing or build_processing)
        self.dialing, self.dial_api = self._outbound(outbound)
        if self.dialing is not None:
            self.services = dataclasses.replace(self.services, dials=self.dialing)
        # Media handlers past admission whose bridge is not registered yet (upgrading).
        self.opening: set[asyncio.Task[object]] = set()
        self.call_done = asyncio.Event()
        self.drain_state = Drain(self)
        # Asterisk AudioSocket: a TCP listener beside the HTTP one, and the calls its dialplan
        # registers (POST /audiosocket/calls, behind Basic credentials where configured).
        self.routes = RouteBook()
        self.audiosocket = AudioSocketServer(self, audiosocket, self.routes) \
            if audiosocket is not None else None
        self.audiosocket_auth = audiosocket_auth
        self.audiosocket_port: int | None = None
        token_auth = token_auth or console_auth
        self.token_route = None if token_auth is None else TokenRoute(
            token_auth, token_minter or TokenMinter.for_endpoint(
                settings.endpoint, settings.live_rest_url),
            self.services.agents or AgentRegistry(
                agents={DEFAULT_AGENT_NAME: default_agent(settings)}),
            self.bridge_settings().session, live_url=settings.endpoint.url)
        # The web console (off unless configured): on this app or a listener of its own.
        self.console = Console.for_gateway(console, self, console_auth) \
            if console is not None else None
        # The slot of ``voicegw serve --workers N`` this process serves (None: the only
        # process), named in a header on every response so a client can tell which answered.
        self.worker: int | None = None

    def _outbound(self, outbound: OutboundSettings | None
                  ) -> tuple[DialService | None, DialApi | None]:
        if outbound is None or outbound.api_token is None:
            return None, None
        recorders = self._recorders()
        store = recorders[0].store if recorders else None
        # The do-not-call list campaigns keep (``voicegw dnc``): refused here too, with 403.
        blocked = CampaignStore(store).dnc_has if store is not None else None
        service = build_dial_service(self.carriers, store, self.settings.public_url, outbound,
                                     blocked=blocked)
        if service is None:
            return None, None
        agents = self.services.agents
        return service, DialApi(service, outbound.api_token,
                                lambda: agents.agents if agents else (DEFAULT_AGENT_NAME,),
                                self.admission_refusal)

    @property
    def accepting(self) -> bool:
        return self.drain_state.accepting

    @property
    def drain_started(self) -> asyncio.Event:
        return self.drain_state.started

    def app(self) -> web.Application:
        app = web.Application()
        for carrier, setup in self.carriers.items():
            name = carrier.value
            answer = functools.partial(self.webhooks.answer, setup)
            for method in setup.hooks.answer_methods if setup.hooks is not None else ():
                app.router.add_route(method, f"/{name}/answer", answer)
                app.router.add_route(method, f"/{name}/answer/{{agent}}", answer)
            media = functools.partial(self.media, setup)
            app.router.add_get(f"/{name}/media", media)
            app.router.add_get(f"/{name}/media/{{agent}}", media)
            if setup.read_progress is not None:
                status = functools.partial(self.webhooks.status, setup)
                app.router.add_route("POST", f"/{name}/status", status)
                app.router.add_route("GET", f"/{name}/status", status)
            for suffix in setup.extra_hooks:
                hook = functools.partial(self.webhooks.extra_hook, setup, suffix)
                app.router.add_route("*", f"/{name}/{suffix}", hook)
        twilio = self.carriers.get(Carrier.TWILIO)
        if twilio is not None:  # the routes from before there were carriers to choose
            legacy = functools.partial(self.webhooks.answer, twilio, legacy=True)
            app.router.add_post("/twiml", legacy)
            app.router.add_get("/twiml", legacy)
            app.router.add_get("/media", functools.partial(self.media, twilio))
            app.router.add_get("/media/{agent}", functools.partial(self.media, twilio))
        if self.audiosocket is not None:
            app.router.add_post("/audiosocket/calls", self.register_audiosocket)
        if self.browser is not None and self.console is None:
            self.browser.add_to(app)  # else where the console is, which its pages call
        if self.dial_api is not None:
            self.dial_api.add_to(app)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics.handle)
        if self.token_route is not None and self.console is None:
            self.token_route.add_to(app)  # else where the console is, which its pages call
        if self.worker is not None:
            app.on_response_prepare.append(self._name_worker)
        app.on_startup.append(self._on_startup)
        app.on_shutdown.append(self._on_shutdown)
        app.on_cleanup.append(self._on_cleanup)  # after the drain: every call_ended is queued
        if self.console is not None:
            self.console.mount(app)  # after on_shutdown's drain: live views end last
        return app

    def bridge_settings(self) -> BridgeSettings:
        s = self.settings
        return BridgeSettings(
            session=live.SessionConfig(model=s.endpoint.model, voice=s.voice,
                                       language=s.language,
                                       system_instruction=s.system_instruction),
            mark_interval_ms=s.mark_interval_ms,
            max_held_ms=s.max_caller_buffer_ms,
            fallback_number=s.fallback_number,
            recordings_dir=Path(s.recordings_dir), record_all=s.record_all,
            capture_dir=Path(s.capture_dir) if s.capture_dir else None,
            max_queued_media=s.outbound_queue_items,
            stall=StallTimes(timeout_s=s.stall_timeout_s, step_s=s.stall_step_s),
            line_processing=s.line_processing,
        )

    # -- webhooks ------------------------------------------------------------------------

    def count_refusal(self, carrier: Carrier, reason: str) -> None:
        self.counters[(carrier.value, reason)] += 1

    def refuse_call(self, carrier: Carrier, route: str) -> str | None:
        """Why a call cannot be taken now (counted and logged), or None."""
        refusal = self.admission_refusal()
        if refusal is not None:
            self.count_refusal(carrier, refusal)
            log.warning("call_refused", carrier=carrier.value, route=route,
                        reason=refusal, active_calls=self.active_calls(),
                        max_calls=self.settings.max_calls,
                        loop_lag_ms=round(self.lag.lag_s * 1000, 1))
        return refusal

    async def _name_worker(self, _request: web.Request, response: web.StreamResponse) -> None:
        response.headers[WORKER_HEADER] = str(self.worker)

    async def healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "active_calls": len(self.calls)})

    async def readyz(self, _request: web.Request) -> web.Response:
        # Not ready only while draining. Being at capacity is not "unready": a load balancer
        # flapping on it would turn calls into carrier errors instead of our busy message.
        if not self.accepting:
            return web.json_response({"status": "draining"}, status=503)
        return web.json_response({"status": "ready"})

    def active_calls(self) -> int:
        return len(self.calls) + len(self.opening)

    def admission_refusal(self) -> str | None:
        """Why a new call cannot be taken now ("draining", "capacity", "overloaded"), or None.

        Counts running bridges and streams being upgraded. A call that an answer webhook
        admitted holds no slot until its stream opens (usually well under a second later),
        so a burst of webhooks can admit a few calls more than there are slots left; their
        streams are then refused with 503 and the carrier hangs up. We accept that race
        rather than keep per-call reservations that would need expiry when a stream never
        comes.
        """
        if not self.accepting:
            return "draining"
        if self.active_calls() >= self.settings.max_calls:
            return "capacity"
        if self.lag.overloaded:
            return "overloaded"
        return None

    # -- media sockets -------------------------------------------------------------------

    async def media(self, setup: CarrierSetup, request: web.Request) -> web.StreamResponse:
        # Everything here is decided before the upgrade, so a refused stream costs no Live
        # session; admission and registration happen with no await in between.
        if setup.verify_upgrade is not None:
            hook = await self.webhooks.read(request, websocket=True)
            if (rejected := self.webhooks.refuse_unsigned(setup, request, hook,
                                                  upgrade=True)) is not None:
                return rejected
        if (refusal := self.refuse_call(setup.carrier, "media")) is not None:
            text = {"draining": "shutting down", "capacity": "too many calls"}.get(
                refusal, "overloaded")
            return web.Response(status=503, text=text)
        task = asyncio.current_task()
        assert task is not None
        self.hold_slot(task)
        # compress=False: audio hardly deflates, and compressing every reply frame costs CPU;
        # it also keeps the frames written in place (send_nowait) like the rest.
        ws = web.WebSocketResponse(max_msg_size=MAX_FRAME_BYTES, heartbeat=None,
                                   compress=False, protocols=setup.subprotocols)
        await ws.prepare(request)
        bridge = CallBridge(AiohttpCaller(ws, request.transport),
                            setup.open_stream(request.query),
                            self.connect_live, self.bridge_settings(), self.services,
                            path=request.path)
        await self.run_call(task, bridge)
        return ws

    def hold_slot(self, task: asyncio.Task[object]) -> None:
        """``task`` takes a call's slot until its bridge runs; however it ends (even by
        cancellation, while upgrading), the slot is given back."""
        self.opening.add(task)
        task.add_done_callback(self._forget_opening)

    async def run_call(self, task: asyncio.Task[object], bridge: CallBridge) -> None:
        """Run an admitted call's bridge (registered with no await after admission)."""
        self.calls[task] = bridge
        self.opening.discard(task)
        if self.drain_state.ending_calls:  # admitted while the drain was ending calls
            bridge.request_end(EndKind.SHUTDOWN, SHUTDOWN_REASON)
        try:
            summary = await bridge.run()
            self.finished.append(summary)
        finally:
            del self.calls[task]
            self.call_done.set()

    async def register_audiosocket(self, request: web.Request) -> web.Response:
        """``POST /audiosocket/calls`` from the dialplan: a call's agent and parameters."""
        hook = await self.webhooks.read(request)
        if self.audiosocket_auth is not None:
            verdict = self.audiosocket_auth.verify(hook)
            if verdict is not Verdict.VALID:
                self.count_refusal(Carrier.AUDIOSOCKET, "signature")
                log.warning("signature_rejected", carrier=Carrier.AUDIOSOCKET.value,
                            reason=verdict.value, path=request.path, remote=request.remote)
                return web.Response(status=401, text=f"{verdict.value} Authorization\n",
                                    headers={"WWW-Authenticate": 'Basic realm="voicegw"'})
        try:
            return document(self.routes.hook(hook))
        except WebhookError as exc:
            log.warning("webhook_refused", carrier=Carrier.AUDIOSOCKET.value, error=str(exc))
            return web.Response(status=400, text=f"{exc}\n")

    async def wait_idle(self) -> None:
        """Wait until no call is running or being set up (its record is kept by then)."""
        while self.calls or self.opening:
            self.call_done.clear()
            await self.call_done.wait()

    def _forget_opening(self, task: asyncio.Task[object]) -> None:
        if task in self.opening:
            self.opening.discard(task)
            self.call_done.set()

    async def drain(self, grace_s: float) -> None:
        """See :meth:`gateway.drain.Drain.drain`."""
        await self.drain_state.drain(grace_s)

    # -- start and stop ------------------------------------------------------------------

    async def _on_startup(self, _app: web.Application) -> None:
        endpoint = self.settings.endpoint
        log.info("gateway_started", host=self.settings.host, port=self.settings.port,
                 live_url=endpoint.safe_url(), live_kind=endpoint.kind, model=endpoint.model,
                 public_url=self.settings.public_url, max_calls=self.settings.max_calls,
                 carriers={c.value: {"signed": s.signed,
                                     "call_control": s.call_control is not None}
                           for c, s in self.carriers.items()},
                 agents=sorted(self.services.agents.agents) if self.services.agents else [])
        for recorder in self._recorders():
            await recorder.start()
        if self.audiosocket is not None:
            self.audiosocket_port = await self.audiosocket.start()
        if self.services.trace is not None:
            self.services.trace.start()
        self._lag_task = asyncio.create_task(self.lag.run(), name="loop-lag")
        self._sweep_task = asyncio.create_task(self.dialing.sweep(), name="dial-sweep") \
            if self.dialing is not None else None

    def _recorders(self) -> list[CallRecorder]:
        return [o for o in self.services.observers if isinstance(o, CallRecorder)]

    async def _on_cleanup(self, _app: web.Application) -> None:
        for task in (self._lag_task, self._sweep_task):
            if task is not None:
                await cancel_and_wait(task)
        self._lag_task = self._sweep_task = None
        if self.audiosocket is not None:  # after the drain: it refused new calls till now
            await self.audiosocket.aclose()
        for recorder in self._recorders():
            await recorder.aclose()  # writes what is still queued, within a timeout
        if self.services.trace is not None:
            await self.services.trace.aclose()
        if self.token_route is not None:
            await self.token_route.aclose()

    async def _on_shutdown(self, _app: web.Application) -> None:
        await self.drain(self.settings.shutdown_grace_s)
        for api in self.services.call_control.values():
            await api.aclose()


def default_agent(settings: Settings) -> Agent:
    """The plain ``assistant``, with the server's voice, language and instructions."""
    return Agent(name=DEFAULT_AGENT_NAME, instructions=settings.system_instruction,
                 voice=settings.voice or "Kore", language=settings.language or "en-US")


def build_services(settings: Settings, env: Mapping[str, str] | None = None) -> CallServices:
    """Everything calls share, from the environment: agents, routing, call records."""
    agents = discover_agents()
    if agents[DEFAULT_AGENT_NAME] is DEFAULT_AGENT:  # not replaced by a plugin
        agents[DEFAULT_AGENT_NAME] = default_agent(settings)
    # Call records are on by default (SQLite file); VOICEGW_DATABASE=off turns them off.
    store = store_from_env(env)
    return CallServices(agents=AgentRegistry.from_env(env, agents=agents),
                        unavailable_prompt=load_prompt(),
                        observers=(CallRecorder(store),) if store is not None else ())


def build_carriers(settings: Settings, *, allow_unsigned: bool,
                   env: Mapping[str, str] | None = None) -> dict[Carrier, CarrierSetup]:
    """The carriers to serve, from their credentials in the environment."""
    return enabled(all_setups(env), allow_unsigned=allow_unsigned,
                   loopback=is_loopback(settings.host))


def load_prompt(name: str = "line_unavailable") -> Prompt:
    """A bundled recorded prompt, as PCM16 and its rate."""
    path = Path(str(resources.files("gateway").joinpath("assets", "prompts", f"{name}.wav")))
    pcm, rate = read_wav(path)
    return Prompt(pcm, rate)


@contextlib.asynccontextmanager
async def running(gateway: Gateway, host: str = "127.0.0.1",
                  port: int = 0, *, sock: socket.socket | None = None,
                  reuse_port: bool = False) -> AsyncIterator[int]:
    """Serve ``gateway`` in this event loop (tests, the demo); yields the bound port. ``sock``
    and ``reuse_port``: see :func:`gateway.listen.listen`."""
    runner = await listen(gateway.app(), host, port, sock=sock, reuse_port=reuse_port)
    async with serving_beside(gateway.console, runner):  # cleans up runner when done
        yield int(runner.addresses[0][1])
