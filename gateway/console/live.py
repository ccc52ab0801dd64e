"""``GET /console/api/live`` and ``/console/api/live/{sid}``: the monitor's events as
server-sent events, one ``data: <json>`` per event.

A comment line goes out whenever nothing else has for :data:`KEEPALIVE_S`, so proxies that
close idle responses keep the stream open (and a browser that went away is noticed when the
write fails). A stream ends with its subscription (the call ended, or the watcher lagged and
was told so) or when the server shuts down.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Final

import orjson
from aiohttp import web

from gateway.console.auth import ConsoleAuth, refusal
from gateway.monitor import CallMonitor, Subscription
from gateway.tasks import cancel_and_wait

KEEPALIVE_S: Final = 15.0
KEEPALIVE: Final = b": keep-alive\n\n"


class LiveStreams:
    def __init__(self, auth: ConsoleAuth, monitor: CallMonitor, *,
                 keepalive_s: float = KEEPALIVE_S) -> None:
        self.auth = auth
        self.monitor = monitor
        self.keepalive_s = keepalive_s
        self.closing = asyncio.Event()  # set at shutdown: every stream ends

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/api/live", self.all_calls)
        app.router.add_get("/api/live/{sid}", self.one_call)
        app.on_shutdown.append(self._close)

    async def _close(self, _app: web.Application) -> None:
        self.closing.set()

    async def all_calls(self, request: web.Request) -> web.StreamResponse:
        await self.auth.check(request, state_change=False)
        return await self._stream(request, self.monitor.subscribe())

    async def one_call(self, request: web.Request) -> web.StreamResponse:
        await self.auth.check(request, state_change=False)
        try:
            subscription = self.monitor.subscribe(request.match_info["sid"])
        except KeyError:
            raise refusal(web.HTTPNotFound, "no such call in progress") from None
        return await self._stream(request, subscription)

    async def _stream(self, request: web.Request,
                      subscription: Subscription) -> web.StreamResponse:
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream", "Cache-Control": "no-store",
            "X-Accel-Buffering": "no"})  # nginx: pass each event on at once
        stop = asyncio.ensure_future(self.closing.wait())
        pending: asyncio.Future[Any] | None = None
        try:
            await response.prepare(request)
            while not stop.done():
                if pending is None:
                    pending = asyncio.ensure_future(subscription.__anext__())
                done, _ = await asyncio.wait({pending, stop}, timeout=self.keepalive_s,
                                             return_when=asyncio.FIRST_COMPLETED)
                if pending in done:
                    try:
                        event = pending.result()
                    except StopAsyncIteration:
                        break
                    pending = None
                    await response.write(b"data: " + orjson.dumps(event) + b"\n\n")
                elif not done:
                    await response.write(KEEPALIVE)
        except ConnectionResetError:  # the browser went away
            pass
        finally:
            subscription.close()
            for task in (pending, stop):
                if not isinstance(task, asyncio.Task):
                    continue
                if not task.done():
                    await cancel_and_wait(task)
                elif not task.cancelled():
                    task.exception()  # seen: the end of the events is no error
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
        return response
