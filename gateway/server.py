"""The aiohttp server: TwiML, the Media Streams WebSocket, health, and the registry of calls.

Each ``/media`` connection gets its own :class:`CallBridge`; whatever one call does, the handler
catches it, so a broken stream can never take another call down. Shutdown is explicit, as in
uvicorn: stop accepting, give active calls a grace period, then cancel what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import deque
from collections.abc import AsyncIterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit
from xml.sax.saxutils import quoteattr

import structlog
from aiohttp import WSMsgType, web

from gateway import live
from gateway.agent import Agent
from gateway.audio import pcm16_to_ulaw
from gateway.bridge import BridgeSettings, CallBridge, CallServices, LiveConnector
from gateway.config import Settings
from gateway.live_client import open_session
from gateway.record import CallSummary
from gateway.registry import (
    DEFAULT_AGENT,
    DEFAULT_AGENT_NAME,
    AgentRegistry,
    discover_agents,
)
from gateway.twilio_rest import TwilioCredentials, TwilioRest
from gateway.wav import read_wav

# Twilio frames are ~300 bytes; anything near this is not a Media Stream.
MAX_FRAME_BYTES: Final = 64 * 1024
FINISHED_KEPT: Final = 200
# Parameters from Twilio's webhook that the bridge uses; passed on as <Parameter>s because the
# stream's `start` message does not carry them.
_FORWARDED_FIELDS: Final = ("From", "To", "CallSid", "Direction")

log = structlog.get_logger("gateway.server")


class AiohttpCaller:
    """:class:`gateway.bridge.CallerSocket` over an aiohttp WebSocket."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws

    async def frames(self) -> AsyncIterator[str | bytes]:
        async for msg in self.ws:
            if msg.type is WSMsgType.TEXT:
                yield msg.data
            elif msg.type is WSMsgType.BINARY:
                yield msg.data  # not Twilio's; the protocol core rejects it and it is counted
            else:
                return

    async def send(self, text: str) -> None:
        try:
            await self.ws.send_str(text)
        except (ConnectionResetError, RuntimeError) as exc:
            raise ConnectionError(str(exc)) from exc

    async def close(self, code: int, reason: str) -> None:
        await self.ws.close(code=code, message=reason.encode()[:120])


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
        self.finished: deque[CallSummary] = deque(maxlen=FINISHED_KEPT)
        self.accepting = True
        self._call_done = asyncio.Event()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/twiml", self.twiml)
        app.router.add_get("/twiml", self.twiml)
        app.router.add_get("/media", self.media)
        app.router.add_get("/media/{agent}", self.media)
        app.router.add_get("/healthz", self.healthz)
        app.on_startup.append(self._on_startup)
        app.on_shutdown.append(self._on_shutdown)
        return app

    def bridge_settings(self) -> BridgeSettings:
        s = self.settings
        return BridgeSettings(
            session=live.SessionConfig(model=s.endpoint.model, voice=s.voice,
                                       language=s.language,
                                       system_instruction=s.system_instruction),
            mark_interval_ms=s.mark_interval_ms,
            max_held_frames=s.max_caller_buffer_frames,
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
        params = "".join(
            f"<Parameter name={quoteattr(name)} value={quoteattr(str(form[name]))}/>"
            for name in _FORWARDED_FIELDS if isinstance(form.get(name), str) and form[name])
        body = ('<?xml version="1.0" encoding="UTF-8"?>'
                f"<Response><Connect><Stream url={quoteattr(self.stream_url(request))}>"
                f"{params}</Stream></Connect><Hangup/></Response>")
        return web.Response(text=body, content_type="text/xml")

    async def healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "active_calls": len(self.calls)})

    async def media(self, request: web.Request) -> web.StreamResponse:
        if not self.accepting:
            return web.Response(status=503, text="shutting down")
        ws = web.WebSocketResponse(max_msg_size=MAX_FRAME_BYTES, heartbeat=None)
        await ws.prepare(request)
        bridge = CallBridge(AiohttpCaller(ws), self.connect_live, self.bridge_settings(),
                            self.services, path=request.path)
        task = asyncio.current_task()
        assert task is not None
        self.calls[task] = bridge
        try:
            summary = await bridge.run()
            self.finished.append(summary)
        finally:
            del self.calls[task]
            self._call_done.set()
        return ws

    # -- shutdown ------------------------------------------------------------------------

    async def drain(self, grace_s: float) -> None:
        """Refuse new calls, let active ones finish for ``grace_s``, then cancel the rest."""
        self.accepting = False
        log.info("draining", active_calls=len(self.calls), grace_s=grace_s)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        while self.calls and loop.time() < deadline:
            self._call_done.clear()
            try:
                async with asyncio.timeout_at(deadline):
                    await self._call_done.wait()
            except TimeoutError:
                break
        remaining = list(self.calls)
        for task in remaining:
            task.cancel()
        if remaining:
            await asyncio.gather(*remaining, return_exceptions=True)
            log.warning("calls_cancelled_at_shutdown", count=len(remaining))

    async def _on_startup(self, _app: web.Application) -> None:
        endpoint = self.settings.endpoint
        log.info("gateway_started", host=self.settings.host, port=self.settings.port,
                 live_url=endpoint.safe_url(), live_kind=endpoint.kind, model=endpoint.model,
                 public_url=self.settings.public_url,
                 agents=sorted(self.services.agents.agents) if self.services.agents else [],
                 twilio_rest=self.services.rest is not None)

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
    return CallServices(agents=AgentRegistry.from_env(env, agents=agents),
                        rest=TwilioRest(credentials) if credentials else None,
                        unavailable_prompt=load_prompt())


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
