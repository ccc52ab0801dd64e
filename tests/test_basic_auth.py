"""The Basic-credentials check that guards the providers that sign nothing."""

from __future__ import annotations

import base64

import pytest
from multidict import CIMultiDict

from gateway.carriers.basic_auth import BasicAuthCheck, basic_pair
from gateway.carriers.hooks import Verdict, WebhookRequest


def request(value: str | None) -> WebhookRequest:
    headers: CIMultiDict[str] = CIMultiDict()
    if value is not None:
        headers["authorization"] = value  # any case: HTTP folds header names
    return WebhookRequest(method="GET", urls=("https://gw.example/x",), headers=headers)


def basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


CHECK = BasicAuthCheck("pbx", "s3cret:with:colons")


@pytest.mark.parametrize(("value", "verdict"), [
    (basic("pbx:s3cret:with:colons"), Verdict.VALID),
    ("basic " + basic("pbx:s3cret:with:colons")[6:], Verdict.VALID),  # scheme in any case
    (None, Verdict.MISSING),
    ("   ", Verdict.MISSING),
    (basic("pbx:wrong"), Verdict.INVALID),
    (basic("other:s3cret:with:colons"), Verdict.INVALID),
    (basic("pbx:s3cret:with:colons "), Verdict.INVALID),
    (basic("pbxs3cret"), Verdict.INVALID),  # no colon
    ("Bearer " + basic("pbx:s3cret:with:colons")[6:], Verdict.INVALID),
    ("Basic !!!not-base64!!!", Verdict.INVALID),
    ("Basic " + base64.b64encode(b"pbx:\xff\xfe").decode(), Verdict.INVALID),
    ("Basic " + "A" * 5000, Verdict.INVALID),
])
def test_only_the_configured_pair_is_valid(value: str | None, verdict: Verdict) -> None:
    assert CHECK.verify(request(value)) is verdict


def test_the_password_never_shows_in_the_checks_repr() -> None:
    assert "s3cret" not in repr(CHECK)


@pytest.mark.parametrize(("user", "password"), [("", "x"), ("u", ""), ("a:b", "x")])
def test_unusable_credentials_are_refused_at_start(user: str, password: str) -> None:
    with pytest.raises(ValueError, match="Basic credentials"):
        BasicAuthCheck(user, password)


def test_a_pair_keeps_colons_in_the_password() -> None:
    assert basic_pair(basic("u:p:q")) == ("u", "p:q")
