"""Twilio, for the carrier-neutral tests."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence

from gateway.carriers.core import Carrier
from gateway.rig.peers import PhonePeer
from gateway.rig.peers.twilio import TwilioPeer
from gateway.rig.rest_fakes import Recorded
from gateway.rig.rest_fakes.twilio import FakeTwilio
from tests.cases import CarrierCase

ACCOUNT = "AC" + "5" * 32
TOKEN = "fake-twilio-auth-token-42"


def credentials(url: str) -> tuple[dict[str, str], str]:
    return {"TWILIO_AUTH_TOKEN": TOKEN, "TWILIO_ACCOUNT_SID": ACCOUNT,
            "VOICEGW_TWILIO_API_URL": url}, TOKEN


def peer(params: Mapping[str, str]) -> PhonePeer:
    return TwilioPeer(account_sid=ACCOUNT, custom_parameters=params)


def _request(requests: Sequence[Recorded], call: str) -> Recorded:
    [request] = requests
    assert request.method == "POST"
    assert request.path == f"/2010-04-01/Accounts/{ACCOUNT}/Calls/{call}.json"
    assert request.auth == "Basic " + base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()
    assert request.content_type == "application/x-www-form-urlencoded"
    return request


def hung_up(requests: Sequence[Recorded], peer: PhonePeer) -> None:
    assert _request(requests, peer.call_id).form == {"Status": "completed"}


def transferred(requests: Sequence[Recorded], peer: PhonePeer, number: str) -> None:
    assert _request(requests, peer.call_id).form == {
        "Twiml": f"<Response><Dial>{number}</Dial></Response>"}


CASE = CarrierCase(Carrier.TWILIO, credentials, lambda: FakeTwilio(ACCOUNT, ACCOUNT, TOKEN),
                   peer, hung_up, transferred)
