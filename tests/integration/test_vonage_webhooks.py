"""Vonage's webhooks against a running gateway over real sockets: a replayed (stale) or
tampered signed webhook gets 403, a POST answer works as a GET one does, the event webhook is
answered 204 only when signed, and a full gateway answers with the busy NCCO."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import aiohttp

from gateway.carrier_setup import all_setups
from gateway.carriers.core import TOKEN_PARAMETER, Carrier
from gateway.carriers.hooks import BUSY_TEXT
from gateway.carriers.vonage_hooks import TOLERANCE_S
from gateway.config import Settings, custom_endpoint
from gateway.rig.peers import HttpRequest
from gateway.rig.peers.vonage import VonagePeer, compact, signed_callback
from gateway.server import Gateway, running
from tests.cases.vonage import APPLICATION_ID, SECRET

CALLER, CALLEE = "+15550100", "+15550199"


@contextlib.asynccontextmanager
async def gateway(**settings: Any) -> AsyncIterator[tuple[Gateway, str]]:
    setup = all_setups({"VONAGE_SIGNATURE_SECRET": SECRET,
                        "VONAGE_APPLICATION_ID": APPLICATION_ID})[Carrier.VONAGE]
    gw = Gateway(Settings(endpoint=custom_endpoint("ws://127.0.0.1:9/unused", "m"),
                          **settings), carriers={Carrier.VONAGE: setup})
    async with running(gw) as port:
        yield gw, f"http://127.0.0.1:{port}/vonage"


async def send(request: HttpRequest) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.request(
            request.method, request.url, headers=dict(request.headers),
            data=request.body or None) as resp:
        return resp.status, await resp.text()


def peer(**kw: Any) -> VonagePeer:
    return VonagePeer({"From": CALLER, "To": CALLEE}, application_id=APPLICATION_ID, **kw)


async def test_a_replayed_signed_answer_is_stale() -> None:
    async with gateway() as (gw, url):
        old = peer(clock=lambda: time.time() - TOLERANCE_S - 60).webhook(f"{url}/answer",
                                                                         SECRET)
        status, text = await send(old)
        assert (status, text) == (403, "stale Authorization\n")
        fresh = peer().webhook(f"{url}/answer", SECRET)
        assert (await send(fresh))[0] == 200
    assert gw.counters[("vonage", "signature")] == 1


async def test_a_tampered_answer_is_refused() -> None:
    async with gateway() as (gw, url):
        request = peer().webhook(f"{url}/answer", SECRET)
        forged = replace(request, url=request.url.replace("from=15550100", "from=15550666"))
        assert forged.url != request.url
        assert await send(forged) == (403, "invalid Authorization\n")
    assert gw.counters[("vonage", "signature")] == 1


async def test_a_post_answer_is_answered_like_a_get_one() -> None:
    async with gateway() as (_, url):
        vonage = peer(method="POST")
        status, document = await send(vonage.webhook(f"{url}/answer/desk", SECRET))
    assert status == 200
    target = vonage.stream_target(document)
    assert target.url.endswith("/vonage/media/desk")
    assert target.parameters["uuid"] == vonage.call_uuid
    assert (target.parameters["from"], target.parameters["to"]) == (CALLER, CALLEE)
    assert target.parameters[TOKEN_PARAMETER]


async def test_the_event_webhook_takes_only_signed_events() -> None:
    event = compact({"from": "15550100", "to": "15550199", "uuid": peer().call_uuid,
                     "conversation_uuid": "CON-1", "status": "answered",
                     "direction": "inbound"})
    headers = {"Content-Type": "application/json"}
    async with gateway() as (gw, url):
        signed = {**headers, "Authorization": signed_callback(SECRET, event)}
        assert await send(HttpRequest("POST", f"{url}/event", signed, event)) == (204, "")
        assert (await send(HttpRequest("POST", f"{url}/event", headers, event)))[0] == 403
    assert gw.counters[("vonage", "signature")] == 1


async def test_a_full_gateway_answers_with_the_busy_ncco() -> None:
    async with gateway(max_calls=0) as (gw, url):
        status, document = await send(peer().webhook(f"{url}/answer", SECRET))
    assert status == 200
    assert json.loads(document) == [{"action": "talk", "text": BUSY_TEXT}]
    assert gw.counters[("vonage", "capacity")] == 1


async def test_an_answer_without_a_uuid_is_a_bad_request() -> None:
    query = compact({})
    headers = {"Authorization": signed_callback(SECRET, query)}
    async with gateway() as (_, url):
        status, _text = await send(HttpRequest("GET", f"{url}/answer", headers))
    assert status == 400
