"""SignalWire, for the carrier-neutral tests."""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping, Sequence
from urllib.parse import parse_qsl, urlsplit

from gateway.carriers.core import Carrier
from gateway.carriers.hooks import WebhookRequest
from gateway.carriers.signalwire import dial_cxml, transfer_links
from gateway.rig.peers import PhonePeer
from gateway.rig.peers.twilio import signalwire_peer
from gateway.rig.rest_fakes import Recorded
from gateway.rig.rest_fakes.twilio import FakeTwilio
from tests.cases import CarrierCase

PROJECT = "4b7ae78a-d02e-4889-a63b-08b156d5916e"
API_TOKEN = "PT-fake-signalwire-api-token-42"
SIGNING_KEY = "PSK_fake_signalwire_signing_key"
PUBLIC = "https://gateway.example.test"


def credentials(url: str) -> tuple[dict[str, str], str]:
    return {"SIGNALWIRE_SIGNING_KEY": SIGNING_KEY, "SIGNALWIRE_PROJECT_ID": PROJECT,
            "SIGNALWIRE_API_TOKEN": API_TOKEN, "VOICEGW_SIGNALWIRE_API_URL": url + "/api/laml",
            "VOICEGW_PUBLIC_URL": PUBLIC}, SIGNING_KEY


def _request(requests: Sequence[Recorded], call: str) -> Recorded:
    [request] = requests
    assert request.method == "POST"
    assert request.path == f"/api/laml/2010-04-01/Accounts/{PROJECT}/Calls/{call}.json"
    assert request.auth == "Basic " + base64.b64encode(
        f"{PROJECT}:{API_TOKEN}".encode()).decode()
    assert request.content_type == "application/x-www-form-urlencoded"
    return request


def hung_up(requests: Sequence[Recorded], peer: PhonePeer) -> None:
    assert _request(requests, peer.call_id).form == {"Status": "completed"}


def transferred(requests: Sequence[Recorded], peer: PhonePeer, number: str) -> None:
    form = _request(requests, peer.call_id).form
    assert form["Method"] == "POST"
    link = urlsplit(form["Url"])
    assert f"{link.scheme}://{link.netloc}{link.path}" == f"{PUBLIC}/signalwire/transfer"
    # What SignalWire then fetches there: a Dial to the number, and only that number.
    fetched = WebhookRequest("POST", (form["Url"],), {}, query=tuple(parse_qsl(link.query)),
                             now=time.time())
    assert transfer_links(API_TOKEN, PUBLIC).dial(fetched) == dial_cxml(number)


def peer(params: Mapping[str, str]) -> PhonePeer:
    return signalwire_peer(params)


CASE = CarrierCase(Carrier.SIGNALWIRE, credentials,
                   lambda: FakeTwilio(PROJECT, PROJECT, API_TOKEN, prefix="/api/laml"), peer,
                   hung_up, transferred)
