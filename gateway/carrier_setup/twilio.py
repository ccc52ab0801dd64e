"""Twilio: TwiML answer, Media Streams, ``X-Twilio-Signature``, the call-update REST API."""

from __future__ import annotations

from collections.abc import Mapping

from gateway.carrier_setup.base import CarrierSetup
from gateway.carriers.core import Carrier
from gateway.carriers.twilio import TwilioStream
from gateway.carriers.twilio_hooks import TwilioHooks, TwilioSignature, read_progress
from gateway.log import register_secret
from gateway.rest.twilio import DEFAULT_BASE_URL, TwilioCredentials, TwilioRest


def from_env(env: Mapping[str, str]) -> CarrierSetup:
    """``TWILIO_AUTH_TOKEN`` signs (webhooks and the stream's upgrade); with
    ``TWILIO_ACCOUNT_SID`` (or an API key) it also places calls, hangs up and transfers, through
    ``VOICEGW_TWILIO_API_URL`` (default Twilio's)."""
    token = env.get("TWILIO_AUTH_TOKEN", "").strip()
    verify = None
    if token:
        register_secret(token)
        verify = TwilioSignature(token)
    credentials = TwilioCredentials.from_env(env)
    base = env.get("VOICEGW_TWILIO_API_URL", "").strip() or DEFAULT_BASE_URL
    rest = TwilioRest(credentials, base_url=base) if credentials else None
    return CarrierSetup(
        carrier=Carrier.TWILIO, new_stream=TwilioStream, hooks=TwilioHooks(),
        verify=verify, verify_upgrade=verify, call_control=rest, dialer=rest,
        read_progress=read_progress)
