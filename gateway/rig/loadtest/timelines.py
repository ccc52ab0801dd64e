"""The phones' and the simulator's traces read back as timelines, one per call and session.

Sans-I/O: the parsed JSON lines of ``voicegw loadtest --trace`` and ``voicegw simulate-live
--trace`` in, per-call and per-session streams of cumulative audio out. What is measured from
them is in :mod:`.added` (end to end) and :mod:`.at_gateway` (at the gateway's own writes).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Stream:
    """Timestamps and the cumulative audio (ms) at each, in order."""

    t: list[float] = field(default_factory=list)
    ms: list[float] = field(default_factory=list)

    def add(self, t: float, ms: float) -> None:
        self.t.append(t)
        self.ms.append(ms)

    @property
    def total_ms(self) -> float:
        return self.ms[-1] if self.ms else 0.0

    def total_at(self, t: float) -> float:
        """Audio up to and including time ``t``."""
        i = bisect.bisect_right(self.t, t)
        return self.ms[i - 1] if i else 0.0


@dataclass(slots=True)
class PhoneCall:
    index: int
    start: float
    connected: float | None = None
    end: float | None = None
    error: str | None = None
    sent: Stream = field(default_factory=Stream)
    spoke: list[float] = field(default_factory=list)
    turns: dict[int, Stream] = field(default_factory=dict)
    clears: list[float] = field(default_factory=list)


@dataclass(slots=True)
class SimTurn:
    out: Stream = field(default_factory=Stream)
    late_ms: list[float] = field(default_factory=list)  # each chunk after its due time
    interrupted: float | None = None
    completed: float | None = None


@dataclass(slots=True)
class SimSession:
    number: int
    opened: float
    handle: bool | None = None
    setup_t: float | None = None
    received: Stream = field(default_factory=Stream)
    turns: dict[int, SimTurn] = field(default_factory=dict)
    interrupted: list[float] = field(default_factory=list)
    closed: float | None = None
    code: int | None = None


def read_phone(records: Iterable[Mapping[str, Any]]) -> list[PhoneCall]:
    """The phones' records (any order of calls, each call's records in order), by call."""
    calls: dict[int, PhoneCall] = {}
    for r in records:
        ev, t = r.get("ev"), float(r["t"])
        index = int(r["call"])
        call = calls.get(index)
        if call is None:
            call = calls[index] = PhoneCall(index, t)
        if ev == "call":
            call.start = t
        elif ev == "sent":
            call.sent.add(t, float(r["ms"]))
        elif ev == "recv":
            call.turns.setdefault(int(r["turn"]), Stream()).add(t, float(r["ms"]))
        elif ev == "clear":
            call.clears.append(t)
        elif ev == "spoke":
            call.spoke.append(t)
        elif ev == "connected":
            call.connected = t
        elif ev == "end":
            call.end = t
            error = r.get("error")
            call.error = None if error is None else str(error)
    return sorted(calls.values(), key=lambda c: (c.start, c.index))


def read_sim(records: Iterable[Mapping[str, Any]]) -> list[SimSession]:
    """The simulator's records, by session."""
    sessions: dict[int, SimSession] = {}
    for r in records:
        ev, t = r.get("ev"), float(r["t"])
        number = int(r["s"])
        s = sessions.get(number)
        if s is None:
            s = sessions[number] = SimSession(number, t)
        if ev == "in":
            s.received.add(t, float(r["ms"]))
        elif ev == "out":
            turn = s.turns.setdefault(int(r["turn"]), SimTurn())
            turn.out.add(t, float(r["ms"]))
            turn.late_ms.append(float(r.get("late", 0.0)))
        elif ev == "interrupted":
            s.interrupted.append(t)
            s.turns.setdefault(int(r["turn"]), SimTurn()).interrupted = t
        elif ev == "turn_complete":
            s.turns.setdefault(int(r["turn"]), SimTurn()).completed = t
        elif ev == "open":
            s.opened = t
            handle = r.get("handle")
            s.handle = None if handle is None else bool(handle)
            setup_t = r.get("setup_t")
            s.setup_t = None if setup_t is None else float(setup_t)
        elif ev == "close":
            s.closed = t
            s.code = int(r["code"])
    return sorted(sessions.values(), key=lambda s: (s.opened, s.number))
