"""Twilio's webhooks, sans-I/O: the TwiML answer, and request signing (``X-Twilio-Signature``).

SignalWire's cXML is Twilio-compatible, and so is its signature (the same HMAC, its own header
and key), so :mod:`gateway.carriers.signalwire` reuses both with its own names.

**The answer.** ``<Connect><Stream url>`` makes the stream bidirectional and holds the call
until the gateway closes the socket. Twilio refuses a query string in the stream URL (error
31920), so what the stream needs to know (the caller's number, the per-call token) travels as
``<Parameter>``s, which arrive in ``start.customParameters``. After ``</Connect>`` comes
``<Hangup/>``: closing the socket ends the call.

**Signing.** Twilio signs every webhook with HMAC-SHA1 keyed by the account's Auth Token, over
the full URL it requested followed, for a form-encoded POST, by each parameter's name and value
(names sorted; a name sent more than once contributes each distinct value, values sorted). The
Base64 of the digest is the header. :func:`compute_signature` computes that string exactly as
Twilio's own ``twilio.request_validator.RequestValidator`` does (the tests use it as the
oracle); :class:`TwilioSignature` checks a header against it in constant time.

Not handled, on purpose: the JSON-body form (``bodySHA256`` in the query; voice webhooks are
form-encoded) and the newer SharedKey/HMAC-SHA256 signatures announced by
``X-Twilio-Webhooks-Signature-Settings``; a request signed either way fails validation here,
which errs on the safe side.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final
from xml.sax.saxutils import escape, quoteattr

from gateway.carriers.core import Carrier
from gateway.carriers.hooks import (
    BUSY_TEXT,
    AnswerDocument,
    CallInfo,
    StreamPlan,
    Verdict,
    WebhookError,
    WebhookRequest,
    form_call_info,
)
from gateway.dialing.model import AnsweredBy, CallProgress, DialStatus

SIGNATURE_HEADER: Final = "X-Twilio-Signature"
# Webhook fields the stream needs and its `start` does not carry: passed on as <Parameter>s.
FORWARDED_FIELDS: Final = ("From", "To", "CallSid", "Direction")
_XML: Final = '<?xml version="1.0" encoding="UTF-8"?>'


def compute_signature(token: str, url: str, params: Iterable[tuple[str, str]] = ()) -> str:
    """The ``X-Twilio-Signature`` Twilio would send for ``url`` and these form parameters."""
    by_name: dict[str, set[str]] = {}
    for name, value in params:
        by_name.setdefault(name, set()).add(value)
    # Twilio's validator de-duplicates repeated values; so must we, to agree with it.
    payload = url + "".join(name + value for name in sorted(by_name)
                            for value in sorted(by_name[name]))
    mac = hmac.new(token.encode(), payload.encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode("ascii")


def is_valid(token: str, urls: Iterable[str], params: Iterable[tuple[str, str]],
             signature: str | None) -> bool:
    """Whether ``signature`` is the signer's for any of ``urls``."""
    if not signature:
        return False
    given = signature.encode()
    pairs = list(params)
    # compare_digest on bytes: constant-time in the header's content, and a header with
    # non-ASCII characters is simply unequal rather than a TypeError.
    return any(hmac.compare_digest(compute_signature(token, url, pairs).encode(), given)
               for url in urls)


@dataclass(frozen=True, slots=True)
class TwilioSignature:
    """Twilio's signature check, for webhooks and the stream's upgrade alike (an upgrade
    carries no form, and its candidate URLs include the ``wss://`` form)."""

    token: str = field(repr=False)
    header: str = SIGNATURE_HEADER

    def verify(self, request: WebhookRequest) -> Verdict:
        signature = request.headers.get(self.header)
        if not signature:
            return Verdict.MISSING
        valid = is_valid(self.token, request.urls, request.form, signature)
        return Verdict.VALID if valid else Verdict.INVALID


# -- TwiML -------------------------------------------------------------------------------


def stream_twiml(stream: StreamPlan) -> str:
    params = "".join(f"<Parameter name={quoteattr(k)} value={quoteattr(v)}/>"
                     for k, v in stream.parameters.items())
    return (f"{_XML}<Response><Connect><Stream url={quoteattr(stream.url)}>{params}</Stream>"
            "</Connect><Hangup/></Response>")


def busy_twiml() -> str:
    return f"{_XML}<Response><Say>{escape(BUSY_TEXT)}</Say><Hangup/></Response>"


def conference_twiml(room: str) -> str:
    """TwiML that puts the call into conference ``room`` (a warm transfer's join); the
    conference ends when either call leaves. SignalWire's cXML and Telnyx's TeXML take the
    same ``<Dial><Conference>`` with the same attributes."""
    if not room.strip():
        raise ValueError("empty conference name")
    return ("<Response><Dial><Conference beep=\"false\" endConferenceOnExit=\"true\" "
            f"startConferenceOnEnter=\"true\">{escape(room)}</Conference></Dial></Response>")


def twiml_call_info(request: WebhookRequest) -> CallInfo:
    return form_call_info(request, "CallSid", FORWARDED_FIELDS)


class TwilioHooks:
    """Twilio's voice webhook: ``POST`` (or ``GET``) with the call's form fields, TwiML back.
    SignalWire's is the same, with cXML (TwiML by another name): ``carrier`` says whose."""

    answer_methods = ("POST", "GET")

    def __init__(self, carrier: Carrier = Carrier.TWILIO) -> None:
        self.carrier = carrier

    def call_info(self, request: WebhookRequest) -> CallInfo:
        return twiml_call_info(request)

    def answer(self, call: CallInfo, stream: StreamPlan) -> AnswerDocument:
        return AnswerDocument(stream_twiml(stream), "text/xml")

    def busy(self) -> AnswerDocument:
        return AnswerDocument(busy_twiml(), "text/xml")


# -- status callbacks of placed calls ------------------------------------------------------

# Twilio's CallStatus words. "initiated" says the call left Twilio: still queued for us.
_STATUSES: Final = {
    "queued": DialStatus.QUEUED, "initiated": DialStatus.QUEUED,
    "ringing": DialStatus.RINGING, "in-progress": DialStatus.ANSWERED,
    "busy": DialStatus.BUSY, "no-answer": DialStatus.NO_ANSWER, "failed": DialStatus.FAILED,
    "canceled": DialStatus.CANCELED, "completed": DialStatus.COMPLETED,
}
# AsyncAmd's AnsweredBy words, and whether the greeting ended on a beep.
_ANSWERED_BY: Final = {
    "human": (AnsweredBy.HUMAN, False), "unknown": (AnsweredBy.UNKNOWN, False),
    "fax": (AnsweredBy.MACHINE, False), "machine_start": (AnsweredBy.MACHINE, False),
    "machine_end_beep": (AnsweredBy.MACHINE, True),
    "machine_end_silence": (AnsweredBy.MACHINE, False),
    "machine_end_other": (AnsweredBy.MACHINE, False),
}


def read_progress(request: WebhookRequest) -> CallProgress:
    """A status callback (``CallStatus``) or an AsyncAmd callback (``AnsweredBy``) of a call
    the gateway placed; SignalWire's LaML sends the same fields."""
    sid = request.param("CallSid")
    if not sid:
        raise WebhookError("no CallSid in the status callback")
    word = (request.param("CallStatus") or "").strip().lower()
    answered = (request.param("AnsweredBy") or "").strip().lower()
    by, beep = _ANSWERED_BY.get(answered, (None, False))
    if answered:  # the detection's own callback: its CallStatus is the call's, unchanged
        return CallProgress(sid, None, f"AnsweredBy={answered}", by, beep)
    code = request.param("SipResponseCode")
    return CallProgress(sid, _STATUSES.get(word), word + (f" (SIP {code})" if code else ""))
