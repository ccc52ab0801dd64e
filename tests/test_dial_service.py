"""The dial service on its own: a stand-in carrier and a clock the test moves, the dials kept in
memory and in SQLite alike. The end-to-end paths are in tests/integration/test_outbound_call.py;
here, what is hard to make happen over sockets: callbacks out of order, a lost final callback,
two requests racing with one key."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.carriers.core import Carrier
from gateway.dialing.books import MemoryDials, StoredDials
from gateway.dialing.model import (
    CallProgress,
    DialInputError,
    DialRequest,
    DialStatus,
    PlaceCall,
)
from gateway.dialing.service import SETTLE_GRACE_S, DialBook, DialService
from gateway.errors import CallControlError
from gateway.store import dials
from gateway.store.sqlite import SqliteStore


class StandInCarrier:
    """Places every call it is asked to, unless told to refuse."""

    def __init__(self) -> None:
        self.placed: list[PlaceCall] = []
        self.refuse = False

    async def place(self, call: PlaceCall) -> str:
        await asyncio.sleep(0)  # as a request would: others may run meanwhile
        if self.refuse:
            raise CallControlError("twilio refused place: HTTP 400: bad number", status=400)
        self.placed.append(call)
        return f"CA{len(self.placed):032d}"

    async def hang_up(self, call: str) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


REQUEST = DialRequest(to="+14155550111", from_="+14155550100", agent="reminder",
                      carrier=Carrier.TWILIO, timeout_s=30)


def service(book: DialBook, carrier: StandInCarrier, clock: Clock) -> DialService:
    return DialService(book, {Carrier.TWILIO: carrier}, "https://gw.example.com", clock=clock,
                       fingerprint=dials.fingerprint)


@pytest.fixture(params=["memory", "sqlite"])
async def book(request: pytest.FixtureRequest, tmp_path: Path) -> object:
    if request.param == "memory":
        yield MemoryDials()
        return
    store = SqliteStore(tmp_path / "calls.db")
    await store.open()
    yield StoredDials(store)
    await store.aclose()


async def test_two_requests_with_one_key_place_one_call(book: DialBook) -> None:
    carrier, clock = StandInCarrier(), Clock()
    svc = service(book, carrier, clock)
    (first, replayed_a), (second, replayed_b) = await asyncio.gather(
        svc.place(REQUEST, "k-1"), svc.place(REQUEST, "k-1"))
    assert first.id == second.id
    assert sorted([replayed_a, replayed_b]) == [False, True]
    assert len(carrier.placed) == 1
    other = DialRequest(to="+14155550122", from_=REQUEST.from_, agent="reminder",
                        carrier=Carrier.TWILIO)
    with pytest.raises(DialInputError) as refused:
        await svc.place(other, "k-1")
    assert refused.value.field == "Idempotency-Key"


async def test_callbacks_out_of_order_never_move_a_call_back(book: DialBook) -> None:
    svc = service(book, StandInCarrier(), Clock())
    record, _ = await svc.place(REQUEST)
    sid = record.carrier_call_id
    assert sid is not None
    for status in (DialStatus.ANSWERED, DialStatus.RINGING, DialStatus.COMPLETED,
                   DialStatus.ANSWERED, DialStatus.COMPLETED):
        await svc.progress(Carrier.TWILIO, record.id, CallProgress(sid, status))
    done = await svc.get(record.id)
    assert done is not None
    assert [c.status for c in done.history] == [DialStatus.QUEUED, DialStatus.ANSWERED,
                                                DialStatus.COMPLETED]
    assert svc.counts.stale_callbacks == 2  # ringing after answered; answered after the end
    # A callback naming another call of the carrier is not this call's.
    assert await svc.progress(Carrier.TWILIO, record.id,
                              CallProgress("CA" + "9" * 32, DialStatus.FAILED)) is None


async def test_a_call_the_carrier_refuses_is_kept_as_failed(book: DialBook) -> None:
    carrier = StandInCarrier()
    carrier.refuse = True
    record, _ = await service(book, carrier, Clock()).place(REQUEST)
    assert record.status is DialStatus.FAILED
    assert record.error is not None
    assert "bad number" in record.error


async def test_a_call_whose_final_callback_was_lost_is_failed_after_its_timeout(
        book: DialBook) -> None:
    clock = Clock()
    svc = service(book, StandInCarrier(), clock)
    lost, _ = await svc.place(REQUEST)
    ringing, _ = await svc.place(REQUEST)
    assert ringing.carrier_call_id is not None
    await svc.progress(Carrier.TWILIO, ringing.id,
                       CallProgress(ringing.carrier_call_id, DialStatus.RINGING))
    clock.now += REQUEST.timeout_s  # still within its grace: nothing is settled
    assert await svc.settle_lost() == 0
    clock.now += SETTLE_GRACE_S + 1
    fresh, _ = await svc.place(REQUEST)  # placed just now: left alone
    assert await svc.settle_lost() == 2
    for dial in (lost, ringing):
        settled = await svc.get(dial.id)
        assert settled is not None
        assert settled.status is DialStatus.FAILED
        assert settled.history[-1].detail == "no final status from the carrier"
    still = await svc.get(fresh.id)
    assert still is not None
    assert still.status is DialStatus.QUEUED
