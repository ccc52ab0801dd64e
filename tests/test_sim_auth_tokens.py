"""The simulated Live server's token store and constrained sessions, without sockets."""

from __future__ import annotations

import json

import pytest

from gateway.rig.simulator import Scenario
from gateway.rig.simulator.auth_tokens import AuthTokenStore, Refusal, TokenRequestError
from gateway.rig.simulator.protocol import Action, Close, Send
from gateway.rig.simulator.record import HandleStore, SessionRecord
from gateway.rig.simulator.session import LiveSession


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def session(store: AuthTokenStore, token: str, handles: HandleStore) -> LiveSession:
    return LiveSession(Scenario(), SessionRecord(), handles=handles, api_key=token,
                       tokens=store)


def first_kind(out: list[Action]) -> str:
    assert isinstance(out[0], Send)
    return out[0].kind


def setup(**extra: object) -> str:
    return json.dumps({"setup": {"model": "models/m", **extra}})


def test_messages_after_expire_time_are_refused_mid_session() -> None:
    clock = Clock()
    store = AuthTokenStore(clock=clock)
    name = store.create({"expireTime": "2027-01-15T08:05:00Z"})["name"]
    live = session(store, name, HandleStore())
    assert first_kind(live.receive(setup(), 0.0)) == "setupComplete"
    clock.now = 1_800_000_000.0 + 1000  # past 08:05 on 2027-01-15 (epoch 1_800_000_300)
    out = live.receive(json.dumps({"realtimeInput": {"text": "hi"}}), 1.0)
    assert out == [Close(1007, Refusal.EXPIRED.value)]


def test_a_resumed_session_takes_no_use_and_a_new_one_does() -> None:
    clock = Clock()
    store = AuthTokenStore(clock=clock)
    handles = HandleStore()
    name = store.create({"uses": 1})["name"]
    first = session(store, name, handles)
    first.receive(setup(sessionResumption={}), 0.0)
    handle = first.record.handles[-1]
    again = session(store, name, handles)
    resumed = again.receive(setup(sessionResumption={"handle": handle}), 0.0)
    assert first_kind(resumed) == "setupComplete"
    assert again.record.resumed
    fresh = session(store, name, handles)
    assert fresh.receive(setup(), 0.0) == [Close(1007, Refusal.USED_UP.value)]


def test_the_store_is_bounded_and_forgets_expired_tokens() -> None:
    clock = Clock()
    store = AuthTokenStore(clock=clock, max_tokens=2)
    store.create({})
    store.create({})
    with pytest.raises(TokenRequestError) as full:
        store.create({})
    assert full.value.status == 429
    clock.now += 31 * 60  # past the default 30-minute expiry
    store.create({})
    assert len(store) == 1


@pytest.mark.parametrize("body", [
    {"uses": -1}, {"uses": "2"}, {"expireTime": "tomorrow"}, {"surprise": 1},
    {"newSessionExpireTime": "2030-01-01T00:00:00Z"}, [1, 2],
])
def test_malformed_requests_are_refused(body: object) -> None:
    with pytest.raises(TokenRequestError) as bad:
        AuthTokenStore(clock=Clock()).create(body)
    assert bad.value.status == 400
    assert bad.value.body()["error"]["status"] == "INVALID_ARGUMENT"


def test_a_token_is_no_api_key_on_the_plain_endpoint() -> None:
    live = LiveSession(Scenario(), SessionRecord(), handles=HandleStore(),
                       api_key="auth_tokens/abc")
    out = live.receive(setup(), 0.0)
    assert isinstance(out[0], Close) and out[0].code == 1007
