"""Each carrier's phone peer and stream core, by name, for the rig's commands."""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable, Mapping

from gateway.carriers.asterisk import AsteriskStream
from gateway.carriers.core import Carrier, CarrierStream
from gateway.carriers.plivo import PlivoStream
from gateway.carriers.telnyx import TelnyxStream
from gateway.carriers.twilio import TwilioStream
from gateway.carriers.vonage import VonageStream
from gateway.errors import ConfigError
from gateway.rig.peers import PhonePeer
from gateway.rig.peers.asterisk import DEFAULT_USER, AsteriskPeer
from gateway.rig.peers.plivo import PlivoPeer
from gateway.rig.peers.telnyx import TelnyxPeer, new_key_pair
from gateway.rig.peers.twilio import TwilioPeer, signalwire_peer
from gateway.rig.peers.vonage import VonagePeer

PeerFactory = Callable[[Mapping[str, str]], PhonePeer]

_PEERS: dict[Carrier, PeerFactory] = {
    Carrier.TWILIO: lambda params: TwilioPeer(custom_parameters=params),
    Carrier.SIGNALWIRE: signalwire_peer,
    Carrier.TELNYX: lambda params: TelnyxPeer(custom_parameters=params),
    Carrier.PLIVO: lambda params: PlivoPeer(custom_parameters=params),
    Carrier.VONAGE: VonagePeer,
    Carrier.ASTERISK: AsteriskPeer,
}
_STREAMS: dict[Carrier, Callable[[], CarrierStream]] = {
    Carrier.TWILIO: TwilioStream,
    Carrier.SIGNALWIRE: functools.partial(TwilioStream, carrier=Carrier.SIGNALWIRE),
    Carrier.TELNYX: TelnyxStream,
    Carrier.PLIVO: PlivoStream,
    Carrier.VONAGE: VonageStream,
    Carrier.ASTERISK: AsteriskStream,
}
# The environment variable with the secret the carrier signs its requests with, where the
# gateway holds the same secret (for Telnyx the gateway holds only a public key).
SECRET_ENV: dict[Carrier, str] = {
    Carrier.TWILIO: "TWILIO_AUTH_TOKEN",
    Carrier.SIGNALWIRE: "SIGNALWIRE_SIGNING_KEY",
    Carrier.PLIVO: "PLIVO_AUTH_TOKEN",
    Carrier.VONAGE: "VONAGE_SIGNATURE_SECRET",
    Carrier.ASTERISK: "ASTERISK_WS_PASSWORD",  # with ASTERISK_WS_USER
}


def _shared_secret(name: str) -> Callable[[], tuple[dict[str, str], str]]:
    def make() -> tuple[dict[str, str], str]:
        secret = secrets.token_hex(16)
        return {name: secret}, secret
    return make


def _telnyx_key_pair() -> tuple[dict[str, str], str]:
    public, private = new_key_pair()
    return {"TELNYX_PUBLIC_KEY": public}, private


def _asterisk_credentials() -> tuple[dict[str, str], str]:
    password = secrets.token_hex(16)
    return ({"ASTERISK_WS_USER": DEFAULT_USER, "ASTERISK_WS_PASSWORD": password},
            f"{DEFAULT_USER}:{password}")


# Fresh signing credentials for a gateway the rig starts itself: (its environment, what the
# peer signs with).
_TEST_CREDENTIALS: dict[Carrier, Callable[[], tuple[dict[str, str], str]]] = {
    Carrier.TWILIO: _shared_secret("TWILIO_AUTH_TOKEN"),
    Carrier.SIGNALWIRE: _shared_secret("SIGNALWIRE_SIGNING_KEY"),
    Carrier.TELNYX: _telnyx_key_pair,
    Carrier.PLIVO: _shared_secret("PLIVO_AUTH_TOKEN"),
    Carrier.VONAGE: _shared_secret("VONAGE_SIGNATURE_SECRET"),
    Carrier.ASTERISK: _asterisk_credentials,
}


def carriers() -> list[str]:
    """The carriers the rig can play, by name."""
    return [c.value for c in _PEERS]


def carrier(name: str) -> Carrier:
    try:
        found = Carrier(name)
    except ValueError:
        found = None
    if found is None or found not in _PEERS:
        raise ConfigError(f"unknown carrier {name!r}; choose from {', '.join(carriers())}")
    return found


def new_peer(which: Carrier, parameters: Mapping[str, str] | None = None) -> PhonePeer:
    """A new call at ``which``, with these custom parameters (From and To among them)."""
    return _PEERS[which](dict(parameters or {}))


def stream_core(which: Carrier) -> CarrierStream:
    """The gateway's own sans-I/O core for ``which`` (to read a capture back)."""
    return _STREAMS[which]()


def test_credentials(which: Carrier) -> tuple[dict[str, str], str]:
    """New signing credentials: the gateway's environment, and the peer's secret."""
    return _TEST_CREDENTIALS[which]()
