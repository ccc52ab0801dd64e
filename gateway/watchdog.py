"""The per-call stall watchdog: :class:`gateway.stall.StallWatch` on the call's clock, and the
three steps it orders carried out with the call's own collaborators.

The bridge builds one per call (unless the agent's or the gateway's timeout is 0) and runs
:meth:`StallWatchdog.run` in the call's task group; the routing of model events and the
bridge tell it what happens. The steps reuse what the call already has: the nudge is a text
input through the Live keeper (held for the next session if none is open, like a keypad
notice); the resume is the keeper's planned swap (:meth:`gateway.live_keeper.LiveKeeper.
restart`: the newest handle, then the held caller audio replayed, as after a ``goAway``); the
apology is the bridge's, which ends the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, Protocol

from gateway import live
from gateway.ending import EndKind
from gateway.live_keeper import LinkState, LiveKeeper
from gateway.stall import StallRecord, StallStats, StallTimes, StallTrigger, StallWatch, Step

# What the model is told when it has gone quiet: a plain fact it can act on, not a script.
NUDGE_TEXT: Final = ("(The caller is waiting for your reply and hears silence. Answer them "
                     "now.)")
STALLED_DETAIL: Final = "model stalled: no reply after a nudge and a resumed session"

Apologise = Callable[[EndKind, str], Awaitable[None]]


class Audible(Protocol):
    """The playout, as far as the watchdog cares (``gateway.playout.CallerPlayout``)."""

    @property
    def audible(self) -> bool:
        """The caller may still be hearing the agent."""


def times_for(gateway: StallTimes, agent_timeout_s: float | None) -> StallTimes:
    """The gateway's settings with the agent's own timeout, if it has one."""
    if agent_timeout_s is None:
        return gateway
    return StallTimes(agent_timeout_s, gateway.step_s, gateway.min_speech_s,
                      gateway.speech_gap_s, gateway.echo_tail_s)


class StallWatchdog:
    def __init__(self, times: StallTimes, *, keeper: LiveKeeper, playout: Audible,
                 tools_running: Callable[[], bool], apologise: Apologise, stats: StallStats,
                 log: Any, updated: Callable[[], None], t0: float,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.watch = StallWatch(times, stats, t0)
        self.keeper = keeper
        self.playout = playout
        self._tools_running = tools_running
        self._apologise = apologise
        self.log = log
        self._updated = updated
        self._clock = clock
        self._wake = asyncio.Event()
        self._sleeping_until: float | None = None  # the deadline the runner waits for

    # -- told by the call (cheap: runs on the caller's frames) -------------------------

    def caller_spoke(self, at: float) -> None:
        self.watch.caller_speech(at, self.playout.audible)
        self._deadline_moved()

    def heard_caller(self, at: float) -> None:
        self.watch.heard_caller(at, self.playout.audible)
        self._deadline_moved()

    def asked(self, trigger: StallTrigger, at: float | None = None) -> None:
        self.watch.asked(self._clock() if at is None else at, trigger)
        self._deadline_moved()

    def tool_responded(self, blocking: bool) -> None:
        # A NON_BLOCKING function's answer may be meant to be taken in silence.
        if blocking:
            self.asked(StallTrigger.TOOL_RESPONSE)

    def model_answered(self, at: float) -> None:
        if self.watch.deadline is None:
            return  # the common case: reply audio with nothing owed
        record = self.watch.model_answered(at)
        if record is not None:
            self._log_end(record)

    def session_opened(self) -> None:
        self.watch.session_opened(self._clock())

    def _deadline_moved(self) -> None:
        # Only an earlier deadline needs the runner awake; a later one it finds on waking.
        deadline = self.watch.deadline
        if deadline is not None and (self._sleeping_until is None
                                     or deadline < self._sleeping_until):
            self._wake.set()

    # -- the runner ----------------------------------------------------------------------

    async def run(self) -> None:
        try:
            while True:
                deadline = self.watch.deadline
                self._sleeping_until = deadline
                self._wake.clear()
                if deadline is None:
                    await self._wake.wait()
                    continue
                delay = deadline - self._clock()
                if delay > 0:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(delay):
                            await self._wake.wait()
                    continue
                await self._step(self._clock())
        finally:
            record = self.watch.ended(self._clock())
            if record is not None:
                self._log_end(record)

    async def _step(self, now: float) -> None:
        if self.keeper.state is not LinkState.OPEN or self._tools_running():
            self.watch.postpone(now)  # the call is waiting for the gateway, not the model
            return
        step = self.watch.due(now)
        if step is None:
            return
        self.log.warning("model_stalled", step=step.value, state=self.watch.state.value)
        if step is Step.NUDGE:
            await self.keeper.send_text(live.text_message(NUDGE_TEXT))
        elif step is Step.RESUME:
            self.keeper.restart()
        else:
            self._updated()
            await self._apologise(EndKind.MODEL_STALLED, STALLED_DETAIL)

    def _log_end(self, record: StallRecord) -> None:
        self.log.info("stall_ended", outcome=record.outcome.value,
                      trigger=record.trigger.value, quiet_ms=record.quiet_ms)
        self._updated()
