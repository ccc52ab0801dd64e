"""Asterisk's WebSocket channel driver: no answer webhook (the dialplan dials the gateway's
socket), HTTP Basic credentials on the socket's upgrade, hang-up in band (``HANGUP``).

No dialer: placing a call on Asterisk means originating a channel through ARI (or AMI) and
bridging it to the WebSocket channel, an API and credentials this gateway does not hold; a
dialplan (``Originate``, a call file) can still place calls that dial the gateway's socket.
AudioSocket and the browser carrier have no carrier at all to ask: nothing to place calls
with."""

from __future__ import annotations

import functools
from collections.abc import Mapping

from gateway.carrier_setup.base import CarrierSetup
from gateway.carriers.asterisk import AsteriskStream, stream_factory
from gateway.carriers.basic_auth import BasicAuthCheck
from gateway.carriers.core import Carrier
from gateway.errors import ConfigError
from gateway.log import register_secret

_OFF = frozenset({"0", "false", "no", "off"})


def from_env(env: Mapping[str, str]) -> CarrierSetup:
    """``ASTERISK_WS_USER`` and ``ASTERISK_WS_PASSWORD`` (the ``username`` and ``password``
    of the connection in ``websocket_client.conf``): every media upgrade must carry them as
    Basic credentials. ``VOICEGW_ASTERISK_MARKS=off`` for releases before ``MARK_MEDIA``
    (the gateway then times playback itself)."""
    user = env.get("ASTERISK_WS_USER", "").strip()
    password = env.get("ASTERISK_WS_PASSWORD", "").strip()
    if bool(user) != bool(password):
        raise ConfigError("Asterisk's socket needs ASTERISK_WS_USER and ASTERISK_WS_PASSWORD "
                          "together")
    upgrade = None
    if user:
        register_secret(password)
        try:
            upgrade = BasicAuthCheck(user, password)
        except ValueError as exc:
            raise ConfigError(f"ASTERISK_WS_USER: {exc}") from None
    marks = env.get("VOICEGW_ASTERISK_MARKS", "").strip().lower() not in _OFF
    return CarrierSetup(
        carrier=Carrier.ASTERISK, new_stream=functools.partial(AsteriskStream, marks=marks),
        hooks=None, verify_upgrade=upgrade, stream_tokens=False,
        new_stream_for_url=stream_factory(marks=marks))
