"""Plivo's routes on a running gateway, over real sockets: the answer URL, the transfer route
and the media socket's signed upgrade. None of these may open a Live session."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
import pytest

from gateway.carrier_setup import all_setups
from gateway.carriers.core import Carrier
from gateway.carriers.plivo_hooks import NONCE_HEADER, SIGNATURE_HEADER, compute_signature
from gateway.config import Settings, custom_endpoint
from gateway.rest.plivo import PlivoRest
from gateway.server import Gateway, running

AUTH_ID = "MA" + "3" * 18
TOKEN = "plivo-token-5e6f7a8b9c"
PUBLIC = "https://gw.example.com"
FORM = {"CallUUID": "3a2e4c90-dcee-4931-8a59-f123ab507e60", "From": "14155551234",
        "To": "14155555678", "Direction": "inbound", "CallStatus": "in-progress"}
NONCE = "12345678901234567890"


async def no_live(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("a Live session was opened")


@pytest.fixture
async def gateway() -> AsyncIterator[tuple[Gateway, str]]:
    env = {"PLIVO_AUTH_ID": AUTH_ID, "PLIVO_AUTH_TOKEN": TOKEN, "VOICEGW_PUBLIC_URL": PUBLIC}
    setup = all_setups(env)[Carrier.PLIVO]
    gw = Gateway(Settings(endpoint=custom_endpoint("ws://127.0.0.1:9/unused", "test-model"),
                          public_url=PUBLIC), connect_live=no_live,
                 carriers={Carrier.PLIVO: setup})
    async with running(gw) as port:
        yield gw, f"127.0.0.1:{port}"
    assert setup.call_control is not None
    await setup.call_control.aclose()


def plivo_signed(method: str, public_url: str, form: dict[str, str] | None = None,
                 token: str = TOKEN) -> dict[str, str]:
    signature = compute_signature(token, method, public_url, NONCE, (form or {}).items())
    return {SIGNATURE_HEADER: signature, NONCE_HEADER: NONCE}


async def post(host: str, public_url: str, headers: dict[str, str],
               form: dict[str, str] = FORM) -> tuple[int, str]:
    parts = urlsplit(public_url)
    local = f"http://{host}{parts.path}" + (f"?{parts.query}" if parts.query else "")
    async with aiohttp.ClientSession() as http, http.post(local, data=form,
                                                          headers=headers) as resp:
        return resp.status, await resp.text()


async def test_the_answer_url_signed_by_plivo_streams_the_call(
        gateway: tuple[Gateway, str]) -> None:
    _, host = gateway
    url = f"{PUBLIC}/plivo/answer/desk?tenant=acme"
    status, body = await post(host, url, plivo_signed("POST", url, FORM))
    assert status == 200, body
    [stream] = ET.fromstring(body)
    assert (stream.tag, stream.text) == ("Stream", "wss://gw.example.com/plivo/media/desk")
    query = {"CallUUID": FORM["CallUUID"], "From": "14155551234"}
    get_url = f"{PUBLIC}/plivo/answer?{urlencode(query)}"
    async with aiohttp.ClientSession() as http, http.get(
            f"http://{host}/plivo/answer?{urlencode(query)}",
            headers=plivo_signed("GET", get_url)) as resp:
        assert resp.status == 200
    status, _ = await post(host, url, plivo_signed("POST", url, FORM, token="forged"))
    assert status == 403


async def test_the_transfer_route_dials_only_what_the_gateway_signed(
        gateway: tuple[Gateway, str]) -> None:
    gw, host = gateway
    rest = gw.carriers[Carrier.PLIVO].call_control
    assert isinstance(rest, PlivoRest) and rest.links is not None
    link = rest.links.link("+15550111", time.time())
    status, body = await post(host, link, plivo_signed("POST", link, FORM))
    assert status == 200, body
    assert [(e.tag, e.text) for e in ET.fromstring(body).iter()][1:] == [
        ("Dial", None), ("Number", "+15550111")]
    # Signed by Plivo (someone's call fetched it) but not a number the gateway put there.
    forged = link.replace("%2B15550111", "%2B19005550000")
    status, body = await post(host, forged, plivo_signed("POST", forged, FORM))
    assert (status, body.strip()) == (400, "not a transfer link of this gateway")
    # The gateway's link, but not fetched by Plivo for this account.
    status, _ = await post(host, link, {})
    assert status == 403
    assert gw.counters[("plivo", "signature")] == 1


@pytest.mark.parametrize("signer", ["missing", "forged"])
async def test_an_upgrade_plivo_did_not_sign_is_refused(gateway: tuple[Gateway, str],
                                                        signer: str) -> None:
    gw, host = gateway
    headers = {} if signer == "missing" else plivo_signed(
        "GET", f"{PUBLIC}/plivo/media", token="forged")
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await http.ws_connect(f"ws://{host}/plivo/media", headers=headers)
    assert info.value.status == 403
    assert gw.counters[("plivo", "signature")] == 1
    assert not gw.calls and not gw.finished


@pytest.mark.parametrize("signed_as", [
    "https://gw.example.com/plivo/media",  # Plivo's Node stream SDK checks this
    "http://gw.example.com/plivo/media/websocket",  # its Python stream SDK, this
])
async def test_an_upgrade_plivo_signed_is_taken(gateway: tuple[Gateway, str],
                                                signed_as: str) -> None:
    gw, host = gateway
    async with aiohttp.ClientSession() as http, http.ws_connect(
            f"ws://{host}/plivo/media", headers=plivo_signed("GET", signed_as)) as ws:
        await ws.close()  # before any start: no call, no Live session
    await gw.wait_idle()
    [summary] = gw.finished
    assert summary.call_sid is None
    assert gw.counters[("plivo", "signature")] == 0
