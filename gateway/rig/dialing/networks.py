"""Every carrier that places calls, its network faked with fresh credentials (test and demo
tooling): :func:`carrier_part` gives the :class:`~gateway.rig.dialing.network.CarrierPart`
for one, whose ``environment`` configures the gateway to match."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Final

from gateway.carriers.core import Carrier
from gateway.rig.dialing.exotel_net import ExotelPart
from gateway.rig.dialing.jambonz_net import JambonzPart
from gateway.rig.dialing.network import CarrierPart
from gateway.rig.dialing.plivo_net import PlivoPart
from gateway.rig.dialing.telnyx_net import TelnyxPart
from gateway.rig.dialing.twilio_net import TwimlPart
from gateway.rig.dialing.vonage_net import VonagePart


def _secret() -> str:
    return secrets.token_hex(16)


_PARTS: Final[dict[Carrier, Callable[[str], CarrierPart]]] = {
    Carrier.TWILIO: lambda _: TwimlPart("AC" + secrets.token_hex(16), t := _secret(), t),
    Carrier.SIGNALWIRE: lambda _: TwimlPart(
        "5e1f0c2a-9d3b-4c1e-8f7a-0b1c2d3e4f5a", _secret(), _secret(), Carrier.SIGNALWIRE),
    Carrier.TELNYX: lambda _: TelnyxPart("KEY" + _secret()),
    Carrier.PLIVO: lambda _: PlivoPart("MA" + secrets.token_hex(9).upper(), _secret()),
    Carrier.VONAGE: lambda _: VonagePart(_secret()),
    Carrier.JAMBONZ: lambda _: JambonzPart("acct-" + secrets.token_hex(4), _secret(),
                                           _secret()),
    Carrier.EXOTEL: lambda gateway: ExotelPart(
        "rig" + secrets.token_hex(4), "key-" + secrets.token_hex(4), _secret(),
        "rig-" + secrets.token_hex(4), _secret(), f"{gateway}/exotel/answer"),
}
DIALING: Final = tuple(_PARTS)  # the carriers whose networks are faked


def carrier_part(carrier: Carrier, gateway_url: str) -> CarrierPart:
    """``carrier``'s network, for a gateway at ``gateway_url``."""
    return _PARTS[carrier](gateway_url.rstrip("/"))
