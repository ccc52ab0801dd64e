"""Which way of sharing the port spreads a burst of new connections more evenly across the
workers of ``voicegw serve --workers N``: SO_REUSEPORT (each worker binds its own socket; the
kernel hashes each connection to one) or one inherited socket (every worker accepts from it).

For each way, a server with N workers is started (as an operator would: ``voicegw serve``),
and each round opens a burst of new TCP connections at once, each asking ``GET /healthz``
and closing; the ``Voicegw-Worker`` header says which worker answered. A new call is a new
connection, so this is how a burst of new calls would be spread. Printed per way: the share
of each worker in each round, and the worst deviation from an even share over all rounds.

Run: .venv/bin/python benchmarks/workers.py [--workers 2] [--burst 200] [--rounds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections import Counter
from pathlib import Path

from gateway.server import WORKER_HEADER
from gateway.workers.worker import SocketMode

VOICEGW = Path(sys.executable).with_name("voicegw")


async def _ask(port: int) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
    head = (await reader.read()).split(b"\r\n\r\n")[0].decode()
    writer.close()
    for line in head.split("\r\n"):
        name, _, value = line.partition(":")
        if name.lower() == WORKER_HEADER.lower():
            return int(value)
    raise RuntimeError(f"no {WORKER_HEADER} header in {head!r}")


async def measure(mode: SocketMode, workers: int, burst: int, rounds: int) -> list[Counter[int]]:
    env = {**os.environ, "VOICEGW_DATABASE": "off"}
    proc = await asyncio.create_subprocess_exec(
        str(VOICEGW), "serve", "--port", "0", "--live-url", "ws://127.0.0.1:9/",
        "--workers", str(workers), "--workers-socket", mode.value,
        "--max-calls", str(max(workers, 100)),
        env=env, stdin=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    listening: asyncio.Queue[int] = asyncio.Queue()
    reader = asyncio.create_task(_read_log(proc, listening, workers))
    try:
        port = await listening.get()
        results = []
        for _ in range(rounds):
            answered = await asyncio.gather(*(_ask(port) for _ in range(burst)))
            results.append(Counter(answered))
        return results
    finally:
        proc.send_signal(signal.SIGTERM)
        await proc.wait()
        await reader


async def _read_log(proc: asyncio.subprocess.Process, listening: asyncio.Queue[int],
                    workers: int) -> None:
    """Read the server's log to its end (so it never blocks writing); give the port once
    every worker is listening."""
    assert proc.stderr is not None
    count = 0
    async for raw in proc.stderr:
        line = json.loads(raw)
        if line.get("event") == "gateway_listening":
            count += 1
            if count == workers:
                listening.put_nowait(int(line["port"]))


def _report(mode: SocketMode, workers: int, burst: int, rounds: list[Counter[int]]) -> float:
    even = burst / workers
    worst = max(abs(r[w] - even) / even for r in rounds for w in range(workers))
    print(f"{mode.value:>9}: " + "  ".join(
        "/".join(str(r[w]) for w in range(workers)) for r in rounds)
        + f"   worst deviation from even: {worst:.0%}")
    return worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--burst", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    print(f"{args.workers} workers, bursts of {args.burst} new connections, "
          f"{args.rounds} rounds: connections per worker in each round")
    for mode in SocketMode:
        rounds = asyncio.run(measure(mode, args.workers, args.burst, args.rounds))
        _report(mode, args.workers, args.burst, rounds)


if __name__ == "__main__":
    main()
