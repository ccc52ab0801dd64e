"""Vonage's side of a Voice API WebSocket call, sans-I/O.

:class:`VonagePeer` sends the answer webhook Vonage would (``GET`` with the call's fields in
the query, or ``POST`` JSON; signed, given the secret, with the JWT Vonage's signed callbacks
carry), reads the NCCO for the socket's URI, format and headers, and opens the stream as
Vonage does: a ``websocket:connected`` text frame with the headers at its top level, then
caller audio in binary frames of 20 ms. It confirms a ``notify`` with ``websocket:notify``
(the same payload back) once playback reaches it, and a ``clear`` with ``websocket:cleared``;
notifies still queued behind cleared audio are dropped, never confirmed. A hang-up is the
socket's normal close.

What the gateway sends is held to Vonage's rules: audio only in binary frames of exactly
20 ms at the stream's rate, control only as JSON text (``clear``, ``notify`` with an object
payload); anything else raises.
"""

from __future__ import annotations

import hashlib
import json
import time
import urllib.parse
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import jwt

from gateway.audio import AudioFormat, Codec
from gateway.carriers.core import Carrier, CarrierProtocolError, Outgoing, WrongFrameType
from gateway.carriers.vonage import (
    CALLEE_HEADER,
    CALLER_HEADER,
    CLEARED,
    CONNECTED,
    DEFAULT_RATE,
    DTMF,
    NOTIFY,
    UUID_HEADER,
    content_type,
    parse_rate,
)
from gateway.carriers.vonage_hooks import SIGNATURE_HEADER, msisdn
from gateway.rig.peers import (
    DEFAULT_CALLEE,
    DEFAULT_CALLER,
    HttpRequest,
    OutboundEvent,
    OutClear,
    OutMark,
    OutMedia,
    StreamTarget,
)

DTMF_DURATION_MS: Final = 260  # what Vonage's guide shows; fixed on most phone systems
API_KEY: Final = "a1b2c3d4"
MAX_PENDING_NOTIFIES: Final = 10_000  # a gateway that never lets audio play still has bounds


def compact(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def signed_callback(secret: str, payload: bytes, *, now: float | None = None,
                    application_id: str | None = None) -> str:
    """The ``Authorization`` value of a Vonage signed callback over ``payload``."""
    claims = {"iat": int(time.time() if now is None else now), "jti": str(uuid.uuid4()),
              "iss": "Vonage", "payload_hash": hashlib.sha256(payload).hexdigest(),
              "api_key": API_KEY}
    if application_id:
        claims["application_id"] = application_id
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a short (forged) secret is the point of some tests
        token = jwt.encode(claims, secret, algorithm="HS256")
    return f"Bearer {token}"


class VonagePeer:
    """One Vonage call: its answer webhook, its socket's frames, the checks on the replies."""

    carrier = Carrier.VONAGE
    subprotocols: tuple[str, ...] = ()
    echo_marks_on_clear = False
    send_ms = 20

    def __init__(self, custom_parameters: Mapping[str, str] | None = None, *,
                 call_uuid: str | None = None, conversation_uuid: str | None = None,
                 rate: int = DEFAULT_RATE, method: str = "GET",
                 application_id: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.call_uuid = call_uuid or str(uuid.uuid4())
        self.conversation_uuid = conversation_uuid or f"CON-{uuid.uuid4()}"
        self.custom_parameters = dict(custom_parameters or {})
        self.fmt = AudioFormat(Codec.L16, rate)
        self.method = method.upper()
        self.application_id = application_id
        self.clock = clock
        self._pending: dict[str, dict[str, Any]] = {}  # notify payloads, by mark name

    @property
    def call_id(self) -> str:
        # Once the NCCO is read, the uuid its headers carry (a replayed stream's, too).
        return self.custom_parameters.get(UUID_HEADER) or self.call_uuid

    @property
    def inbound(self) -> AudioFormat:
        return self.fmt

    @property
    def outbound(self) -> AudioFormat:
        return self.fmt

    def _number(self, lower: str, upper: str, default: str) -> str:
        return self.custom_parameters.get(lower) or self.custom_parameters.get(upper) or default

    # -- the answer webhook --------------------------------------------------------------

    def webhook(self, url: str, secret: str | None) -> HttpRequest:
        fields = {"from": msisdn(self._number(CALLER_HEADER, "From", DEFAULT_CALLER)),
                  "to": msisdn(self._number(CALLEE_HEADER, "To", DEFAULT_CALLEE)),
                  "uuid": self.call_uuid, "conversation_uuid": self.conversation_uuid,
                  "region_url": "https://api-us-3.vonage.com"}
        headers: dict[str, str] = {}
        if self.method == "POST":
            body = compact(fields)
            headers["Content-Type"] = "application/json"
            signed = body
        else:
            sep = "&" if urllib.parse.urlsplit(url).query else "?"
            url = f"{url}{sep}{urllib.parse.urlencode(fields)}"
            # Vonage hashes the whole query it sends: the answer URL's own pairs first.
            query = urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query,
                                           keep_blank_values=True)
            body, signed = b"", compact(dict(query))
        if secret:
            headers[SIGNATURE_HEADER] = signed_callback(
                secret, signed, now=self.clock(), application_id=self.application_id)
        return HttpRequest(self.method, url, headers, body)

    def stream_target(self, document: str) -> StreamTarget:
        try:
            ncco = json.loads(document)
        except ValueError as exc:
            raise CarrierProtocolError("the answer is not an NCCO (not JSON)") from exc
        endpoints = [e for action in (ncco if isinstance(ncco, list) else [])
                     if isinstance(action, dict) and action.get("action") == "connect"
                     for e in action.get("endpoint", []) if isinstance(e, dict)
                     and e.get("type") == "websocket"]
        if len(endpoints) != 1 or not isinstance(endpoints[0].get("uri"), str):
            raise CarrierProtocolError("the NCCO has no connect to one websocket uri")
        endpoint = endpoints[0]
        kind = endpoint.get("content-type")
        headers = endpoint.get("headers", {})
        if not isinstance(kind, str) or not isinstance(headers, dict) \
                or not all(isinstance(v, str) for v in headers.values()):
            raise CarrierProtocolError("the websocket endpoint's content-type or headers")
        self.fmt = AudioFormat(Codec.L16, parse_rate(kind, self.call_uuid))
        # Vonage sends exactly the endpoint's headers, nothing of its own.
        self.custom_parameters = dict(headers)
        return StreamTarget(endpoint["uri"], dict(headers))

    def upgrade_headers(self, url: str, secret: str | None) -> dict[str, str]:
        return {}  # Vonage does not sign the socket's upgrade

    # -- the stream ----------------------------------------------------------------------

    def headers(self) -> dict[str, str]:
        """What websocket:connected carries: the NCCO's headers (or, dialling the socket
        directly, the custom parameters, with the call's uuid and numbers)."""
        params = self.custom_parameters
        base = {UUID_HEADER: self.call_uuid}
        for lower, upper in ((CALLER_HEADER, "From"), (CALLEE_HEADER, "To")):
            if lower not in params and upper in params:
                base[lower] = params[upper]
        return base | params

    def opening(self) -> Sequence[Outgoing]:
        return [json.dumps({"event": CONNECTED, "content-type": content_type(self.fmt.rate),
                            **self.headers()})]

    def media(self, audio: bytes) -> bytes:
        return bytes(audio)

    def dtmf(self, digit: str) -> Sequence[Outgoing]:
        return [json.dumps({"event": DTMF, "digit": digit, "duration": DTMF_DURATION_MS})]

    def played(self, name: str) -> Sequence[Outgoing]:
        payload = self._pending.pop(name, {"name": name})
        return [json.dumps({"event": NOTIFY, "payload": payload})]

    def cleared(self) -> Sequence[Outgoing]:
        self._pending.clear()  # what was queued behind the cleared audio is never confirmed
        return [json.dumps({"event": CLEARED})]

    def hang_up(self) -> Sequence[Outgoing]:
        return []  # the socket's normal close is the hang-up

    def receive(self, frame: str | bytes) -> OutboundEvent:
        """Parse what the gateway sent; anything Vonage would not take raises."""
        if isinstance(frame, bytes):
            if frame[:1] == b"{" and _json_object(frame) is not None:
                raise WrongFrameType(True, call_sid=self.call_id)  # control must be text
            if len(frame) != self.fmt.frame_bytes:
                raise CarrierProtocolError(
                    f"audio frame of {len(frame)} bytes; Vonage takes {self.fmt.frame_bytes}"
                    f" (20 ms at {self.fmt.rate} Hz)", field="audio", call_sid=self.call_id)
            return OutMedia(frame)
        try:
            msg = json.loads(frame)
        except (ValueError, RecursionError):
            raise WrongFrameType(False, call_sid=self.call_id) from None  # JSON control only
        if not isinstance(msg, dict):
            raise CarrierProtocolError("gateway sent JSON that is not an object",
                                       call_sid=self.call_id)
        action = msg.get("action")
        if action == "clear":
            return OutClear()
        if action == "notify":
            payload = msg.get("payload")
            if not isinstance(payload, dict):
                raise CarrierProtocolError("must be an object", field="payload",
                                           call_sid=self.call_id)
            name = payload.get("name")
            if not isinstance(name, str) or not name:
                name = json.dumps(payload, sort_keys=True)
            if len(self._pending) >= MAX_PENDING_NOTIFIES:
                raise CarrierProtocolError("too many notifies waiting", call_sid=self.call_id)
            self._pending[name] = payload
            return OutMark(name)
        raise CarrierProtocolError(f"action {str(action)[:40]!r} is not one Vonage accepts",
                                   field="action", call_sid=self.call_id)


def _json_object(frame: str | bytes) -> dict[str, Any] | None:
    try:
        msg = json.loads(frame)
    except (ValueError, RecursionError):
        return None
    return msg if isinstance(msg, dict) else None
