"""Each carrier's phone peer and stream core, by name, for the rig's commands."""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable, Mapping

from gateway.carriers.asterisk import AsteriskStream
from gateway.carriers.audiosocket import AudioSocketStream
from gateway.carriers.browser import BrowserStream
from gateway.carriers.core import Carrier, CarrierStream
from gateway.carriers.exotel import ExotelStream
from gateway.carriers.jambonz import JambonzStream
from gateway.carriers.plivo import PlivoStream
from gateway.carriers.telnyx import TelnyxStream
from gateway.carriers.twilio import TwilioStream
from gateway.carriers.vonage import VonageStream
from gateway.errors import ConfigError
from gateway.rig.peers import PhonePeer
from gateway.rig.peers.asterisk import AsteriskPeer
from gateway.rig.peers.audiosocket import audiosocket_peer
from gateway.rig.peers.browser import BrowserPeer
from gateway.rig.peers.exotel import ExotelPeer
from gateway.rig.peers.jambonz import JambonzPeer
from gateway.rig.peers.plivo import PlivoPeer
from gateway.rig.peers.telnyx import TelnyxPeer, new_key_pair
from gateway.rig.peers.twilio import TwilioPeer, signalwire_peer
from gateway.rig.peers.vonage import VonagePeer

# A new call's peer: its custom parameters, and the id the carrier names the call by (None:
# a fresh one; carriers whose ids the gateway mints ignore it).
PeerFactory = Callable[[Mapping[str, str], str | None], PhonePeer]

_PEERS: dict[Carrier, PeerFactory] = {
    Carrier.TWILIO: lambda params, call: TwilioPeer(call_sid=call, custom_parameters=params),
    Carrier.SIGNALWIRE: signalwire_peer,
    Carrier.TELNYX: lambda params, call: TelnyxPeer(call_control_id=call,
                                                    custom_parameters=params),
    Carrier.PLIVO: lambda params, call: PlivoPeer(call_uuid=call, custom_parameters=params),
    Carrier.VONAGE: lambda params, call: VonagePeer(params, call_uuid=call),
    Carrier.AUDIOSOCKET: lambda params, _: audiosocket_peer(params),
    Carrier.JAMBONZ: lambda params, call: JambonzPeer(params, call_sid=call),
    Carrier.EXOTEL: lambda params, call: ExotelPeer(call_sid=call, custom_parameters=params),
    Carrier.ASTERISK: lambda params, _: AsteriskPeer(params),
    Carrier.BROWSER: lambda params, _: BrowserPeer(params),
}
_STREAMS: dict[Carrier, Callable[[], CarrierStream]] = {
    Carrier.TWILIO: TwilioStream,
    Carrier.SIGNALWIRE: functools.partial(TwilioStream, carrier=Carrier.SIGNALWIRE),
    Carrier.TELNYX: TelnyxStream,
    Carrier.PLIVO: PlivoStream,
    Carrier.VONAGE: VonageStream,
    Carrier.AUDIOSOCKET: AudioSocketStream,
    Carrier.JAMBONZ: JambonzStream,
    Carrier.EXOTEL: ExotelStream,
    Carrier.ASTERISK: AsteriskStream,
    # A capture of a page's stream reads back under a fresh id (the gateway names its calls).
    Carrier.BROWSER: lambda: BrowserStream(f"BR{secrets.token_hex(16)}"),
}
# The environment variable with the secret the carrier signs its requests with, where the
# gateway holds the same secret (for Telnyx the gateway holds only a public key).
SECRET_ENV: dict[Carrier, str] = {
    Carrier.TWILIO: "TWILIO_AUTH_TOKEN",
    Carrier.SIGNALWIRE: "SIGNALWIRE_SIGNING_KEY",
    Carrier.PLIVO: "PLIVO_AUTH_TOKEN",
    Carrier.VONAGE: "VONAGE_SIGNATURE_SECRET",
    Carrier.JAMBONZ: "JAMBONZ_WEBHOOK_SECRET",
    Carrier.BROWSER: "VOICEGW_CONSOLE_TOKEN",  # the console's bearer token for scripts
}
# Where the carrier presents Basic credentials instead: the user's and the password's variables
# (the peer's secret is then ``user:password``).
BASIC_ENV: dict[Carrier, tuple[str, str]] = {
    Carrier.EXOTEL: ("EXOTEL_STREAM_USER", "EXOTEL_STREAM_PASSWORD"),
    Carrier.AUDIOSOCKET: ("VOICEGW_AUDIOSOCKET_USER", "VOICEGW_AUDIOSOCKET_PASSWORD"),
    Carrier.ASTERISK: ("ASTERISK_WS_USER", "ASTERISK_WS_PASSWORD"),
}


def env_secret(which: Carrier, env: Mapping[str, str]) -> str | None:
    """What the peer signs (or authenticates) with, from the gateway's own variables."""
    if which in BASIC_ENV:
        user, password = (env.get(name, "") for name in BASIC_ENV[which])
        return f"{user}:{password}" if user and password else None
    variable = SECRET_ENV.get(which)
    return (env.get(variable) if variable else None) or None


def _shared_secret(name: str) -> Callable[[], tuple[dict[str, str], str]]:
    def make() -> tuple[dict[str, str], str]:
        secret = secrets.token_hex(16)
        return {name: secret}, secret
    return make


def _basic_pair(user_env: str, password_env: str) -> Callable[[], tuple[dict[str, str], str]]:
    def make() -> tuple[dict[str, str], str]:
        user, password = "rig-" + secrets.token_hex(4), secrets.token_hex(16)
        return {user_env: user, password_env: password}, f"{user}:{password}"
    return make


def _console_token() -> tuple[dict[str, str], str]:
    token = secrets.token_urlsafe(32)
    return {"VOICEGW_CONSOLE": "on", "VOICEGW_CONSOLE_TOKEN": token}, token


def _telnyx_key_pair() -> tuple[dict[str, str], str]:
    public, private = new_key_pair()
    return {"TELNYX_PUBLIC_KEY": public}, private


# Fresh signing credentials for a gateway the rig starts itself: (its environment, what the
# peer signs with).
_TEST_CREDENTIALS: dict[Carrier, Callable[[], tuple[dict[str, str], str]]] = {
    Carrier.TWILIO: _shared_secret("TWILIO_AUTH_TOKEN"),
    Carrier.SIGNALWIRE: _shared_secret("SIGNALWIRE_SIGNING_KEY"),
    Carrier.TELNYX: _telnyx_key_pair,
    Carrier.PLIVO: _shared_secret("PLIVO_AUTH_TOKEN"),
    Carrier.VONAGE: _shared_secret("VONAGE_SIGNATURE_SECRET"),
    Carrier.AUDIOSOCKET: _basic_pair(*BASIC_ENV[Carrier.AUDIOSOCKET]),
    Carrier.JAMBONZ: _shared_secret("JAMBONZ_WEBHOOK_SECRET"),
    Carrier.EXOTEL: _basic_pair(*BASIC_ENV[Carrier.EXOTEL]),
    Carrier.ASTERISK: _basic_pair(*BASIC_ENV[Carrier.ASTERISK]),
    Carrier.BROWSER: _console_token,
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


def new_peer(which: Carrier, parameters: Mapping[str, str] | None = None,
             call_id: str | None = None) -> PhonePeer:
    """A new call at ``which``, with these custom parameters (From and To among them), named
    ``call_id`` where the carrier names it (a call its API placed), else a fresh id."""
    return _PEERS[which](dict(parameters or {}), call_id)


def stream_core(which: Carrier) -> CarrierStream:
    """The gateway's own sans-I/O core for ``which`` (to read a capture back)."""
    return _STREAMS[which]()


def test_credentials(which: Carrier) -> tuple[dict[str, str], str]:
    """New signing credentials: the gateway's environment, and the peer's secret."""
    return _TEST_CREDENTIALS[which]()
