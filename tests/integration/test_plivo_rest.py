"""The Plivo REST client against a fake Plivo Call API on a loopback socket."""

from __future__ import annotations

import base64
import socket
from urllib.parse import parse_qsl, urlsplit

import pytest
from structlog.testing import capture_logs

from gateway.carriers.hooks import WebhookRequest
from gateway.carriers.plivo_hooks import dial_xml, transfer_links
from gateway.errors import CallControlError
from gateway.faults import RetryPolicy
from gateway.rest.plivo import PlivoCredentials, PlivoRest
from gateway.rig.rest_fakes.plivo import NO_WAIT, fake_plivo

AUTH_ID = "MA" + "1" * 18
CALL = "3a2e4c90-dcee-4931-8a59-f123ab507e60"
TOKEN = "auth-token-very-secret-123"
LINKS = transfer_links(TOKEN, "https://gw.example.com")
PATH = f"/v1/Account/{AUTH_ID}/Call/{CALL}/"


async def test_hang_up_deletes_the_call_with_basic_auth() -> None:
    async with fake_plivo(AUTH_ID, TOKEN) as (fake, rest):
        assert await rest.hang_up(CALL) is True
    [req] = fake.requests
    assert (req.method, req.path, req.body) == ("DELETE", PATH, b"")
    assert req.auth == "Basic " + base64.b64encode(f"{AUTH_ID}:{TOKEN}".encode()).decode()


async def test_a_call_that_already_ended_is_gone_not_an_error() -> None:
    async with fake_plivo(AUTH_ID, TOKEN, LINKS) as (fake, rest):
        fake.script.statuses = [404, 404]
        assert await rest.hang_up(CALL) is False
        assert await rest.transfer(CALL, "+15550111") is False
    # A 404 is an answer, not a failure to retry; a hang-up asks once more for the call's
    # request (a placed call not answered yet), which Plivo no longer knows either.
    assert [r.path.split("/")[4] for r in fake.requests] == ["Call", "Request", "Call"]


async def test_transfer_points_the_call_at_a_signed_link_to_the_number() -> None:
    async with fake_plivo(AUTH_ID, TOKEN, LINKS) as (fake, rest):
        assert await rest.transfer(CALL, "+15550111") is True
    [req] = fake.requests
    assert (req.method, req.path, req.content_type) == ("POST", PATH, "application/json")
    assert req.json.keys() == {"legs", "aleg_url", "aleg_method"}
    assert (req.json["legs"], req.json["aleg_method"]) == ("aleg", "POST")
    link = urlsplit(req.json["aleg_url"])
    fetched = WebhookRequest("POST", (req.json["aleg_url"],), {},
                             query=tuple(parse_qsl(link.query)), now=0.0)
    assert LINKS.dial(fetched).body == dial_xml("+15550111")


async def test_without_a_public_url_there_is_no_transfer() -> None:
    async with fake_plivo(AUTH_ID, TOKEN) as (fake, rest):
        with pytest.raises(CallControlError, match="VOICEGW_PUBLIC_URL"):
            await rest.transfer(CALL, "+15550111")
    assert fake.requests == []


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_server_errors_and_rate_limits_are_retried(status: int) -> None:
    async with fake_plivo(AUTH_ID, TOKEN) as (fake, rest):
        fake.script.statuses = [status, status]
        with capture_logs() as logs:
            assert await rest.hang_up(CALL) is True
    assert len(fake.requests) == 3
    assert [e["attempt"] for e in logs if e["event"] == "carrier_retry"] == [1, 2]


async def test_gives_up_after_the_last_attempt() -> None:
    async with fake_plivo(AUTH_ID, TOKEN) as (fake, rest):
        fake.script.statuses = [500] * 10
        with pytest.raises(CallControlError, match="failed after 4 attempts: HTTP 500"):
            await rest.hang_up(CALL)
    assert len(fake.requests) == NO_WAIT.attempts


async def test_refusals_raise_without_leaking_the_secret() -> None:
    async with fake_plivo(AUTH_ID, TOKEN) as (fake, rest):
        wrong = PlivoRest(PlivoCredentials(AUTH_ID, "wrong-token-abcdef"),
                          base_url=rest.http.base_url, retry=NO_WAIT)
        try:
            with capture_logs() as logs, pytest.raises(CallControlError) as info:
                await wrong.hang_up(CALL)
        finally:
            await wrong.aclose()
    assert info.value.status == 401
    assert "authentication failed" in str(info.value)
    assert len(fake.requests) == 1  # a 4xx is not retried
    assert "wrong-token-abcdef" not in str(info.value) + repr(logs)
    assert "wrong-token-abcdef" not in repr(wrong.credentials)


async def test_connection_failures_are_retried_then_reported() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rest = PlivoRest(PlivoCredentials(AUTH_ID, TOKEN), base_url=f"http://127.0.0.1:{port}",
                     retry=RetryPolicy(attempts=2, base_s=0.0, cap_s=0.0))
    try:
        with pytest.raises(CallControlError, match="failed after 2 attempts"):
            await rest.hang_up(CALL)
    finally:
        await rest.aclose()


@pytest.mark.parametrize("call", ["", "../../Message", "a/b", "x", "a" * 65, f"{CALL}\n"])
async def test_call_uuids_cannot_escape_the_path_or_name_every_call(call: str) -> None:
    # DELETE .../Call/ without a UUID would hang up every call on the account.
    async with fake_plivo(AUTH_ID, TOKEN, LINKS) as (fake, rest):
        with pytest.raises(ValueError, match="not a call UUID"):
            await rest.hang_up(call)
        with pytest.raises(ValueError, match="not a call UUID"):
            await rest.transfer(call, "+15550111")
    assert fake.requests == []


def test_credentials_from_env() -> None:
    assert PlivoCredentials.from_env({}) is None
    found = PlivoCredentials.from_env({"PLIVO_AUTH_ID": AUTH_ID, "PLIVO_AUTH_TOKEN": TOKEN})
    assert found == PlivoCredentials(AUTH_ID, TOKEN)
    assert TOKEN not in repr(found)
    sub = PlivoCredentials.from_env({"PLIVO_AUTH_ID": "SA" + "2" * 18,
                                     "PLIVO_AUTH_TOKEN": TOKEN})
    assert sub is not None and sub.auth_id.startswith("SA")
