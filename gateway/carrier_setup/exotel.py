"""Exotel: the Voicebot applet's dynamic stream URL and bidirectional stream, Basic credentials
on both. Exotel has no REST call to end or transfer a call the applet holds: the gateway ends
one by closing the stream, and the flow goes on to its next applet. It places calls into a
call flow (:mod:`gateway.rest.exotel`) whose Voicebot applet streams to the gateway."""

from __future__ import annotations

from collections.abc import Mapping

from gateway.carrier_setup.base import CarrierSetup
from gateway.carriers.basic_auth import BasicAuthCheck
from gateway.carriers.core import Carrier
from gateway.carriers.exotel import DEFAULT_RATE, RATES, ExotelStream
from gateway.carriers.exotel_hooks import ExotelHooks, read_progress
from gateway.errors import ConfigError
from gateway.log import register_secret
from gateway.rest.exotel import DEFAULT_BASE_URL, ExotelCredentials, ExotelRest


def sample_rate(env: Mapping[str, str]) -> int:
    """``VOICEGW_EXOTEL_SAMPLE_RATE``: what the stream URL asks Exotel for (default 16000)."""
    text = env.get("VOICEGW_EXOTEL_SAMPLE_RATE", "").strip()
    if not text:
        return DEFAULT_RATE
    if not text.isdigit() or int(text) not in RATES:
        raise ConfigError(f"VOICEGW_EXOTEL_SAMPLE_RATE must be one of "
                          f"{', '.join(map(str, RATES))}")
    return int(text)


def from_env(env: Mapping[str, str]) -> CarrierSetup:
    """``EXOTEL_STREAM_USER`` and ``EXOTEL_STREAM_PASSWORD``: the Basic credentials the
    applet's answer request and the stream's upgrade must carry (both or neither).
    ``EXOTEL_ACCOUNT_SID``, ``EXOTEL_API_KEY``, ``EXOTEL_API_TOKEN`` and
    ``VOICEGW_EXOTEL_FLOW_ID`` (the call flow whose Voicebot applet's URL is the gateway's
    ``/exotel/answer``) place calls, through ``VOICEGW_EXOTEL_API_URL`` (default Exotel's
    Singapore cluster; ``https://api.in.exotel.com`` for Mumbai)."""
    user = env.get("EXOTEL_STREAM_USER", "").strip()
    password = env.get("EXOTEL_STREAM_PASSWORD", "").strip()
    if bool(user) != bool(password):
        raise ConfigError("set both EXOTEL_STREAM_USER and EXOTEL_STREAM_PASSWORD, or neither")
    check = None
    if user:
        register_secret(password)
        try:
            check = BasicAuthCheck(user, password)
        except ValueError as exc:
            raise ConfigError(f"EXOTEL_STREAM_USER: {exc}") from None
    return CarrierSetup(
        carrier=Carrier.EXOTEL, new_stream=ExotelStream,
        hooks=ExotelHooks((user, password) if check is not None else None,
                          rate=sample_rate(env)),
        verify=check, verify_upgrade=check,
        dialer=dialer(env, (user, password) if check is not None else None),
        read_progress=read_progress,
        dials_by_call_id=True)


def dialer(env: Mapping[str, str], stream_credentials: tuple[str, str] | None = None
           ) -> ExotelRest | None:
    """``stream_credentials``: what the gateway requires of Exotel's requests, its status
    callbacks' too."""
    credentials = ExotelCredentials.from_env(env)
    base = env.get("VOICEGW_EXOTEL_API_URL", "").strip() or DEFAULT_BASE_URL
    return ExotelRest(credentials, base_url=base, status_credentials=stream_credentials) \
        if credentials is not None else None
