"""``voicegw serve`` as a process: listen, and on SIGTERM or SIGINT drain before exiting.

aiohttp's ``web.run_app`` stops listening the moment a signal arrives and only then runs the
shutdown hooks, so during a drain a load balancer would see connection errors rather than
``/readyz`` answering 503, and a carrier could not be told "busy". Here the socket stays open
for the whole drain: readiness turns 503, webhooks get the carrier's busy answer, new streams
get 503, and active calls finish or are ended cleanly (see :meth:`Gateway.drain`) before the
listener closes and the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import signal
from collections.abc import AsyncIterator
from typing import Final

import structlog

from gateway import audio
from gateway.server import Gateway, running
from gateway.tasks import cancel_and_wait
from gateway.workers.metrics import ServerMetrics
from gateway.workers.worker import WorkerRole, say_ready, stop_on_orphaning

SIGNALS: Final = (signal.SIGTERM, signal.SIGINT)

log = structlog.get_logger("gateway.lifecycle")


async def serve(gateway: Gateway, role: WorkerRole | None = None) -> None:
    """Serve until SIGTERM/SIGINT, then drain. A second signal cuts the grace period short.
    ``role``: this process is one worker of ``serve --workers N``."""
    settings = gateway.settings
    loop = asyncio.get_running_loop()
    received: asyncio.Queue[signal.Signals] = asyncio.Queue()
    for sig in SIGNALS:
        loop.add_signal_handler(sig, received.put_nowait, sig)
    try:
        async with _listening(gateway, role, received) as port:
            # An install without a C compiler serves on the numpy resampler: same audio,
            # more CPU per call. Said here so an operator sizing by CPU can see it.
            log.info("gateway_listening", host=settings.host, port=port,
                     resampler_kernel="compiled" if audio.COMPILED else "numpy")
            if role is not None:
                say_ready()
            # What start-up built (modules, agents, the app) lives as long as the process.
            # Frozen, it is no longer walked by every full collection, which otherwise
            # paused every call for up to 64 ms of CPU at 50 calls.
            gc.collect()
            gc.freeze()
            sig = await received.get()
            log.info("shutdown_signal", signal=sig.name, grace_s=settings.shutdown_grace_s)
            drain = asyncio.create_task(gateway.drain(settings.shutdown_grace_s))
            hurry = asyncio.create_task(_hurry_on_signal(gateway, received))
            try:
                await drain
            finally:
                await cancel_and_wait(hurry)
    finally:
        for sig in SIGNALS:
            loop.remove_signal_handler(sig)
            if role is not None:
                # Already on its way out: the supervisor's second signal, meant to cut a
                # drain short, must not kill a worker whose drain is done but which is
                # still closing its call records.
                signal.signal(sig, signal.SIG_IGN)
    log.info("gateway_stopped")


@contextlib.asynccontextmanager
async def _listening(gateway: Gateway, role: WorkerRole | None,
                     received: asyncio.Queue[signal.Signals]) -> AsyncIterator[int]:
    """The gateway serving; as a worker, also sharing its figures and watching for orphaning."""
    settings = gateway.settings
    if role is None:
        async with running(gateway, settings.host, settings.port) as port:
            yield port
        return
    gateway.worker = role.slot
    shared = ServerMetrics(gateway.metrics.registry, role.folder, role.slot)
    gateway.metrics.exposed = shared.registry
    gateway.services = dataclasses.replace(
        gateway.services, observers=(*gateway.services.observers, shared))
    async with running(gateway, settings.host, role.port or settings.port, sock=role.socket(),
                       reuse_port=role.port is not None) as port, \
            stop_on_orphaning(received):
        writer = asyncio.create_task(shared.keep_written())
        try:
            yield port
        finally:
            await cancel_and_wait(writer)
            # After the drain every call_ended has been counted: the worker's last figures,
            # which stay in the server's sums once it has gone.
            shared.write()


async def _hurry_on_signal(gateway: Gateway, received: asyncio.Queue[signal.Signals]) -> None:
    sig = await received.get()
    log.warning("shutdown_signal_again", signal=sig.name)
    await gateway.drain(0)
