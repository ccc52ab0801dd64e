"""Vonage, for the carrier-neutral tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.carriers.core import Carrier
from gateway.rig.peers import PhonePeer
from gateway.rig.peers.vonage import VonagePeer
from gateway.rig.rest_fakes import Recorded
from gateway.rig.rest_fakes.vonage import FakeVonage
from tests.cases import CarrierCase

APPLICATION_ID: Final = "aaaaaaaa-bbbb-cccc-dddd-0123456789ab"
SECRET: Final = "fake-vonage-signature-secret-0123456789"
KEY: Final = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PEM: Final = KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption()).decode()


def credentials(url: str) -> tuple[dict[str, str], str]:
    return {"VONAGE_SIGNATURE_SECRET": SECRET, "VONAGE_APPLICATION_ID": APPLICATION_ID,
            "VONAGE_PRIVATE_KEY": PEM, "VOICEGW_VONAGE_API_URL": url}, SECRET


def peer(params: Mapping[str, str]) -> PhonePeer:
    return VonagePeer(params, application_id=APPLICATION_ID)


def _request(requests: Sequence[Recorded], call: str) -> Recorded:
    [request] = requests
    assert request.method == "PUT"
    assert request.path == f"/v1/calls/{call}"
    assert request.auth is not None and request.auth.startswith("Bearer ")  # checked by the fake
    assert request.content_type == "application/json"
    return request


def hung_up(requests: Sequence[Recorded], peer: PhonePeer) -> None:
    assert _request(requests, peer.call_id).json == {"action": "hangup"}


def transferred(requests: Sequence[Recorded], peer: PhonePeer, number: str) -> None:
    # Vonage writes E.164 numbers without the "+".
    assert _request(requests, peer.call_id).json == {
        "action": "transfer", "destination": {"type": "ncco", "ncco": [
            {"action": "connect", "endpoint": [{"type": "phone",
                                                "number": number.removeprefix("+")}]}]}}


CASE = CarrierCase(Carrier.VONAGE, credentials,
                   lambda: FakeVonage(APPLICATION_ID, KEY.public_key()), peer, hung_up,
                   transferred)
