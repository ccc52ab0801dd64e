"""CallRecorder: hooks that only queue, one writer, the drop policy, retries, the flush."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from gateway.record import TranscriptLine
from gateway.store.base import CallStore, StoreError
from gateway.store.model import CallListing, CallPage, CallQuery, CallRecord
from gateway.store.recorder import CallRecorder
from gateway.store.sqlite import SqliteStore
from tests.store_data import summary


class MemoryStore(CallStore):
    """Keeps records in a dict; ``gate`` holds writes; fails opens/writes when told to."""

    dialect = "sqlite"
    where = "memory"

    def __init__(self, *, open_failures: int = 0, write_failures: int = 0) -> None:
        self.calls: dict[str, CallRecord] = {}
        self.writes: list[list[str]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.open_failures = open_failures
        self.write_failures = write_failures
        self.closed = False

    async def open(self) -> None:
        if self.open_failures:
            self.open_failures -= 1
            raise StoreError("database down")

    async def write(self, records: Sequence[CallRecord]) -> None:
        await self.gate.wait()
        if self.write_failures:
            self.write_failures -= 1
            raise OSError("connection reset")
        self.writes.append([r.call_sid for r in records])
        for r in records:
            self.calls[r.call_sid] = r

    async def list_calls(self, limit: int) -> list[CallListing]:
        return []

    async def search_calls(self, query: CallQuery) -> CallPage:
        return CallPage((), 0)

    async def get_call(self, call_sid: str) -> CallRecord | None:
        return self.calls.get(call_sid)

    async def fetch(self, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        return []

    async def execute(self, statement: str, params: Sequence[Any] = ()) -> int:
        return 0

    async def version(self) -> int:
        return 1

    async def aclose(self) -> None:
        self.closed = True


async def test_hooks_queue_and_the_writer_stores_the_newest(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "calls.db")
    recorder = CallRecorder(store)
    await recorder.start()
    s = summary(turns=1)
    recorder.call_started(s)
    s.transcript.append(TranscriptLine(2.0, "agent", "Hello"))
    recorder.call_updated(s)  # before the writer ran: replaces the queued start
    recorder.call_ended(s)
    await recorder.wait_until(lambda: recorder.last_written is not None
                              and recorder.last_written.ended_at is not None)
    got = await store.get_call("CA1")
    assert got is not None and [t.text for t in got.turns] == ["Hi, a table for two.", "Hello"]
    assert got.end_reason == "caller hung up"
    assert recorder.stats.superseded == 2
    assert recorder.stats.written == 1
    await recorder.aclose()
    assert recorder.stats.lost_at_close == 0


async def test_snapshots_are_frozen_when_the_hook_runs() -> None:
    store = MemoryStore()
    store.gate.clear()
    recorder = CallRecorder(store)
    await recorder.start()
    s = summary()
    recorder.call_updated(s)
    s.stats.frames_in += 1000  # the call goes on after the hook returned
    store.gate.set()
    await recorder.wait_until(lambda: recorder.stats.written == 1)
    assert store.calls["CA1"].frames_in == 600
    await recorder.aclose()


async def test_a_full_queue_drops_the_oldest_update_never_a_start_or_end() -> None:
    store = MemoryStore()
    store.gate.clear()  # the database is stuck: nothing leaves the queue
    recorder = CallRecorder(store, max_pending=2, batch=1)
    await recorder.start()
    recorder.call_started(summary("CAx"))  # taken by the writer, now stuck in write()
    await asyncio.sleep(0)
    recorder.call_updated(summary("CA1"))
    recorder.call_updated(summary("CA2"))
    recorder.call_updated(summary("CA3"))  # full: CA1's update goes
    recorder.call_started(summary("CA4"))  # full, but a start is kept anyway
    recorder.call_ended(summary("CA5"))  # and so is an end
    recorder.call_ended(summary("CA2"))  # CA2's queued update becomes an end: kept
    recorder.call_updated(summary("CA6"))  # full: the oldest update left is CA3's
    recorder.call_ended(summary("CA6"))
    recorder.call_updated(summary("CA7"))  # only starts and ends queued: this one goes
    assert recorder.stats.dropped == 3
    store.gate.set()
    await recorder.aclose()
    assert sorted(store.calls) == ["CA2", "CA4", "CA5", "CA6", "CAx"]
    assert store.calls["CA2"].ended_at is not None


async def test_an_unreachable_database_is_retried_and_nothing_is_lost() -> None:
    store = MemoryStore(open_failures=2, write_failures=1)
    recorder = CallRecorder(store, retry_s=(0.001, 0.002))
    await recorder.start()  # fails: logged, the gateway goes on
    recorder.call_ended(summary("CA1"))
    await recorder.wait_until(lambda: "CA1" in store.calls)
    assert recorder.stats.write_errors == 1
    await recorder.aclose()
    assert store.closed


async def test_aclose_gives_up_on_a_stuck_database_after_its_timeout() -> None:
    store = MemoryStore()
    store.gate.clear()
    recorder = CallRecorder(store)
    await recorder.start()
    recorder.call_ended(summary("CA1"))
    recorder.call_ended(summary("CA2"))
    await recorder.aclose(timeout_s=0.05)
    assert recorder.stats.lost_at_close == 2
    recorder.call_ended(summary("CA3"))  # after close: ignored, not an error
    assert store.closed


@pytest.mark.parametrize("sid", [None, ""])
async def test_a_stream_that_never_started_has_no_record(sid: str | None) -> None:
    store = MemoryStore()
    recorder = CallRecorder(store)
    await recorder.start()
    s = summary()
    s.call_sid = sid
    recorder.call_ended(s)
    assert recorder.stats.queued == 0
    await recorder.aclose()
