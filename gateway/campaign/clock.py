"""The campaign's clock, injected so the pure core and the runner never read time themselves.

:class:`SystemClock` is the wall clock. :class:`FastClock`, for tests and the benchmark, runs
``speed`` times faster than the wall clock from a given moment and jumps over any wait longer
than ``skip_over_s`` (a window opening hours away) at once, so a day of calling windows takes
seconds while the rate's spacing and the calls themselves still take real time. Only the
runner's waits for its schedule go through the clock; network timeouts and polling are real.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Unix time."""

    def real_s(self, until: float) -> float:
        """Real seconds to wait from now until the clock reads ``until`` (0 if it has)."""


class SystemClock:
    def now(self) -> float:
        return time.time()

    def real_s(self, until: float) -> float:
        return max(until - time.time(), 0.0)


class FastClock:
    """``settle_s``: real seconds the clock waits before a jump (0: at once), so that calls
    just started reach the far side before the hours pass, as they would on the wall clock."""

    def __init__(self, start: float, *, speed: float = 1.0, skip_over_s: float = 60.0,
                 settle_s: float = 0.0) -> None:
        self._start = start
        self._origin = time.monotonic()
        self.speed = speed
        self.skip_over_s = skip_over_s
        self.settle_s = settle_s
        self.skipped_s = 0.0
        self._jump = 0.0  # clock seconds to add at ``_jump_at`` (time.monotonic())
        self._jump_at = 0.0

    def now(self) -> float:
        t = time.monotonic()
        if self._jump and t >= self._jump_at:
            self.skipped_s += self._jump
            self._jump = 0.0
        return self._start + (t - self._origin) * self.speed + self.skipped_s

    def real_s(self, until: float) -> float:
        gap = until - self.now()
        if gap > self.skip_over_s:
            if not self._jump:
                self._jump_at = time.monotonic() + self.settle_s
            self._jump = gap if not self._jump else min(self._jump, gap)
            self.now()  # with no settling, the jump is made here
            return max(self._jump_at - time.monotonic(), 0.0) if self._jump else 0.0
        return max(gap / self.speed, 0.0)
