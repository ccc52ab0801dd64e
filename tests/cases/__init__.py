"""What the carrier-neutral tests need to know of each carrier: its fake REST API, the
credentials a gateway and its phone peer share, and what a hang-up and a transfer look like
on the wire. One module per carrier; :data:`CASES` lists them, so every test parametrized
over it runs for every carrier."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from gateway.carrier_setup import all_setups
from gateway.carriers.core import Carrier
from gateway.rig.peers import PhonePeer
from gateway.rig.rest_fakes import Recorded


class FakeApi(Protocol):
    requests: list[Recorded]

    def app(self) -> web.Application: ...


@dataclass(frozen=True)
class CarrierCase:
    carrier: Carrier
    # Fake REST base URL -> (the gateway's environment: signing secret, REST credentials and
    # base URL; the secret the phone peer signs with).
    credentials: Callable[[str], tuple[dict[str, str], str]]
    fake: Callable[[], FakeApi]
    peer: Callable[[Mapping[str, str]], PhonePeer]
    # Assert that ``requests`` are exactly one hang-up / one transfer to ``number`` of the
    # peer's call.
    hung_up: Callable[[Sequence[Recorded], PhonePeer], None]
    transferred: Callable[[Sequence[Recorded], PhonePeer, str], None]
    transfers: bool = True  # the carrier can transfer a call at all
    # It fetches an answer document from the gateway (else, a PBX, it dials the socket).
    answers: bool = True
    # Its streams carry a per-call token from the answer document.
    tokens: bool = True
    # The media socket's upgrade carries the carrier's credentials, checked before anything.
    signs_upgrade: bool = False
    # Its calls carry the caller's and the dialled numbers (the browser's have none).
    numbers: bool = True

    def __str__(self) -> str:
        return self.carrier.value

    def gateway_options(self, env: Mapping[str, str]) -> dict[str, Any]:
        """What a :class:`gateway.server.Gateway` serving only this carrier is given, from
        the environment ``credentials`` made."""
        if self.carrier is Carrier.BROWSER:  # behind the console's operator check
            from tests.cases.browser import operator  # here: it imports this module

            return {"carriers": {}, "browser": operator(env["VOICEGW_CONSOLE_TOKEN"])}
        setup = all_setups(env)[self.carrier]
        assert setup.signed
        return {"carriers": {self.carrier: setup}}


def _cases() -> list[CarrierCase]:
    # Imported here: each case module imports CarrierCase from this one.
    from tests.cases import (
        asterisk,
        browser,
        exotel,
        jambonz,
        plivo,
        signalwire,
        telnyx,
        twilio,
        vonage,
    )

    return [twilio.CASE, signalwire.CASE, telnyx.CASE, plivo.CASE, vonage.CASE, jambonz.CASE,
            exotel.CASE, asterisk.CASE, browser.CASE]


CASES: list[CarrierCase] = _cases()
