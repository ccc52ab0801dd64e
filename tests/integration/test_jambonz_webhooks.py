"""jambonz's webhooks and socket against a running gateway over real sockets: a replayed
(stale) or tampered signed webhook gets 403, a full gateway answers with the busy verbs, a
webhook without a call sid is a bad request, and with socket credentials configured the
answer carries them and an upgrade without them is refused before any Live session."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import aiohttp

from gateway.carrier_setup import all_setups
from gateway.carriers.core import TOKEN_PARAMETER, Carrier
from gateway.carriers.hooks import BUSY_TEXT
from gateway.carriers.jambonz import SUBPROTOCOLS
from gateway.carriers.jambonz_hooks import TOLERANCE_S, signature_header
from gateway.config import Settings, custom_endpoint
from gateway.rig.peers import HttpRequest
from gateway.rig.peers.jambonz import JambonzPeer
from gateway.rig.phone import fetch_answer
from gateway.server import Gateway, running
from tests.cases.jambonz import SECRET

CALLER, CALLEE = "+15550100", "+15550199"
WS = {"JAMBONZ_WS_USER": "gateway", "JAMBONZ_WS_PASSWORD": "socket-password-0123"}


@contextlib.asynccontextmanager
async def gateway(env: dict[str, str] | None = None, **settings: Any
                  ) -> AsyncIterator[tuple[Gateway, str]]:
    setup = all_setups({"JAMBONZ_WEBHOOK_SECRET": SECRET, **(env or {})})[Carrier.JAMBONZ]
    gw = Gateway(Settings(endpoint=custom_endpoint("ws://127.0.0.1:9/unused", "m"),
                          **settings), carriers={Carrier.JAMBONZ: setup})
    async with running(gw) as port:
        yield gw, f"http://127.0.0.1:{port}/jambonz"


async def send(request: HttpRequest) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.request(
            request.method, request.url, headers=dict(request.headers),
            data=request.body or None) as resp:
        return resp.status, await resp.text()


def peer(**kw: Any) -> JambonzPeer:
    return JambonzPeer({"From": CALLER, "To": CALLEE}, **kw)


async def test_a_replayed_signed_answer_is_stale() -> None:
    async with gateway() as (gw, url):
        old = peer(clock=lambda: 1_700_000_000 - TOLERANCE_S).webhook(f"{url}/answer", SECRET)
        assert await send(old) == (403, "stale Jambonz-Signature\n")
        assert (await send(peer().webhook(f"{url}/answer", SECRET)))[0] == 200
    assert gw.counters[("jambonz", "signature")] == 1


async def test_a_tampered_answer_is_refused() -> None:
    async with gateway() as (gw, url):
        request = peer().webhook(f"{url}/answer", SECRET)
        forged = replace(request, body=request.body.replace(CALLEE.encode(), b"+15550666"))
        assert forged.body != request.body
        assert await send(forged) == (403, "invalid Jambonz-Signature\n")
    assert gw.counters[("jambonz", "signature")] == 1


async def test_the_answer_names_the_agent_and_carries_the_token() -> None:
    async with gateway() as (_, url):
        jambonz = peer()
        status, document = await send(jambonz.webhook(f"{url}/answer/desk", SECRET))
    assert status == 200
    target = jambonz.stream_target(document)
    assert target.url.endswith("/jambonz/media/desk")
    assert target.parameters["call_sid"] == jambonz.call_sid
    assert (target.parameters["From"], target.parameters["To"]) == (CALLER, CALLEE)
    assert target.parameters[TOKEN_PARAMETER]
    assert jambonz.ws_auth is None


async def test_a_full_gateway_answers_with_the_busy_verbs() -> None:
    async with gateway(max_calls=0) as (gw, url):
        status, document = await send(peer().webhook(f"{url}/answer", SECRET))
    assert status == 200
    assert json.loads(document) == [{"verb": "say", "text": BUSY_TEXT}, {"verb": "hangup"}]
    assert gw.counters[("jambonz", "capacity")] == 1


async def test_an_answer_without_a_call_sid_is_a_bad_request() -> None:
    body = b"{}"
    headers = {"Content-Type": "application/json",
               "Jambonz-Signature": signature_header(SECRET, int(peer().clock()), body)}
    async with gateway() as (_, url):
        status, _text = await send(HttpRequest("POST", f"{url}/answer", headers, body))
    assert status == 400


async def test_socket_credentials_ride_in_the_answer_and_guard_the_upgrade() -> None:
    async with gateway(WS) as (gw, url), aiohttp.ClientSession() as session:
        jambonz = peer()
        await fetch_answer(session, jambonz, f"{url}/answer", SECRET)
        assert jambonz.ws_auth is not None
        assert jambonz.ws_auth.password == WS["JAMBONZ_WS_PASSWORD"]
        media = url.replace("http://", "ws://") + "/media"
        for headers in ({}, {"Authorization": "Basic Z2F0ZXdheTp3cm9uZw=="}):
            async with session.get(media, headers=headers) as resp:
                assert resp.status == 403  # refused before the upgrade: no Live session
        async with session.ws_connect(media, headers=jambonz.upgrade_headers(media, None),
                                      protocols=SUBPROTOCOLS) as ws:
            assert ws.protocol == SUBPROTOCOLS[0]  # the subprotocol jambonz asks for
            await ws.close()
    assert gw.counters[("jambonz", "signature")] == 2
