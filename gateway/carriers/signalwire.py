"""SignalWire, sans-I/O: its cXML answer, its webhook signatures, and its transfer route.

SignalWire's Compatibility API speaks Twilio's language: the voice webhook carries the same
form fields, the answer is TwiML-compatible cXML (``<Connect><Stream>`` with ``<Parameter>``s),
and the stream's messages are Media Streams' own, so the stream core is
:class:`gateway.carriers.twilio.TwilioStream` with ``carrier=SIGNALWIRE``.

**Signing.** SignalWire signs every webhook with the project's Signing Key in
``X-SignalWire-Signature`` (and accepts ``X-Twilio-Signature`` as a legacy alias, which it may
send too). A form-encoded (cXML) request is signed as Twilio signs: the Base64 of HMAC-SHA1 over
the URL followed by the sorted form fields. A JSON request (RELAY, SWML) is signed over the URL
followed by the raw body, hex-encoded. :class:`SignalWireSignature` checks whichever applies.
SignalWire does not document signing the media socket's upgrade: the per-call token guards it.

**Transfers.** SignalWire's call-update API takes no inline cXML, only a ``Url`` to fetch new
instructions from, so the gateway serves ``/signalwire/transfer``, which dials only a number
the gateway signed into the link (:mod:`gateway.carriers.transfer_links`). A warm transfer's
join is the same kind of redirect, to ``/signalwire/join``, which answers
``<Dial><Conference>`` to a room the gateway signed into the link.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Final
from xml.sax.saxutils import escape

from gateway.carriers.core import Carrier
from gateway.carriers.hooks import (
    AnswerDocument,
    Verdict,
    WebhookRequest,
)
from gateway.carriers.transfer_links import TransferLinks
from gateway.carriers.twilio_hooks import TwilioHooks, conference_twiml, is_valid

SIGNATURE_HEADER: Final = "X-SignalWire-Signature"
COMPAT_HEADER: Final = "X-Twilio-Signature"
TRANSFER_PATH: Final = "/signalwire/transfer"
JOIN_PATH: Final = "/signalwire/join"


def json_signature(key: str, url: str, body: bytes) -> str:
    """The signature of a JSON webhook: hex HMAC-SHA1 over the URL and the raw body."""
    return hmac.new(key.encode(), url.encode() + body, hashlib.sha1).hexdigest()


@dataclass(frozen=True, slots=True)
class SignalWireSignature:
    key: str = field(repr=False)
    header: str = SIGNATURE_HEADER

    def verify(self, request: WebhookRequest) -> Verdict:
        signature = request.headers.get(SIGNATURE_HEADER) or request.headers.get(COMPAT_HEADER)
        if not signature:
            return Verdict.MISSING
        if is_valid(self.key, request.urls, request.form, signature):
            return Verdict.VALID
        if request.body and not request.form:
            given = signature.encode()
            if any(hmac.compare_digest(json_signature(self.key, url, request.body).encode(),
                                       given) for url in request.urls):
                return Verdict.VALID
        return Verdict.INVALID


def signalwire_hooks() -> TwilioHooks:
    """SignalWire's voice webhook: Twilio's form fields in, cXML out."""
    return TwilioHooks(Carrier.SIGNALWIRE)


def dial_cxml(number: str) -> AnswerDocument:
    target = number.strip()
    if not target:
        raise ValueError("empty transfer destination")
    tag = "Sip" if target.lower().startswith("sip:") else "Number"
    return AnswerDocument(f'<?xml version="1.0" encoding="UTF-8"?><Response><Dial>'
                          f"<{tag}>{escape(target)}</{tag}></Dial></Response>", "text/xml")


def transfer_links(secret: str, public_url: str) -> TransferLinks:
    """Signed links to ``/signalwire/transfer``, keyed by the project's API token."""
    return TransferLinks(secret, public_url, TRANSFER_PATH, dial_cxml)


def conference_cxml(room: str) -> AnswerDocument:
    """cXML that puts the call into conference ``room`` (a warm transfer's join)."""
    return AnswerDocument('<?xml version="1.0" encoding="UTF-8"?>' + conference_twiml(room),
                          "text/xml")


def join_links(secret: str, public_url: str) -> TransferLinks:
    """Signed links to ``/signalwire/join``, keyed by the project's API token."""
    return TransferLinks(secret, public_url, JOIN_PATH, conference_cxml, field="room")
