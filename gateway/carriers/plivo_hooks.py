"""Plivo's webhooks, sans-I/O: the answer XML, request signing (V3), and transfer links.

**The answer.** ``<Stream bidirectional="true" keepCallAlive="true" contentType=...>`` with the
socket's URL as the element's text. ``keepCallAlive`` runs the stream alone; nothing follows
it, so the call ends when the gateway closes the socket. The per-call token and the caller's
numbers ride in ``extraHeaders`` (:func:`gateway.carriers.plivo.encode_parameters`), which
Plivo caps at 512 bytes: the token always goes, then To (agents are chosen by it), From and
the rest while they fit.

**Signing (V3).** Plivo signs every request to the gateway with ``X-Plivo-Signature-V3`` (and
``X-Plivo-Signature-Ma-V3`` with the main account's token) and ``X-Plivo-Signature-V3-Nonce``:
the Base64 of HMAC-SHA256, keyed by the Auth Token, of ``<url>.<nonce>``. For a GET the URL is
the request's without its query, then ``?`` and the query's pairs sorted (``k=v`` joined by
``&``). For a POST it is the URL, ``?``, the sorted query (and a ``.`` if both a query and a
form are present), then each form field as ``namevalue``, sorted by name. A header may list
several signatures, comma-separated. :func:`compute_signature` agrees with the official
``plivo.utils.signature_v3.validate_v3_signature`` (the tests use it as the oracle). There is
no timestamp, so a signature cannot go stale: the single-use stream token is what stops a
replayed stream.

Plivo signs the media socket's upgrade too (a GET). Its stream SDKs disagree on the URL that
is signed (Node: the ``https://`` form of the request; Python: ``http://``, with
``/websocket`` appended to the path), so :class:`PlivoSignature` with ``upgrade=True`` tries
each form; every one still needs the Auth Token.

**Placed calls.** Plivo posts a placed call's progress to the ``ring_url``, ``hangup_url`` and
``machine_detection_url`` it was given (all the gateway's status URL): ``CallStatus``
(ringing, in-progress, completed, busy, no-answer, timeout, failed, cancel) with its
``HangupCause``, or ``Event=MachineDetection`` with ``Machine`` true or false.
:func:`read_progress` reads each; the call is named by its ``RequestUUID``, the id placing it
returned.

**Transfers.** Plivo transfers a call by fetching new XML from a URL (``aleg_url``), so the
gateway serves ``/plivo/transfer``, which answers ``<Dial>`` to the number in its query. That
route is signed by Plivo like the answer, and the number is signed by the gateway
(:mod:`gateway.carriers.transfer_links`): only a number the gateway itself put in a link,
within its lifetime, is ever dialled, whoever fetches the route. A warm transfer's join is
the same kind of redirect, to ``/plivo/join``, which answers ``<Conference>`` to a room the
gateway signed into the link.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import parse_qs, urlparse, urlsplit, urlunparse, urlunsplit
from xml.sax.saxutils import escape, quoteattr

from gateway.carriers.core import TOKEN_PARAMETER, Carrier
from gateway.carriers.hooks import (
    BUSY_TEXT,
    AnswerDocument,
    CallInfo,
    StreamPlan,
    Verdict,
    WebhookError,
    WebhookRequest,
    form_call_info,
    webhook_fields,
)
from gateway.carriers.plivo import DEFAULT_CONTENT_TYPE, ContentType, encode_parameters
from gateway.carriers.transfer_links import TransferLinks
from gateway.dialing.model import AnsweredBy, CallProgress, DialStatus

SIGNATURE_HEADER: Final = "X-Plivo-Signature-V3"
MAIN_SIGNATURE_HEADER: Final = "X-Plivo-Signature-Ma-V3"
NONCE_HEADER: Final = "X-Plivo-Signature-V3-Nonce"
MAX_EXTRA_HEADERS: Final = 512  # bytes, Plivo's limit on the attribute
# Webhook fields the stream needs and its ``start`` does not carry.
FORWARDED_FIELDS: Final = ("From", "To", "Direction")
# Which parameters ride first when not all fit in extraHeaders: the rest follow in order.
_FIRST: Final = (TOKEN_PARAMETER, "To", "From")
TRANSFER_PATH: Final = "/plivo/transfer"
JOIN_PATH: Final = "/plivo/join"
_XML: Final = '<?xml version="1.0" encoding="UTF-8"?>'
CONTENT_TYPE: Final = "application/xml"


# -- signing -----------------------------------------------------------------------------


def _grouped(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in pairs:
        out.setdefault(name, []).append(value)
    return out


def _sorted_query(query: Mapping[str, list[str]]) -> str:
    return "&".join(f"{k}={v}" for k in sorted(query) for v in sorted(query[k]))


def signature_base(method: str, url: str, params: Iterable[tuple[str, str]] = ()) -> str:
    """What Plivo signs (before ``.<nonce>``) for a request to ``url`` with these form
    fields (a GET's parameters are in its query)."""
    parts = urlparse(url)
    base = urlunparse((parts.scheme, parts.netloc, parts.path, "", "", ""))
    query = parse_qs(parts.query, keep_blank_values=True)
    form = _grouped(params)
    if method.upper() == "GET":
        merged = {**form, **query}  # the URL's own parameters win, as in Plivo's SDK
        sorted_query = _sorted_query(merged)
        return f"{base}?{sorted_query}" if sorted_query else base
    sorted_query = _sorted_query(query)
    if sorted_query or form:
        base += "?" + sorted_query
    if sorted_query and form:
        base += "."
    return base + "".join(f"{k}{v}" for k in sorted(form) for v in sorted(form[k]))


def compute_signature(token: str, method: str, url: str, nonce: str,
                      params: Iterable[tuple[str, str]] = ()) -> str:
    """The ``X-Plivo-Signature-V3`` Plivo would send for this request."""
    message = f"{signature_base(method, url, params)}.{nonce}".encode()
    return base64.b64encode(hmac.new(token.encode(), message, hashlib.sha256).digest()).decode()


def is_valid(token: str, method: str, urls: Iterable[str], *, nonce: str,
             params: Iterable[tuple[str, str]], header: str) -> bool:
    """Whether any signature in ``header`` is Plivo's for any of ``urls``."""
    given = [s.encode() for s in header.split(",") if s]
    pairs = list(params)
    for url in urls:
        # compare_digest on bytes: constant-time in the header's content, and a header with
        # non-ASCII characters is simply unequal rather than a TypeError.
        expected = compute_signature(token, method, url, nonce, pairs).encode()
        if any(hmac.compare_digest(expected, sig) for sig in given):
            return True
    return False


def upgrade_urls(urls: Iterable[str]) -> tuple[str, ...]:
    """Each URL the media socket's upgrade may have been signed for (see the module's
    docstring): every scheme, with and without ``/websocket`` after the path."""
    out: list[str] = []
    for url in urls:
        parts = urlsplit(url)
        for scheme in ("https", "wss", "http", "ws"):
            for path in (parts.path, parts.path.rstrip("/") + "/websocket"):
                out.append(urlunsplit(parts._replace(scheme=scheme, path=path)))
    return tuple(dict.fromkeys(out))


@dataclass(frozen=True, slots=True)
class PlivoSignature:
    """Plivo's V3 signature check; ``upgrade`` for the media socket's upgrade."""

    token: str = field(repr=False)
    upgrade: bool = False
    header: str = SIGNATURE_HEADER

    def verify(self, request: WebhookRequest) -> Verdict:
        headers = [value for name in (SIGNATURE_HEADER, MAIN_SIGNATURE_HEADER)
                   if (value := request.headers.get(name))]
        if not headers:
            return Verdict.MISSING
        nonce = request.headers.get(NONCE_HEADER)
        if not nonce:
            return Verdict.INVALID
        method = "GET" if self.upgrade else request.method
        urls = upgrade_urls(request.urls) if self.upgrade else request.urls
        # A GET's parameters are in its URL; an upgrade carries no form.
        form = () if method.upper() == "GET" else request.form
        valid = any(is_valid(self.token, method, urls, nonce=nonce, params=form, header=h)
                    for h in headers)
        return Verdict.VALID if valid else Verdict.INVALID


# -- the answer --------------------------------------------------------------------------


def fit_parameters(parameters: Mapping[str, str], limit: int = MAX_EXTRA_HEADERS) -> str:
    """``extraHeaders`` carrying as many of ``parameters`` as fit in ``limit`` bytes: the
    token first, then To, From and the rest in order; "" for none."""
    order = [k for k in _FIRST if k in parameters] + [k for k in parameters if k not in _FIRST]
    kept: dict[str, str] = {}
    for name in order:
        trial = {**kept, name: parameters[name]}
        if len(encode_parameters(trial)) <= limit:
            kept = trial
        elif name == TOKEN_PARAMETER:
            raise ValueError("the stream token does not fit in extraHeaders")
    return encode_parameters(kept) if kept else ""


def stream_xml(stream: StreamPlan, content: ContentType = DEFAULT_CONTENT_TYPE) -> str:
    attrs = f'bidirectional="true" keepCallAlive="true" contentType={quoteattr(content.value)}'
    if headers := fit_parameters(stream.parameters):
        attrs += f" extraHeaders={quoteattr(headers)}"
    return f"{_XML}<Response><Stream {attrs}>{escape(stream.url)}</Stream></Response>"


def busy_xml() -> str:
    return f"{_XML}<Response><Speak>{escape(BUSY_TEXT)}</Speak><Hangup/></Response>"


def dial_xml(number: str) -> str:
    """XML that connects the call to ``number`` (E.164) or a ``sip:`` address."""
    target = number.strip()
    if not target:
        raise ValueError("empty transfer destination")
    element = "User" if target.lower().startswith("sip:") else "Number"
    return f"{_XML}<Response><Dial><{element}>{escape(target)}</{element}></Dial></Response>"


def conference_xml(room: str) -> str:
    """XML that puts the call into conference ``room`` (a warm transfer's join); the
    conference ends when either call leaves, and no sound marks anyone entering."""
    if not room.strip():
        raise ValueError("empty conference name")
    return (f'{_XML}<Response><Conference startConferenceOnEnter="true" '
            f'endConferenceOnExit="true">{escape(room)}</Conference></Response>')


class PlivoHooks:
    """Plivo's answer URL: ``POST`` (or ``GET``) with the call's fields, Plivo XML back."""

    carrier = Carrier.PLIVO
    answer_methods = ("POST", "GET")

    def __init__(self, content: ContentType = DEFAULT_CONTENT_TYPE) -> None:
        self.content = content

    def call_info(self, request: WebhookRequest) -> CallInfo:
        return form_call_info(request, "CallUUID", FORWARDED_FIELDS)

    def answer(self, call: CallInfo, stream: StreamPlan) -> AnswerDocument:
        return AnswerDocument(stream_xml(stream, self.content), CONTENT_TYPE)

    def busy(self) -> AnswerDocument:
        return AnswerDocument(busy_xml(), CONTENT_TYPE)


# -- transfers ---------------------------------------------------------------------------


def transfer_links(token: str, public_url: str) -> TransferLinks:
    """Signed links to ``/plivo/transfer`` (:mod:`gateway.carriers.transfer_links`), keyed by
    the Auth Token, answering Plivo's ``<Dial>``."""
    return TransferLinks(token, public_url, TRANSFER_PATH,
                         lambda number: AnswerDocument(dial_xml(number), CONTENT_TYPE))


def join_links(token: str, public_url: str) -> TransferLinks:
    """Signed links to ``/plivo/join``, keyed by the Auth Token, answering ``<Conference>``."""
    return TransferLinks(token, public_url, JOIN_PATH,
                         lambda room: AnswerDocument(conference_xml(room), CONTENT_TYPE),
                         field="room")


# -- status callbacks of placed calls ------------------------------------------------------

# Plivo's CallStatus words. "timeout" is its ring timeout running out: nobody answered.
_STATUSES: Final = {
    "queued": DialStatus.QUEUED, "ringing": DialStatus.RINGING,
    "in-progress": DialStatus.ANSWERED, "completed": DialStatus.COMPLETED,
    "busy": DialStatus.BUSY, "no-answer": DialStatus.NO_ANSWER,
    "timeout": DialStatus.NO_ANSWER, "failed": DialStatus.FAILED,
    "cancel": DialStatus.CANCELED, "canceled": DialStatus.CANCELED,
}
_MACHINE: Final = {"true": AnsweredBy.MACHINE, "false": AnsweredBy.HUMAN}


def read_progress(request: WebhookRequest) -> CallProgress:
    """A ring, hang-up or machine-detection callback of a call the gateway placed."""
    fields = webhook_fields(request)
    call = fields.get("RequestUUID") or fields.get("CallUUID")
    if not call:
        raise WebhookError("no RequestUUID or CallUUID in the status callback")
    live = fields.get("CallUUID", "") if fields.get("RequestUUID") else ""  # once it is up
    if fields.get("Event") == "MachineDetection" or "Machine" in fields:
        machine = fields.get("Machine", "").strip().lower()
        return CallProgress(call, None, f"Machine={machine}", _MACHINE.get(machine),
                            control_id=live)
    word = fields.get("CallStatus", "").strip().lower()
    cause = fields.get("HangupCause", "")
    return CallProgress(call, _STATUSES.get(word), word + (f" ({cause})" if cause else ""),
                        control_id=live)
