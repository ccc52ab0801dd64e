"""The campaign's clock, injected so the pure core and the runner never read time themselves.

:class:`SystemClock` is the wall clock. :class:`ScaledClock` runs faster than the wall clock
from a given moment (a day of calling windows in a minute or two): tests and the benchmark use
it, and a resumed run given the same three figures carries on the very same timeline. Only
the runner's waits for its schedule are scaled; network timeouts and polling stay real.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Unix time."""

    def real_s(self, until: float) -> float:
        """Real seconds from now until the clock reads ``until`` (0 if it has)."""


class SystemClock:
    def now(self) -> float:
        return time.time()

    def real_s(self, until: float) -> float:
        return max(until - time.time(), 0.0)


@dataclass(frozen=True, slots=True)
class ScaledClock:
    origin: float  # the wall-clock Unix time at which ...
    start: float  # ... this clock read ``start``
    speed: float  # clock seconds per real second

    def now(self) -> float:
        return self.start + (time.time() - self.origin) * self.speed

    def real_s(self, until: float) -> float:
        return max((until - self.now()) / self.speed, 0.0)

    def __str__(self) -> str:
        return f"{self.origin!r}:{self.start!r}:{self.speed!r}"

    @classmethod
    def parse(cls, text: str) -> ScaledClock:
        """``ORIGIN:START:SPEED`` (as :meth:`__str__` writes it)."""
        origin, start, speed = (float(part) for part in text.split(":"))
        if speed <= 0:
            raise ValueError("speed must be positive")
        return cls(origin, start, speed)
