"""Starting an aiohttp app on a TCP address: the gateway's and the console's own listener."""

from __future__ import annotations

import socket

from aiohttp import web


async def listen(app: web.Application, host: str, port: int, *,
                 sock: socket.socket | None = None,
                 reuse_port: bool = False) -> web.AppRunner:
    """``app`` served on ``host:port`` (0: any free port), or on ``sock``, a listening socket
    already bound (a worker's, inherited); ``reuse_port`` binds beside other processes on the
    same port (SO_REUSEPORT). The runner to clean up after. A listener that cannot bind
    leaves nothing behind."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.SockSite(runner, sock) if sock is not None else web.TCPSite(
        runner, host, port, reuse_port=reuse_port or None)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
