"""Event-loop lag: what counts as overloaded, and a real loop's lateness measured."""

from __future__ import annotations

import asyncio
import contextlib
import time

from gateway.overload import LoopLag


def test_one_late_tick_is_not_overload_most_of_a_window_is() -> None:
    lag = LoopLag(0.05, window=10)
    for _ in range(10):
        lag.add(0.001)
    lag.add(2.0)  # a pause (a collection, a burst): the median does not move
    assert not lag.overloaded and lag.lag_s == 0.001
    for _ in range(3):
        lag.add(0.2)
    assert not lag.overloaded  # 4 of the last 10 late
    lag.add(0.2)
    assert lag.overloaded and lag.lag_s > 0.05  # half of them
    for _ in range(6):
        lag.add(0.0)
    assert not lag.overloaded  # it recovers as the loop does


def test_nothing_is_judged_before_the_window_has_filled() -> None:
    lag = LoopLag(0.05, window=10)
    for _ in range(9):
        lag.add(0.3)  # start-up: imports, the first collection
    assert lag.lag_s == 0.3 and not lag.overloaded
    lag.add(0.3)
    assert lag.overloaded


def test_a_limit_of_zero_never_refuses() -> None:
    lag = LoopLag(0.0)
    for _ in range(10):
        lag.add(5.0)
    assert lag.lag_s == 5.0 and not lag.overloaded


def _hold_the_loop(seconds: float) -> None:
    time.sleep(seconds)  # the stimulus: work that keeps the loop from its timers


async def test_a_blocked_loop_is_measured_late() -> None:
    lag = LoopLag(0.05, interval_s=0.01, window=1)  # lag_s is then the latest tick's
    task = asyncio.create_task(lag.run())
    try:
        await lag.ticked.wait()  # running
        _hold_the_loop(0.25)
        await lag.ticked.wait()  # the tick that was due during the hold
        assert lag.lag_s >= 0.2 and lag.overloaded
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
