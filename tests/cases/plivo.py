"""Plivo, for the carrier-neutral tests."""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping, Sequence
from urllib.parse import parse_qsl, urlsplit

from gateway.carriers.core import Carrier
from gateway.carriers.hooks import WebhookRequest
from gateway.carriers.plivo_hooks import dial_xml, transfer_links
from gateway.rig.peers import PhonePeer
from gateway.rig.peers.plivo import PlivoPeer
from gateway.rig.rest_fakes import Recorded
from gateway.rig.rest_fakes.plivo import FakePlivo
from tests.cases import CarrierCase

AUTH_ID = "MA" + "5" * 18
TOKEN = "fake-plivo-auth-token-42"
PUBLIC = "https://gateway.example.test"


def credentials(url: str) -> tuple[dict[str, str], str]:
    return {"PLIVO_AUTH_ID": AUTH_ID, "PLIVO_AUTH_TOKEN": TOKEN, "VOICEGW_PLIVO_API_URL": url,
            "VOICEGW_PUBLIC_URL": PUBLIC}, TOKEN


def peer(params: Mapping[str, str]) -> PhonePeer:
    return PlivoPeer(account_id=AUTH_ID, custom_parameters=params)


def _request(requests: Sequence[Recorded], call: str, method: str) -> Recorded:
    [request] = requests
    assert request.method == method
    assert request.path == f"/v1/Account/{AUTH_ID}/Call/{call}/"
    assert request.auth == "Basic " + base64.b64encode(f"{AUTH_ID}:{TOKEN}".encode()).decode()
    return request


def hung_up(requests: Sequence[Recorded], peer: PhonePeer) -> None:
    assert _request(requests, peer.call_id, "DELETE").body == b""


def transferred(requests: Sequence[Recorded], peer: PhonePeer, number: str) -> None:
    request = _request(requests, peer.call_id, "POST")
    assert request.content_type == "application/json"
    body = request.json
    assert (body["legs"], body["aleg_method"]) == ("aleg", "POST")
    link = urlsplit(body["aleg_url"])
    assert f"{link.scheme}://{link.netloc}{link.path}" == f"{PUBLIC}/plivo/transfer"
    # What Plivo then fetches there: a Dial to the number, and only that number.
    fetched = WebhookRequest("POST", (body["aleg_url"],), {},
                             query=tuple(parse_qsl(link.query)), now=time.time())
    assert transfer_links(TOKEN, PUBLIC).dial(fetched).body == dial_xml(number)


CASE = CarrierCase(Carrier.PLIVO, credentials, lambda: FakePlivo(AUTH_ID, TOKEN), peer,
                   hung_up, transferred)
