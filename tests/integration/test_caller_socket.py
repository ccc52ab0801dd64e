"""The gateway's side of the provider's WebSocket (AiohttpCaller) over a real loopback socket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import websockets
from aiohttp import web

from gateway.rig.loadtest.local import free_port
from gateway.server import AiohttpCaller

Script = Callable[[AiohttpCaller], Awaitable[None]]


@asynccontextmanager
async def serving(script: Script) -> AsyncIterator[str]:
    """A server whose one route runs ``script`` on the caller socket of each connection."""

    async def media(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await script(AiohttpCaller(ws, request.transport))
        return ws

    app = web.Application()
    app.router.add_get("/media", media)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"ws://127.0.0.1:{port}/media"
    finally:
        await runner.cleanup()


async def test_frames_written_in_place_arrive_whole_and_in_order_with_queued_ones() -> None:
    texts = ["a", "é" * 63, "x" * 126, "☎" * 30_000, "y" * 70_000, "last"]
    results: list[bool] = []

    async def script(caller: AiohttpCaller) -> None:
        for i, text in enumerate(texts):
            if i % 2:
                await caller.send(text)
            else:
                results.append(caller.send_nowait(text))
        await caller.close(1000, "done")

    async with serving(script) as url, websockets.connect(url, max_size=None) as ws:
        got = [await ws.recv() for _ in texts]
    assert got == texts
    assert results == [True, True, True]


async def test_nothing_is_written_in_place_once_a_close_has_begun() -> None:
    after_close: list[bool] = []

    async def script(caller: AiohttpCaller) -> None:
        await caller.close(1000, "bye")
        after_close.append(caller.send_nowait("too late"))

    async with serving(script) as url, websockets.connect(url) as ws:
        try:
            extra = await ws.recv()
        except websockets.ConnectionClosedOK as closed:
            extra = f"closed {closed.rcvd.code if closed.rcvd else None}"
    assert extra == "closed 1000"
    assert after_close == [False]


async def test_a_peer_that_stops_reading_turns_writes_back_to_the_queue() -> None:
    results: list[bool] = []
    written = asyncio.Event()

    async def script(caller: AiohttpCaller) -> None:
        # Far more than the socket buffers of both ends hold: the rest waits in the transport.
        results.append(caller.send_nowait("z" * (64 << 20)))
        results.append(caller.send_nowait("next"))
        written.set()
        caller._abort()

    async with serving(script) as url, websockets.connect(url, max_size=None) as ws:
        await written.wait()  # the client reads nothing until then
        del ws
    assert results == [True, False]
