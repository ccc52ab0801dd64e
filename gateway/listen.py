"""Starting an aiohttp app on a TCP address: the gateway's and the console's own listener."""

from __future__ import annotations

from aiohttp import web


async def listen(app: web.Application, host: str, port: int) -> web.AppRunner:
    """``app`` served on ``host:port`` (0: any free port); the runner to clean up after. A
    listener that cannot bind leaves nothing behind."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
