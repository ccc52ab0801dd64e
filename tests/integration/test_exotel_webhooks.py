"""Exotel's dynamic URL and media upgrade against a running gateway over real sockets: Basic
credentials are required on both (refused with 403 before any Live session), the answer
returns the stream URL with the credentials Exotel presents on the upgrade, a full gateway
answers 204 (no URL), and a request without a CallSid is a bad request."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from gateway.carrier_setup import all_setups
from gateway.carriers.core import TOKEN_PARAMETER, Carrier
from gateway.config import Settings, custom_endpoint
from gateway.rig.peers import HttpRequest
from gateway.rig.peers.exotel import ExotelPeer, basic_header
from gateway.server import Gateway, running
from tests.cases.exotel import PASSWORD, USER

CREDENTIALS = f"{USER}:{PASSWORD}"


@contextlib.asynccontextmanager
async def gateway(**settings: Any) -> AsyncIterator[tuple[Gateway, str]]:
    setup = all_setups({"EXOTEL_STREAM_USER": USER,
                        "EXOTEL_STREAM_PASSWORD": PASSWORD})[Carrier.EXOTEL]
    gw = Gateway(Settings(endpoint=custom_endpoint("ws://127.0.0.1:9/unused", "m"),
                          **settings), carriers={Carrier.EXOTEL: setup})
    async with running(gw) as port:
        yield gw, f"http://127.0.0.1:{port}/exotel"


async def send(request: HttpRequest) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.request(
            request.method, request.url, headers=dict(request.headers),
            data=request.body or None) as resp:
        return resp.status, await resp.text()


async def test_the_answer_needs_the_credentials_and_carries_them_to_the_upgrade() -> None:
    async with gateway() as (gw, url):
        peer = ExotelPeer()
        assert (await send(peer.webhook(f"{url}/answer", None)))[0] == 403
        assert (await send(peer.webhook(f"{url}/answer", f"{USER}:guess")))[0] == 403
        status, document = await send(peer.webhook(f"{url}/answer/desk", CREDENTIALS))
    assert status == 200
    target = peer.stream_target(document)
    parts = urlsplit(target.url)
    assert parts.path == "/exotel/media/desk"
    assert (parts.username, parts.password) == (USER, PASSWORD)
    assert target.parameters["sample-rate"] == "16000"
    assert target.parameters[TOKEN_PARAMETER]
    assert peer.upgrade_headers(target.url, None) == {"Authorization":
                                                      basic_header(CREDENTIALS)}
    assert gw.counters[("exotel", "signature")] == 2


async def test_a_post_answer_is_answered_like_a_get_one() -> None:
    async with gateway() as (_, url):
        peer = ExotelPeer()
        get = peer.webhook(f"{url}/answer", CREDENTIALS)
        path, _, query = get.url.partition("?")
        post = HttpRequest("POST", path, {**get.headers, "Content-Type":
                                          "application/x-www-form-urlencoded"}, query.encode())
        status, document = await send(post)
    assert status == 200
    assert json.loads(document)["url"].startswith("wss://")


async def test_a_media_upgrade_without_the_credentials_is_refused() -> None:
    async with gateway() as (gw, url), aiohttp.ClientSession() as session:
        media = url.replace("http://", "ws://") + "/media"
        for headers in ({}, {"Authorization": basic_header(f"{USER}:guess")}):
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                await session.ws_connect(media, headers=headers)
            assert info.value.status == 403
    assert gw.counters[("exotel", "signature")] == 2
    assert not gw.calls


async def test_a_full_gateway_answers_without_a_url() -> None:
    async with gateway(max_calls=0) as (gw, url):
        status, document = await send(ExotelPeer().webhook(f"{url}/answer", CREDENTIALS))
    assert (status, document) == (204, "")
    assert gw.counters[("exotel", "capacity")] == 1


async def test_an_answer_without_a_call_sid_is_a_bad_request() -> None:
    headers = {"Authorization": basic_header(CREDENTIALS)}
    async with gateway() as (_, url):
        status, _text = await send(HttpRequest("GET", f"{url}/answer?From=1", headers))
    assert status == 400
