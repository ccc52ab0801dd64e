"""Asterisk's WebSocket channel driver, for the carrier-neutral tests: no answer webhook (the
dialplan dials the socket, Basic credentials on its upgrade), no REST API (the fake serves
nothing: a hang-up is ``HANGUP`` on the socket), no transfer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from aiohttp import web

from gateway.carriers.core import Carrier
from gateway.rig.peers import PhonePeer
from gateway.rig.peers.asterisk import AsteriskPeer
from gateway.rig.rest_fakes import Recorded
from tests.cases import CarrierCase

USER: Final = "asterisk-media"
PASSWORD: Final = "fake-asterisk-password-0123456789"


class NoApi:
    """Asterisk's media calls need no REST API: nothing here, and nothing may be asked."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []

    def app(self) -> web.Application:
        return web.Application()


def credentials(url: str) -> tuple[dict[str, str], str]:
    return {"ASTERISK_WS_USER": USER, "ASTERISK_WS_PASSWORD": PASSWORD}, f"{USER}:{PASSWORD}"


def peer(params: Mapping[str, str]) -> PhonePeer:
    return AsteriskPeer(params)


def hung_up(requests: Sequence[Recorded], peer: PhonePeer) -> None:
    assert requests == []  # no REST call: the hang-up went on the socket
    assert isinstance(peer, AsteriskPeer)
    assert peer.hangups == 1


def transferred(requests: Sequence[Recorded], peer: PhonePeer, number: str) -> None:
    raise AssertionError("Asterisk's media socket cannot transfer")


CASE = CarrierCase(Carrier.ASTERISK, credentials, NoApi, peer, hung_up, transferred,
                   transfers=False, answers=False, tokens=False, signs_upgrade=True)
