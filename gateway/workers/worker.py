"""One worker of ``voicegw serve --workers N``: what the supervisor told it, and its duties.

The supervisor starts each worker as ``voicegw serve`` with the same arguments and a few
``VOICEGW_WORKER_*`` variables: its slot, how it gets the listening socket (an inherited file
descriptor, or the port to bind with SO_REUSEPORT), and the folder for its metrics file.
A worker tells the supervisor it is listening with one line on stdout, and treats the end of
its stdin (a pipe only the supervisor holds) as SIGTERM: a supervisor that was killed cannot
pass the signal on, and its workers must not be left serving with nobody to restart them.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import signal
import socket
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from gateway.errors import ConfigError
from gateway.tasks import cancel_and_wait

READY_LINE: Final = "voicegw-worker-ready"
ENV_SLOT: Final = "VOICEGW_WORKER_SLOT"
ENV_COUNT: Final = "VOICEGW_WORKER_COUNT"
ENV_FD: Final = "VOICEGW_WORKER_FD"
ENV_PORT: Final = "VOICEGW_WORKER_PORT"
ENV_DIR: Final = "VOICEGW_WORKER_DIR"


class SocketMode(enum.Enum):
    """How workers share the port. REUSEPORT: each binds its own socket with SO_REUSEPORT
    and the kernel hashes each new connection to one of them. INHERIT: the supervisor binds
    one listening socket and every worker accepts from it."""

    REUSEPORT = "reuseport"
    INHERIT = "inherit"


@dataclass(frozen=True, slots=True)
class WorkerRole:
    slot: int
    count: int
    folder: Path
    fd: int | None  # INHERIT: the listening socket
    port: int | None  # REUSEPORT: the port to bind beside the others

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> WorkerRole | None:
        if ENV_SLOT not in env:
            return None
        try:
            fd = int(env[ENV_FD]) if ENV_FD in env else None
            port = int(env[ENV_PORT]) if ENV_PORT in env else None
            return cls(int(env[ENV_SLOT]), int(env[ENV_COUNT]), Path(env[ENV_DIR]), fd, port)
        except (KeyError, ValueError) as exc:
            raise ConfigError(f"bad worker settings from the supervisor: {exc}") from exc

    def socket(self) -> socket.socket | None:
        """The inherited listening socket, if that is how this worker listens."""
        return None if self.fd is None else socket.socket(fileno=self.fd)


def say_ready() -> None:
    print(READY_LINE, flush=True)


@contextlib.asynccontextmanager
async def stop_on_orphaning(received: asyncio.Queue[signal.Signals]) -> AsyncIterator[None]:
    """Queue SIGTERM when stdin ends: the supervisor is gone."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def watch() -> None:
        await reader.read()  # nothing is ever written: this returns at end of file
        received.put_nowait(signal.SIGTERM)

    task = asyncio.create_task(watch())
    try:
        yield
    finally:
        await cancel_and_wait(task)
        transport.close()
