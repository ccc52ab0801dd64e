"""Searching the call records (the console's list), on SQLite and PostgreSQL alike: each
filter, transcript text, paging and the total."""

from __future__ import annotations

import dataclasses
from datetime import timedelta, timezone
from pathlib import Path

import pytest

from gateway.record import TranscriptLine
from gateway.store.base import CallStore
from gateway.store.model import CallQuery
from tests.dbs import KINDS, new_store
from tests.store_data import T0, at, record, with_turns

pytestmark = pytest.mark.parametrize("kind", KINDS)


async def fill(store: CallStore) -> None:
    """Seven calls a minute apart (CA0 oldest), of two agents and carriers."""
    records = []
    for i in range(7):
        rec = record(f"CA{i}", started=T0 + 60 * i)
        rec = dataclasses.replace(
            rec, agent="booker" if i % 2 else "assistant",
            carrier="browser" if i >= 5 else "twilio",
            end_kind="caller_hung_up" if i != 3 else "agent_ended")
        if i == 4:
            rec = with_turns(rec, TranscriptLine(0.5, "caller", "Is 100% of the FEE refundable?"),
                             TranscriptLine(2.0, "agent", "Yes, every_penny."))
        records.append(rec)
    await store.write(records)


async def sids(store: CallStore, **filters: object) -> tuple[list[str], int]:
    page = await store.search_calls(CallQuery(**filters))  # type: ignore[arg-type]
    return [c.call_sid for c in page.calls], page.total


async def test_every_filter_narrows_the_search(kind: str, tmp_path: Path) -> None:
    async with new_store(kind, tmp_path) as store:
        await fill(store)
        assert await sids(store) == ([f"CA{i}" for i in range(6, -1, -1)], 7)
        assert await sids(store, agent="booker") == (["CA5", "CA3", "CA1"], 3)
        assert await sids(store, carrier="browser") == (["CA6", "CA5"], 2)
        assert await sids(store, end_kind="agent_ended") == (["CA3"], 1)
        # since is inclusive, until exclusive; an aware time in another zone means the same.
        since, until = at(T0 + 120), at(T0 + 300)
        assert await sids(store, since=since, until=until) == (["CA4", "CA3", "CA2"], 3)
        east = since.astimezone(timezone(timedelta(hours=5)))
        assert await sids(store, since=east, until=until) == (["CA4", "CA3", "CA2"], 3)
        assert await sids(store, agent="booker", since=since) == (["CA5", "CA3"], 2)
        assert await sids(store, agent="nobody") == ([], 0)


async def test_text_searches_the_transcript_ignoring_case_and_wildcards(
        kind: str, tmp_path: Path) -> None:
    async with new_store(kind, tmp_path) as store:
        await fill(store)
        assert await sids(store, text="fee") == (["CA4"], 1)
        assert await sids(store, text="EVERY_PENNY") == (["CA4"], 1)
        assert await sids(store, text="100%") == (["CA4"], 1)
        assert await sids(store, text="10_%") == ([], 0)  # not wildcards
        assert await sids(store, text="%") == (["CA4"], 1)  # the one line with a %
        assert await sids(store, text="0%_") == ([], 0)
        assert (await sids(store, text="table for two"))[1] == 6  # every other call
        assert await sids(store, text="table for two", carrier="browser") == (["CA6", "CA5"], 2)


async def test_pages_are_newest_first_with_the_total_of_all(kind: str, tmp_path: Path) -> None:
    async with new_store(kind, tmp_path) as store:
        await fill(store)
        pages = [await sids(store, page=p, per_page=3) for p in (1, 2, 3, 4)]
        assert pages == [(["CA6", "CA5", "CA4"], 7), (["CA3", "CA2", "CA1"], 7),
                         (["CA0"], 7), ([], 7)]
        page = await store.search_calls(CallQuery(text="fee"))
        listing = page.calls[0]
        assert (listing.turns, listing.agent, listing.carrier) == (2, "assistant", "twilio")
