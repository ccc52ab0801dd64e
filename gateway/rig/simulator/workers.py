"""Several simulator processes on one port (``voicegw simulate-live --workers N``).

One process carries a few hundred sessions on one core; a load test that needs more runs
several. Each worker is a whole ``simulate-live`` process binding the same port with
SO_REUSEPORT, so the kernel spreads connections across them, and appending to the same trace
(session numbers are interleaved so they never collide: see ``SimulatorServer``). This
process only starts them, passes SIGTERM or SIGINT on, and waits for them to finish writing.

A resumption handle is known only to the worker that issued it: a resume that lands on
another is closed with 1008 "session not found", as an expired handle would be.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence
from typing import Final

import structlog

STOP_TIMEOUT_S: Final = 15.0  # each worker closes its sessions and writes its trace

log = structlog.get_logger("gateway.rig.simulator")


def worker_argv(base: Sequence[str], index: int, count: int) -> list[str]:
    """The command line of worker ``index`` of ``count``: ``base`` is the simulate-live one."""
    return [sys.executable, "-m", "gateway", *base, "--worker", f"{index}/{count}"]


async def run_workers(argvs: Sequence[Sequence[str]]) -> int:
    """Run the worker processes until a signal or until one of them exits; 0 if all went well.

    A trace they share must exist, emptied, before they start: each only appends to it.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    procs: list[asyncio.subprocess.Process] = []
    try:
        for argv in argvs:
            # A session of their own: a terminal's Ctrl-C reaches this process only, which
            # stops the workers in order instead of interrupting them mid-write. Their stdin
            # is a pipe this process never writes to: if it dies (killed, so it cannot stop
            # them), they read end of file and stop themselves.
            procs.append(await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.PIPE, start_new_session=True))
        log.info("simulator.workers_started", workers=len(procs),
                 pids=[p.pid for p in procs])
        exits = [asyncio.create_task(p.wait()) for p in procs]
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait([*exits, stopping], return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        early = [p.pid for p in procs if p.returncode is not None]
        if early and not stop.is_set():
            log.error("simulator.worker_exited", pids=early,
                      codes=[p.returncode for p in procs if p.returncode is not None])
    finally:
        # The handlers stay until the workers are gone: a second signal (a supervisor that
        # repeats itself) must not kill this process and leave them running.
        try:
            await _stop(procs)
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
    if not stop.is_set():
        return 1  # a worker ended on its own; the others were stopped
    return 0 if all(p.returncode == 0 for p in procs) else 1


async def _stop(procs: Sequence[asyncio.subprocess.Process]) -> None:
    for p in procs:
        if p.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                p.terminate()
    waiting = [p for p in procs if p.returncode is None]
    if not waiting:
        return
    try:
        async with asyncio.timeout(STOP_TIMEOUT_S):
            await asyncio.gather(*(p.wait() for p in waiting))
    except TimeoutError:
        for p in waiting:
            if p.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
        await asyncio.gather(*(p.wait() for p in waiting))
