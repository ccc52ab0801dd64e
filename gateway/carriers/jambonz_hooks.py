"""jambonz's webhooks, sans-I/O: the answer (a JSON array of verbs), the busy answer, the
transfer's ``dial``, a warm transfer's ``conference``, and signed webhooks.

**The answer.** jambonz calls the application's call webhook with ``POST`` and a JSON body of
the call's attributes in snake_case (``call_sid``, ``from``, ``to``, ``direction``,
``account_sid``, ``application_sid``, ``call_id``...); an application may be set to ``GET``,
so query fields are read too. The answer is one ``listen`` verb: the socket's URL, mono L16
at 16 kHz (:data:`gateway.carriers.jambonz.DEFAULT_RATE`) both ways, ``bidirectionalAudio``
in streaming mode (raw binary audio back, with marks and ``killAudio``), ``passDtmf`` so keypad
digits reach the socket, and ``metadata`` with what the stream needs under one key
(:data:`gateway.carriers.jambonz.METADATA_KEY`): the per-call token, the call sid and the
numbers. Where the operator set credentials for the socket, ``wsAuth`` makes jambonz send them
as HTTP Basic auth on the upgrade. Nothing follows the verb, so when the socket closes the
application is over and jambonz ends the call.

**Placed calls.** jambonz posts each change of a placed call's ``call_status`` (trying,
ringing, early-media, in-progress, completed, failed, busy, no-answer, with its
``sip_status``) to the call's status hook, and each finding of its ``amd`` (``type``:
amd_human_detected, amd_machine_detected, amd_tone_detected...) to the amd's action hook;
:func:`read_progress` reads both. A ``failed`` call says why by its SIP status: 486 is busy,
487 the call cancelled, 480 and 408 nobody answering.

**Signing.** With a webhook secret set on the account, every webhook carries
``Jambonz-Signature: t=<unix seconds>,v1=<hex>``: HMAC-SHA256, keyed by the secret, of the
timestamp, a ``.``, and the JSON body as sent (the scheme Stripe's webhooks use; jambonz's own
``verifyJambonzSignature`` checks it the same way). :class:`JambonzSignature` checks it, then
the age, so a replayed webhook is ``STALE`` and a tampered one ``INVALID``. jambonz signs no
media upgrade: Basic credentials (:class:`gateway.carriers.basic_auth.BasicAuthCheck`) and the
per-call token guard the socket.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from gateway.carriers.core import Carrier
from gateway.carriers.hooks import (
    BUSY_TEXT,
    AnswerDocument,
    CallInfo,
    StreamPlan,
    Verdict,
    WebhookError,
    WebhookRequest,
    json_body,
    webhook_fields,
)
from gateway.carriers.jambonz import DEFAULT_RATE, METADATA_KEY, SID_RE
from gateway.carriers.transfer_links import TransferLinks
from gateway.dialing.model import AnsweredBy, CallProgress, DialStatus

SIGNATURE_HEADER: Final = "Jambonz-Signature"
SCHEME: Final = "v1"
TOLERANCE_S: Final = 300.0  # jambonz's own verifier allows five minutes
CONTENT_TYPE: Final = "application/json"
TRANSFER_PATH: Final = "/jambonz/transfer"
JOIN_PATH: Final = "/jambonz/join"
# A number (or SIP address) longer than this is not worth carrying in the metadata.
MAX_FORWARDED_CHARS: Final = 128
_MAX_HEADER_CHARS: Final = 1024


@dataclass(frozen=True, slots=True)
class WsAuth:
    """Credentials jambonz sends on the media socket's upgrade (the verb's ``wsAuth``)."""

    username: str
    password: str = field(repr=False)


# -- what a webhook says -----------------------------------------------------------------


def jambonz_call_info(request: WebhookRequest) -> CallInfo:
    fields = webhook_fields(request)
    sid = fields.get("call_sid", "")
    if not SID_RE.match(sid):
        raise WebhookError("no call_sid in the webhook")
    caller, callee = fields.get("from") or None, fields.get("to") or None
    # The sid too, though the stream's first frame names it: it says which call the token
    # was minted for, whatever else the metadata meets on the way.
    forwarded = {"call_sid": sid}
    forwarded.update({name: value for name, value in (("From", caller), ("To", callee))
                      if value and len(value) <= MAX_FORWARDED_CHARS})
    return CallInfo(sid, caller, callee, forwarded)


# -- verbs -------------------------------------------------------------------------------


def _verbs(verbs: list[dict[str, Any]]) -> AnswerDocument:
    return AnswerDocument(json.dumps(verbs, separators=(",", ":")), CONTENT_TYPE)


def listen_verbs(stream: StreamPlan, rate: int = DEFAULT_RATE,
                 ws_auth: WsAuth | None = None) -> AnswerDocument:
    verb: dict[str, Any] = {
        "verb": "listen", "url": stream.url, "mixType": "mono", "sampleRate": rate,
        "bidirectionalAudio": {"enabled": True, "streaming": True, "sampleRate": rate},
        "passDtmf": True, "metadata": {METADATA_KEY: dict(stream.parameters)}}
    if ws_auth is not None:
        verb["wsAuth"] = {"username": ws_auth.username, "password": ws_auth.password}
    return _verbs([verb])


def busy_verbs() -> AnswerDocument:
    return _verbs([{"verb": "say", "text": BUSY_TEXT}, {"verb": "hangup"}])


def dial_verbs(number: str) -> AnswerDocument:
    """A ``dial`` to ``number`` (E.164) or a ``sip:`` address, replacing the stream."""
    target = number.strip()
    if not target:
        raise ValueError("empty transfer destination")
    leg = {"type": "sip", "sipUri": target} if target.lower().startswith("sip:") \
        else {"type": "phone", "number": target}
    return _verbs([{"verb": "dial", "target": [leg]}])


def conference_verbs(room: str) -> AnswerDocument:
    """A ``conference`` verb putting the call into ``room`` (a warm transfer's join), replacing
    the stream; the conference ends when either call leaves, with no beep."""
    if not room.strip():
        raise ValueError("empty conference name")
    return _verbs([{"verb": "conference", "name": room, "beep": False,
                    "startConferenceOnEnter": True, "endConferenceOnExit": True}])


def transfer_links(secret: str, public_url: str) -> TransferLinks:
    """Signed links to ``/jambonz/transfer`` (:mod:`gateway.carriers.transfer_links`), keyed
    by the API key, answering ``dial``."""
    return TransferLinks(secret, public_url, TRANSFER_PATH, dial_verbs)


def join_links(secret: str, public_url: str) -> TransferLinks:
    """Signed links to ``/jambonz/join``, keyed by the API key, answering ``conference``."""
    return TransferLinks(secret, public_url, JOIN_PATH, conference_verbs, field="room")


class JambonzHooks:
    """The application's call webhook: ``POST`` JSON (or ``GET``), verbs back."""

    carrier = Carrier.JAMBONZ
    answer_methods = ("POST", "GET")

    def __init__(self, rate: int = DEFAULT_RATE, ws_auth: WsAuth | None = None) -> None:
        self.rate = rate
        self.ws_auth = ws_auth

    def call_info(self, request: WebhookRequest) -> CallInfo:
        return jambonz_call_info(request)

    def answer(self, call: CallInfo, stream: StreamPlan) -> AnswerDocument:
        return listen_verbs(stream, self.rate, self.ws_auth)

    def busy(self) -> AnswerDocument:
        return busy_verbs()


# -- signing -----------------------------------------------------------------------------


def signature(secret: str, timestamp: int | str, payload: bytes) -> str:
    """``v1`` of a ``Jambonz-Signature``: hex HMAC-SHA256 of ``<timestamp>.<payload>``."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + payload,
                    hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, payload: bytes) -> str:
    return f"t={timestamp},{SCHEME}={signature(secret, timestamp, payload)}"


def _compact(obj: Mapping[str, Any], *, ascii_only: bool) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=ascii_only).encode()


def signed_payloads(request: WebhookRequest) -> list[bytes]:
    """What jambonz may have signed: the body as sent, and as compact JSON (its verifier
    hashes the parsed body written out again); for a request without a body, its query
    fields as a compact JSON object. Non-ASCII text both escaped and not."""
    candidates: list[bytes] = []
    objects: list[Mapping[str, Any]] = []
    if request.body:
        candidates.append(request.body)
        body = json_body(request)
        if body is not None:
            objects.append(body)
    else:
        objects.append(dict(request.query))
    for obj in objects:
        for ascii_only in (False, True):
            candidates.append(_compact(obj, ascii_only=ascii_only))
    return list(dict.fromkeys(candidates))


def parse_header(value: str) -> tuple[str, list[str]] | None:
    """The timestamp and the ``v1`` signatures of a header; None if it has no timestamp of
    digits or no signature."""
    timestamp = ""
    found: list[str] = []
    for item in value.split(","):
        key, sep, text = item.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            timestamp = text
        elif key == SCHEME:
            found.append(text)
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12) or not found:
        return None
    return timestamp, found


@dataclass(frozen=True, slots=True)
class JambonzSignature:
    """jambonz's signed webhooks (``Jambonz-Signature``), for the call webhook and the
    transfer route."""

    secret: str = field(repr=False)
    tolerance_s: float = TOLERANCE_S
    header: str = SIGNATURE_HEADER

    def verify(self, request: WebhookRequest) -> Verdict:
        value = request.headers.get(self.header)
        if not value or not value.strip():
            return Verdict.MISSING
        parsed = parse_header(value) if len(value) <= _MAX_HEADER_CHARS else None
        if parsed is None:
            return Verdict.INVALID
        timestamp, given = parsed
        expected = [signature(self.secret, timestamp, p).encode()
                    for p in signed_payloads(request)]
        # Every pair is compared, so the time taken does not say which one was close.
        matched = [hmac.compare_digest(e, g.encode()) for e in expected for g in given
                   if g.isascii()]
        if not any(matched):
            return Verdict.INVALID
        if abs(request.now - int(timestamp)) > self.tolerance_s:
            return Verdict.STALE
        return Verdict.VALID


# -- status callbacks of placed calls ------------------------------------------------------

_STATUSES: Final = {
    "queued": DialStatus.QUEUED, "trying": DialStatus.QUEUED, "ringing": DialStatus.RINGING,
    "early-media": DialStatus.RINGING, "in-progress": DialStatus.ANSWERED,
    "completed": DialStatus.COMPLETED, "failed": DialStatus.FAILED, "busy": DialStatus.BUSY,
    "no-answer": DialStatus.NO_ANSWER,
}
# What a "failed" call's final SIP status says of it.
_FAILED_SIP: Final = {
    "486": DialStatus.BUSY, "600": DialStatus.BUSY, "487": DialStatus.CANCELED,
    "480": DialStatus.NO_ANSWER, "408": DialStatus.NO_ANSWER,
}
# amd's findings: who answered, and whether the greeting ended on a beep. The rest (amd_error,
# amd_stopped) say nothing of who answered.
_AMD: Final = {
    "amd_human_detected": (AnsweredBy.HUMAN, False),
    "amd_machine_detected": (AnsweredBy.MACHINE, False),
    "amd_machine_stopped_speaking": (AnsweredBy.MACHINE, False),
    "amd_tone_detected": (AnsweredBy.MACHINE, True),
    "amd_no_speech_detected": (AnsweredBy.UNKNOWN, False),
    "amd_decision_timeout": (AnsweredBy.UNKNOWN, False),
}


def read_progress(request: WebhookRequest) -> CallProgress:
    """A status or amd callback of a call the gateway placed."""
    body = json_body(request) or {}
    fields = webhook_fields(request)
    sid = fields.get("call_sid", "")
    if not SID_RE.match(sid):
        raise WebhookError("no call_sid in the status callback")
    kind = fields.get("type", "").strip().lower()
    if kind.startswith("amd_"):
        by, beep = _AMD.get(kind, (None, False))
        return CallProgress(sid, None, kind, by, beep)
    word = fields.get("call_status", "").strip().lower()
    sip = str(body.get("sip_status", fields.get("sip_status", "")))
    status = _STATUSES.get(word)
    if status is DialStatus.FAILED:
        status = _FAILED_SIP.get(sip, status)
    return CallProgress(sid, status, word + (f" (SIP {sip})" if sip else ""))
