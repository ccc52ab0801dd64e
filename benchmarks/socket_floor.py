"""The floor under any Python gateway's CPU per call, below aiohttp: the sockets alone.

A bare ``asyncio.Protocol`` on uvloop (as ``voicegw serve`` runs) on CPU 0 accepts N TCP
connections and parses nothing: it counts the bytes of the Twilio media frames (as masked
WebSocket frames) that a client on CPU 1 sends each connection every 20 ms. With
``--forward`` it also writes every chunk it reads, as it is, to a TLS connection of the
same call (a sink on CPU 1 reads and drops it), as a gateway must to reach the Live API.

Nothing here parses a frame, decodes audio or sends the model's replies back, so a real
gateway spends more than this on the caller's direction alone. Times 50 frames a second,
the figure it prints is a floor under CPU per call.

Run: .venv/bin/python benchmarks/socket_floor.py [--calls 200] [--seconds 20] [--forward]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import sys
import tempfile
from pathlib import Path

import trustme
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))

from receive_floor import pinned_run

from gateway.rig.loadtest.local import free_port
from gateway.rig.peers.twilio import TwilioPeer
from gateway.wsframe import MaskedTextFramer

FRAME = MaskedTextFramer().frame(TwilioPeer("CA" + "0" * 32, "MZ" + "0" * 32)
                                 .media(bytes(range(160))).encode())


def cpu() -> tuple[float, float]:
    t = os.times()
    return t.user, t.system


class Sink(asyncio.Protocol):
    def data_received(self, data: bytes) -> None:
        pass


async def serve(port: int, calls: int, sink: tuple[int, Path | None] | None) -> None:
    loop = asyncio.get_running_loop()
    received = 0
    # (bytes, (user, system) CPU s) once every call is streaming
    start: tuple[int, tuple[float, float]] | None = None
    ctx = ssl.create_default_context(cafile=str(sink[1])) if sink and sink[1] else None

    class Caller(asyncio.Protocol):
        out: asyncio.Transport | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            if sink:
                loop.create_task(self.connect())  # noqa: RUF006 - lives as long as the run

        async def connect(self) -> None:
            assert sink
            self.out, _ = await loop.create_connection(Sink, "127.0.0.1", sink[0], ssl=ctx)

        def data_received(self, data: bytes) -> None:
            nonlocal received, start
            received += len(data)
            if self.out is not None:
                self.out.write(data)
            if start is None and received >= calls * 50 * len(FRAME):
                start = (received, cpu())  # a second in: every call is connected

    server = await loop.create_server(Caller, "127.0.0.1", port)
    print("listening", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)  # "done"
    bytes0, (user0, sys0) = start or (0, (0.0, 0.0))
    user, system = cpu()
    print((received - bytes0) / len(FRAME), user - user0, system - sys0, flush=True)
    server.close()


async def send(port: int, calls: int, seconds: float) -> None:
    loop = asyncio.get_running_loop()
    writers = []
    for _ in range(calls):
        transport, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
        writers.append(transport)
    # Each call sends on its own phase of the 20 ms tick, as independent phones would.
    slots = 20
    due = loop.time()
    end = due + seconds
    tick = 0
    while due < end:
        for transport in writers[tick % slots::slots]:
            transport.write(FRAME)
        tick += 1
        due += 0.02 / slots
        await asyncio.sleep(max(0.0, due - loop.time()))
    for transport in writers:
        transport.close()


async def sink_server(port: int, cert: trustme.LeafCert | None) -> asyncio.Server:
    ctx = None
    if cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(ctx)
    loop = asyncio.get_running_loop()
    return await loop.create_server(Sink, "127.0.0.1", port, ssl=ctx)


async def client(port: int, calls: int, seconds: float,
                 sink: tuple[int, trustme.LeafCert | None] | None) -> None:
    server = await sink_server(*sink) if sink else None
    await send(port, calls, seconds)
    if server:
        server.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--forward", choices=("tls", "plain"),
                    help="also write every chunk read to a connection of the call: over TLS "
                         "(as to the Live API), or plain TCP to tell what TLS costs")
    ap.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    ap.add_argument("--sink", type=int, metavar="PORT", help=argparse.SUPPRESS)
    ap.add_argument("--ca", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        sink = (args.sink, args.ca) if args.sink else None
        uvloop.run(serve(args.serve, args.calls, sink))
        return
    port, sink_port = free_port(), free_port()
    ca = trustme.CA()
    with tempfile.TemporaryDirectory() as tmp:
        ca_file = Path(tmp) / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        forward = ["--sink", str(sink_port)] if args.forward else []
        forward += ["--ca", str(ca_file)] if args.forward == "tls" else []
        cert = ca.issue_cert("127.0.0.1") if args.forward == "tls" else None
        sink = (sink_port, cert) if args.forward else None
        (frames, user, system), wall = pinned_run(
            [__file__, "--serve", str(port), "--calls", str(args.calls), *forward],
            lambda: uvloop.run(client(port, args.calls, args.seconds, sink)))
    what = {"tls": "read and forwarded over TLS", "plain": "read and forwarded over TCP",
            None: "read"}[args.forward]
    used = user + system
    print(f"{args.calls} calls for {wall:.0f} s: {frames:.0f} frames "
          f"{what}, {used / frames * 1e6:.1f} µs of server CPU per frame, "
          f"{system / frames * 1e6:.1f} of it in the kernel "
          f"(x 50 frames/s = {used / frames * 50 * 100:.3f} % of a core per call)")


if __name__ == "__main__":
    main()
