"""Per-call stream tokens: only the gateway's, for this carrier and call, once, in time."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.tokens import StreamTokens, TokenVerdict


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def tokens(clock: Clock, **kw: object) -> StreamTokens:
    return StreamTokens(b"k" * 32, ttl_s=60, clock=clock, **kw)  # type: ignore[arg-type]


def test_a_token_is_good_once_for_its_carrier_and_call() -> None:
    clock = Clock()
    t = tokens(clock)
    token = t.mint("twilio", "CA1")
    assert t.redeem("telnyx", "CA1", token) is TokenVerdict.FORGED
    assert t.redeem("twilio", "CA2", token) is TokenVerdict.FORGED
    assert t.redeem("twilio", "CA1", token) is TokenVerdict.VALID
    assert t.redeem("twilio", "CA1", token) is TokenVerdict.REPLAYED
    # A second answer for the same call (a carrier's retry) mints a different token.
    assert t.redeem("twilio", "CA1", t.mint("twilio", "CA1")) is TokenVerdict.VALID


def test_a_token_expires_after_its_lifetime() -> None:
    clock = Clock()
    t = tokens(clock)
    token = t.mint("vonage", "u-1")
    clock.now += 61
    assert t.redeem("vonage", "u-1", token) is TokenVerdict.EXPIRED


def test_another_gateways_key_makes_a_forgery() -> None:
    clock = Clock()
    ours, theirs = tokens(clock), StreamTokens(b"x" * 32, clock=clock)
    assert ours.redeem("plivo", "c", theirs.mint("plivo", "c")) is TokenVerdict.FORGED


@pytest.mark.parametrize("token", [None, ""])
def test_no_token_is_missing(token: str | None) -> None:
    assert tokens(Clock()).redeem("twilio", "CA1", token) is TokenVerdict.MISSING


@pytest.mark.parametrize("token", ["abc", "1.2", "x.y.z", "1.2.3.4", "99999999999999.n.m",
                                   "１.n.m", "1." + "n" * 40 + ".m"])
def test_malformed_tokens_are_refused_before_any_mac(token: str) -> None:
    assert tokens(Clock()).redeem("twilio", "CA1", token) is TokenVerdict.MALFORMED


@given(st.text(max_size=80))
def test_no_string_is_accepted_or_raises(token: str) -> None:
    verdict = tokens(Clock()).redeem("twilio", "CA1", token)
    assert verdict is not TokenVerdict.VALID


def test_spent_tokens_are_forgotten_once_expired_so_memory_stays_bounded() -> None:
    clock = Clock()
    t = tokens(clock)
    for i in range(100):
        assert t.redeem("twilio", f"CA{i}", t.mint("twilio", f"CA{i}")) is TokenVerdict.VALID
    assert len(t._spent) == 100
    clock.now += 61
    assert t.redeem("twilio", "CAx", t.mint("twilio", "CAx")) is TokenVerdict.VALID
    assert len(t._spent) == 1


def test_past_its_bound_it_refuses_rather_than_forgets() -> None:
    clock = Clock()
    t = tokens(clock, max_spent=3)
    for i in range(3):
        assert t.redeem("twilio", f"CA{i}", t.mint("twilio", f"CA{i}")) is TokenVerdict.VALID
    assert t.redeem("twilio", "CA9", t.mint("twilio", "CA9")) is TokenVerdict.OVERLOADED


def test_a_short_key_is_refused_and_the_key_never_shows() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        StreamTokens(b"short")
    assert "k" * 32 not in repr(tokens(Clock()))
