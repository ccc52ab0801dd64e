"""The phones' side of an added-latency measurement: ``voicegw loadtest --trace PATH``.

JSON lines, one record per event, ``t`` a ``time.monotonic()`` value (comparable with the
simulator's ``--trace`` on the same machine) and ``call`` the load test's call index:

- ``call``: the call is being placed (before the WebSocket connect); ``connected``: upgraded;
- ``sent``: a 20 ms media frame written to the socket, ``ms`` the caller audio sent so far;
- ``spoke``: the last frame of a caller utterance was sent;
- ``recv``: a reply ``media`` arrived on the socket (not when it is played), ``turn`` the
  reply it belongs to (1, 2...) and ``ms`` that reply's audio received so far, this one
  included;
- ``clear``: a ``clear`` arrived; ``end``: the call is over, with its ``error`` kind or null.

The phone cannot see the model's turns, so a reply turn here is what any gateway makes
visible: the first reply audio after a ``clear`` or after the caller finished an utterance
starts a new one. The analyser (:mod:`.added`) checks these turns against the simulator's.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gateway.rig.simulator.trace import FLUSH_EVERY_S, TraceWriter


class PhoneTrace(TraceWriter):
    """One file for all the calls of a run; :meth:`call` gives each call its observer."""

    def call(self, index: int, t: float) -> CallTrace:
        self.add(f'{{"ev":"call","t":{t:.6f},"call":{index}}}')
        return CallTrace(self, index)

    def end(self, index: int, t: float, error: str | None) -> None:
        self.add(f'{{"ev":"end","t":{t:.6f},"call":{index},"error":{json.dumps(error)}}}')


class CallTrace:
    """A :class:`gateway.rig.phone.CallObserver` writing one call's records."""

    __slots__ = ("_boundary", "_ms", "_turn", "index", "trace")

    def __init__(self, trace: PhoneTrace, index: int) -> None:
        self.trace = trace
        self.index = index
        self._turn = 0
        self._ms = 0.0  # reply audio of the current turn received so far
        self._boundary = True  # the next reply audio starts a new turn

    def connected(self, t: float) -> None:
        self.trace.add(f'{{"ev":"connected","t":{t:.6f},"call":{self.index}}}')

    def sent(self, t: float, audio_ms: float) -> None:
        self.trace.add(f'{{"ev":"sent","t":{t:.6f},"call":{self.index},"ms":{audio_ms:.1f}}}')

    def spoke(self, t: float) -> None:
        self._boundary = True
        self.trace.add(f'{{"ev":"spoke","t":{t:.6f},"call":{self.index}}}')

    def received(self, t: float, audio_ms: float) -> None:
        if self._boundary:
            self._boundary = False
            self._turn += 1
            self._ms = 0.0
        self._ms += audio_ms
        self.trace.add(f'{{"ev":"recv","t":{t:.6f},"call":{self.index},"turn":{self._turn},'
                       f'"ms":{self._ms:.3f}}}')

    def cleared(self, t: float) -> None:
        self._boundary = True
        self.trace.add(f'{{"ev":"clear","t":{t:.6f},"call":{self.index}}}')


def read_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """The records of a trace; a line cut short (a writer killed mid-line) is skipped."""
    with Path(path).open(encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):
                yield record


def trace_beside(phone_trace: Path, kind: str = "sim") -> Path:
    """``--local``'s simulator (or gateway) trace next to the phones' one: ``p.jsonl`` ->
    ``p.sim.jsonl`` (``p.gateway.jsonl``)."""
    return phone_trace.with_name(f"{phone_trace.stem}.{kind}{phone_trace.suffix or '.jsonl'}")


async def settled(path: Path, *, quiet_s: float = 3 * FLUSH_EVERY_S,
                  limit_s: float = 5.0) -> None:
    """Wait until another process's trace has stopped growing for ``quiet_s`` (its writer
    flushes every ``FLUSH_EVERY_S``), or ``limit_s``: the calls are over, so what is still
    to come is the last buffer. Polling: a file written elsewhere gives no event."""
    deadline = time.monotonic() + limit_s
    last, quiet_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        size = _size(path)
        now = time.monotonic()
        if size != last:
            last, quiet_since = size, now
        elif now - quiet_since >= quiet_s:
            return
        await asyncio.sleep(FLUSH_EVERY_S / 2)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1
