"""What a carrier's webhooks say, in the gateway's own words. Pure: no I/O.

A provider fetches an *answer document* when a call comes in (TwiML, TeXML, Plivo XML, an
NCCO...). Each provider module reads the call out of that request (:class:`CallInfo`), writes
the document that points the call's audio at the gateway's media socket (:class:`StreamPlan`:
the URL and the parameters to carry, the per-call token among them), and checks the request's
signature (:class:`Verifier`). The server adapts its HTTP requests into
:class:`WebhookRequest` and never needs to know which provider it is talking to.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from gateway.carriers.core import Carrier
from gateway.errors import PeerError
from gateway.jsonio import JSONDecodeError, loads

BUSY_TEXT = "All lines are busy. Please call again later."


class WebhookError(PeerError):
    """A webhook request the gateway cannot answer (a call id missing...): HTTP 400."""


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """One HTTP request from a provider, as the signature checks and answer builders see it.

    ``urls`` are the public URLs the provider may have used (and signed) for this request,
    query string included: behind a proxy the gateway cannot know which one it was, so each
    candidate is tried. ``headers`` must be case-insensitive (aiohttp's are).
    """

    method: str
    urls: tuple[str, ...]
    headers: Mapping[str, str]
    body: bytes = b""
    form: tuple[tuple[str, str], ...] = ()  # a form-encoded POST body's fields
    query: tuple[tuple[str, str], ...] = ()
    now: float = 0.0  # Unix time, for signatures that carry a timestamp

    def param(self, name: str) -> str | None:
        """A form field, else a query parameter (the first of that name)."""
        for key, value in (*self.form, *self.query):
            if key == name:
                return value
        return None


class Verdict(enum.Enum):
    VALID = "valid"
    MISSING = "missing"  # no signature on the request
    INVALID = "invalid"  # a signature, but not the provider's for this request
    STALE = "stale"  # the provider's, but too old (or from the future): a replay


class Verifier(Protocol):
    """Checks that a request was signed by the provider; ``header`` names what is checked,
    for the log line and the 403's text (never its value)."""

    @property
    def header(self) -> str: ...

    def verify(self, request: WebhookRequest) -> Verdict: ...


def json_body(request: WebhookRequest) -> dict[str, Any] | None:
    """The request's body as a JSON object; None without one (empty, not JSON, not an
    object)."""
    if not request.body:
        return None
    try:
        data = loads(request.body)
    except JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def webhook_fields(request: WebhookRequest) -> dict[str, str]:
    """A webhook's fields, from its query, its form, or its JSON body; only strings (the
    providers that post JSON: Vonage, jambonz)."""
    fields = dict((*request.query, *request.form))
    body = json_body(request)
    if body is not None:
        fields.update({k: v for k, v in body.items() if isinstance(v, str)})
    return fields


@dataclass(frozen=True, slots=True)
class CallInfo:
    """The call an answer webhook is about."""

    call_id: str
    caller: str | None = None
    callee: str | None = None
    # Passed on to the stream, where the provider's start message does not carry them.
    forwarded: Mapping[str, str] = field(default_factory=dict)


def form_call_info(request: WebhookRequest, id_field: str,
                   forwarded: tuple[str, ...]) -> CallInfo:
    """The call a form-style webhook (Twilio's fields, which TeXML, cXML and Plivo share)
    is about: its id from ``id_field``, the numbers from ``From`` and ``To``, and the
    ``forwarded`` fields it has, for the stream."""
    call_id = request.param(id_field)
    if not call_id:
        raise WebhookError(f"no {id_field} in the webhook")
    return CallInfo(call_id, request.param("From") or None, request.param("To") or None,
                    {name: value for name in forwarded if (value := request.param(name))})


@dataclass(frozen=True, slots=True)
class StreamPlan:
    """Where the answer document points the call's audio, and what travels with it."""

    url: str  # wss://.../NAME/media[/agent]
    parameters: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class AnswerDocument:
    body: str
    content_type: str


class CarrierHooks(Protocol):
    """One provider's webhooks: reading a call, answering it, and saying "busy"."""

    @property
    def carrier(self) -> Carrier: ...
    @property
    def answer_methods(self) -> tuple[str, ...]:
        """The HTTP methods its answer webhook may use."""

    def call_info(self, request: WebhookRequest) -> CallInfo:
        """The call this answer webhook is for; :class:`WebhookError` if it names none."""
    def answer(self, call: CallInfo, stream: StreamPlan) -> AnswerDocument: ...
    def busy(self) -> AnswerDocument:
        """Tells the caller all lines are busy, then hangs up (at capacity, draining)."""


# -- URLs --------------------------------------------------------------------------------

_HTTP_SCHEME = {"http": "http", "https": "https", "ws": "http", "wss": "https"}
_WS_SCHEME = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}
_DEFAULT_PORT = {"http": 80, "ws": 80, "https": 443, "wss": 443}


def _split_port(netloc: str) -> tuple[str, str | None]:
    """``netloc`` without its port, and the port (``None`` if absent); IPv6-literal aware."""
    userinfo, at, hostport = netloc.rpartition("@")
    if hostport.startswith("["):
        host, bracket, rest = hostport.partition("]")
        host += bracket
        port = rest[1:] if rest.startswith(":") else None
    else:
        host, colon, port_text = hostport.partition(":")
        port = port_text if colon else None
    return userinfo + at + host, port or None


def url_variants(url: str) -> list[str]:
    """``url`` as given, without its port, and with the scheme's default port.

    Twilio's own validator tries the with- and without-port forms because, in its words,
    signature generation on Twilio's side is inconsistent about ports. It appends ``:80`` to
    every non-https URL, so for ``wss://`` it would try ``:80``; we use the scheme's real
    default port (443) instead, which is the form that could actually have been signed.
    """
    parts = urlsplit(url)
    bare, port = _split_port(parts.netloc)
    default = _DEFAULT_PORT.get(parts.scheme.lower())
    variants = [url, urlunsplit(parts._replace(netloc=bare))]
    if port is None and default is not None:
        variants.append(urlunsplit(parts._replace(netloc=f"{bare}:{default}")))
    return list(dict.fromkeys(variants))


def public_urls(base: str, path_qs: str, *, websocket: bool) -> tuple[str, ...]:
    """The full URLs a provider may have used for a request to ``path_qs`` on ``base``.

    ``base`` is the public origin plus any path prefix (``https://gw.example.com/voice``), as
    configured in ``VOICEGW_PUBLIC_URL``; ``path_qs`` is the raw path and query as received.
    Webhooks come over ``https://`` (or ``http://``). For a media socket, providers that sign
    the upgrade do not all say which URL they sign; third-party implementations use the
    ``wss://`` URL exactly as written in the answer document. So for sockets both the
    ``wss://`` and the ``https://`` forms of the same URL are candidates: either way the signer
    had to know the secret.
    """
    parts = urlsplit(base)
    scheme = parts.scheme.lower()
    schemes = [_WS_SCHEME.get(scheme, scheme), _HTTP_SCHEME.get(scheme, scheme)] if websocket \
        else [_HTTP_SCHEME.get(scheme, scheme)]
    prefix = parts.path.rstrip("/")
    urls = [f"{s}://{parts.netloc}{prefix}{path_qs}" for s in dict.fromkeys(schemes)]
    return tuple(dict.fromkeys(v for u in urls for v in url_variants(u)))


def ws_url(base: str, path: str) -> str:
    """The ``wss://`` (``ws://`` for a plain-http base) URL of ``path`` under ``base``."""
    parts = urlsplit(base)
    scheme = "ws" if parts.scheme in ("http", "ws") else "wss"
    return f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}{path}"
