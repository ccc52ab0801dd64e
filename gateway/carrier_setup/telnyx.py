"""Telnyx: TeXML answer, media streaming in RTP mode, Ed25519 webhook signatures, Call
Control for hanging up and transferring, the TeXML Calls API for placing calls."""

from __future__ import annotations

import functools
from collections.abc import Mapping

from gateway.audio import AudioFormat
from gateway.carrier_setup.base import CarrierSetup
from gateway.carriers.core import Carrier
from gateway.carriers.telnyx import DEFAULT_FORMAT, FORMATS, TelnyxStream
from gateway.carriers.telnyx_hooks import TelnyxHooks, TelnyxSignature, public_key, read_progress
from gateway.errors import ConfigError
from gateway.rest.telnyx import DEFAULT_BASE_URL, TelnyxRest, TexmlApp, api_key_from_env


def audio_format(env: Mapping[str, str]) -> AudioFormat:
    """``VOICEGW_TELNYX_CODEC``: ``L16`` (16 kHz, the default), ``PCMU`` or ``PCMA`` (8 kHz)."""
    name = env.get("VOICEGW_TELNYX_CODEC", "").strip().upper()
    if not name:
        return DEFAULT_FORMAT
    try:
        return FORMATS[name]
    except KeyError:
        raise ConfigError(f"VOICEGW_TELNYX_CODEC={name[:16]!r}: choose one of "
                          f"{', '.join(FORMATS)}") from None


def from_env(env: Mapping[str, str]) -> CarrierSetup:
    """``TELNYX_PUBLIC_KEY`` checks webhook signatures (Telnyx signs no media upgrade: the
    per-call token guards the socket); ``TELNYX_API_KEY`` hangs up and transfers, through
    ``VOICEGW_TELNYX_API_URL`` (default Telnyx's). With it, ``VOICEGW_TELNYX_ACCOUNT_SID`` (the
    account's id, ``AccountSid`` in Telnyx's webhooks) and ``VOICEGW_TELNYX_APPLICATION_ID``
    (the TeXML application's id, whose connection places the calls) place calls."""
    fmt = audio_format(env)
    key = env.get("TELNYX_PUBLIC_KEY", "").strip()
    verify = TelnyxSignature(public_key(key)) if key else None
    api_key = api_key_from_env(env)
    base = env.get("VOICEGW_TELNYX_API_URL", "").strip() or DEFAULT_BASE_URL
    texml = TexmlApp.from_env(env)
    if texml is not None and not api_key:
        raise ConfigError("placing Telnyx calls needs TELNYX_API_KEY too")
    rest = TelnyxRest(api_key, base_url=base, texml=texml) if api_key else None
    return CarrierSetup(
        carrier=Carrier.TELNYX, new_stream=functools.partial(TelnyxStream, outbound=fmt),
        hooks=TelnyxHooks(fmt), verify=verify, verify_upgrade=None, call_control=rest,
        dialer=rest if texml is not None else None, read_progress=read_progress)
