"""The campaign tables, the same tests against SQLite and a real PostgreSQL."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.campaign.model import (
    CallSettings,
    Campaign,
    Contact,
    ContactState,
    Result,
    RetryPolicy,
    ended,
)
from gateway.dialing.model import AnsweredBy, DialStatus, MachineDetection
from gateway.store.base import StoreError
from gateway.store.campaigns import CampaignStore
from tests.dbs import KINDS, new_store

pytestmark = pytest.mark.parametrize("kind", KINDS)
T0 = 1_780_000_000.0
CALL = CallSettings("concierge", "twilio", "+15550100999", MachineDetection.LEAVE_MESSAGE,
                    "Please call us back.", 20)


def campaign(name: str = "spring") -> Campaign:
    return Campaign("c0ffee", name, "contacts.csv", "ab" * 32, CALL, T0)


def contacts() -> list[Contact]:
    return [Contact("c0ffee", 1, "+12125550101", ("America/New_York",), {"name": "Ada"}),
            Contact("c0ffee", 2, "+442071838750", ("Europe/London",), {}),
            Contact("c0ffee", 3, "12", (), {}, ContactState.SKIPPED, result=Result.INVALID,
                    error="number: not a number")]


async def test_a_campaign_round_trips(kind: str, tmp_path: Path) -> None:
    async with new_store(kind, tmp_path) as store:
        db = CampaignStore(store)
        await db.create(campaign(), contacts())
        assert await db.find("spring") == campaign()
        assert await db.find("autumn") is None
        assert await db.contacts("c0ffee") == contacts()
        with pytest.raises(StoreError, match="already exists"):
            await db.create(campaign(), [])
        await db.finish("c0ffee", T0 + 60)
        found = await db.campaigns()
        assert [c.finished_at for c in found] == [T0 + 60]


async def test_a_campaign_left_half_made_is_invisible_and_replaced(kind: str,
                                                                  tmp_path: Path) -> None:
    async with new_store(kind, tmp_path) as store:
        db = CampaignStore(store)
        # A crash while its contacts went in: the count that marks it complete never came.
        await store.execute("INSERT INTO campaigns (id, name, source, digest, call, "
                            "created_at) VALUES (?, ?, ?, ?, ?, ?)",
                            ["dead", "spring", "x.csv", "00", "{}",
                             "2026-01-01T00:00:00+00:00" if kind == "sqlite"
                             else datetime.fromtimestamp(T0, UTC)])
        assert await db.find("spring") is None
        many = [dataclasses.replace(c, seq=i + 1) for i, c in enumerate(contacts() * 40)]
        await db.create(campaign(), many)  # more than one batch of contacts
        assert (await db.find("spring")) == campaign()
        assert len(await db.contacts("c0ffee")) == 120


async def test_a_move_applies_once_from_the_state_read(kind: str, tmp_path: Path) -> None:
    async with new_store(kind, tmp_path) as store:
        db = CampaignStore(store)
        await db.create(campaign(), contacts())
        first = contacts()[0]
        dialing = first.attempt(T0 + 1)
        assert await db.save(dialing, first)
        # A second runner that read the contact as pending cannot move it again.
        assert not await db.save(dialing, first)
        placed = dialing.placed("dl_1", DialStatus.QUEUED)
        assert await db.save(placed, dialing)
        busy = ended(placed, DialStatus.BUSY, None, RetryPolicy(2, 300), T0 + 30)
        assert await db.save(busy, placed)
        second = busy.attempt(T0 + 400)
        assert await db.save(second, busy)
        # A late answer about attempt 1 cannot land on attempt 2, though both are dialing.
        assert not await db.save(busy, placed)
        done = ended(second.placed("dl_2", DialStatus.QUEUED), DialStatus.COMPLETED,
                     AnsweredBy.HUMAN, RetryPolicy(2, 300), T0 + 500)
        assert await db.save(done, second)
        got = (await db.contacts("c0ffee", [ContactState.DONE]))[0]
        assert got == done
        assert (got.attempts, got.dial_ids, got.result) == (2, ("dl_1", "dl_2"),
                                                            Result.ANSWERED)
        assert got.key() == "campaign:c0ffee:1:2"
        tally = await db.tally("c0ffee")
        assert tally.states == {ContactState.DONE: 1, ContactState.PENDING: 1,
                                ContactState.SKIPPED: 1}
        assert tally.results == {Result.ANSWERED: 1, Result.INVALID: 1}
        assert (tally.attempts, tally.last_dial_at) == (2, T0 + 400)


async def test_do_not_call_list(kind: str, tmp_path: Path) -> None:
    async with new_store(kind, tmp_path) as store:
        db = CampaignStore(store)
        assert await db.dnc_add("+12125550101", "asked on 3 May", T0)
        assert not await db.dnc_add("+12125550101", "again", T0 + 1)
        assert await db.dnc_has("+12125550101")
        assert not await db.dnc_has("+12125550102")
        entries = await db.dnc_list()
        assert [(e.number, e.added_at, e.reason) for e in entries] == [
            ("+12125550101", T0, "asked on 3 May")]
        assert await db.dnc_remove("+12125550101")
        assert not await db.dnc_remove("+12125550101")
        assert await db.dnc_list() == []
