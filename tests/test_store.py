"""The call-record store, the same tests against SQLite and a real PostgreSQL."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from gateway.record import TranscriptLine
from gateway.store.base import StoreError
from gateway.store.model import ToolRow
from gateway.store.schema import LATEST
from gateway.store.sqlite import SqliteStore
from tests.dbs import KINDS, new_store
from tests.store_data import T0, at, record, with_tools, with_turns

pytestmark = pytest.mark.parametrize("kind", KINDS)


async def test_migrates_once_and_reopens(kind: str, tmp_path: Path) -> None:
    async with new_store(kind, tmp_path) as store:
        assert await store.version() == LATEST
        await store.write([record()])
        await store.open()  # a second open (a restart) migrates nothing and loses nothing
        assert await store.version() == LATEST
        assert await store.get_call("CA1") == record()


async def test_round_trip_keeps_everything(kind: str, tmp_path: Path) -> None:
    rec = record()
    assert rec.caller == "+15550100"  # the full number: the record is where it is kept
    assert rec.frames_dropped == 5  # 3 caller frames lost + 2 reply chunks refused
    assert rec.longest_gap_ms == 250.0
    assert rec.response_latency_ms == (812.5, 790.0)
    assert [t.outcome for t in rec.tool_calls] == ["ok", "error", "cancelled"]
    async with new_store(kind, tmp_path) as store:
        await store.write([rec])
        got = await store.get_call("CA1")
    assert got == rec
    assert got is not None
    assert got.turns[1].interrupted and got.turns[1].heard == "We have"
    assert got.started_at == at(T0) and got.ended_at == at(T0 + 12.5)
    assert (got.carrier, got.end_kind) == ("twilio", "caller_hung_up")
    assert await _missing(kind, tmp_path) is None


async def _missing(kind: str, tmp_path: Path) -> object:
    async with new_store(kind, tmp_path / "other") as store:
        return await store.get_call("CAnone")


async def test_newest_snapshot_replaces_the_older(kind: str, tmp_path: Path) -> None:
    first = record(ended=False, turns=2)
    assert first.ended_at is None and first.end_reason is None
    last = record(ended=True, turns=4)
    async with new_store(kind, tmp_path) as store:
        await store.write([first])
        assert await store.get_call("CA1") == first
        await store.write([last])
        assert await store.get_call("CA1") == last
        [listed] = await store.list_calls(10)
    assert listed.turns == 4 and listed.ended and listed.end_reason == "caller hung up"


async def test_a_capped_transcript_keeps_the_lines_it_no_longer_carries(
        kind: str, tmp_path: Path) -> None:
    a, b, c = (TranscriptLine(1.0, "caller", "a"), TranscriptLine(2.0, "agent", "b"),
               TranscriptLine(3.0, "caller", "c"))
    c2, d = TranscriptLine(3.0, "caller", "c, longer"), TranscriptLine(4.0, "agent", "d")
    t1, t2, t3 = (ToolRow(f"t{i}", "f", {"i": i}, {"ok": i}, None, 1.0, "ok") for i in (1, 2, 3))
    async with new_store(kind, tmp_path) as store:
        await store.write([with_tools(with_turns(record(), a, b, c), t1, t2)])
        # The window moved: `a` and `t1` fell out of the capped snapshot, `c` grew.
        await store.write([with_tools(with_turns(record(), b, c2, d), t2, t3)])
        got = await store.get_call("CA1")
    assert got is not None
    assert got.turns == (a, b, c2, d)
    assert got.tool_calls == (t1, t2, t3)


async def test_list_is_newest_first_with_a_limit(kind: str, tmp_path: Path) -> None:
    async with new_store(kind, tmp_path) as store:
        await store.write([record(f"CA{i}", started=T0 + i * 60, turns=i % 4 + 1,
                                  ended=i != 2) for i in range(5)])
        calls = await store.list_calls(3)
    assert [c.call_sid for c in calls] == ["CA4", "CA3", "CA2"]
    assert [c.turns for c in calls] == [1, 4, 3]
    assert [c.ended for c in calls] == [True, True, False]
    assert calls[0].started_at == at(T0 + 240)
    assert calls[0].caller == "+15550100"


async def test_a_failed_write_changes_nothing(kind: str, tmp_path: Path) -> None:
    good = record(turns=2)
    broken = with_turns(record(turns=4), TranscriptLine(0.5, "caller", None))  # type: ignore[arg-type]
    async with new_store(kind, tmp_path) as store:
        await store.write([good])
        with pytest.raises(Exception):  # noqa: B017, PT011 - each driver raises its own
            await store.write([broken])
        assert await store.get_call("CA1") == good  # the call row rolled back with the turns
        await store.write([dataclasses.replace(good, duration_s=20.0)])  # still usable
        got = await store.get_call("CA1")
    assert got is not None and got.duration_s == 20.0


async def test_a_newer_schema_is_refused(kind: str, tmp_path: Path) -> None:
    async with new_store(kind, tmp_path) as store:
        insert = ("INSERT INTO schema_version (version, description, applied_at) "
                  "VALUES (?, 'future', ?)")
        if isinstance(store, SqliteStore):
            await store._run(lambda db: db.execute(insert, (LATEST + 1, "2030-01-01")))
        else:
            pool = store._require()
            await pool.execute(insert.replace("?", "$1", 1).replace("?", "$2"), LATEST + 1,
                               at(T0))
        with pytest.raises(StoreError, match="upgrade voicegw"):
            await store.open()

