"""A gateway's shutdown, explicit as in uvicorn: stop taking calls, let the active ones finish
by themselves for a grace period, then end each cleanly, and cancel only what still runs."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Final

import structlog

from gateway.ending import EndKind

if TYPE_CHECKING:
    from gateway.server import Gateway

# After the grace period, how long calls asked to end get to close before they are cancelled.
DRAIN_CLOSE_S: Final = 2.0
SHUTDOWN_REASON: Final = "gateway shutting down"

log = structlog.get_logger("gateway.server")


class Drain:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.accepting = True
        self.started = asyncio.Event()
        self.ending_calls = False  # past the grace period: new bridges are ended at once
        self._task: asyncio.Task[None] | None = None
        self._deadline = 0.0

    async def drain(self, grace_s: float) -> None:
        """Stop taking calls, let active ones finish by themselves for ``grace_s``, then end
        each cleanly (``request_end``: peers closed normally, record kept) and cancel only
        those still running :data:`DRAIN_CLOSE_S` later.

        Calling it again while a drain runs joins that drain; a shorter ``grace_s`` brings its
        deadline forward (a second SIGTERM means "stop waiting for the calls").
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(grace_s, 0.0)
        if self._task is None:
            self.accepting = False
            self._deadline = deadline
            self.started.set()
            log.info("drain_started", active_calls=self.gateway.active_calls(), grace_s=grace_s)
            self._task = asyncio.create_task(self._drain(), name="gateway-drain")
        elif deadline < self._deadline and not self._task.done():
            self._deadline = deadline
            self.gateway.call_done.set()  # wake the wait so that it sees the new deadline
            log.info("drain_hurried", grace_s=grace_s)
        # Shielded: a caller that gives up waiting must not abandon the calls half-drained.
        await asyncio.shield(self._task)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        gateway = self.gateway
        ended = cancelled = 0
        if not await self._wait_for_calls():
            self.ending_calls = True
            bridges = list(gateway.calls.values())
            for bridge in bridges:
                bridge.request_end(EndKind.SHUTDOWN, SHUTDOWN_REASON)
            ended = len(bridges)
            log.info("drain_ending_calls", count=ended, close_s=DRAIN_CLOSE_S)
            self._deadline = loop.time() + DRAIN_CLOSE_S
            if not await self._wait_for_calls():
                stragglers: list[asyncio.Task[object]] = [*gateway.calls, *gateway.opening]
                for task in stragglers:
                    task.cancel()
                cancelled = len(stragglers)
                await asyncio.wait(stragglers, timeout=DRAIN_CLOSE_S)
                log.warning("calls_cancelled_at_shutdown", count=cancelled)
        log.info("drain_finished", ended_by_gateway=ended, cancelled=cancelled)

    async def _wait_for_calls(self) -> bool:
        """True once no call is running or upgrading; False if the deadline passes first."""
        gateway = self.gateway
        while gateway.calls or gateway.opening:
            if asyncio.get_running_loop().time() >= self._deadline:
                return False
            gateway.call_done.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(self._deadline):
                    await gateway.call_done.wait()
        return True
