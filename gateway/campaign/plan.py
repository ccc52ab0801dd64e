"""What to call next, and when. Pure: no I/O, and no clock of its own (``now`` is given).

The planner holds the contacts still to be called (pending, or dialing with no answer from
the gateway yet) and answers :meth:`Planner.next` with one decision:

* :class:`Dial`: call this contact now;
* :class:`Skip`: this contact can never be called (its zones share no moment in the window);
* :class:`Wait`: nothing may start before ``until`` (the rate's spacing, the next retry, the
  window opening), or until a call in flight ends (``until`` None);
* :class:`Finished`: nothing left and nothing in flight.

Three limits hold at once. Concurrency: at most ``concurrency`` calls in flight. Rate: calls
start at least ``60 / rate`` seconds apart, so no 60-second span ever holds more than ``rate``
starts (spacing rather than bursts: a carrier sees a steady trickle). Window: a call starts
only inside the window in every zone of its contact. Contacts are called in their CSV order,
retries when their delay has passed.

Contacts are grouped by their zones (a few groups: one per country or zone), each group a heap
by (not before, row); a decision looks at each group's head only, so a campaign of 100,000
contacts costs a few window checks per call, not 100,000.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Final

from gateway.campaign.window import Window

MINUTE: Final = 60.0


@dataclass(frozen=True, slots=True)
class Dial:
    seq: int


@dataclass(frozen=True, slots=True)
class Skip:
    seq: int


@dataclass(frozen=True, slots=True)
class Wait:
    until: float | None  # None: until a call in flight ends


@dataclass(frozen=True, slots=True)
class Finished:
    pass


Decision = Dial | Skip | Wait | Finished


@dataclass(frozen=True, slots=True)
class Limits:
    concurrency: int
    rate_per_min: float
    window: Window

    @property
    def spacing_s(self) -> float:
        return MINUTE / self.rate_per_min


class Planner:
    def __init__(self, limits: Limits, *, last_start: float | None = None) -> None:
        self.limits = limits
        self.last_start = last_start  # the latest call started, this run or before a crash
        self.in_flight = 0
        self._groups: dict[tuple[str, ...], list[tuple[float, int]]] = {}

    def add(self, seq: int, zones: tuple[str, ...], not_before: float | None) -> None:
        """A contact to call (again): not before ``not_before``."""
        heapq.heappush(self._groups.setdefault(zones, []), (not_before or 0.0, seq))

    @property
    def waiting(self) -> int:
        return sum(len(g) for g in self._groups.values())

    def next(self, now: float) -> Decision:
        if self.in_flight >= self.limits.concurrency:
            return Wait(None)
        if not any(self._groups.values()):
            return Finished() if self.in_flight == 0 else Wait(None)
        paced = now if self.last_start is None else max(now,
                                                        self.last_start + self.limits.spacing_s)
        best: tuple[float, int, tuple[str, ...]] | None = None
        for zones, heap in self._groups.items():
            if not heap:
                continue
            not_before, seq = heap[0]
            due = self.limits.window.next_open(max(paced, not_before), zones)
            if due is None:
                heapq.heappop(heap)
                return Skip(seq)
            if best is None or (due, seq) < best[:2]:
                best = (due, seq, zones)
        assert best is not None
        due, seq, zones = best
        if due > now:
            return Wait(due)
        heapq.heappop(self._groups[zones])
        return Dial(seq)

    def started(self, now: float) -> None:
        """A call was started (its attempt written down) at ``now``."""
        self.in_flight += 1
        self.last_start = now if self.last_start is None else max(self.last_start, now)

    def following(self) -> None:
        """A call placed before this run (found on resume) is in flight again."""
        self.in_flight += 1

    def ended(self) -> None:
        self.in_flight -= 1
