"""Vonage's webhooks, sans-I/O: the NCCO answer, the event webhook, and signed callbacks.

**The answer.** Vonage fetches the answer URL with ``GET`` by default (``uuid``,
``conversation_uuid``, ``from``, ``to`` in the query), or ``POST`` with the same fields as
JSON where the application is set so; both are read. The NCCO is one ``connect`` action to a
``websocket`` endpoint at 16 kHz (see :data:`gateway.carriers.vonage.DEFAULT_RATE`). Vonage
sends that endpoint's ``headers`` back in the socket's first frame, so they carry what the
stream needs: the call's uuid (its id for call control), its numbers and the per-call token.
Vonage writes numbers without the ``+`` (``447700900000``); they are given to the gateway in
E.164 (``+447700900000``), as every other carrier's are, so an agent chosen by its dialled
number is chosen the same way here. When the socket closes nothing follows in the NCCO, so
the call ends.

**Placed calls.** Their events come to the event URL the call was placed with, as JSON:
``uuid`` and ``status`` (started, ringing, answered, completed, busy, cancelled, failed,
rejected, timeout, unanswered), ``detail`` on a failure, and, with advanced machine detection,
``human`` or ``machine`` (``sub_state`` ``beep_start`` when the greeting's beep is heard).
:func:`read_progress` reads them.

**Signing.** With signed callbacks, each webhook carries ``Authorization: Bearer <JWT>``,
signed HS256 with the account's signature secret. Its claims are ``iat`` (Unix seconds),
``jti``, ``iss`` ("Vonage"), ``payload_hash``, ``api_key`` and ``application_id``.
``payload_hash`` is the SHA-256 (hex) of the request's payload: the body of a ``POST``; for a
``GET``, its query parameters as a JSON object, in their order, without whitespace.
:class:`VonageSignature` checks the signature, then the payload hash, then the age (``iat``
within :data:`TOLERANCE_S` of now, and ``exp`` where present), so a replayed webhook is
``STALE`` and a tampered one ``INVALID``. The signature secret is the account's, shared by its
applications, so where the gateway knows its application id a token for another application
is refused too. Vonage does not sign the media socket's upgrade by default; the per-call
token in the headers is what guards it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import jwt

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
from gateway.carriers.vonage import (
    CALLEE_HEADER,
    CALLER_HEADER,
    CONVERSATION_HEADER,
    DEFAULT_RATE,
    UUID_HEADER,
    UUID_RE,
    content_type,
)
from gateway.dialing.model import AnsweredBy, CallProgress, DialStatus

SIGNATURE_HEADER: Final = "Authorization"
TOLERANCE_S: Final = 300.0  # a signed webhook older (or newer) than this is a replay
NCCO_TYPE: Final = "application/json"
# Vonage caps an endpoint's headers (512 bytes in its guide); a number longer than this (a
# SIP address, say) is not worth the risk of a refused NCCO, and is left out.
MAX_FORWARDED_CHARS: Final = 64
_MSISDN: Final = re.compile(r"^[1-9][0-9]{6,14}\Z")  # E.164 without the "+", as Vonage sends
_MAX_TOKEN_CHARS: Final = 4096


def e164(number: str | None) -> str | None:
    """A Vonage number in E.164 (``15550100`` -> ``+15550100``); other addresses as given."""
    if not number:
        return None
    return f"+{number}" if _MSISDN.match(number) else number


def msisdn(number: str) -> str:
    """An E.164 number as Vonage writes it, without the ``+``; ValueError if it is not one."""
    digits = number.strip().removeprefix("+")
    if not _MSISDN.match(digits):
        raise ValueError("not an E.164 phone number")
    return digits


# -- what a webhook says -----------------------------------------------------------------


def vonage_call_info(request: WebhookRequest) -> CallInfo:
    fields = webhook_fields(request)
    uuid = fields.get("uuid", "")
    if not UUID_RE.match(uuid):
        raise WebhookError("no call uuid in the webhook")
    caller, callee = e164(fields.get("from")), e164(fields.get("to"))
    forwarded = {UUID_HEADER: uuid}
    conversation = fields.get("conversation_uuid", "")
    if UUID_RE.match(conversation):
        forwarded[CONVERSATION_HEADER] = conversation
    for name, value in ((CALLER_HEADER, caller), (CALLEE_HEADER, callee)):
        if value and len(value) <= MAX_FORWARDED_CHARS:
            forwarded[name] = value
    return CallInfo(uuid, caller, callee, forwarded)


@dataclass(frozen=True, slots=True)
class CallEvent:
    """What the event webhook says of a call, reduced to what may be logged: no headers
    (they carry the stream token), numbers only as the caller of :func:`mask_number` sees
    fit."""

    uuid: str | None
    status: str | None
    direction: str | None
    caller: str | None
    callee: str | None


def call_event(request: WebhookRequest) -> CallEvent:
    fields = webhook_fields(request)

    def short(name: str) -> str | None:
        value = fields.get(name)
        return value[:40] if value else None

    uuid = fields.get("uuid", "")
    return CallEvent(uuid if UUID_RE.match(uuid) else None, short("status"),
                     short("direction"), e164(short("from")), e164(short("to")))


# -- NCCO --------------------------------------------------------------------------------


def _ncco(actions: list[dict[str, Any]]) -> AnswerDocument:
    return AnswerDocument(json.dumps(actions, separators=(",", ":")), NCCO_TYPE)


def stream_ncco(stream: StreamPlan, rate: int = DEFAULT_RATE) -> AnswerDocument:
    return _ncco([{"action": "connect", "endpoint": [{
        "type": "websocket", "uri": stream.url, "content-type": content_type(rate),
        "headers": dict(stream.parameters)}]}])


def busy_ncco() -> AnswerDocument:
    # Nothing follows the talk action, so Vonage hangs up once it has been said.
    return _ncco([{"action": "talk", "text": BUSY_TEXT}])


def conversation_ncco(room: str) -> list[dict[str, Any]]:
    """An NCCO putting the call into conversation ``room`` (a warm transfer's join: the call
    is transferred to it inline); either call leaving ends the conversation."""
    if not room.strip():
        raise ValueError("empty conversation name")
    return [{"action": "conversation", "name": room, "startOnEnter": True, "endOnExit": True}]


class VonageHooks:
    """Vonage's answer webhook: ``GET`` (or ``POST`` JSON) with the call's fields, NCCO back."""

    carrier = Carrier.VONAGE
    answer_methods = ("GET", "POST")

    def call_info(self, request: WebhookRequest) -> CallInfo:
        return vonage_call_info(request)

    def answer(self, call: CallInfo, stream: StreamPlan) -> AnswerDocument:
        return stream_ncco(stream)

    def busy(self) -> AnswerDocument:
        return busy_ncco()


# -- signing -----------------------------------------------------------------------------


def payload_hash(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def _compact(obj: Mapping[str, Any], *, ascii_only: bool) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=ascii_only).encode()


def signed_payloads(request: WebhookRequest) -> list[bytes]:
    """What Vonage may have hashed for ``payload_hash``: the body of a POST (as sent, and
    as compact JSON); for a request without a body, its query parameters as a compact JSON
    object in their order (a repeated name keeps its first place and its last value, as a
    JavaScript object would). Non-ASCII text both escaped and not: the signer's JSON writer
    decides, and either way only the holder of the secret could have signed it."""
    objects: list[Mapping[str, Any]] = []
    candidates: list[bytes] = []
    if request.body:
        candidates.append(request.body)
        body = json_body(request)
        if body is not None:
            objects.append(body)
    elif request.form:
        objects.append(dict(request.form))
    else:
        objects.append(dict(request.query))
    for obj in objects:
        for ascii_only in (False, True):
            candidates.append(_compact(obj, ascii_only=ascii_only))
    return list(dict.fromkeys(candidates))


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else None


@dataclass(frozen=True, slots=True)
class VonageSignature:
    """Vonage's signed callbacks (``Authorization: Bearer <JWT>``), for the answer and event
    webhooks. ``application_id``, where known, must match the token's."""

    secret: str = field(repr=False)
    application_id: str | None = None
    tolerance_s: float = TOLERANCE_S
    header: str = SIGNATURE_HEADER

    def verify(self, request: WebhookRequest) -> Verdict:
        value = request.headers.get(self.header)
        if not value or not value.strip():
            return Verdict.MISSING
        scheme, _, token = value.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or len(token) > _MAX_TOKEN_CHARS:
            return Verdict.INVALID
        claims = self._claims(token)
        if claims is None:
            return Verdict.INVALID
        app = claims.get("application_id")
        if self.application_id and app is not None \
                and str(app).lower() != self.application_id.lower():  # ids are UUIDs
            return Verdict.INVALID
        given = claims.get("payload_hash")
        if not isinstance(given, str) or not given.isascii():
            return Verdict.INVALID
        given_hash = given.lower().encode()
        # Every candidate is compared, so the time taken does not say which one was close.
        matched = [hmac.compare_digest(payload_hash(p).encode(), given_hash)
                   for p in signed_payloads(request)]
        if not any(matched):
            return Verdict.INVALID
        issued, expires = _number(claims.get("iat")), claims.get("exp")
        if issued is None or (expires is not None and _number(expires) is None):
            return Verdict.INVALID
        if abs(request.now - issued) > self.tolerance_s:
            return Verdict.STALE
        if expires is not None and request.now > float(expires):
            return Verdict.STALE
        return Verdict.VALID

    def _claims(self, token: str) -> dict[str, Any] | None:
        """The token's claims if its HS256 signature is the secret's, else None. The times are
        checked by the caller against the request's clock, not PyJWT's."""
        try:
            with warnings.catch_warnings():
                # The secret's length is the account's, not ours to refuse; newer PyJWT warns
                # on every check with one under 32 bytes.
                warnings.simplefilter("ignore")
                claims: dict[str, Any] = jwt.decode(
                    token, self.secret, algorithms=["HS256"],
                    options={"verify_exp": False, "verify_iat": False, "verify_nbf": False,
                             "verify_aud": False, "verify_iss": False, "verify_sub": False,
                             "verify_jti": False})
        except jwt.PyJWTError:
            return None
        return claims


# -- events of placed calls ----------------------------------------------------------------

# Vonage's status words. "timeout" and "unanswered" are its ring timer running out;
# "rejected" is the call refused on its way (a barred or invalid number, the far end's 403).
_STATUSES: Final = {
    "started": DialStatus.QUEUED, "ringing": DialStatus.RINGING,
    "answered": DialStatus.ANSWERED, "completed": DialStatus.COMPLETED,
    "busy": DialStatus.BUSY, "cancelled": DialStatus.CANCELED, "failed": DialStatus.FAILED,
    "rejected": DialStatus.FAILED, "timeout": DialStatus.NO_ANSWER,
    "unanswered": DialStatus.NO_ANSWER,
}
_DETECTED: Final = {"human": AnsweredBy.HUMAN, "machine": AnsweredBy.MACHINE}
_BEEP: Final = "beep_start"


def read_progress(request: WebhookRequest) -> CallProgress:
    """One event of a call the gateway placed; ``status=None`` for events that do not move
    it (a detection result, an NCCO action's own events)."""
    fields = webhook_fields(request)
    uuid = fields.get("uuid", "")
    if not UUID_RE.match(uuid):
        raise WebhookError("no call uuid in the event")
    word = fields.get("status", "").strip().lower()
    sub_state = fields.get("sub_state", "").strip().lower()
    if word in _DETECTED:
        detail = word + (f" ({sub_state})" if sub_state else "")
        return CallProgress(uuid, None, detail, _DETECTED[word], sub_state == _BEEP)
    reason = fields.get("detail", "")[:40]
    return CallProgress(uuid, _STATUSES.get(word), word + (f" ({reason})" if reason else ""))
