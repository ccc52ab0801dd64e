"""The live-call monitor: what every call in progress is doing, as a stream of JSON-ready
events for the console's live view and the browser carrier's socket.

One :class:`CallMonitor` per gateway. It is a :class:`gateway.record.CallObserver` (a call
started, changed, ended) and has finer hooks that each call's collaborators call as things
happen (:mod:`gateway.call_watch`): who is speaking, transcript text as it arrives, tool calls
as they start and finish. Whoever wants to watch :meth:`CallMonitor.subscribe`\\s: to every
call's changes, or to one call's full stream of events.

Publishing never waits for a watcher: each :class:`Subscription` holds at most
:data:`SUBSCRIPTION_EVENTS` events, and one that falls that far behind is told
``{"type": "lagged"}`` and ended (it may subscribe again and get a fresh snapshot). The call's
own task carries its audio, so nothing here blocks, awaits or does I/O on its behalf.

No phone numbers ever appear in an event: a call is its id, carrier and agent.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from gateway.record import CallSummary, TranscriptLine

SUBSCRIPTION_EVENTS: Final = 256  # events a watcher may fall behind before it is dropped
TRANSCRIPT_KEPT: Final = 500  # lines of each call a new watcher's snapshot carries
TOOLS_KEPT: Final = 200  # tool calls of each call a snapshot carries
LAGGED: Final[dict[str, Any]] = {"type": "lagged"}

Event = dict[str, Any]


class Speaking(enum.Enum):
    NONE = "none"
    CALLER = "caller"
    AGENT = "agent"
    BOTH = "both"

    @classmethod
    def of(cls, caller: bool, agent: bool) -> Speaking:
        return _SPEAKING[(caller, agent)]


_SPEAKING: Final = {(False, False): Speaking.NONE, (True, False): Speaking.CALLER,
                    (False, True): Speaking.AGENT, (True, True): Speaking.BOTH}


class Subscription:
    """An async iterator of events; :meth:`close` to stop. Bounded: see the module."""

    def __init__(self, limit: int = SUBSCRIPTION_EVENTS,
                 on_close: Callable[[Subscription], None] | None = None) -> None:
        self._items: deque[Event] = deque()
        self._limit = limit
        self._ready = asyncio.Event()
        self._ended = False
        self._on_close = on_close
        self.lagged = False

    @property
    def closed(self) -> bool:
        return self._ended

    @property
    def pending(self) -> int:
        """Events queued and not read yet."""
        return len(self._items)

    def push(self, event: Event) -> None:
        """Queue ``event``; never waits. A watcher this far behind is dropped instead."""
        if self._ended:
            return
        if len(self._items) >= self._limit:
            self._items.clear()  # what it missed is no use without the rest: it starts over
            self._items.append(LAGGED)
            self.lagged = True
            self.finish()
            return
        self._items.append(event)
        self._ready.set()

    def finish(self) -> None:
        """No more events: the watcher reads what is queued, then the iteration ends."""
        if not self._ended:
            self._ended = True
            self._ready.set()
            if self._on_close is not None:
                self._on_close(self)

    def close(self) -> None:
        """Stop now: what is queued is dropped and the iteration ends."""
        self._items.clear()
        self.finish()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        while not self._items:
            if self._ended:
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()


@dataclass(slots=True)
class _Call:
    """One call in progress, as the monitor shows it."""

    call_id: str
    carrier: str
    agent: str | None
    started_at: float  # epoch seconds
    t0: float  # time.time() at the start, for "seconds since the call started"
    speaking: Speaking = Speaking.NONE
    interruptions: int = 0
    last_turn_latency_ms: float | None = None
    lines: dict[int, Event] = field(default_factory=dict)  # the newest TRANSCRIPT_KEPT
    tools: dict[str, Event] = field(default_factory=dict)  # the newest TOOLS_KEPT
    watchers: set[Subscription] = field(default_factory=set)

    def info(self) -> Event:
        return {"call_id": self.call_id, "carrier": self.carrier, "agent": self.agent,
                "started_at": self.started_at,
                "duration_s": round(time.time() - self.started_at, 3),
                "speaking": self.speaking.value, "interruptions": self.interruptions,
                "last_turn_latency_ms": self.last_turn_latency_ms}

    def since_start(self) -> float:
        return round(time.time() - self.t0, 3)


def _bounded_put(table: dict[Any, Event], key: Any, value: Event, limit: int) -> None:
    table[key] = value
    while len(table) > limit:  # dicts keep insertion order: the oldest goes first
        del table[next(iter(table))]


class CallMonitor:
    """Every call in progress, and the watchers of them (see the module)."""

    def __init__(self, *, limit: int = SUBSCRIPTION_EVENTS) -> None:
        self._calls: dict[str, _Call] = {}
        self._everything: set[Subscription] = set()
        self._limit = limit

    # -- watching ------------------------------------------------------------------------

    def active(self) -> list[dict[str, Any]]:
        """The CallInfo of each call in progress, oldest first."""
        return [call.info() for call in self._calls.values()]

    def subscribe(self, call_id: str | None = None) -> Subscription:
        """Every call's changes (``None``), or one call's full stream; its first event is a
        snapshot. Raises KeyError for a call not in progress."""
        if call_id is None:
            sub = Subscription(self._limit, self._everything.discard)
            self._everything.add(sub)
            sub.push({"type": "snapshot", "calls": self.active()})
            return sub
        call = self._calls[call_id]
        sub = Subscription(self._limit, call.watchers.discard)
        call.watchers.add(sub)
        sub.push({"type": "snapshot", "call": call.info(),
                  "transcript": list(call.lines.values()),
                  "tools": [dict(tool) for tool in call.tools.values()]})
        return sub

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._calls

    # -- gateway.record.CallObserver -----------------------------------------------------

    def call_started(self, summary: CallSummary) -> None:
        call_id = summary.call_sid
        if call_id is None:
            return
        old = self._calls.pop(call_id, None)
        if old is not None:  # a second stream naming the same call: the newer one is shown
            self._end(old, "replaced", "another stream took over this call id")
        now = time.time()
        call = _Call(call_id, summary.carrier, summary.agent, summary.started,
                     now - summary.duration_s)
        self._calls[call_id] = call
        self._changed(call)

    def call_updated(self, summary: CallSummary) -> None:
        call = self._find(summary)
        if call is None:
            return
        stats = summary.stats
        latency = stats.turn_latency_ms[-1] if stats.turn_latency_ms else None
        if (stats.interruptions, latency) != (call.interruptions, call.last_turn_latency_ms):
            call.interruptions, call.last_turn_latency_ms = stats.interruptions, latency
            self._changed(call)

    def call_ended(self, summary: CallSummary) -> None:
        call = self._find(summary)
        if call is not None:
            del self._calls[call.call_id]
            self._end(call, summary.end.kind.value, summary.end.detail)

    # -- finer hooks, called by each call's watch ----------------------------------------

    def speaking(self, call_id: str, who: Speaking) -> None:
        call = self._calls.get(call_id)
        if call is not None and call.speaking is not who:
            call.speaking = who
            self._changed(call)

    def transcript(self, call_id: str, index: int, line: TranscriptLine) -> None:
        """Line ``index`` of the call's transcript is new, grew, or was marked interrupted."""
        call = self._calls.get(call_id)
        if call is None:
            return
        event = {"type": "transcript", "call_id": call_id, "line": index, "role": line.role,
                 "text": line.text, "at": round(line.at, 3), "interrupted": line.interrupted,
                 "heard": line.heard}
        _bounded_put(call.lines, index, event, TRANSCRIPT_KEPT)
        self._tell(call, event)

    def tool_started(self, call_id: str, tool_id: str, name: str,
                     args: Mapping[str, Any]) -> None:
        call = self._calls.get(call_id)
        if call is None:
            return
        event = {"type": "tool_call", "call_id": call_id, "id": tool_id, "name": name,
                 "args": dict(args), "at": call.since_start()}
        _bounded_put(call.tools, tool_id, {"id": tool_id, "name": name, "args": dict(args),
                                           "at": event["at"], "outcome": None, "result": None,
                                           "error": None, "latency_ms": None}, TOOLS_KEPT)
        self._tell(call, event)

    def tool_finished(self, call_id: str, tool_id: str, *, outcome: str,
                      result: Mapping[str, Any] | None, error: str | None,
                      latency_ms: float) -> None:
        call = self._calls.get(call_id)
        if call is None:
            return
        event = {"type": "tool_result", "call_id": call_id, "id": tool_id, "outcome": outcome,
                 "result": dict(result) if result is not None else None, "error": error,
                 "latency_ms": round(latency_ms, 1)}
        kept = call.tools.get(tool_id)
        if kept is not None:
            kept.update(outcome=outcome, result=event["result"], error=error,
                        latency_ms=event["latency_ms"])
        self._tell(call, event)

    # -- publishing ----------------------------------------------------------------------

    def _find(self, summary: CallSummary) -> _Call | None:
        return self._calls.get(summary.call_sid) if summary.call_sid is not None else None

    def _changed(self, call: _Call) -> None:
        event = {"type": "call", "call": call.info()}
        self._tell(call, event)
        for sub in list(self._everything):
            sub.push(event)

    def _end(self, call: _Call, kind: str, reason: str) -> None:
        event = {"type": "ended", "call_id": call.call_id, "end_kind": kind,
                 "end_reason": reason}
        for sub in list(call.watchers):
            sub.push(event)
            sub.finish()
        for sub in list(self._everything):
            sub.push(event)

    @staticmethod
    def _tell(call: _Call, event: Event) -> None:
        for sub in list(call.watchers):
            sub.push(event)
