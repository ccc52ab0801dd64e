"""The browser carrier (the console's talk page), for the carrier-neutral tests: no answer
webhook (the page opens the socket), no REST API (the fake serves nothing: the gateway ends a
call with ``ended`` and a close), no transfer, no phone numbers. Its upgrade is an operator's:
here a bearer token checked as the console checks a script's (:func:`operator`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from gateway.carriers.core import Carrier
from gateway.console.auth import Authorize
from gateway.rig.peers import PhonePeer
from gateway.rig.peers.browser import BrowserPeer, operator_check
from gateway.rig.rest_fakes import Recorded
from tests.cases import CarrierCase
from tests.cases.asterisk import NoApi

TOKEN: Final = "console-token-for-tests-0123456789abcdef"


def operator(token: str = TOKEN) -> Authorize:
    """The console's operator check, as far as a script's bearer token goes."""
    return operator_check(token)


def credentials(url: str) -> tuple[dict[str, str], str]:
    return {"VOICEGW_CONSOLE": "on", "VOICEGW_CONSOLE_TOKEN": TOKEN}, TOKEN


def peer(params: Mapping[str, str]) -> PhonePeer:
    return BrowserPeer(params)


def hung_up(requests: Sequence[Recorded], peer: PhonePeer) -> None:
    assert requests == []  # no REST call: the gateway said so on the socket, then closed
    assert isinstance(peer, BrowserPeer)
    assert peer.ended is not None and peer.ended["end_kind"] == "agent_ended"


def transferred(requests: Sequence[Recorded], peer: PhonePeer, number: str) -> None:
    raise AssertionError("a browser call cannot be transferred")


CASE = CarrierCase(Carrier.BROWSER, credentials, NoApi, peer, hung_up, transferred,
                   transfers=False, answers=False, tokens=False, numbers=False)
