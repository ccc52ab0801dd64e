"""The browser carrier's route, ``GET /browser/media/{agent}?format=pcm16|mulaw8k`` (or
``/browser/media`` for the default agent): the console's talk page calling an agent
(:mod:`gateway.carriers.browser` is its protocol).

Only a signed-in operator may open one: the route is added only where the gateway was given
an :data:`Authorize` check (the console's), and that check runs before anything else, so a
refused upgrade (401, 403) costs no Live session. An unknown agent is 404 and a format the
page cannot ask for 400, also before the upgrade; then the call is admitted like any other
(503 when the gateway is full or draining) and bridged as any carrier's call is.

Beside the bridge, the socket carries the page's view of its call: ``started`` once the
start is taken (before any reply audio, mark or clear, whichever comes first), then the call's
live-call monitor events (:mod:`gateway.monitor`), until the bridge's last word, ``ended``.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import TYPE_CHECKING

import structlog
from aiohttp import web

from gateway.bridge import CallBridge
from gateway.caller_socket import MAX_FRAME_BYTES, AiohttpCaller
from gateway.carriers.browser import (
    BrowserFormat,
    BrowserStream,
    monitor_message,
    started_message,
)
from gateway.carriers.core import Carrier, Outgoing, StreamState
from gateway.console.auth import Authorize
from gateway.monitor import CallMonitor
from gateway.registry import DEFAULT_AGENT_NAME
from gateway.tasks import cancel_and_wait

if TYPE_CHECKING:
    from gateway.server import Gateway


ROUTES = ("/browser/media", "/browser/media/{agent}")  # without a name: the default agent

log = structlog.get_logger("gateway.server")


class PageSocket:
    """The page's socket as the bridge's :class:`gateway.bridge_config.CallerSocket`, with the
    page's own messages beside the call's: ``started`` first, then its monitor events."""

    def __init__(self, caller: AiohttpCaller, stream: BrowserStream, greeting: str,
                 monitor: CallMonitor) -> None:
        self.caller = caller
        self.stream = stream
        self._greeting: str | None = greeting
        self.monitor = monitor
        self.forwarder: asyncio.Task[None] | None = None

    @property
    def close_code(self) -> int | None:
        return self.caller.close_code

    async def receive(self) -> str | bytes | None:
        # The bridge asks for the next frame once it has handled the last: the start has
        # been taken by now if it ever is. Greeted here, the page hears of its call at once.
        if self._greeting is not None and self.stream.state is StreamState.STARTED:
            await self._greet()
        return await self.caller.receive()

    def send_nowait(self, frame: Outgoing) -> bool:
        if self._greeting is not None:
            if not self.caller.send_nowait(self._greeting):
                return False  # queued for send(), which greets first
            self._begin()
        return self.caller.send_nowait(frame)

    async def send(self, frame: Outgoing) -> None:
        if self._greeting is not None:
            await self._greet()
        await self.caller.send(frame)

    async def close(self, code: int, reason: str) -> None:
        await self.caller.close(code, reason)

    async def _greet(self) -> None:
        greeting, self._greeting = self._greeting, None
        if greeting is not None:
            await self.caller.send(greeting)
            self._begin()

    def _begin(self) -> None:
        """The page knows its call: forward the call's monitor events from now on."""
        self._greeting = None
        call_id = self.stream.call_id
        if self.forwarder is None and call_id is not None and call_id in self.monitor:
            self.forwarder = asyncio.create_task(self._forward(call_id),
                                                 name="browser-monitor")

    async def _forward(self, call_id: str) -> None:
        subscription = self.monitor.subscribe(call_id)
        try:
            async for event in subscription:
                # After the bridge's last word (``ended``), nothing of ours follows it.
                if self.stream.state is StreamState.STOPPED or event["type"] == "ended":
                    return
                await self.caller.send(monitor_message(event))
        except ConnectionError:
            return  # the socket is closing: the call is ending anyway
        finally:
            subscription.close()


class BrowserRoute:
    def __init__(self, gateway: Gateway, authorize: Authorize) -> None:
        self.gateway = gateway
        self.authorize = authorize

    def add_to(self, app: web.Application) -> None:
        for route in ROUTES:
            app.router.add_get(route, self.media)

    async def media(self, request: web.Request) -> web.StreamResponse:
        gateway = self.gateway
        try:
            await self.authorize(request, True)
        except web.HTTPException:
            gateway.count_refusal(Carrier.BROWSER, "signature")
            log.warning("browser_refused", path=request.path, remote=request.remote)
            raise
        registry = gateway.services.agents
        agent = request.match_info.get("agent") or (registry.default if registry is not None
                                                    else DEFAULT_AGENT_NAME)
        if agent not in (registry.agents if registry is not None else (DEFAULT_AGENT_NAME,)):
            return web.Response(status=404, text="no such agent\n")
        try:
            fmt = BrowserFormat.parse(request.query.get("format"))
        except ValueError as exc:
            return web.Response(status=400, text=f"{exc}\n")
        if (refusal := gateway.refuse_call(Carrier.BROWSER, "media")) is not None:
            text = {"draining": "shutting down", "capacity": "too many calls"}.get(
                refusal, "overloaded")
            return web.Response(status=503, text=text)
        task = asyncio.current_task()
        assert task is not None
        gateway.hold_slot(task)
        ws = web.WebSocketResponse(max_msg_size=MAX_FRAME_BYTES, heartbeat=None,
                                   compress=False)
        await ws.prepare(request)
        call_id = f"BR{uuid.uuid4().hex}"
        stream = BrowserStream(call_id, fmt)
        page = PageSocket(AiohttpCaller(ws, request.transport), stream,
                          started_message(call_id, agent, fmt), gateway.monitor)
        bridge = CallBridge(page, stream, gateway.connect_live, gateway.bridge_settings(),
                            gateway.services, path=request.path)
        try:
            await gateway.run_call(task, bridge)
        finally:
            if page.forwarder is not None:
                with contextlib.suppress(Exception):
                    await cancel_and_wait(page.forwarder)
        return ws
