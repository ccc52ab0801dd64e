"""Keeps every call's record in the database, without ever making a call wait for it.

The observer hooks run on the call's own task, which also carries its audio, so each one only
freezes a copy of the call (:func:`record_of`) and leaves it in a queue; one background writer
task stores what is queued. Every snapshot holds the whole call so far, so the queue keeps at
most one per call: a newer snapshot replaces a queued older one of the same call ("superseded",
nothing is lost). The queue is bounded: past ``max_pending`` calls, the oldest queued *update*
is dropped (counted and logged) to make room, since a later update or the call's end brings
its content back. Snapshots carrying a call's start or end are never dropped.

Because an update is written after every model turn, a call whose task dies mid-turn (or whose
process is killed) still leaves its record up to its last completed turn, with no end time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import structlog

from gateway.record import CallSummary
from gateway.store.base import CallStore, StoreError
from gateway.store.model import CallRecord, record_of
from gateway.tasks import cancel_and_wait

MAX_PENDING: Final = 256  # calls with a snapshot waiting; beyond it, updates are dropped
BATCH: Final = 32  # snapshots per trip to the database thread / server
MAX_ATTEMPTS: Final = 5  # a snapshot that failed this often is given up (and logged)
RETRY_S: Final = (0.5, 30.0)  # backoff after a failed open or write: first, longest
CLOSE_TIMEOUT_S: Final = 5.0
_LOG_EVERY: Final = 100


@dataclass(slots=True)
class _Pending:
    record: CallRecord
    keep: bool  # carries a start or an end: never dropped
    attempts: int = 0


@dataclass(slots=True)
class RecorderStats:
    queued: int = 0
    written: int = 0
    superseded: int = 0  # replaced in the queue by a newer snapshot of the same call
    dropped: int = 0  # updates dropped because the queue was full
    write_errors: int = 0
    given_up: int = 0  # snapshots dropped after MAX_ATTEMPTS failed writes
    lost_at_close: int = 0  # still queued when aclose() timed out
    max_write_ms: float = 0.0


class CallRecorder:
    """A :class:`gateway.record.CallObserver` that writes call records to ``store``.

    :meth:`start` and :meth:`aclose` go with the server (``Gateway`` calls them).
    """

    def __init__(self, store: CallStore, *, max_pending: int = MAX_PENDING, batch: int = BATCH,
                 clock: Callable[[], float] = time.time, log: Any = None,
                 retry_s: tuple[float, float] = RETRY_S) -> None:
        self.store = store
        self.retry_s = retry_s
        self.max_pending = max_pending
        self.batch = batch
        self._clock = clock
        self.log = log if log is not None else structlog.get_logger("gateway.records")
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._open = False
        self._writing = 0  # snapshots in the write under way
        self._closed = False
        self.stats = RecorderStats()
        self.last_written: CallRecord | None = None

    # -- CallObserver: on the call's task; no awaiting, no I/O ----------------------------

    def call_started(self, summary: CallSummary) -> None:
        self._put(summary, keep=True, ended=False)

    def call_updated(self, summary: CallSummary) -> None:
        self._put(summary, keep=False, ended=False)

    def call_ended(self, summary: CallSummary) -> None:
        self._put(summary, keep=True, ended=True)

    def _put(self, summary: CallSummary, *, keep: bool, ended: bool) -> None:
        if self._closed:
            return
        record = record_of(summary, ended=ended, now=self._clock())
        if record is None:  # the stream never started: there is no call to record
            return
        self.stats.queued += 1
        queued = self._pending.get(record.call_sid)
        if queued is not None:
            queued.record = record
            queued.keep = queued.keep or keep
            self.stats.superseded += 1
        else:
            if len(self._pending) >= self.max_pending and not keep and not self._make_room():
                self._dropped(record.call_sid)
                return
            self._pending[record.call_sid] = _Pending(record, keep)
        self._wake.set()

    def _make_room(self) -> bool:
        for sid, pending in self._pending.items():
            if not pending.keep:
                del self._pending[sid]
                self._dropped(sid)
                return True
        return False

    def _dropped(self, call_sid: str) -> None:
        self.stats.dropped += 1
        if self.stats.dropped % _LOG_EVERY == 1:
            self.log.warning("call_record_update_dropped", call_sid=call_sid,
                             dropped=self.stats.dropped, pending=len(self._pending))

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store and start the writer. A store that cannot be opened now is logged
        and retried by the writer: calls go on, their records wait in the queue."""
        if self._writer is not None:
            return
        await self._try_open()
        self._writer = asyncio.create_task(self._write_loop(), name="call-records-writer")

    async def aclose(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Write what is queued (for at most ``timeout_s``), then stop and close the store."""
        self._closed = True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self.wait_until(lambda: not self._pending and not self._writing)
        if self._pending or self._writing:
            self.stats.lost_at_close = len(self._pending) + self._writing
            self.log.error("call_records_not_written", count=self.stats.lost_at_close,
                           where=self.store.where)
        if self._writer is not None:
            await cancel_and_wait(self._writer)
        await self.store.aclose()
        self.log.info("call_records_closed", written=self.stats.written,
                      dropped=self.stats.dropped, write_errors=self.stats.write_errors)

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds; checked after each trip of the writer."""
        while not predicate():
            self._progress.clear()
            await self._progress.wait()

    # -- the writer -----------------------------------------------------------------------

    async def _try_open(self) -> bool:
        try:
            await self.store.open()
            version = await self.store.version()
        except Exception as exc:  # whatever the driver raises, the writer must live on
            error = str(exc) if isinstance(exc, StoreError) else repr(exc)
            self.log.error("call_records_unavailable", where=self.store.where, error=error)
            return False
        self._open = True
        self.log.info("call_records", where=self.store.where, dialect=self.store.dialect,
                      schema_version=version)
        return True

    async def _write_loop(self) -> None:
        backoff = self.retry_s[0]
        while True:
            self._progress.set()
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
                continue
            ok = self._open or await self._try_open()
            if ok:
                ok = await self._write_batch()
            if ok:
                backoff = self.retry_s[0]
            else:
                self._progress.set()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.retry_s[1])

    async def _write_batch(self) -> bool:
        batch = [self._pending.popitem(last=False)[1]
                 for _ in range(min(self.batch, len(self._pending)))]
        self._writing = len(batch)
        started = time.perf_counter()
        try:
            await self.store.write([p.record for p in batch])
        except Exception as exc:
            self.stats.write_errors += 1
            self.log.error("call_records_write_failed", where=self.store.where, error=repr(exc),
                           calls=len(batch))
            self._requeue(batch)
            return False
        finally:
            self._writing = 0
        self.stats.max_write_ms = max(self.stats.max_write_ms,
                                      (time.perf_counter() - started) * 1000)
        self.stats.written += len(batch)
        self.last_written = batch[-1].record
        return True

    def _requeue(self, batch: list[_Pending]) -> None:
        """Put a failed batch back at the front, unless newer snapshots came meanwhile."""
        for pending in reversed(batch):
            sid = pending.record.call_sid
            pending.attempts += 1
            newer = self._pending.get(sid)
            if newer is not None:
                newer.keep = newer.keep or pending.keep
            elif pending.attempts >= MAX_ATTEMPTS:
                self.stats.given_up += 1
                self.log.error("call_record_given_up", call_sid=sid, attempts=pending.attempts)
            else:
                self._pending[sid] = pending
                self._pending.move_to_end(sid, last=False)
