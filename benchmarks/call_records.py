"""CPU cost of call records per call-minute, and whether writing them ever blocks the loop.

Replays CALLS one-minute calls through a CallRecorder: call_started, one call_updated per model
turn (TURNS, each adding a caller line and an agent reply; every third turn a tool call),
call_ended. Each snapshot is let through to the database before the next one is made, so every
snapshot is written (the worst case: under load the queue would merge a call's updates). A
ticker task sleeping 1 ms measures event-loop lag meanwhile.

CPU is the whole process's (the SQLite thread included), with a run against a store that does
nothing subtracted: what remains is the database's share; the hook's own time is measured on
the call's side. Run: .venv/bin/python benchmarks/call_records.py [--postgres DSN]
(PostgreSQL also from VOICEGW_TEST_POSTGRES_DSN).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg
import structlog

from gateway.ending import EndKind, EndReason
from gateway.record import NOT_ENDED, CallStats, CallSummary, TranscriptLine
from gateway.store.base import CallStore
from gateway.store.model import CallListing, CallPage, CallQuery, CallRecord
from gateway.store.postgres import PostgresStore
from gateway.store.recorder import CallRecorder
from gateway.store.sqlite import SqliteStore
from gateway.tools import ToolRecord

CALLS = 200
TURNS = 10
CALL_S = 60.0


class NullStore(CallStore):
    dialect = "sqlite"
    where = "nowhere"

    async def open(self) -> None: ...
    async def write(self, records: Sequence[CallRecord]) -> None: ...
    async def list_calls(self, limit: int) -> list[CallListing]:
        return []

    async def search_calls(self, query: CallQuery) -> CallPage:
        return CallPage((), 0)

    async def get_call(self, call_sid: str) -> CallRecord | None:
        return None

    async def fetch(self, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        return []

    async def execute(self, statement: str, params: Sequence[Any] = ()) -> int:
        return 0

    async def version(self) -> int:
        return 1

    async def aclose(self) -> None: ...


async def _ticker(lags: list[float], stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        t = loop.time()
        await asyncio.sleep(0.001)
        lags.append(loop.time() - t - 0.001)


async def run(store: CallStore) -> dict[str, float]:
    recorder = CallRecorder(store, log=structlog.get_logger("bench"))
    await recorder.start()
    lags: list[float] = []
    stop = asyncio.Event()
    ticker = asyncio.create_task(_ticker(lags, stop))
    hook_s: list[float] = []
    cpu0 = time.process_time()

    async def hook(fn: object, summary: CallSummary) -> None:
        t = time.perf_counter()
        fn(summary)  # type: ignore[operator]
        hook_s.append(time.perf_counter() - t)
        s = recorder.stats
        await recorder.wait_until(lambda: s.written + s.superseded + s.dropped >= s.queued
                                  and not recorder._writing)

    for n in range(CALLS):
        stats = CallStats(frames_in=3000, media_out=1500)
        summary = CallSummary(carrier="twilio", call_sid=f"CA{n:032d}",
                              stream_sid=f"MZ{n:032d}", agent="assistant", end=NOT_ENDED,
                              started=time.time(), duration_s=0.0, stats=stats, transcript=[],
                              custom_parameters={"From": "+15550100", "To": "+15550199"})
        await hook(recorder.call_started, summary)
        for turn in range(TURNS):
            at = turn * CALL_S / TURNS
            summary.transcript.append(TranscriptLine(at, "caller", "I would like to book a "
                                                     "table for four people tomorrow at eight."))
            summary.transcript.append(TranscriptLine(at + 2, "agent", "Certainly. I have a "
                                                     "table for four at eight; shall I book it?"))
            if turn % 3 == 2:
                summary.tool_calls.append(ToolRecord(f"t{turn}", "book", {"people": 4},
                                                     {"ok": True, "ref": "B123"}, None, 0.05))
            stats.turn_latency_ms.append(800.0 + turn)
            stats.tokens_total += 300
            summary.duration_s = at + 5
            await hook(recorder.call_updated, summary)
        summary.duration_s = CALL_S
        summary.end = EndReason(EndKind.CALLER_HUNG_UP, "caller hung up")
        await hook(recorder.call_ended, summary)
    cpu = time.process_time() - cpu0
    stop.set()
    await ticker
    await recorder.aclose()
    return {"cpu_ms_per_call_minute": cpu * 1000 / CALLS,
            "hook_us_mean": statistics.fmean(hook_s) * 1e6, "hook_us_max": max(hook_s) * 1e6,
            "writes_per_call": recorder.stats.written / CALLS,
            "write_ms_max": recorder.stats.max_write_ms,
            "loop_lag_ms_p99": sorted(lags)[int(len(lags) * 0.99)] * 1000,
            "loop_lag_ms_max": max(lags) * 1000}


def _print(name: str, figures: dict[str, float], base: dict[str, float] | None) -> None:
    extra = ""
    if base is not None:
        db = figures["cpu_ms_per_call_minute"] - base["cpu_ms_per_call_minute"]
        extra = f" (database share {db:.2f})"
    print(f"{name:<10} CPU {figures['cpu_ms_per_call_minute']:.2f} ms per call-minute{extra}; "
          f"hook {figures['hook_us_mean']:.0f} us mean, {figures['hook_us_max']:.0f} us max; "
          f"{figures['writes_per_call']:.0f} writes/call, slowest write "
          f"{figures['write_ms_max']:.1f} ms; loop lag p99 {figures['loop_lag_ms_p99']:.2f} ms, "
          f"max {figures['loop_lag_ms_max']:.2f} ms")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--postgres", default=os.environ.get("VOICEGW_TEST_POSTGRES_DSN"))
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    print(f"{CALLS} one-minute calls, {TURNS} turn updates each, every snapshot written")
    base = await run(NullStore())
    _print("no store", base, None)
    with tempfile.TemporaryDirectory() as tmp:
        _print("SQLite", await run(SqliteStore(Path(tmp) / "calls.db")), base)
    if args.postgres:
        admin = await asyncpg.connect(args.postgres)
        await admin.execute("CREATE SCHEMA IF NOT EXISTS voicegw_bench")
        try:
            _print("PostgreSQL", await run(PostgresStore(args.postgres,
                                                         search_path="voicegw_bench")), base)
        finally:
            await admin.execute("DROP SCHEMA voicegw_bench CASCADE")
            await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
