"""The jambonz REST client against a fake of jambonz's API on a loopback socket, which checks
the Bearer API key, the account in the path and the update's body as jambonz's API server
does; and a transfer followed to its end: the signed link, fetched from the gateway's
``/jambonz/transfer`` route, answers a ``dial``."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import aiohttp
import pytest
from structlog.testing import capture_logs

from gateway.carrier_setup import all_setups
from gateway.carriers.core import Carrier
from gateway.carriers.jambonz_hooks import signature_header
from gateway.config import Settings, custom_endpoint
from gateway.errors import CallControlError
from gateway.rest.jambonz import JambonzCredentials, JambonzRest
from gateway.rig.peers.jambonz import ACCOUNT_SID
from gateway.rig.rest_fakes import serving
from gateway.rig.rest_fakes.jambonz import NO_WAIT, FakeJambonz, fake_jambonz
from gateway.server import Gateway, running
from tests.cases.jambonz import API_KEY, SECRET

CALL = "9f1c2b4e-7d0a-4c3e-8b51-2f6a1d9e0c47"


@pytest.fixture
async def line() -> AsyncIterator[tuple[FakeJambonz, JambonzRest]]:
    async with fake_jambonz(ACCOUNT_SID, API_KEY) as pair:
        yield pair


async def test_hang_up_puts_completed_with_the_api_key(
        line: tuple[FakeJambonz, JambonzRest]) -> None:
    fake, rest = line
    assert await rest.hang_up(CALL) is True
    [request] = fake.requests
    assert (request.method, request.path) == ("PUT", f"/v1/Accounts/{ACCOUNT_SID}/Calls/{CALL}")
    assert request.json == {"call_status": "completed"}
    assert request.auth == f"Bearer {API_KEY}"


async def test_without_a_public_url_there_is_no_transfer(
        line: tuple[FakeJambonz, JambonzRest]) -> None:
    fake, rest = line
    assert rest.transfers is False
    with pytest.raises(CallControlError, match="VOICEGW_PUBLIC_URL"):
        await rest.transfer(CALL, "+15550111")
    assert fake.requests == []


async def test_a_call_that_already_ended_is_not_an_error(
        line: tuple[FakeJambonz, JambonzRest]) -> None:
    fake, rest = line
    fake.script.statuses = [404]
    assert await rest.hang_up(CALL) is False
    assert len(fake.requests) == 1  # a 404 is an answer, not a failure to retry


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
async def test_server_errors_and_rate_limits_are_retried(
        line: tuple[FakeJambonz, JambonzRest], status: int) -> None:
    fake, rest = line
    fake.script.statuses = [status, status]
    with capture_logs() as logs:
        assert await rest.hang_up(CALL) is True
    assert len(fake.requests) == 3
    assert [e["attempt"] for e in logs if e["event"] == "carrier_retry"] == [1, 2]


async def test_a_wrong_key_is_refused_without_leaking_it() -> None:
    fake = FakeJambonz(ACCOUNT_SID, API_KEY)
    async with serving(fake.app()) as url:
        wrong = "not-the-api-key-0123456789"
        rest = JambonzRest(JambonzCredentials(ACCOUNT_SID, wrong, url), retry=NO_WAIT)
        try:
            with capture_logs() as logs, pytest.raises(CallControlError) as info:
                await rest.hang_up(CALL)
        finally:
            await rest.aclose()
    assert info.value.status == 401
    assert len(fake.requests) == 1  # a 4xx is not retried
    assert wrong not in str(info.value) and wrong not in repr(logs)
    assert wrong not in repr(rest.credentials)


async def test_connection_failures_are_retried_then_reported() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rest = JambonzRest(JambonzCredentials(ACCOUNT_SID, API_KEY, f"http://127.0.0.1:{port}"),
                       retry=NO_WAIT)
    try:
        with pytest.raises(CallControlError, match="failed after 4 attempts"):
            await rest.hang_up(CALL)
    finally:
        await rest.aclose()


async def test_call_sids_cannot_escape_the_path(line: tuple[FakeJambonz, JambonzRest]) -> None:
    fake, rest = line
    for bad in ("../../Applications", "a/b", "", "a" * 81):
        with pytest.raises(ValueError, match="not a call sid"):
            await rest.hang_up(bad)
    assert fake.requests == []


async def test_a_transfer_redirects_to_a_signed_link_that_answers_a_dial() -> None:
    fake = FakeJambonz(ACCOUNT_SID, API_KEY)
    async with serving(fake.app()) as api_url:
        # The gateway is its own public URL here, so the link can be fetched for real.
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        public = f"http://127.0.0.1:{port}"
        setup = all_setups({"JAMBONZ_WEBHOOK_SECRET": SECRET, "JAMBONZ_ACCOUNT_SID": ACCOUNT_SID,
                            "JAMBONZ_API_KEY": API_KEY, "VOICEGW_JAMBONZ_API_URL": api_url,
                            "VOICEGW_PUBLIC_URL": public})[Carrier.JAMBONZ]
        assert setup.call_control is not None
        gw = Gateway(Settings(endpoint=custom_endpoint("ws://127.0.0.1:9/unused", "m"),
                              public_url=public), carriers={Carrier.JAMBONZ: setup})
        async with running(gw, port=port):
            assert await setup.call_control.transfer(CALL, "+15550111") is True
            [request] = fake.requests
            hook = request.json["call_hook"]
            assert hook["method"] == "POST"
            assert urlsplit(hook["url"]).path == "/jambonz/transfer"
            # jambonz fetches the hook as it fetches any webhook: signed, JSON body.
            body = json.dumps({"call_sid": CALL, "call_status": "in-progress"}).encode()
            headers = {"Content-Type": "application/json",
                       "Jambonz-Signature": signature_header(SECRET, int(time.time()), body)}
            async with aiohttp.ClientSession() as session:
                async with session.post(hook["url"], data=body, headers=headers) as resp:
                    assert resp.status == 200
                    verbs = await resp.json()
                async with session.post(hook["url"], data=body) as resp:
                    assert resp.status == 403  # unsigned: not jambonz
                forged = hook["url"].replace("15550111", "15550666")
                async with session.post(forged, data=body, headers=headers) as resp:
                    assert resp.status == 400  # a number the gateway did not sign
            await setup.call_control.aclose()
    assert verbs == [{"verb": "dial", "target": [{"type": "phone", "number": "+15550111"}]}]
