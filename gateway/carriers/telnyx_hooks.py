"""Telnyx's webhooks, sans-I/O: the TeXML answer, and request signing (Ed25519).

**The answer.** A TeXML application fetches its instructions with a form-encoded request
(Twilio's field names: ``CallSid``, ``AccountSid``, ``From``, ``To``, ``CallStatus``...;
``POST`` or ``GET`` as the application is set). ``<Connect><Stream>`` streams the call
to the gateway and holds it until the socket closes, after which ``<Hangup/>`` ends it.
``bidirectionalMode="rtp"`` makes the stream play what we send as raw RTP payloads (the
default ``mp3`` mode takes one MP3 file a second), in the codec and rate of
``bidirectionalCodec``/``bidirectionalSamplingRate``; ``codec`` asks for the caller's audio
in the same codec (Telnyx falls back to the call's own codec where it cannot transcode, and
the stream's ``start`` says which it sent). What the stream needs to know travels as
``<Parameter>``s, which Telnyx puts in ``start.custom_parameters``: the per-call token, and
the ``CallSid`` it was minted for. Telnyx does not sign the media socket's upgrade, so the
token is what keeps the socket to calls the gateway answered.

**Placed calls.** Their status and detection callbacks are read by Twilio's reader
(:func:`read_progress`): TeXML sends the same fields and words.

**Signing.** Telnyx signs every webhook with the account's Ed25519 key: the
``telnyx-signature-ed25519`` header is the base64 signature of ``"{telnyx-timestamp}|{raw
body}"``, and the portal shows the public key (``TELNYX_PUBLIC_KEY``, base64 of its 32
bytes). :class:`TelnyxSignature` checks it as the official SDK's ``verify_webhook_signature``
does (the tests use it as the oracle), and calls a valid signature older or newer than five
minutes :attr:`Verdict.STALE`: a replay.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Final
from xml.sax.saxutils import escape, quoteattr

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.audio import AudioFormat
from gateway.carriers.core import Carrier
from gateway.carriers.hooks import (
    BUSY_TEXT,
    AnswerDocument,
    CallInfo,
    StreamPlan,
    Verdict,
    WebhookRequest,
    form_call_info,
)
from gateway.carriers.telnyx import DEFAULT_FORMAT, texml_codec
from gateway.carriers.twilio_hooks import read_progress as twiml_progress
from gateway.errors import ConfigError

SIGNATURE_HEADER: Final = "telnyx-signature-ed25519"
TIMESTAMP_HEADER: Final = "telnyx-timestamp"
TOLERANCE_S: Final = 300.0  # as Telnyx's SDKs
# Webhook fields the stream needs beside what its `start` carries: passed on as <Parameter>s.
FORWARDED_FIELDS: Final = ("From", "To", "CallSid")
_XML: Final = '<?xml version="1.0" encoding="UTF-8"?>'


def public_key(text: str) -> Ed25519PublicKey:
    """The account's public key as the portal shows it: base64 of 32 bytes."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError("TELNYX_PUBLIC_KEY is not base64") from exc
    if len(raw) != 32:
        raise ConfigError(f"TELNYX_PUBLIC_KEY is {len(raw)} bytes; an Ed25519 key has 32")
    return Ed25519PublicKey.from_public_bytes(raw)


def signed_payload(timestamp: str, body: bytes) -> bytes:
    """What Telnyx signs: the timestamp header, a bar, the raw body."""
    return timestamp.encode("ascii") + b"|" + body


@dataclass(frozen=True, slots=True)
class TelnyxSignature:
    """Telnyx's webhook signature check. There is no secret here (only the public key), so
    nothing needs comparing in constant time; a signature is valid or it is not."""

    key: Ed25519PublicKey = field(repr=False)
    header: str = SIGNATURE_HEADER
    tolerance_s: float = TOLERANCE_S

    def verify(self, request: WebhookRequest) -> Verdict:
        signature = request.headers.get(self.header)
        if not signature:
            return Verdict.MISSING
        timestamp = request.headers.get(TIMESTAMP_HEADER, "")
        # Digits only: int() would also take " 1_700" and sign a different string.
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
            return Verdict.INVALID
        try:
            raw = base64.b64decode(signature, validate=True)
            self.key.verify(raw, signed_payload(timestamp, request.body))
        except (binascii.Error, ValueError, InvalidSignature):
            return Verdict.INVALID
        # Checked after the signature: a stale verdict means "Telnyx's, but replayed".
        if abs(request.now - int(timestamp)) > self.tolerance_s:
            return Verdict.STALE
        return Verdict.VALID


# -- TeXML -------------------------------------------------------------------------------


def stream_texml(stream: StreamPlan, fmt: AudioFormat = DEFAULT_FORMAT) -> str:
    codec = texml_codec(fmt)
    params = "".join(f"<Parameter name={quoteattr(k)} value={quoteattr(v)}/>"
                     for k, v in stream.parameters.items())
    return (f'{_XML}<Response><Connect><Stream url={quoteattr(stream.url)} '
            f'bidirectionalMode="rtp" codec="{codec}" bidirectionalCodec="{codec}" '
            f'bidirectionalSamplingRate="{fmt.rate}">{params}</Stream></Connect><Hangup/>'
            "</Response>")


def busy_texml() -> str:
    return f"{_XML}<Response><Say>{escape(BUSY_TEXT)}</Say><Hangup/></Response>"


class TelnyxHooks:
    """A TeXML application's voice webhook: ``POST`` (or ``GET``) with the call's form
    fields, TeXML back. ``fmt`` is the audio the stream plays (and asks for)."""

    carrier = Carrier.TELNYX
    answer_methods = ("POST", "GET")

    def __init__(self, fmt: AudioFormat = DEFAULT_FORMAT) -> None:
        texml_codec(fmt)  # one Telnyx can play, or ValueError
        self.fmt = fmt

    def call_info(self, request: WebhookRequest) -> CallInfo:
        return form_call_info(request, "CallSid", FORWARDED_FIELDS)

    def answer(self, call: CallInfo, stream: StreamPlan) -> AnswerDocument:
        return AnswerDocument(stream_texml(stream, self.fmt), "text/xml")

    def busy(self) -> AnswerDocument:
        return AnswerDocument(busy_texml(), "text/xml")


# A placed call's TeXML status callbacks (``CallSid``, ``CallStatus``: initiated, ringing,
# in-progress, completed, busy, no-answer, failed, canceled) and its AsyncAmd callback
# (``AnsweredBy``: human, machine_start, machine_end_beep, machine_end_silence,
# machine_end_other, fax, unknown) carry Twilio's fields and words: one reader serves both.
read_progress: Final = twiml_progress
