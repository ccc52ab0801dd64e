"""The floor under a Python gateway's CPU per call: receiving Twilio's frames, and nothing else.

A bare aiohttp server (uvloop, as ``voicegw serve`` runs) on CPU 0 accepts N WebSockets and
only counts the text frames it receives; a client on CPU 1 sends each of them a Twilio media
frame every 20 ms. What the server spends per frame is the least any aiohttp gateway spends
before it parses, resamples or forwards anything: times 50 frames a second, it is a floor
under CPU per call.

Run: .venv/bin/python benchmarks/receive_floor.py [--calls 50] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable

import uvloop
from aiohttp import ClientSession, web

from gateway.rig.loadtest.local import free_port
from gateway.rig.peers.twilio import TwilioPeer

FRAME = TwilioPeer("CA" + "0" * 32, "MZ" + "0" * 32).media(bytes(range(160)))


async def serve(port: int, calls: int) -> None:
    received = 0
    start: tuple[int, float] | None = None  # (frames, CPU s) once every call is streaming

    def cpu() -> float:
        t = os.times()
        return t.user + t.system

    async def media(request: web.Request) -> web.WebSocketResponse:
        nonlocal received, start
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for _msg in ws:
            received += 1
            if start is None and received == calls * 50:  # a second in: all connected
                start = (received, cpu())
        return ws

    app = web.Application()
    app.router.add_get("/media", media)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("listening", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # "done"
    frames0, cpu0 = start or (0, 0.0)
    print(received - frames0, cpu() - cpu0, flush=True)


async def send(port: int, calls: int, seconds: float) -> None:
    async def one(session: ClientSession, k: int) -> None:
        async with session.ws_connect(f"http://127.0.0.1:{port}/media") as ws:
            loop = asyncio.get_running_loop()
            await asyncio.sleep(0.02 * k / calls)  # spread the calls over the 20 ms tick
            due = loop.time()
            end = due + seconds
            while due < end:
                await ws.send_str(FRAME)
                due += 0.02
                await asyncio.sleep(max(0.0, due - loop.time()))

    async with ClientSession() as session:
        await asyncio.gather(*(one(session, k) for k in range(calls)))


def pinned_run(server_argv: list[str], client: Callable[[], None]
               ) -> tuple[list[float], float]:
    """Run ``python server_argv`` on CPU 0 and ``client()`` here on CPU 1: the server's
    answer, and how long the client ran (s).

    The server prints a line once it listens, waits for "done" on its standard input after
    the client has run, and answers with one line of numbers.
    """
    taskset = shutil.which("taskset")
    pin = [taskset, "-c", "0"] if taskset else []
    server = subprocess.Popen([*pin, sys.executable, *server_argv],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    if server.stdin is None or server.stdout is None:
        raise SystemExit("no pipe to the server")
    try:
        server.stdout.readline()  # listening
        if pin:
            os.sched_setaffinity(0, {1})
        start = time.monotonic()
        client()
        wall = time.monotonic() - start
        server.stdin.write("done\n")
        server.stdin.flush()
        return [float(v) for v in server.stdout.readline().split()], wall
    finally:
        server.terminate()
        server.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        uvloop.run(serve(args.serve, args.calls))
        return
    port = free_port()
    (frames, cpu), wall = pinned_run(
        [__file__, "--serve", str(port), "--calls", str(args.calls)],
        lambda: uvloop.run(send(port, args.calls, args.seconds)))
    print(f"{args.calls} calls for {wall:.0f} s: {frames:.0f} frames, "
          f"{cpu / frames * 1e6:.1f} µs of server CPU per frame "
          f"(x 50 frames/s = {cpu / frames * 50 * 100:.3f} % of a core per call)")


if __name__ == "__main__":
    main()
