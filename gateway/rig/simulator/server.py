"""``websockets`` adapter for the *simulated* Live server (a test and demo tool).

Serves the Live API routes on a local port (optionally TLS, which Google's SDK insists on)
and drives one :class:`~gateway.rig.simulator.session.LiveSession` per connection. Everything
protocol-related lives in the sans-I/O core; this module only moves frames and time.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import ssl
import sys
import time
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path
from types import TracebackType
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import structlog
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from gateway.log import configure, register_secret
from gateway.rig.simulator.auth_tokens import AuthTokenStore
from gateway.rig.simulator.protocol import Action, Close, Send
from gateway.rig.simulator.record import HandleStore, SessionRecord
from gateway.rig.simulator.rest import TokenEndpoint
from gateway.rig.simulator.scenario import Scenario, load_scenario
from gateway.rig.simulator.session import LiveSession
from gateway.rig.simulator.trace import SimTrace
from gateway.tasks import cancel_and_wait

GEMINI_PATH: Final = re.compile(
    r"^/ws/google\.ai\.generativelanguage\.(?P<ver>v\w+)\.GenerativeService"
    r"\.BidiGenerateContent(Constrained)?$")
VERTEX_PATH: Final = re.compile(
    r"^/ws/google\.cloud\.aiplatform\.(?P<ver>v\w+)\.LlmBidiService/BidiGenerateContent$")
DEFAULT_PATH: Final = ("/ws/google.ai.generativelanguage.v1beta.GenerativeService"
                       ".BidiGenerateContent")

COMPONENT: Final = "simulated-live-server (test/demo tool)"


def _log() -> Any:
    """Bound at call time, so it follows ``gateway.log.configure()`` made after import."""
    return structlog.get_logger("gateway.rig.simulator").bind(component=COMPONENT)


def _route(path: str) -> str | None:
    """The API version of a Live route, or ``None`` if it is not one."""
    m = GEMINI_PATH.match(path) or VERTEX_PATH.match(path)
    return m.group("ver") if m else None


def _api_key(request: Request) -> str | None:
    headers = request.headers
    key = headers.get("x-goog-api-key")
    if key:
        return key
    query = parse_qs(urlsplit(request.path).query)
    for name in ("key", "access_token"):
        if query.get(name):
            return query[name][0]
    auth = headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() in ("bearer", "token") and value:
        return value.strip()
    return auth or None


def _auth_token(request: Request) -> str | None:
    """The token of a constrained session: ``Authorization: Token auth_tokens/...`` (the
    SDK), the ``access_token`` query parameter (a browser, which cannot set headers), or the
    key header (the SDK sends the token there too)."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "token" and value.strip():
        return value.strip()
    query = parse_qs(urlsplit(request.path).query)
    if query.get("access_token"):
        return query["access_token"][0]
    return request.headers.get("x-goog-api-key")


class SimulatorServer:
    """A simulated Gemini Live server for tests and demos (it has no model behind it).

    ``async with SimulatorServer(scenario) as sim:`` listens on ``sim.url``; each accepted
    connection appends a :class:`SessionRecord` to ``sim.sessions``. With ``trace=PATH`` it
    writes a :class:`~gateway.rig.simulator.trace.SimTrace` there (complete once the ``async
    with`` has exited); session numbers in it are positions in ``sim.sessions``, from 1.

    ``worker=(k, n)`` makes it worker ``k`` of ``n`` processes sharing one port (each socket
    bound with SO_REUSEPORT, the kernel spreading connections) and one trace (appended to):
    its sessions are numbered ``k + 1``, ``k + 1 + n``, ... so that numbers never collide.

    Ephemeral tokens: ``POST {rest_base_url}/v1alpha/auth_tokens`` mints into
    ``sim.auth_tokens`` (on ``rest_port``, see :mod:`gateway.rig.simulator.rest`), and
    ``BidiGenerateContentConstrained`` sessions take only those tokens. ``token_clock``
    (epoch seconds) is the tokens' clock, for tests that let one expire without waiting.
    """

    def __init__(self, scenario: Scenario | None = None, *, host: str = "127.0.0.1",
                 port: int = 0, ssl_context: ssl.SSLContext | None = None,
                 trace: str | Path | None = None, worker: tuple[int, int] = (0, 1),
                 rest_port: int = 0, token_clock: Callable[[], float] | None = None) -> None:
        self.scenario = scenario if scenario is not None else Scenario()
        self.auth_tokens = AuthTokenStore(clock=token_clock)
        self._rest = TokenEndpoint(self.auth_tokens, self.scenario.required_key)
        self.rest_port = rest_port
        register_secret(self.scenario.required_key)  # never in a log line
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.sessions: list[SessionRecord] = []
        self.handles = HandleStore()
        self._server: Server | None = None
        self._changed = asyncio.Condition()
        self.trace_path = None if trace is None else Path(trace)
        self.trace: SimTrace | None = None
        self.worker, self.workers = worker
        if not 0 <= self.worker < self.workers:
            raise ValueError(f"worker {self.worker} of {self.workers}")

    @property
    def url(self) -> str:
        scheme = "wss" if self.ssl_context is not None else "ws"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}{DEFAULT_PATH}"

    @property
    def base_url(self) -> str:
        """What to give Google's SDK as ``HttpOptions(base_url=...)`` (needs TLS)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    @property
    def rest_base_url(self) -> str:
        """The base URL of the REST side (``auth_tokens``): give it to the SDK that mints."""
        scheme = "https" if self.ssl_context is not None else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.rest_port}"

    async def __aenter__(self) -> SimulatorServer:
        if self.trace_path is not None:
            self.trace = SimTrace(self.trace_path, append=self.workers > 1)
            self.trace.start()
        self._server = await serve(
            self._handle, self.host, self.port, ssl=self.ssl_context,
            process_request=self._check_path, server_header="voicegw-live-simulator",
            reuse_port=self.workers > 1)
        sock = next(iter(self._server.sockets))
        self.port = int(sock.getsockname()[1])
        if self.workers == 1:  # tokens live in one process's memory
            self.rest_port = await self._rest.start(self.host, self.rest_port,
                                                    self.ssl_context)
        _log().info("simulator.listening", url=self.url, simulated=True)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            await self._rest.stop()
            if self._server is not None:
                self._server.close()
                await self._server.wait_closed()
                self._server = None
        finally:
            if self.trace is not None:
                # The connections above have closed: their records are in.
                await self.trace.aclose()
        await self._notify()

    async def serve_forever(self) -> None:
        if self._server is None:
            raise RuntimeError("SimulatorServer is not started; use 'async with'")
        await self._server.serve_forever()

    async def wait_until(self, predicate: Callable[[], bool],
                         timeout: float = 10.0) -> None:  # noqa: ASYNC109 (public API)
        """Wait (event-driven) until ``predicate()`` holds; raises ``TimeoutError``."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(predicate)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _check_path(self, connection: ServerConnection, request: Request) -> Response | None:
        if _route(urlsplit(request.path).path) is None:
            return connection.respond(HTTPStatus.NOT_FOUND, "Not Found\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        accepted = time.monotonic()
        path = urlsplit(ws.request.path if ws.request else "").path
        constrained = path.endswith("Constrained")
        getter = _auth_token if constrained else _api_key
        key = getter(ws.request) if ws.request else None
        record = SessionRecord(path=path)
        self.sessions.append(record)
        number = self.worker + 1 + (len(self.sessions) - 1) * self.workers
        core = LiveSession(self.scenario, record, handles=self.handles, api_key=key,
                           api_version=_route(path) or "v1beta",
                           tokens=self.auth_tokens if constrained else None)
        slog = _log().bind(session=number, path=path, remote=str(ws.remote_address[0]))
        slog.info("simulator.session_start", credentials_sent=bool(key), simulated=True)
        await self._notify()
        tracer = None if self.trace is None else _SessionTracer(self.trace, number, accepted)
        try:
            await self._run(ws, core, tracer)
        finally:
            if record.closed is None:
                record.closed = (ws.close_code or 1006, ws.close_reason or "")
            if tracer is not None:
                tracer.close(record)
            slog.info("simulator.session_end", simulated=True, close_code=record.closed[0],
                      close_reason=record.closed[1], model=record.model,
                      audio_chunks=record.audio_chunks, audio_bytes=record.audio_bytes,
                      turns_completed=record.turns_completed,
                      interruptions=record.interruptions, resumed=record.resumed)
            await self._notify()

    async def _run(self, ws: ServerConnection, core: LiveSession,
                   tracer: _SessionTracer | None) -> None:
        while not core.closed:
            if await self._perform(ws, core, core.tick(time.monotonic()), tracer):
                return
            deadline = core.deadline
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                async with asyncio.timeout(timeout):
                    frame: str | bytes = await ws.recv()
            except TimeoutError:
                continue
            except ConnectionClosed as exc:
                _closed_by_peer(core.record, exc)
                return
            now = time.monotonic()
            heard = core.record.audio_seconds
            actions = core.receive(frame, now)
            if tracer is not None:
                tracer.received(now, core.record, heard)
            done = await self._perform(ws, core, actions, tracer)
            await self._notify()  # counters moved even when nothing was sent
            if done:
                return

    async def _perform(self, ws: ServerConnection, core: LiveSession,
                       actions: list[Action], tracer: _SessionTracer | None = None) -> bool:
        """Carry out the core's actions; ``True`` once the connection is finished."""
        try:
            for action in actions:
                if isinstance(action, Send):
                    frame = action.frame()
                    if tracer is not None:
                        # Stamped as the frame is handed to the socket (websockets writes
                        # it to the transport at once), not when the core scheduled it.
                        tracer.sent(time.monotonic(), action)
                    await ws.send(frame)
                elif isinstance(action, Close):
                    await ws.close(action.code, action.reason)
                    return True
                else:  # Drop: no close frame at all
                    ws.transport.abort()
                    return True
        except ConnectionClosed as exc:
            _closed_by_peer(core.record, exc)
            return True
        finally:
            if actions:
                await self._notify()
        return False


class _SessionTracer:
    """One connection's trace records; the adapter's side only (times are taken here)."""

    __slots__ = ("accepted", "number", "opened", "trace")

    def __init__(self, trace: SimTrace, number: int, accepted: float) -> None:
        self.trace = trace
        self.number = number
        self.accepted = accepted
        self.opened = False

    def received(self, now: float, record: SessionRecord, heard_before: float) -> None:
        if not self.opened and record.setup is not None:
            self.opened = True
            self.trace.opened(self.accepted, self.number, record.handle_offered, now)
        if record.audio_seconds != heard_before:
            self.trace.received(now, self.number, record.audio_seconds * 1000)

    def sent(self, now: float, action: Send) -> None:
        kind = action.kind
        if kind == "audio":
            late = (now - action.due) * 1000 if action.due else 0.0
            self.trace.reply(now, self.number, action.turn, action.audio_ms, late)
        elif kind == "interrupted":
            self.trace.interrupted(now, self.number, action.turn)
        elif kind == "turnComplete":
            self.trace.turn_complete(now, self.number, action.turn)

    def close(self, record: SessionRecord) -> None:
        if not self.opened:  # closed before its setup arrived
            self.opened = True
            self.trace.opened(self.accepted, self.number, None, None)
        code = record.closed[0] if record.closed is not None else 1006
        self.trace.closed_session(time.monotonic(), self.number, code)


def _closed_by_peer(record: SessionRecord, exc: ConnectionClosed) -> None:
    if record.closed is None:
        rcvd = exc.rcvd
        record.closed = (rcvd.code, rcvd.reason) if rcvd is not None else (1006, "")


async def _launcher_gone() -> None:
    """Return once the launcher that started this worker is gone. It holds the write end of
    the worker's stdin and never writes: end of file means it exited, however it ended. A
    launcher stops its workers on SIGTERM; one that was killed cannot, and a worker left
    running would hold the port and its end of the launcher's output pipe (so a parent
    waiting on that pipe would wait for ever)."""
    reader = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while await reader.read(4096):
        pass


async def run_simulator(host: str, port: int, *, scenario_path: str | Path | None = None,
                        tls_cert: str | Path | None = None,
                        tls_key: str | Path | None = None,
                        trace: str | Path | None = None,
                        worker: tuple[int, int] = (0, 1), rest_port: int = 0) -> None:
    """Run a simulated Live server until cancelled or sent SIGTERM (``voicegw simulate-live``).

    SIGTERM shuts it down cleanly: connections are closed and the trace (if any) is written
    out in full before the process exits.
    """
    if not structlog.is_configured():
        configure()
    scenario = load_scenario(scenario_path) if scenario_path else Scenario()
    ctx: ssl.SSLContext | None = None
    if tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(tls_cert), str(tls_key) if tls_key else None)
    elif tls_key:
        raise ValueError("--tls-key needs --tls-cert")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGTERM, stop.set)  # main thread, POSIX only
    try:
        async with SimulatorServer(scenario, host=host, port=port, ssl_context=ctx,
                                   trace=trace, worker=worker, rest_port=rest_port) as sim:
            _log().info("simulator.ready", url=sim.url,
                        scenario=str(scenario_path or "(default)"), tls=ctx is not None,
                        tokens_url=sim.rest_base_url if worker[1] == 1 else None,
                        simulated=True, trace=str(trace) if trace else None,
                        note="simulated Live API for tests and demos; no model behind it")
            serving = asyncio.create_task(sim.serve_forever())
            stopping = asyncio.create_task(stop.wait())
            tasks = [serving, stopping]
            if worker[1] > 1:  # one of --workers N: stop with the launcher, however it ended
                tasks.append(asyncio.create_task(_launcher_gone()))
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                if tasks[2:] and tasks[2] in done:
                    _log().warning("simulator.launcher_gone",
                                   note="stopping: nothing else would")
            finally:
                for task in tasks:
                    # A task that failed re-raises its error here.
                    await cancel_and_wait(task)
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(signal.SIGTERM)
