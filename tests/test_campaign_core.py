"""The campaign's pure core: the window per time zone, the planner's limits, the moves."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.campaign.clock import FastClock
from gateway.campaign.model import (
    Contact,
    ContactState,
    IllegalMove,
    Result,
    RetryPolicy,
    can_move,
    ended,
)
from gateway.campaign.plan import Dial, Finished, Limits, Planner, Skip, Wait
from gateway.campaign.window import Window, WindowError, zones_for
from gateway.dialing.model import AnsweredBy, DialStatus

NY = ("America/New_York",)
DAY = Window.parse("09:00-20:00")


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_window_follows_daylight_saving() -> None:
    # 8 March 2026: New York moves from UTC-5 to UTC-4; 09:00 local moves by an hour in UTC.
    assert DAY.inside(at("2026-03-07T14:00"), NY)
    assert not DAY.inside(at("2026-03-07T13:59"), NY)
    assert DAY.inside(at("2026-03-09T13:00"), NY)
    assert not DAY.inside(at("2026-03-09T12:59"), NY)
    assert not DAY.inside(at("2026-03-09T00:00"), NY)  # 20:00 EDT: the window has shut
    assert DAY.next_open(at("2026-03-09T03:00"), NY) == at("2026-03-09T13:00")
    assert DAY.next_open(at("2026-03-09T15:00"), NY) == at("2026-03-09T15:00")


def test_a_country_of_several_zones_is_called_only_when_all_are_inside() -> None:
    both = ("America/Los_Angeles", "America/New_York")
    # 13:00 UTC in June: 09:00 in New York, 06:00 in Los Angeles: wait for LA's 09:00.
    assert DAY.next_open(at("2026-06-01T13:00"), both) == at("2026-06-01T16:00")
    assert DAY.inside(at("2026-06-01T23:59"), both)  # 19:59 in New York
    assert not DAY.inside(at("2026-06-02T00:00"), both)
    # Tokyo and New York share no hour of 09:00-10:00: never.
    assert Window.parse("09:00-10:00").next_open(
        at("2026-06-01T00:00"), ("Asia/Tokyo", *NY)) is None
    assert zones_for("+12125550101") == NY
    assert len(zones_for("+18005550100")) > 10  # toll-free: the whole North American plan


def test_window_past_midnight_and_all_day() -> None:
    night = Window.parse("21:00-02:00")
    assert night.inside(at("2026-06-01T00:30"), ("UTC",))
    assert night.inside(at("2026-06-01T22:00"), ("UTC",))
    assert not night.inside(at("2026-06-01T02:00"), ("UTC",))
    assert night.next_open(at("2026-06-01T10:00"), ("UTC",)) == at("2026-06-01T21:00")
    assert Window.parse("00:00-24:00").inside(at("2026-06-01T03:00"), NY)
    assert str(night) == "21:00-02:00"
    for bad in ("9-17", "09:00-09:00", "25:00-26:00", "09:60-10:00"):
        with pytest.raises(WindowError):
            Window.parse(bad)


ALL_DAY = Window.parse("00:00-24:00")


def test_planner_spaces_calls_by_the_rate_and_caps_concurrency() -> None:
    plan = Planner(Limits(concurrency=2, rate_per_min=6, window=ALL_DAY))
    for seq in (1, 2, 3):
        plan.add(seq, NY, None)
    assert plan.next(100) == Dial(1)
    plan.started(100)
    assert plan.next(101) == Wait(110)  # 6 a minute: 10 s apart
    assert plan.next(110) == Dial(2)
    plan.started(110)
    assert plan.next(150) == Wait(None)  # two in flight
    plan.ended()
    assert plan.next(150) == Dial(3)
    plan.started(150)
    assert plan.next(150) == Wait(None)
    plan.ended()
    plan.ended()
    assert plan.next(160) == Finished()


def test_planner_honours_the_pace_from_before_a_crash_and_retry_delays() -> None:
    plan = Planner(Limits(5, 2, ALL_DAY), last_start=1000)
    plan.add(7, NY, None)
    plan.add(3, NY, 2000)  # a retry, due later; row order otherwise
    assert plan.next(1001) == Wait(1030)
    assert plan.next(1030) == Dial(7)
    plan.started(1030)
    assert plan.next(1100) == Wait(2000)
    assert plan.next(2000) == Dial(3)


def test_planner_waits_for_each_zone_and_skips_what_never_opens() -> None:
    plan = Planner(Limits(5, 60, DAY))
    plan.add(1, ("Asia/Tokyo",), None)
    plan.add(2, NY, None)
    plan.add(3, ("Asia/Tokyo", *NY), None)
    now = at("2026-06-01T13:30")  # 09:30 in New York, 22:30 in Tokyo
    # Tokyo's 09:00-20:00 is 00:00-11:00 UTC, New York's 13:00-24:00: no shared moment.
    assert plan.next(now) == Skip(3)
    assert plan.next(now) == Dial(2)
    plan.started(now)
    tokyo_opens = at("2026-06-02T00:00")  # 09:00 in Tokyo
    assert plan.next(now + 60) == Wait(tokyo_opens)
    assert plan.next(tokyo_opens) == Dial(1)


def test_moves_and_retries() -> None:
    assert can_move(ContactState.PENDING, ContactState.DIALING)
    assert not can_move(ContactState.DONE, ContactState.PENDING)
    policy = RetryPolicy(max_attempts=2, delay_s=600)
    c = Contact("cid", 1, "+12125550101", NY).attempt(10).placed("dl_1", DialStatus.QUEUED)
    busy = ended(c, DialStatus.BUSY, None, policy, 40)
    assert (busy.state, busy.next_at, busy.key()) == (ContactState.PENDING, 640,
                                                      "campaign:cid:1:1")
    again = busy.attempt(700)
    assert again.key() == "campaign:cid:1:2"
    assert (again.first_dial_at, again.last_dial_at) == (10, 700)
    last = ended(again, DialStatus.NO_ANSWER, None, policy, 760)
    assert (last.state, last.result) == (ContactState.DONE, Result.NO_ANSWER)
    machine = ended(again, DialStatus.COMPLETED, AnsweredBy.MACHINE, policy, 760)
    assert machine.result is Result.MACHINE
    with pytest.raises(IllegalMove):
        last.attempt(800)


def test_fast_clock_settles_before_a_jump(monkeypatch: pytest.MonkeyPatch) -> None:
    real = [100.0]
    monkeypatch.setattr("gateway.campaign.clock.time.monotonic", lambda: real[0])
    clock = FastClock(1_000.0, speed=10, skip_over_s=60, settle_s=0.5)
    assert clock.real_s(1_030.0) == 3.0  # a short wait runs, ten times faster
    assert clock.real_s(5_000.0) == 0.5  # a long one: settle first...
    assert clock.real_s(9_000.0) == 0.5  # (one jump at a time, to the nearest)
    assert clock.now() == 1_000.0  # ...the calls just started see the time before it
    real[0] += 0.5
    assert clock.now() == 5_005.0  # then the hours pass at once
    assert FastClock(0.0, skip_over_s=60).real_s(3_600.0) == 0.0  # no settling: at once
