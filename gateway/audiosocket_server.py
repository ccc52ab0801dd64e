"""Asterisk AudioSocket over TCP: the listener, each connection as a caller socket, and how a
call's UUID finds its agent (the adapter layer).

``voicegw serve --audiosocket HOST:PORT`` listens beside the HTTP server. Each connection is
one call: the gateway reads the UUID message first (within :data:`UUID_TIMEOUT_S`), decides
before any Live session whether to take the call (admission, the call's route), then runs a
:class:`gateway.bridge.CallBridge` over :class:`TcpCaller` exactly as for a WebSocket carrier.
A refused call is sent AudioSocket's hang-up and closed; so is every call the gateway ends.

The protocol has no authentication, so the listener serves loopback only unless the operator
passes ``--allow-unsigned`` (and keeps the port on a private network: see the README).

Routes: a call registered from the dialplan (:class:`RouteBook`), else the operator's lookup
(``VOICEGW_AUDIOSOCKET_LOOKUP_URL``, a URL with ``{uuid}`` answering JSON, 404 for a call it
does not know, which is refused), else the default agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol
from urllib.parse import quote, urlsplit

import aiohttp
import structlog

from gateway.bridge import CallBridge
from gateway.bridge_config import BridgeSettings, CallServices
from gateway.carriers.audiosocket import (
    HANGUP_FRAME,
    HEADER,
    MAX_PAYLOAD,
    AudioSocketStream,
    Route,
    read_uuid,
)
from gateway.carriers.audiosocket_routes import RouteBook, route_from_fields
from gateway.carriers.basic_auth import BasicAuthCheck
from gateway.carriers.core import Carrier, FrameTooLarge, Outgoing
from gateway.carriers.hooks import WebhookError
from gateway.config import is_loopback
from gateway.errors import ConfigError
from gateway.live_keeper import LiveConnector
from gateway.log import register_secret

UUID_TIMEOUT_S: Final = 5.0  # Asterisk sends the UUID the moment it connects
LOOKUP_TIMEOUT_S: Final = 2.0
CLOSE_TIMEOUT_S: Final = 5.0
# Small fixed buffers, as for WebSocket carriers (gateway.caller_socket), and smaller still:
# the pacer never has more than its lead (80 ms, under 3 KB) on its way to Asterisk, so a
# second of audio each way is room enough, and a peer that stops reading is noticed within
# seconds (the sends block, and the playout's send timeout ends the call).
SOCKET_BUFFER: Final = 16 * 1024
CARRIER: Final = Carrier.AUDIOSOCKET.value

log = structlog.get_logger("gateway.audiosocket")


class TcpCaller:
    """One AudioSocket connection as the bridge's :class:`~gateway.bridge_config.CallerSocket`.
    ``first`` is the message the server already read (the UUID), given to the bridge first."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 first: bytes, *, max_payload: int = MAX_PAYLOAD) -> None:
        self.reader = reader
        self.writer = writer
        self.transport = writer.transport
        self.max_payload = max_payload
        self._first: bytes | None = first
        self.hung_up = False  # the bridge sent the stream's own hang-up already

    @property
    def close_code(self) -> int | None:
        return None  # TCP has no close codes: the end of a call is the hang-up message

    async def receive(self) -> bytes | None:
        if self._first is not None:
            first, self._first = self._first, None
            return first
        return await read_message(self.reader, self.max_payload)

    def send_nowait(self, frame: Outgoing) -> bool:
        transport = self.transport
        if transport.is_closing() or transport.get_write_buffer_size() \
                or not isinstance(frame, bytes):
            return False
        transport.write(frame)
        return True

    async def send(self, frame: Outgoing) -> None:
        if self.transport.is_closing():
            raise ConnectionError("AudioSocket connection closed")
        self.hung_up = self.hung_up or frame == HANGUP_FRAME
        self.writer.write(frame if isinstance(frame, bytes) else frame.encode())
        try:
            await self.writer.drain()
        except (ConnectionError, RuntimeError) as exc:
            raise ConnectionError(str(exc)) from exc

    async def close(self, code: int, reason: str) -> None:
        """AudioSocket's hang-up (Asterisk then goes on with the dialplan), then the close;
        ``code`` and ``reason`` are the bridge's, logged there: the protocol carries none."""
        await hang_up(self.writer, say_it=not self.hung_up)


async def read_message(reader: asyncio.StreamReader, max_payload: int) -> bytes | None:
    """One whole message; None once the connection has ended (mid-message too)."""
    try:
        header = await reader.readexactly(HEADER.size)
        _, length = HEADER.unpack(header)
        if length > max_payload:
            raise FrameTooLarge(max_payload)
        return header + await reader.readexactly(length)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


async def hang_up(writer: asyncio.StreamWriter, *, say_it: bool = True) -> None:
    transport = writer.transport
    if transport.is_closing():
        return
    if say_it and transport.get_write_buffer_size() <= transport.get_write_buffer_limits()[1]:
        transport.write(HANGUP_FRAME)  # not behind a backlog the peer is not reading
    writer.close()
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT_S):
            await writer.wait_closed()
    except (TimeoutError, ConnectionError):
        transport.abort()


# -- routes ------------------------------------------------------------------------------

Lookup = Callable[[str], Awaitable[Route | None]]


class HttpLookup:
    """The operator's lookup: ``GET`` the URL with the UUID in place of ``{uuid}``. 200 with a
    JSON object (``agent``, ``from``, ``to``, ``parameters``) routes the call, 404 refuses it;
    anything else (or no answer within :data:`LOOKUP_TIMEOUT_S`) refuses it too, logged. The
    URL may carry credentials, so only its host is ever logged."""

    def __init__(self, template: str) -> None:
        if "{uuid}" not in template or urlsplit(template).scheme not in ("http", "https"):
            raise ConfigError("VOICEGW_AUDIOSOCKET_LOOKUP_URL must be an http(s) URL "
                              "containing {uuid}")
        self.template = template
        self.host = urlsplit(template).hostname or "?"
        self._session: aiohttp.ClientSession | None = None

    async def __call__(self, call: str) -> Route | None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=LOOKUP_TIMEOUT_S))
        url = self.template.replace("{uuid}", quote(call, safe=""))
        try:
            async with self._session.get(url) as resp:
                if resp.status == 404:
                    return None
                if resp.status != 200:
                    log.warning("audiosocket_lookup_failed", call_sid=call, host=self.host,
                                status=resp.status)
                    return None
                body: Any = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.warning("audiosocket_lookup_failed", call_sid=call, host=self.host,
                        error=type(exc).__name__)
            return None
        if not isinstance(body, dict):
            log.warning("audiosocket_lookup_failed", call_sid=call, host=self.host,
                        error="not a JSON object")
            return None
        try:
            return route_from_fields(body, "lookup")
        except WebhookError as exc:
            log.warning("audiosocket_lookup_failed", call_sid=call, host=self.host,
                        error=str(exc))
            return None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def registration_auth(env: Mapping[str, str]) -> BasicAuthCheck | None:
    """``VOICEGW_AUDIOSOCKET_USER``/``_PASSWORD``: Basic credentials the dialplan's
    registrations must carry (``CURLOPT(userpwd)``); without them registration is open."""
    user = env.get("VOICEGW_AUDIOSOCKET_USER", "").strip()
    password = env.get("VOICEGW_AUDIOSOCKET_PASSWORD", "").strip()
    if not user and not password:
        return None
    if not user or not password:
        raise ConfigError("set both VOICEGW_AUDIOSOCKET_USER and VOICEGW_AUDIOSOCKET_PASSWORD")
    register_secret(password)
    return BasicAuthCheck(user, password)


@dataclass(frozen=True, slots=True)
class AudioSocketConfig:
    host: str
    port: int
    lookup_url: str | None = None

    @classmethod
    def parse(cls, where: str, *, allow_unsigned: bool,
              env: Mapping[str, str]) -> AudioSocketConfig:
        """``--audiosocket HOST:PORT``; beyond loopback only with ``--allow-unsigned``."""
        host, sep, port_text = where.rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) < 65536:
            raise ConfigError(f"--audiosocket wants HOST:PORT, got {where!r}")
        if not is_loopback(host) and not allow_unsigned:
            raise ConfigError(
                "AudioSocket has no authentication: refusing to listen beyond loopback. Keep "
                "the port on a private network reachable only by Asterisk, and pass "
                "--allow-unsigned")
        lookup = env.get("VOICEGW_AUDIOSOCKET_LOOKUP_URL", "").strip() or None
        return cls(host, int(port_text), lookup)


# -- the listener ------------------------------------------------------------------------


class CallHost(Protocol):
    """What the listener needs of the gateway (:class:`gateway.server.Gateway`)."""

    services: CallServices
    connect_live: LiveConnector

    def bridge_settings(self) -> BridgeSettings: ...
    def refuse_call(self, carrier: Carrier, route: str) -> str | None: ...
    def hold_slot(self, task: asyncio.Task[object]) -> None: ...
    def count_refusal(self, carrier: Carrier, reason: str) -> None: ...
    async def run_call(self, task: asyncio.Task[object], bridge: CallBridge) -> None: ...


class AudioSocketServer:
    def __init__(self, host: CallHost, config: AudioSocketConfig, book: RouteBook,
                 lookup: Lookup | None = None) -> None:
        self.gateway = host
        self.config = config
        self.book = book
        self.lookup = lookup or (HttpLookup(config.lookup_url) if config.lookup_url else None)
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[object]] = set()

    async def start(self) -> int:
        """Listen; returns the bound port."""
        self._server = await asyncio.start_server(self._handle, self.config.host,
                                                  self.config.port)
        port = int(self._server.sockets[0].getsockname()[1])
        log.info("audiosocket_listening", host=self.config.host, port=port,
                 lookup=self.lookup is not None)
        return port

    async def aclose(self) -> None:
        """Stop listening (calls still running are the drain's)."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if isinstance(self.lookup, HttpLookup):
            await self.lookup.aclose()

    async def _handle(self, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tune(writer)
        try:
            await self._call(task, reader, writer)
        except Exception:  # a fault in one call is logged and never reaches another
            log.exception("audiosocket_call_failed")
        finally:
            if not writer.transport.is_closing():
                await hang_up(writer)

    async def _call(self, task: asyncio.Task[object], reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter) -> None:
        gateway = self.gateway
        peer = writer.get_extra_info("peername")
        try:
            async with asyncio.timeout(UUID_TIMEOUT_S):
                first = await read_message(reader, MAX_PAYLOAD)
        except (TimeoutError, FrameTooLarge):
            first = None
        call = read_uuid(first) if first is not None else None
        if first is None or call is None:
            gateway.count_refusal(Carrier.AUDIOSOCKET, "bad_start")
            log.warning("audiosocket_refused", reason="no UUID message first", remote=str(peer))
            return
        if gateway.refuse_call(Carrier.AUDIOSOCKET, "media") is not None:
            return  # logged and counted; the hang-up tells Asterisk to go on with the dialplan
        gateway.hold_slot(task)
        route = await self._route(call)
        if route is None:
            gateway.count_refusal(Carrier.AUDIOSOCKET, "unknown_call")
            log.warning("audiosocket_refused", call_sid=call, reason="lookup knows no such call")
            return
        path = f"/{CARRIER}/media" + (f"/{route.agent}" if route.agent else "")
        bridge = CallBridge(TcpCaller(reader, writer, first), AudioSocketStream(route),
                            gateway.connect_live, gateway.bridge_settings(), gateway.services,
                            path=path)
        await gateway.run_call(task, bridge)

    async def _route(self, call: str) -> Route | None:
        registered = self.book.take(call, time.time())
        if registered is not None:
            return registered
        if self.lookup is not None:
            return await self.lookup(call)
        return Route()


def tune(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is None:
        return
    with contextlib.suppress(OSError):
        # Each 20 ms message goes at once: Nagle would hold one back for the peer's ACK.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
    writer.transport.set_write_buffer_limits(high=SOCKET_BUFFER)
