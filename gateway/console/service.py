"""The console as part of a running gateway: built from its settings and the gateway's shared
parts (agents, call records, recordings, the live-call monitor, metrics), and served either
under ``/console/`` on the gateway's own port or on a listener of its own.

Either way the console is one aiohttp sub-application mounted at ``/console/``, so its routes,
security headers and shutdown are the same in both places. On its own port, ``/`` leads to it
and nothing of the carriers' webhooks is there; on the gateway's port, nothing of it is
routed unless it is enabled.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry
from yarl import URL

from gateway.config import LiveEndpoint
from gateway.console.api import Api
from gateway.console.auth import ConsoleAuth
from gateway.console.live import KEEPALIVE_S, LiveStreams
from gateway.console.pages import STATIC, Pages, security_headers
from gateway.console.settings import ConsoleSettings
from gateway.listen import listen
from gateway.monitor import CallMonitor
from gateway.registry import AgentRegistry
from gateway.store import CallRecorder
from gateway.store.base import CallStore

if TYPE_CHECKING:
    from gateway.server import Gateway

PREFIX: Final = "/console"
log = structlog.get_logger("gateway.console")


def direct_origin(endpoint: LiveEndpoint) -> str | None:
    """The Live API's WebSocket origin, where a page may talk to the model directly with an
    ephemeral token; None where the endpoint has no such tokens (Vertex AI)."""
    if endpoint.kind == "vertex":
        return None
    return str(URL(endpoint.url).origin())


class Console:
    def __init__(self, settings: ConsoleSettings, *, agents: AgentRegistry | None,
                 store: CallStore | None, recordings: Path, monitor: CallMonitor,
                 registry: CollectorRegistry | None = None, live_origin: str | None = None,
                 static: Path = STATIC, keepalive_s: float = KEEPALIVE_S,
                 auth: ConsoleAuth | None = None,
                 beside: Sequence[Callable[[web.Application], None]] = ()) -> None:
        self.settings = settings
        self.auth = auth or ConsoleAuth.of(settings)
        # Operator routes outside /console/ that its pages call (the browser carrier's
        # socket, POST /v1/tokens): served wherever the console is, so they share its origin.
        self.beside = tuple(beside)
        if registry is not None:  # /metrics shows the sign-ins
            registry.register(self.auth.counts)
        self.api = Api(self.auth, agents=agents, store=store, recordings=recordings)
        self.live = LiveStreams(self.auth, monitor, keepalive_s=keepalive_s)
        self.pages = Pages(static)
        self.headers = security_headers((live_origin,) if live_origin else ())
        self.port: int | None = None  # of its own listener, once serving

    @classmethod
    def for_gateway(cls, settings: ConsoleSettings, gateway: Gateway,
                    auth: ConsoleAuth | None = None) -> Console:
        """The console of ``gateway``, sharing its agents, records, monitor and metrics (and
        ``auth``, the check its browser carrier was given)."""
        services = gateway.services
        store = next((o.store for o in services.observers if isinstance(o, CallRecorder)), None)
        return cls(settings, agents=services.agents, store=store,
                   recordings=Path(gateway.settings.recordings_dir), monitor=gateway.monitor,
                   registry=gateway.metrics.registry,
                   live_origin=direct_origin(gateway.settings.endpoint), auth=auth,
                   beside=tuple(route.add_to for route in (gateway.browser, gateway.token_route)
                                if route is not None))

    @property
    def separate(self) -> bool:
        return self.settings.listen is not None

    def app(self) -> web.Application:
        """The sub-application to mount at ``/console/``."""
        app = web.Application()
        app.router.add_get("/api/session", self.auth.get_session)
        app.router.add_post("/api/session", self.auth.sign_in)
        app.router.add_delete("/api/session", self.auth.sign_out)
        self.api.routes(app)
        self.live.routes(app)
        self.pages.routes(app)  # last: its catch-all serves the page routes
        app.on_response_prepare.append(self._secure)
        return app

    async def _secure(self, _request: web.Request, response: web.StreamResponse) -> None:
        for name, value in self.headers.items():
            response.headers.setdefault(name, value)
        response.headers.setdefault("Cache-Control", "no-store")

    def add_to(self, app: web.Application) -> None:
        """Mount the console at ``/console/`` of ``app``, and the routes beside it."""
        async def to_console(_request: web.Request) -> web.StreamResponse:
            raise web.HTTPFound(f"{PREFIX}/")

        app.router.add_get(PREFIX, to_console)
        app.add_subapp(f"{PREFIX}/", self.app())
        for add in self.beside:
            add(app)

    def mount(self, app: web.Application) -> None:
        """On the gateway's own app, unless the console has a listener of its own."""
        if not self.separate:
            self.add_to(app)

    def own_app(self) -> web.Application:
        """The app of the console's own listener: the console, and ``/`` leading to it."""
        app = web.Application()

        async def to_console(_request: web.Request) -> web.StreamResponse:
            raise web.HTTPFound(f"{PREFIX}/")

        app.router.add_get("/", to_console)
        self.add_to(app)
        return app

    async def start_own(self) -> web.AppRunner:
        """Start the console's own listener; the runner to clean up after."""
        assert self.settings.listen is not None
        host, port = self.settings.listen
        runner = await listen(self.own_app(), host, port)
        self.port = int(runner.addresses[0][1])
        log.info("console_listening", host=host, port=self.port)
        return runner


@contextlib.asynccontextmanager
async def serving_beside(console: Console | None, main: web.AppRunner) -> AsyncIterator[None]:
    """Serve the console's own listener, if it has one, while ``main`` (the gateway's, started)
    runs; then clean up ``main`` (drain the calls) before the console's, so operators can
    watch the drain. ``main`` is cleaned up however this ends."""
    own: web.AppRunner | None = None
    try:
        if console is not None and console.separate:
            own = await console.start_own()
        yield
    finally:
        try:
            await main.cleanup()
        finally:
            if own is not None:
                await own.cleanup()
