"""The Telnyx Call Control client against a fake Telnyx API on a loopback socket; the official
SDK against the same fake, so the fake takes what Telnyx's own client sends."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from structlog.testing import capture_logs
from telnyx import AsyncTelnyx

from gateway.errors import CallControlError, ConfigError
from gateway.rest.telnyx import TelnyxRest, api_key_from_env, call_gone
from gateway.rig.rest_fakes.telnyx import NO_WAIT, FakeTelnyx, fake_telnyx

KEY = "KEY01890ABCDEF_very-secret-telnyx-key"
CALL = "v3:9X2vxPDFY2RHSJ1EdMS0RHRksMTg7ldNxdjWbVr9zBjbGjGsSe-aiQ"


@pytest.fixture
async def telnyx() -> AsyncIterator[tuple[FakeTelnyx, TelnyxRest, str]]:
    async with fake_telnyx(KEY) as env:
        yield env


async def test_hang_up_posts_the_command_with_the_bearer_key(
        telnyx: tuple[FakeTelnyx, TelnyxRest, str]) -> None:
    fake, rest, _ = telnyx
    assert await rest.hang_up(CALL) is True
    [req] = fake.requests
    assert (req.method, req.path) == ("POST", f"/v2/calls/{CALL}/actions/hangup")
    assert req.auth == f"Bearer {KEY}" and req.content_type == "application/json"
    assert set(req.json) == {"command_id"}


async def test_transfer_dials_the_number(telnyx: tuple[FakeTelnyx, TelnyxRest, str]) -> None:
    fake, rest, _ = telnyx
    assert await rest.transfer(CALL, " +15550111 ") is True
    assert await rest.transfer(CALL, "sip:desk@pbx.example.com") is True
    assert [r.path for r in fake.requests] == [f"/v2/calls/{CALL}/actions/transfer"] * 2
    assert [r.json["to"] for r in fake.requests] == ["+15550111", "sip:desk@pbx.example.com"]
    assert fake.requests[0].json["command_id"] != fake.requests[1].json["command_id"]


@pytest.mark.parametrize("status", [422, 404])
async def test_a_call_that_has_ended_is_gone_not_an_error(
        telnyx: tuple[FakeTelnyx, TelnyxRest, str], status: int) -> None:
    fake, rest, _ = telnyx
    fake.script.statuses = [status]
    with capture_logs() as logs:
        assert await rest.hang_up(CALL) is False
    assert len(fake.requests) == 1  # an answer, not a failure to retry
    assert [e["event"] for e in logs] == ["carrier_call_gone"]


def test_only_telnyx_s_ended_code_means_gone() -> None:
    ended = {"errors": [{"code": "90018", "title": "Call has already ended"}]}
    assert call_gone(422, ended) and call_gone(404, {})
    assert not call_gone(422, {"errors": [{"code": "10032", "title": "Missing parameter"}]})
    assert not call_gone(422, {}) and not call_gone(400, ended)


async def test_server_errors_and_rate_limits_are_retried_with_one_command_id(
        telnyx: tuple[FakeTelnyx, TelnyxRest, str]) -> None:
    fake, rest, _ = telnyx
    fake.script.statuses = [503, 429, 500]
    with capture_logs() as logs:
        assert await rest.transfer(CALL, "+15550111") is True
    assert len(fake.requests) == 4
    # The same command each time: Telnyx ignores a command_id it has already carried out.
    assert len({r.json["command_id"] for r in fake.requests}) == 1
    assert [e["attempt"] for e in logs if e["event"] == "carrier_retry"] == [1, 2, 3]


async def test_gives_up_after_the_last_attempt(
        telnyx: tuple[FakeTelnyx, TelnyxRest, str]) -> None:
    fake, rest, _ = telnyx
    fake.script.statuses = [502] * 10
    with pytest.raises(CallControlError, match="failed after 4 attempts: HTTP 502"):
        await rest.hang_up(CALL)
    assert len(fake.requests) == NO_WAIT.attempts


async def test_a_refusal_names_telnyx_s_code_and_never_the_key(
        telnyx: tuple[FakeTelnyx, TelnyxRest, str]) -> None:
    fake, _, url = telnyx
    wrong = TelnyxRest(KEY + "-revoked", base_url=url, retry=NO_WAIT)
    try:
        with capture_logs() as logs, pytest.raises(CallControlError) as err:
            await wrong.hang_up(CALL)
    finally:
        await wrong.aclose()
    assert (err.value.status, err.value.code) == (401, "10009")
    assert "HTTP 401: The API key provided is not valid" in str(err.value)
    assert len(fake.requests) == 1  # a refusal is not retried
    assert KEY not in str(err.value) and KEY not in repr(logs)


async def test_bad_ids_and_destinations_never_reach_telnyx(
        telnyx: tuple[FakeTelnyx, TelnyxRest, str]) -> None:
    fake, rest, _ = telnyx
    for call in ("", "v3:../../calls", "a/b", "x" * 201):
        with pytest.raises(ValueError, match="call control id"):
            await rest.hang_up(call)
    for to in ("", "billing", "+1 555 0111", "sip:", "tel:+15550111"):
        with pytest.raises(ValueError, match=r"E\.164"):
            await rest.transfer(CALL, to)
    assert fake.requests == []


def test_credentials_from_env() -> None:
    assert api_key_from_env({}) is None
    assert api_key_from_env({"TELNYX_API_KEY": f" {KEY}\n"}) == KEY
    with pytest.raises(ConfigError, match="TELNYX_API_KEY"):
        TelnyxRest("")


async def test_the_official_sdk_is_served_by_the_fake_as_ours_is(
        telnyx: tuple[FakeTelnyx, TelnyxRest, str]) -> None:
    fake, rest, url = telnyx
    sdk = AsyncTelnyx(api_key=KEY, base_url=f"{url}/v2", max_retries=0)
    try:
        await sdk.calls.actions.hangup(CALL, command_id="c-1")
        await sdk.calls.actions.transfer(CALL, to="+15550111", command_id="c-2")
    finally:
        await sdk.close()
    await rest.hang_up(CALL)
    await rest.transfer(CALL, "+15550111")
    sdk_reqs, ours = fake.requests[:2], fake.requests[2:]
    for theirs, mine in zip(sdk_reqs, ours, strict=True):
        assert (theirs.path, theirs.auth, theirs.content_type) == \
            (mine.path, mine.auth, mine.content_type)
        assert set(theirs.json) == set(mine.json)
