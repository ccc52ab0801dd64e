"""jambonz, for the carrier-neutral tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final
from urllib.parse import parse_qs, urlsplit

from gateway.carriers.core import Carrier
from gateway.rig.peers import PhonePeer
from gateway.rig.peers.jambonz import ACCOUNT_SID, JambonzPeer
from gateway.rig.rest_fakes import Recorded
from gateway.rig.rest_fakes.jambonz import FakeJambonz
from tests.cases import CarrierCase

SECRET: Final = "fake-jambonz-webhook-secret-0123456789"
API_KEY: Final = "fake-jambonz-api-key-0123456789abcdef"
# Where jambonz would fetch the transfer's verbs: the gateway's public URL (never fetched here).
PUBLIC_URL: Final = "https://gw.example.com"


def credentials(url: str) -> tuple[dict[str, str], str]:
    return {"JAMBONZ_WEBHOOK_SECRET": SECRET, "JAMBONZ_ACCOUNT_SID": ACCOUNT_SID,
            "JAMBONZ_API_KEY": API_KEY, "VOICEGW_JAMBONZ_API_URL": url,
            "VOICEGW_PUBLIC_URL": PUBLIC_URL}, SECRET


def peer(params: Mapping[str, str]) -> PhonePeer:
    return JambonzPeer(params)


def _request(requests: Sequence[Recorded], call: str) -> Recorded:
    [request] = requests
    assert request.method == "PUT"
    assert request.path == f"/v1/Accounts/{ACCOUNT_SID}/Calls/{call}"
    assert request.auth == f"Bearer {API_KEY}"
    assert request.content_type == "application/json"
    return request


def hung_up(requests: Sequence[Recorded], peer: PhonePeer) -> None:
    assert _request(requests, peer.call_id).json == {"call_status": "completed"}


def transferred(requests: Sequence[Recorded], peer: PhonePeer, number: str) -> None:
    body = _request(requests, peer.call_id).json
    hook = body["call_hook"]
    assert set(body) == {"call_hook"} and hook["method"] == "POST"
    link = urlsplit(hook["url"])
    assert f"{link.scheme}://{link.netloc}{link.path}" == f"{PUBLIC_URL}/jambonz/transfer"
    assert parse_qs(link.query)["number"] == [number]


CASE = CarrierCase(Carrier.JAMBONZ, credentials, lambda: FakeJambonz(ACCOUNT_SID, API_KEY),
                   peer, hung_up, transferred)
