"""Telnyx, for the carrier-neutral tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from gateway.carriers.core import Carrier
from gateway.rig.peers import PhonePeer
from gateway.rig.peers.telnyx import TelnyxPeer, new_key_pair
from gateway.rig.rest_fakes import Recorded
from gateway.rig.rest_fakes.telnyx import FakeTelnyx
from tests.cases import CarrierCase

API_KEY = "KEY0123456789ABCDEF_fake-telnyx-api-key"


def credentials(url: str) -> tuple[dict[str, str], str]:
    public, private = new_key_pair()
    return {"TELNYX_PUBLIC_KEY": public, "TELNYX_API_KEY": API_KEY,
            "VOICEGW_TELNYX_API_URL": url}, private


def peer(params: Mapping[str, str]) -> PhonePeer:
    return TelnyxPeer(custom_parameters=params)


def _command(requests: Sequence[Recorded], peer: PhonePeer, action: str) -> dict[str, str]:
    [request] = requests
    assert request.method == "POST"
    assert request.path == f"/v2/calls/{peer.call_id}/actions/{action}"
    assert request.auth == f"Bearer {API_KEY}"
    assert request.content_type == "application/json"
    body = dict(request.json)
    assert body.pop("command_id")  # makes the command idempotent across retries
    return body


def hung_up(requests: Sequence[Recorded], peer: PhonePeer) -> None:
    assert _command(requests, peer, "hangup") == {}


def transferred(requests: Sequence[Recorded], peer: PhonePeer, number: str) -> None:
    assert _command(requests, peer, "transfer") == {"to": number}


CASE = CarrierCase(Carrier.TELNYX, credentials, lambda: FakeTelnyx(API_KEY), peer, hung_up,
                   transferred)
