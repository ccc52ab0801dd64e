"""Vonage: NCCO answer, Voice API WebSockets, signed callbacks, the Voice API's calls (placed,
hung up, transferred)."""

from __future__ import annotations

from collections.abc import Mapping

import structlog

from gateway.carrier_setup.base import CarrierSetup
from gateway.carriers.core import Carrier
from gateway.carriers.hooks import AnswerDocument, WebhookRequest
from gateway.carriers.vonage import VonageStream
from gateway.carriers.vonage_hooks import (
    NCCO_TYPE,
    VonageHooks,
    VonageSignature,
    call_event,
    read_progress,
)
from gateway.log import mask_number, register_secret
from gateway.rest.vonage import DEFAULT_BASE_URL, VonageCredentials, VonageRest

log = structlog.get_logger("gateway.carriers")


def event_hook(request: WebhookRequest) -> AnswerDocument:
    """``/vonage/event``, the application's event webhook: each change of a call's status is
    logged (numbers masked; never the stream's headers, which carry its token) and answered
    204, which tells Vonage to go on with the NCCO it has."""
    event = call_event(request)
    log.info("vonage_call_event", call_sid=event.uuid, status=event.status,
             direction=event.direction, caller=mask_number(event.caller),
             dialled=mask_number(event.callee))
    return AnswerDocument("", NCCO_TYPE)


def from_env(env: Mapping[str, str]) -> CarrierSetup:
    """``VONAGE_SIGNATURE_SECRET`` checks the signed callbacks (Vonage does not sign the media
    socket's upgrade: the stream token guards it). ``VONAGE_APPLICATION_ID`` with
    ``VONAGE_PRIVATE_KEY`` (PEM text or a file) places calls, hangs up and transfers through
    ``VOICEGW_VONAGE_API_URL`` (default Vonage's); a transferred call shows
    ``VONAGE_TRANSFER_FROM`` as its caller id where set."""
    secret = env.get("VONAGE_SIGNATURE_SECRET", "").strip()
    app_id = env.get("VONAGE_APPLICATION_ID", "").strip()
    credentials = VonageCredentials.from_env(env) if env.get("VONAGE_PRIVATE_KEY") else None
    verify = None
    if secret:
        register_secret(secret)
        verify = VonageSignature(secret, application_id=app_id or None)
    base = env.get("VOICEGW_VONAGE_API_URL", "").strip() or DEFAULT_BASE_URL
    caller_id = env.get("VONAGE_TRANSFER_FROM", "").strip() or None
    rest = VonageRest(credentials, base_url=base, caller_id=caller_id) if credentials else None
    return CarrierSetup(
        carrier=Carrier.VONAGE, new_stream=VonageStream, hooks=VonageHooks(), verify=verify,
        call_control=rest, dialer=rest, read_progress=read_progress,
        extra_hooks={"event": event_hook})
