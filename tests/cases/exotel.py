"""Exotel (the Voicebot applet), for the carrier-neutral tests.

The applet's URL carries Basic credentials, which the peer presents as ``user:password``.
Exotel has no REST hang-up or transfer for a call the applet holds: the gateway ends the call
by closing the stream (the flow's next applet hangs up), so a hang-up sends no request to the
API, and the transfer tool is not offered.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from gateway.carriers.core import Carrier
from gateway.rig.peers import PhonePeer
from gateway.rig.peers.exotel import ExotelPeer
from gateway.rig.rest_fakes import Recorded
from gateway.rig.rest_fakes.exotel import FakeExotel
from tests.cases import CarrierCase

ACCOUNT = "exoteltest1"
USER, PASSWORD = "voicegw-exotel", "fake-exotel-stream-password-42"


def credentials(url: str) -> tuple[dict[str, str], str]:
    # The API's credentials are given too: the gateway has no use for them (no REST call
    # control), which the hang-up test shows.
    return {"EXOTEL_STREAM_USER": USER, "EXOTEL_STREAM_PASSWORD": PASSWORD,
            "EXOTEL_ACCOUNT_SID": ACCOUNT, "EXOTEL_API_KEY": "key", "EXOTEL_API_TOKEN": "t",
            "VOICEGW_EXOTEL_API_URL": url}, f"{USER}:{PASSWORD}"


def peer(params: Mapping[str, str]) -> PhonePeer:
    return ExotelPeer(account_sid=ACCOUNT, custom_parameters=params)


def hung_up(requests: Sequence[Recorded], peer: PhonePeer) -> None:
    assert list(requests) == []  # the stream was closed: nothing to ask Exotel


def transferred(requests: Sequence[Recorded], peer: PhonePeer, number: str) -> None:
    raise AssertionError("Exotel cannot transfer a Voicebot call")


CASE = CarrierCase(Carrier.EXOTEL, credentials, lambda: FakeExotel(ACCOUNT, "key", "t"), peer,
                   hung_up, transferred, transfers=False)
