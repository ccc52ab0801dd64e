"""Which carriers this gateway serves, and with what: built once at start-up from the
environment (the adapter layer: credentials in, signature checks and REST clients out).

Each provider has a module here whose ``from_env`` returns its :class:`CarrierSetup`: its
sans-I/O stream and webhook cores, its signature checks (``None`` when its signing secret is
not set) and its REST client for call control (``None`` without REST credentials). Which of
them are served is decided by :func:`enabled`:

* a provider whose signing secret is set is always served, signed;
* once any is, the others are served only with ``--allow-unsigned``;
* when none is (development), all are served unsigned, on loopback or with
  ``--allow-unsigned``; anywhere else the gateway refuses to start.

A provider that is not served answers 404 on its routes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from gateway.carrier_setup import (
    asterisk,
    exotel,
    jambonz,
    plivo,
    signalwire,
    telnyx,
    twilio,
    vonage,
)
from gateway.carrier_setup.base import CarrierSetup, ExtraHook, FromEnv
from gateway.carriers.core import Carrier
from gateway.errors import ConfigError

__all__ = ["PROVIDERS", "CarrierSetup", "ExtraHook", "FromEnv", "all_setups", "enabled"]

PROVIDERS: dict[Carrier, FromEnv] = {
    Carrier.TWILIO: twilio.from_env,
    Carrier.SIGNALWIRE: signalwire.from_env,
    Carrier.TELNYX: telnyx.from_env,
    Carrier.PLIVO: plivo.from_env,
    Carrier.VONAGE: vonage.from_env,
    Carrier.JAMBONZ: jambonz.from_env,
    Carrier.EXOTEL: exotel.from_env,
    Carrier.ASTERISK: asterisk.from_env,
}


def all_setups(env: Mapping[str, str] | None = None) -> dict[Carrier, CarrierSetup]:
    env = os.environ if env is None else env
    return {carrier: build(env) for carrier, build in PROVIDERS.items()}


def enabled(setups: Mapping[Carrier, CarrierSetup], *, allow_unsigned: bool,
            loopback: bool) -> dict[Carrier, CarrierSetup]:
    """The carriers to serve (see the module's docstring)."""
    signed = {c: s for c, s in setups.items() if s.signed}
    if allow_unsigned:
        return dict(setups)
    if signed:
        return signed
    if loopback:
        return dict(setups)
    raise ConfigError(
        "refusing to serve unsigned carriers beyond loopback: anyone could place calls on "
        "your Live API account. Set a carrier's signing secret (TWILIO_AUTH_TOKEN, "
        "SIGNALWIRE_SIGNING_KEY, TELNYX_PUBLIC_KEY, PLIVO_AUTH_TOKEN, VONAGE_SIGNATURE_SECRET, "
        "JAMBONZ_WEBHOOK_SECRET, EXOTEL_STREAM_USER with EXOTEL_STREAM_PASSWORD, or "
        "ASTERISK_WS_USER with ASTERISK_WS_PASSWORD) to check its requests, or pass "
        "--allow-unsigned if something in front of the gateway authenticates requests")
