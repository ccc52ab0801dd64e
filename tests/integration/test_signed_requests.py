"""With TWILIO_AUTH_TOKEN set, only requests Twilio signed get through, over real sockets;
and a signed stream must also carry the token its answer minted.

Signatures are made by Twilio's own ``RequestValidator``, so these tests check that the gateway
agrees with Twilio, not with itself.
"""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
from twilio.request_validator import RequestValidator

from gateway import log as gwlog
from gateway.carrier_setup import all_setups
from gateway.carriers.core import TOKEN_PARAMETER, Carrier
from gateway.config import Settings, custom_endpoint
from gateway.rig.peers.twilio import TwilioPeer
from gateway.rig.phone import Utterance, When, load_utterance, place_call
from gateway.rig.simulator import SimulatorServer, scenario_from_dict
from gateway.rig.simulator.speech import speech_dir
from gateway.server import Gateway, running

TOKEN = "tok-test-9f8e7d6c5b4a"
PUBLIC = "https://gw.example.com"
SIGNER = RequestValidator(TOKEN)
FORM = {"CallSid": "CA123", "From": "+15550100", "To": "+15550199", "Direction": "inbound",
        "AccountSid": "AC1", "CallerCity": ""}
SPEED = 4.0


class Connector:
    """A Live connector that records being asked; these tests must never reach it."""

    def __init__(self) -> None:
        self.calls: list[Any] = []

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(args)
        raise AssertionError("a Live session was opened")


def _gateway(connector: Connector | None = None, public_url: str | None = PUBLIC,
             endpoint: str = "ws://127.0.0.1:9/unused") -> Gateway:
    settings = Settings(endpoint=custom_endpoint(endpoint, "test-model"), public_url=public_url)
    carriers = {Carrier.TWILIO: all_setups({"TWILIO_AUTH_TOKEN": TOKEN})[Carrier.TWILIO]}
    return Gateway(settings, connect_live=connector, carriers=carriers)


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    gwlog.configure("info", stream=stream)
    try:
        yield stream
    finally:
        structlog.reset_defaults()


def _events(stream: io.StringIO, name: str) -> list[dict[str, Any]]:
    return [r for r in map(json.loads, stream.getvalue().splitlines()) if r["event"] == name]


async def test_signed_webhooks_are_answered() -> None:
    gateway = _gateway(Connector())
    async with running(gateway) as port, aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{port}"
        # POST: the URL (query included) plus the form, sorted, empty values included.
        sig = SIGNER.compute_signature(f"{PUBLIC}/twiml?tenant=a&b=2", FORM)
        async with http.post(f"{base}/twiml?tenant=a&b=2", data=FORM,
                             headers={"X-Twilio-Signature": sig}) as resp:
            assert resp.status == 200, await resp.text()
            root = ET.fromstring(await resp.text())
        assert root.find("./Connect/Stream") is not None
        # GET: the parameters are in the signed URL and nothing else is signed.
        url = "/twiml?CallSid=CA9&From=%2B15550100"
        sig = SIGNER.compute_signature(PUBLIC + url, {})
        async with http.get(base + url, headers={"X-Twilio-Signature": sig}) as resp:
            assert resp.status == 200
        # Twilio's validator also accepts the URL with the default port: so do we.
        sig = SIGNER.compute_signature(f"{PUBLIC}:443/twiml", FORM)
        async with http.post(f"{base}/twiml", data=FORM,
                             headers={"X-Twilio-Signature": sig}) as resp:
            assert resp.status == 200
    assert gateway.counters[("twilio", "signature")] == 0


def _bad_requests() -> dict[str, tuple[str, dict[str, str], dict[str, str]]]:
    """name -> (path, form, headers) that must each be refused."""
    good = SIGNER.compute_signature(f"{PUBLIC}/twiml", FORM)
    return {
        "missing": ("/twiml", FORM, {}),
        "tampered": ("/twiml", {**FORM, "To": "+15559999"}, {"X-Twilio-Signature": good}),
        "extra_param": ("/twiml", {**FORM, "Evil": "1"}, {"X-Twilio-Signature": good}),
        "other_query": ("/twiml?x=1", FORM, {"X-Twilio-Signature": good}),
        "wrong_token": ("/twiml", FORM, {"X-Twilio-Signature": RequestValidator(
            "another-token-000").compute_signature(f"{PUBLIC}/twiml", FORM)}),
        "other_host": ("/twiml", FORM, {"X-Twilio-Signature": SIGNER.compute_signature(
            "https://attacker.example.com/twiml", FORM)}),
        "garbage": ("/twiml", FORM, {"X-Twilio-Signature": "not-base64-\u00e9"}),
    }


@pytest.mark.parametrize("case", sorted(_bad_requests()))
async def test_unsigned_or_forged_webhooks_get_403(case: str, logs: io.StringIO) -> None:
    path, form, headers = _bad_requests()[case]
    gateway = _gateway(Connector())
    async with running(gateway) as port, aiohttp.ClientSession() as http, http.post(
            f"http://127.0.0.1:{port}{path}", data=form, headers=headers) as resp:
        assert resp.status == 403
        text = await resp.text()
    assert "X-Twilio-Signature" in text
    assert "<Response>" not in text
    assert gateway.counters[("twilio", "signature")] == 1
    [line] = _events(logs, "signature_rejected")
    assert line["reason"] == ("missing" if case == "missing" else "invalid")
    assert line["path"] == "/twiml"
    assert line["level"] == "warning"
    # Neither the token nor the presented signature is ever logged.
    output = logs.getvalue()
    assert TOKEN not in output
    for value in headers.values():
        assert value not in output


@pytest.mark.parametrize("signed_url", [
    "wss://gw.example.com/media",  # as written in our TwiML: what Twilio is reported to sign
    "https://gw.example.com/media",  # the same URL in its https form
    "wss://gw.example.com:443/media",
])
async def test_a_signed_stream_upgrade_is_accepted(signed_url: str) -> None:
    gateway = _gateway(Connector())
    async with running(gateway) as port, aiohttp.ClientSession() as http, http.ws_connect(
            f"ws://127.0.0.1:{port}/media",
            headers={"X-Twilio-Signature": SIGNER.compute_signature(signed_url, {})}) as ws:
        await ws.close()
    assert gateway.counters[("twilio", "signature")] == 0


@pytest.mark.parametrize(("path", "signed_url", "public_url"), [
    ("/media", None, PUBLIC),  # no header
    ("/media", "wss://gw.example.com/twiml", PUBLIC),  # signed for another path
    ("/media", "wss://attacker.example.com/media", PUBLIC),
    ("/media/assistant", "wss://gw.example.com/media", PUBLIC),
    ("/media", "wss://gw.example.com/media", "https://gw.example.com/voice/"),  # prefix missing
])
async def test_unsigned_stream_upgrades_are_refused_before_any_live_session(
        path: str, signed_url: str | None, public_url: str, logs: io.StringIO) -> None:
    connector = Connector()
    gateway = _gateway(connector, public_url=public_url)
    headers = {} if signed_url is None else {
        "X-Twilio-Signature": SIGNER.compute_signature(signed_url, {})}
    async with running(gateway) as port, aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(f"ws://127.0.0.1:{port}{path}", headers=headers)
    assert refused.value.status == 403
    assert connector.calls == []
    assert not gateway.calls
    assert gateway.counters[("twilio", "signature")] == 1
    [line] = _events(logs, "signature_rejected")
    assert line["path"] == path


async def test_without_a_public_url_the_request_host_is_used() -> None:
    gateway = _gateway(Connector(), public_url=None)
    async with running(gateway) as port, aiohttp.ClientSession() as http:
        host = f"127.0.0.1:{port}"
        # Behind a TLS proxy Twilio requested https://<host>; locally it may be plain http.
        for signed in (f"https://{host}/twiml", f"http://{host}/twiml"):
            async with http.post(f"http://{host}/twiml", data=FORM, headers={
                    "X-Twilio-Signature": SIGNER.compute_signature(signed, FORM)}) as resp:
                assert resp.status == 200
        async with http.ws_connect(f"ws://{host}/media", headers={
                "X-Twilio-Signature": SIGNER.compute_signature(f"wss://{host}/media", {})}) as ws:
            await ws.close()
    assert gateway.counters[("twilio", "signature")] == 0


async def test_a_whole_signed_call_under_a_path_prefix(tmp_path: Path) -> None:
    caller = load_utterance(speech_dir() / "caller_book_table.wav")
    scenario = scenario_from_dict({"speed": SPEED, "turns": [
        {"caller_text": "A table, please.", "reply": "agent_options"}]})
    public = "https://gw.example.com/voice"
    async with SimulatorServer(scenario) as sim:
        gateway = _gateway(public_url=public + "/", endpoint=sim.url)
        async with running(gateway) as port, aiohttp.ClientSession() as http:
            # Twilio fetches the TwiML through the proxy, signing the public URL...
            form = {**FORM, "CallSid": "CA" + "7" * 32}
            sig = SIGNER.compute_signature(f"{public}/twiml", form)
            async with http.post(f"http://127.0.0.1:{port}/twiml", data=form,
                                 headers={"X-Twilio-Signature": sig}) as resp:
                peer = TwilioPeer(call_sid=form["CallSid"])
                target = peer.stream_target(await resp.text())
            assert target.url == "wss://gw.example.com/voice/media"
            assert TOKEN_PARAMETER in target.parameters
            # ...then opens the stream it names, signing that URL, carrying the token.
            result = await place_call(f"ws://127.0.0.1:{port}/media",
                                      [Utterance(caller, When.START, 300)], speed=SPEED,
                                      peer=peer, secret=TOKEN, signed_url=target.url,
                                      max_s=60.0)
    assert result.media_received > 0
    assert gateway.finished[-1].end_reason == "caller hung up"
    assert gateway.counters[("twilio", "signature")] == 0
