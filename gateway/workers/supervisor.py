"""The supervisor of ``voicegw serve --workers N``: starts the workers, restarts one that dies,
and on SIGTERM or SIGINT has every worker drain as a single process does, then exits.

It serves nothing itself. It holds the port (the listening socket the workers inherit, or a
bound SO_REUSEPORT socket that keeps the port theirs when ``--port 0`` picked it) and the
folder of the workers' metrics files, removed when it exits.

A worker that dies while running loses the calls it carried (they are counted, see
:mod:`gateway.workers.metrics`) and is replaced; the others never notice. One that dies
before it is listening is a fault a restart would only repeat (a bad setting, a port in
use): the supervisor then stops the others and exits with that worker's status.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from gateway.workers import worker as w
from gateway.workers.metrics import retire
from gateway.workers.slots import Slot, SlotEvent, SlotState

log = structlog.get_logger("gateway.workers")


@dataclass(frozen=True, slots=True)
class Plan:
    argv: Sequence[str]  # ``voicegw`` arguments, as given to the supervisor
    count: int
    host: str
    port: int
    mode: w.SocketMode


def hold_port(host: str, port: int, mode: w.SocketMode) -> socket.socket:
    """The supervisor's socket on ``host:port``: listening (INHERIT) or only bound (REUSEPORT:
    a socket that does not listen is handed no connections, but keeps the port reserved)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if mode is w.SocketMode.REUSEPORT:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        if mode is w.SocketMode.INHERIT:
            sock.listen(1024)
            sock.setblocking(False)
            sock.set_inheritable(True)
    except BaseException:
        sock.close()
        raise
    return sock


@dataclass(slots=True)
class Supervisor:
    plan: Plan
    sock: socket.socket
    folder: Path
    slots: list[Slot] = field(init=False)
    procs: dict[int, asyncio.subprocess.Process] = field(default_factory=dict)
    stopping: bool = False
    failed: int | None = None  # the status of a worker that died before listening

    def __post_init__(self) -> None:
        self.slots = [Slot(i) for i in range(self.plan.count)]

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def _env(self, slot: int) -> dict[str, str]:
        env = {**os.environ, w.ENV_SLOT: str(slot), w.ENV_COUNT: str(self.plan.count),
               w.ENV_DIR: str(self.folder)}
        if self.plan.mode is w.SocketMode.INHERIT:
            env[w.ENV_FD] = str(self.sock.fileno())
        else:
            env[w.ENV_PORT] = str(self.port)
        return env

    async def _spawn(self, slot: Slot) -> asyncio.subprocess.Process:
        inherit = self.plan.mode is w.SocketMode.INHERIT
        # A session of their own, so a terminal's Ctrl-C reaches the supervisor only, which
        # passes one SIGTERM on (a second would cut the drain short). stdin is a pipe nobody
        # writes to: if the supervisor is killed the workers read its end and drain.
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", *self.plan.argv, env=self._env(slot.index),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            pass_fds=(self.sock.fileno(),) if inherit else (), start_new_session=True)
        self.procs[slot.index] = proc
        log.info("worker_started", worker=slot.index, pid=proc.pid, restarts=slot.restarts)
        if slot.state is SlotState.DRAINING:  # the signal came while it was being started
            proc.terminate()
        return proc

    async def _run_slot(self, slot: Slot) -> int:
        while True:
            proc = await self._spawn(slot)
            ready = asyncio.Event()
            reader = asyncio.create_task(_read_stdout(proc, ready))
            exited = asyncio.create_task(proc.wait())
            readied = asyncio.create_task(ready.wait())
            await asyncio.wait([exited, readied], return_when=asyncio.FIRST_COMPLETED)
            readied.cancel()
            if ready.is_set():
                slot.move(SlotEvent.READY)
            code = await exited
            await reader
            died = slot.state is SlotState.RUNNING
            retire(self.folder, slot.index, proc.pid, died=died)
            state = slot.move(SlotEvent.EXIT)
            if state is SlotState.EXITED:
                if not self.stopping:  # died before listening: stop the whole server
                    log.error("worker_failed_to_start", worker=slot.index, pid=proc.pid,
                              code=code)
                    self.failed = code
                    self.stop(signal.SIGTERM)
                else:
                    log.info("worker_exited", worker=slot.index, pid=proc.pid, code=code)
                return code
            log.error("worker_died", worker=slot.index, pid=proc.pid, code=code,
                      restarts=slot.restarts)
            slot.move(SlotEvent.SPAWN)

    def stop(self, sig: signal.Signals) -> None:
        """Drain every worker (again, on a second signal: they cut their grace short)."""
        if not self.stopping:
            log.info("shutdown_signal", signal=sig.name, workers=self.plan.count)
        self.stopping = True
        for slot in self.slots:
            if slot.state is SlotState.EXITED:
                continue
            if slot.move(SlotEvent.DRAIN) is SlotState.DRAINING:
                proc = self.procs.get(slot.index)
                if proc is not None and proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.send_signal(signal.SIGTERM)

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop, sig)
        try:
            log.info("supervisor_listening", host=self.plan.host, port=self.port,
                     workers=self.plan.count, socket=self.plan.mode.value)
            codes = await asyncio.gather(*(self._run_slot(s) for s in self.slots))
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        log.info("supervisor_stopped", codes=codes)
        if self.failed is not None:
            return self.failed if self.failed > 0 else 1
        return 0 if all(c == 0 for c in codes) else 1


async def _read_stdout(proc: asyncio.subprocess.Process, ready: asyncio.Event) -> None:
    """Wait for the worker's ready line; pass anything else it prints on (and keep its pipe
    drained, so it never blocks writing)."""
    assert proc.stdout is not None
    async for raw in proc.stdout:
        if raw.decode(errors="replace").strip() == w.READY_LINE:
            ready.set()
        else:
            sys.stdout.buffer.write(raw)
            sys.stdout.flush()


async def supervise(plan: Plan) -> int:
    """Run the workers until a signal; the process's exit status."""
    sock = hold_port(plan.host, plan.port, plan.mode)
    folder = Path(tempfile.mkdtemp(prefix="voicegw-workers-"))
    try:
        return await Supervisor(plan, sock, folder).run()
    finally:
        sock.close()
        shutil.rmtree(folder, ignore_errors=True)
