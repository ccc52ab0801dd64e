"""The Twilio REST client against a fake Twilio API on a loopback socket."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from structlog.testing import capture_logs

from gateway.errors import CallControlError, ConfigError
from gateway.faults import RetryPolicy
from gateway.rest.twilio import TwilioCredentials, TwilioRest, dial_twiml
from gateway.rig.rest_fakes import Script, serving
from gateway.rig.rest_fakes.twilio import FakeTwilio

ACCOUNT = "AC" + "1" * 32
CALL = "CA" + "2" * 32
TOKEN = "auth-token-very-secret-123"


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeTwilio, str]]:
    twilio = FakeTwilio(ACCOUNT, ACCOUNT, TOKEN)
    async with serving(twilio.app()) as url:
        yield twilio, url


def client(base_url: str, user: str = ACCOUNT, password: str = TOKEN, attempts: int = 4,
           **kw: Any) -> TwilioRest:
    return TwilioRest(TwilioCredentials(ACCOUNT, user, password), base_url=base_url,
                      retry=RetryPolicy(attempts, 0.0, 0.0), **kw)


async def test_hang_up_posts_status_completed_with_basic_auth(
        fake: tuple[FakeTwilio, str]) -> None:
    twilio, url = fake
    async with client(url) as rest:
        assert await rest.hang_up(CALL) is True
    [req] = twilio.requests
    assert req.path == f"/2010-04-01/Accounts/{ACCOUNT}/Calls/{CALL}.json"
    assert req.content_type == "application/x-www-form-urlencoded"
    assert req.form == {"Status": "completed"}


async def test_a_call_that_already_ended_is_not_an_error(fake: tuple[FakeTwilio, str]) -> None:
    twilio, url = fake
    twilio.script = Script([404])
    async with client(url) as rest:
        assert await rest.hang_up(CALL) is False
    assert len(twilio.requests) == 1  # a 404 is an answer, not a failure to retry


async def test_transfer_redirects_to_escaped_dial_twiml(fake: tuple[FakeTwilio, str]) -> None:
    twilio, url = fake
    async with client(url) as rest:
        assert await rest.transfer(CALL, "+15550100") is True
    assert twilio.requests[0].form == {"Twiml": "<Response><Dial>+15550100</Dial></Response>"}


async def test_api_key_credentials(fake: tuple[FakeTwilio, str]) -> None:
    twilio, url = fake
    twilio.user, twilio.password = "SK" + "3" * 32, "api-key-secret-456"
    async with client(url, user=twilio.user, password=twilio.password) as rest:
        assert await rest.hang_up(CALL)


async def test_server_errors_are_retried(fake: tuple[FakeTwilio, str]) -> None:
    twilio, url = fake
    twilio.script = Script([500, 503])
    with capture_logs() as logs:
        async with client(url, attempts=3) as rest:
            assert await rest.hang_up(CALL) is True
    assert len(twilio.requests) == 3
    assert [e["attempt"] for e in logs if e["event"] == "carrier_retry"] == [1, 2]
    assert all(e["carrier"] == "twilio" for e in logs if e["event"] == "carrier_retry")


async def test_gives_up_after_the_last_attempt(fake: tuple[FakeTwilio, str]) -> None:
    twilio, url = fake
    twilio.script = Script([500] * 10)
    async with client(url, attempts=3) as rest:
        with pytest.raises(CallControlError, match="failed after 3 attempts: HTTP 500"):
            await rest.hang_up(CALL)
    assert len(twilio.requests) == 3


async def test_refusals_raise_without_leaking_the_secret(fake: tuple[FakeTwilio, str]) -> None:
    twilio, url = fake
    with capture_logs() as logs:
        async with client(url, password="wrong-token-abcdef") as rest:
            with pytest.raises(CallControlError) as info:
                await rest.hang_up(CALL)
    assert (info.value.status, info.value.code) == (401, 20003)
    assert "Authenticate" in str(info.value)
    assert len(twilio.requests) == 1  # a 4xx is not retried
    assert "wrong-token-abcdef" not in str(info.value)
    assert "wrong-token-abcdef" not in repr(logs)


async def test_connection_failures_are_retried_then_reported() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with client(f"http://127.0.0.1:{port}", attempts=2) as rest:
        with pytest.raises(CallControlError, match="failed after 2 attempts"):
            await rest.redirect(CALL, "<Response/>")


async def test_call_sids_cannot_escape_the_path(fake: tuple[FakeTwilio, str]) -> None:
    twilio, url = fake
    async with client(url) as rest:
        with pytest.raises(ValueError, match="not a call SID"):
            await rest.hang_up("../../Messages")
    assert twilio.requests == []


def test_dial_twiml_escapes_and_supports_sip() -> None:
    assert dial_twiml(" +15550100 ") == "<Response><Dial>+15550100</Dial></Response>"
    assert dial_twiml("<Hangup/>&") == "<Response><Dial>&lt;Hangup/&gt;&amp;</Dial></Response>"
    assert dial_twiml("sip:desk@pbx.example.com") == (
        "<Response><Dial><Sip>sip:desk@pbx.example.com</Sip></Dial></Response>")
    with pytest.raises(ValueError, match="empty"):
        dial_twiml(" ")


def test_credentials_from_env() -> None:
    assert TwilioCredentials.from_env({}) is None
    token = TwilioCredentials.from_env({"TWILIO_ACCOUNT_SID": ACCOUNT,
                                        "TWILIO_AUTH_TOKEN": TOKEN})
    assert token is not None
    assert (token.username, token.password) == (ACCOUNT, TOKEN)
    assert TOKEN not in repr(token)
    key = TwilioCredentials.from_env({"TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_API_KEY": "SK9",
                                      "TWILIO_API_SECRET": "api-secret-789"})
    assert key is not None
    assert key.username == "SK9"
    with pytest.raises(ConfigError, match="TWILIO_AUTH_TOKEN"):
        TwilioCredentials.from_env({"TWILIO_ACCOUNT_SID": ACCOUNT})
