"""The HTTP side of the gateway over a real loopback socket: answers, routes and health."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import aiohttp
import websockets

from gateway.carrier_setup import all_setups
from gateway.carriers.core import Carrier
from gateway.config import Settings, custom_endpoint
from gateway.server import Gateway, running


def _settings(public_url: str | None = None) -> Settings:
    return Settings(endpoint=custom_endpoint("ws://127.0.0.1:9/unused", "m"),
                    public_url=public_url)


async def test_twiml_points_twilio_at_the_public_media_url_with_parameters() -> None:
    gateway = Gateway(_settings("https://gw.example.com/voice/"))
    async with running(gateway) as port, aiohttp.ClientSession() as http:
        form = {"CallSid": "CA123", "From": "+15550100", "To": "+15550199",
                "Direction": "inbound", "AccountSid": "AC1"}
        async with http.post(f"http://127.0.0.1:{port}/twiml", data=form) as resp:
            assert resp.status == 200
            assert resp.content_type == "text/xml"
            root = ET.fromstring(await resp.text())
    stream = root.find("./Connect/Stream")
    assert stream is not None
    assert stream.get("url") == "wss://gw.example.com/voice/media"
    # Closing the stream (an agent's end_call without REST credentials) hangs up.
    assert [child.tag for child in root] == ["Connect", "Hangup"]
    params = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
    assert params == {"CallSid": "CA123", "From": "+15550100", "To": "+15550199",
                      "Direction": "inbound"}


async def test_twiml_uses_the_request_host_and_escapes_values() -> None:
    gateway = Gateway(_settings())
    async with running(gateway) as port, aiohttp.ClientSession() as http, http.post(
            f"http://127.0.0.1:{port}/twiml",
            data={"CallSid": "CA1", "From": '"><Hangup/>&'}) as resp:
        root = ET.fromstring(await resp.text())
    stream = root.find("./Connect/Stream")
    assert stream is not None
    assert stream.get("url") == f"wss://127.0.0.1:{port}/media"
    # The injected markup stayed a value: the only Hangup is ours, after </Connect>.
    assert [child.tag for child in root] == ["Connect", "Hangup"]
    assert stream.find(".//Hangup") is None
    values = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
    assert values["From"] == '"><Hangup/>&'


async def test_each_carrier_answers_on_its_own_route_pointing_at_its_own_socket() -> None:
    gateway = Gateway(_settings("https://gw.example.com"),
                      carriers={Carrier.TWILIO: all_setups({})[Carrier.TWILIO]})
    async with running(gateway) as port, aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{port}"
        for path, media in (("/twilio/answer", "/twilio/media"),
                            ("/twilio/answer/bistro", "/twilio/media/bistro")):
            async with http.post(base + path, data={"CallSid": "CA1"}) as resp:
                stream = ET.fromstring(await resp.text()).find("./Connect/Stream")
            assert stream is not None and stream.get("url") == f"wss://gw.example.com{media}"
        # Unsigned (development): no token in the answer.
        assert "voicegw_token" not in {p.get("name") for p in stream.findall("Parameter")}
        async with http.post(base + "/twilio/answer", data={"From": "+1"}) as resp:
            assert resp.status == 400  # a webhook that names no call
            assert "CallSid" in await resp.text()
        for route in ("/telnyx/answer", "/vonage/media", "/plivo/answer"):
            async with http.post(base + route) as resp:
                assert resp.status in (404, 405), route  # carriers not served: no routes


async def test_healthz_reports_active_calls() -> None:
    gateway = Gateway(_settings())
    async with running(gateway) as port, aiohttp.ClientSession() as http, http.get(
            f"http://127.0.0.1:{port}/healthz") as resp:
        assert resp.status == 200
        assert await resp.json() == {"status": "ok", "active_calls": 0}


async def test_the_media_stream_declines_compression_a_client_offers() -> None:
    gateway = Gateway(_settings())
    # websockets offers permessage-deflate unless told not to.
    async with running(gateway) as port, websockets.connect(
            f"ws://127.0.0.1:{port}/media") as ws:
        offered = ws.request.headers.get("Sec-WebSocket-Extensions") if ws.request else None
        accepted = ws.response.headers.get("Sec-WebSocket-Extensions") if ws.response else None
        extensions = ws.protocol.extensions
    assert offered is not None and "permessage-deflate" in offered
    assert accepted is None and extensions == []
