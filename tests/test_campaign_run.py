"""A campaign against a stand-in of the gateway's /v1/calls API over real sockets: killed
mid-way and resumed, nobody is called twice, the window, rate and concurrency hold, and the
results CSV has every row."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.campaign.api import GatewayCalls
from gateway.campaign.clock import FastClock
from gateway.campaign.model import (
    CallSettings,
    Campaign,
    Contact,
    ContactState,
    Result,
    RetryPolicy,
)
from gateway.campaign.plan import Limits
from gateway.campaign.results import open_campaign, results_csv
from gateway.campaign.runner import CampaignError, CampaignRunner, RunSettings
from gateway.campaign.window import Window
from gateway.rig.calls_api import FakeCallsApi, mixed_outcomes
from gateway.rig.campaign_audit import audit
from gateway.store.campaigns import CampaignStore
from gateway.store.sqlite import SqliteStore

TOKEN = "campaign-test-token"
START = datetime(2026, 6, 1, 12, 30, tzinfo=UTC).timestamp()  # London open, New York not yet
WINDOW = Window.parse("09:00-20:00")
CALL = CallSettings("concierge")
SETTINGS = RunSettings(Limits(concurrency=4, rate_per_min=120, window=WINDOW),
                       RetryPolicy(max_attempts=3, delay_s=300), poll_s=0.005)
GATEWAY_DNC = "+442071838701"
LATER_DNC = "+12125550140"


def contacts_csv() -> bytes:
    rows = ["number,timezone,name"]
    rows += [f"+4420718387{i:02d},,L{i}" for i in range(20)]
    rows += [f"+121255501{i:02d},,N{i}" for i in range(20, 45)]
    rows += [f"+141555501{i:02d},America/Los_Angeles,W{i}" for i in range(45, 55)]
    rows += ["+12125550120,,again", "12345,,bad", "+18005550100,,tollfree"]
    return ("\n".join(rows) + "\n").encode()


@asynccontextmanager
async def rig(tmp_path: Path) -> AsyncIterator[tuple[CampaignStore, FakeCallsApi, str,
                                                     FastClock]]:
    clock = FastClock(START, speed=60, skip_over_s=60)
    fake = FakeCallsApi(TOKEN, mixed_outcomes(scale_s=0.01), do_not_call={GATEWAY_DNC},
                        clock=clock)
    store = SqliteStore(tmp_path / "calls.db")
    await store.open()
    try:
        async with fake.serve() as url:
            yield CampaignStore(store), fake, url, clock
    finally:
        await store.aclose()


async def run(db: CampaignStore, url: str, clock: FastClock, campaign: Campaign, *,
              kill_after: int | None = None, token: str = TOKEN) -> bool:
    api = GatewayCalls(url, token)
    ended = 0
    task: asyncio.Task[object] | None = None

    def changed(contact: Contact) -> None:
        nonlocal ended
        ended += contact.state.final
        if kill_after is not None and ended == kill_after and task is not None:
            task.cancel()  # a crash: calls in flight are left as they are

    runner = CampaignRunner(db, api, campaign, SETTINGS, clock, on_change=changed)
    task = asyncio.create_task(runner.run())
    try:
        report = await task
    except asyncio.CancelledError:
        return False
    finally:
        await api.aclose()
    return getattr(report, "finished", False)


async def test_killed_mid_way_and_resumed_calls_everyone_once(tmp_path: Path) -> None:
    async with rig(tmp_path) as (db, fake, url, clock):
        opened = await open_campaign(db, name="june", source="june.csv", data=contacts_csv(),
                                     call=CALL, now=clock.now())
        assert not opened.resumed
        assert opened.imported is not None and len(opened.imported.bad) == 1
        assert not await run(db, url, clock, opened.campaign, kill_after=20)
        placed_before = len(fake.placed)
        in_flight = await db.contacts(opened.campaign.id, [ContactState.DIALING])
        assert in_flight, "the kill came with calls in flight"
        await db.dnc_add(LATER_DNC, "asked to be left alone", clock.now())
        resumed = await open_campaign(db, name="june", source="june.csv", data=contacts_csv(),
                                      call=None, now=clock.now())
        assert resumed.resumed and resumed.campaign.id == opened.campaign.id
        assert await run(db, url, clock, resumed.campaign)
        contacts = await db.contacts(opened.campaign.id)

    assert len(fake.placed) > placed_before
    checked = audit(fake.placed, contacts, WINDOW)
    assert checked.duplicates == 0
    assert checked.calls == checked.known  # the runner knows every call placed for it
    # Every attempt written down was placed, but those the gateway refused (do-not-call).
    assert checked.attempts - checked.calls <= 2
    assert checked.outside_window == 0
    assert checked.max_per_minute <= 120
    assert checked.max_concurrent <= 4
    called = {c.to for c in fake.placed}
    assert GATEWAY_DNC not in called and LATER_DNC not in called
    by_number = {c.number: c for c in contacts if c.seq <= 55}
    assert by_number[GATEWAY_DNC].result is by_number[LATER_DNC].result is Result.DO_NOT_CALL
    assert all(c.state.final for c in contacts)
    results = {c.result for c in contacts}
    assert {Result.ANSWERED, Result.DUPLICATE, Result.INVALID, Result.NO_WINDOW} <= results
    retried = [c for c in contacts if c.attempts > 1]
    assert retried and all(len(c.dial_ids) == c.attempts for c in retried)
    rows = list(csv.DictReader(io.StringIO(results_csv(contacts))))
    assert [int(r["row"]) for r in rows] == list(range(1, 59))
    assert all(r["result"] for r in rows)
    dialled = [r for r in rows if r["dial_ids"]]
    assert len(dialled) == len(called)


async def test_an_attempt_written_but_unanswered_is_asked_again_with_its_key(
        tmp_path: Path) -> None:
    async with rig(tmp_path) as (db, fake, url, clock):
        data = b"number\n+442071838702\n"
        opened = await open_campaign(db, name="one", source="one.csv", data=data, call=CALL,
                                     now=clock.now())
        (pending,) = await db.contacts(opened.campaign.id)
        contact = pending.attempt(clock.now())
        assert await db.save(contact, pending)
        # The crash came after the gateway placed the call, before its answer was stored.
        api = GatewayCalls(url, TOKEN)
        try:
            posted = await api.place(CALL.body(contact.number, contact.parameters),
                                     contact.key())
        finally:
            await api.aclose()
        fake.unavailable = 2  # and the gateway is briefly at capacity on resume
        assert await run(db, url, clock, opened.campaign)
        (done,) = await db.contacts(opened.campaign.id)
    assert fake.replays >= 1
    assert [c.id for c in fake.placed][:1] == [posted.id]
    assert done.dial_ids[0] == posted.id
    assert done.state is ContactState.DONE or done.attempts > 1


async def test_a_refused_token_stops_the_campaign(tmp_path: Path) -> None:
    async with rig(tmp_path) as (db, fake, url, clock):
        opened = await open_campaign(db, name="x", source="x.csv",
                                     data=b"number\n+442071838703\n", call=CALL,
                                     now=clock.now())
        with pytest.raises(CampaignError, match="HTTP 401"):
            await run(db, url, clock, opened.campaign, token="wrong")
        assert fake.placed == []
