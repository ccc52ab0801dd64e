"""Refuse new calls while the event loop cannot keep up with the ones it has.

``--max-calls`` is sized from a load test, but what one core carries moves with the machine:
the same benchmark ran 30 % slower from one week to the next. Past its capacity the gateway
does not slow down gracefully: every call's audio queues behind every other's (at 200 calls
on one core, seconds of delay and a sixth of the calls lost). The event loop's lag says when
that starts, whatever the cause, so new calls hear the busy message instead while the calls
already up keep their audio.

Lag is how late a timer that should fire every ``interval_s`` fires. One late tick is a
garbage collection or a burst; the loop counts as overloaded when the median of the last
``window`` ticks is over the limit, which takes the better part of a second of lateness.
Nothing is judged before the window has filled: the first ticks come while the server is
still starting (imports, the first collection), and one of those alone was 300 ms late.
"""

from __future__ import annotations

import asyncio
import statistics
from collections import deque
from typing import Final

INTERVAL_S: Final = 0.1
WINDOW: Final = 10  # ticks: about one second


class LoopLag:
    def __init__(self, limit_s: float, *, interval_s: float = INTERVAL_S,
                 window: int = WINDOW) -> None:
        """``limit_s`` 0 turns the refusal off (the lag is still measured)."""
        self.limit_s = limit_s
        self.interval_s = interval_s
        self._ticks: deque[float] = deque(maxlen=window)
        self.lag_s = 0.0  # the median of the window
        self.ticked = asyncio.Event()  # set at each tick, for whoever waits on one

    @property
    def overloaded(self) -> bool:
        ticks = self._ticks
        return 0 < self.limit_s < self.lag_s and len(ticks) == ticks.maxlen

    def add(self, lag_s: float) -> None:
        self._ticks.append(lag_s)
        self.lag_s = statistics.median(self._ticks)

    async def run(self) -> None:
        """Measure until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.interval_s
            await asyncio.sleep(self.interval_s)  # the period being measured
            self.add(max(0.0, loop.time() - due))
            self.ticked.set()
            self.ticked.clear()
