"""jambonz's side of a ``listen`` call, sans-I/O.

:class:`JambonzPeer` sends the call webhook jambonz would (``POST``, the call's attributes as
snake_case JSON; signed, given the secret, with ``Jambonz-Signature``), reads the verbs for the
one ``listen`` (its URL, rate, bidirectional streaming mode, metadata and ``wsAuth``), and opens
the stream as jambonz does: one text frame with the call's attributes in camelCase, the
stream's format, and the verb's metadata merged in; then caller audio in binary frames of
20 ms. A mark comes back with ``event: "playout"`` once playback reaches it; a ``killAudio``
drops what is queued and every mark still waiting comes back ``"cleared"``. A hang-up is the
socket's close.

What the gateway sends is held to what jambonz takes in bidirectional streaming mode: audio
only in binary frames of whole samples (exactly 20 ms, the gateway's own rule, is checked too),
commands only as JSON text (``killAudio``, ``mark`` with a name); anything else raises.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from gateway.audio import AudioFormat, Codec
from gateway.carriers.core import Carrier, CarrierProtocolError, Outgoing, WrongFrameType
from gateway.carriers.jambonz import DEFAULT_RATE, METADATA_KEY, RATES, SUBPROTOCOLS
from gateway.carriers.jambonz_hooks import SIGNATURE_HEADER, WsAuth, signature_header
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

ACCOUNT_SID: Final = "5f9a1c2e-3b4d-4e6f-8a7b-9c0d1e2f3a4b"
APPLICATION_SID: Final = "0e1d2c3b-4a59-4867-9f8e-7d6c5b4a3928"
DTMF_DURATION: Final = 1600  # FreeSWITCH's, in samples at 8 kHz: 200 ms
MAX_PENDING_MARKS: Final = 10_000  # a gateway that never lets audio play still has bounds


def compact(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


class JambonzPeer:
    """One jambonz call: its webhook, its listen socket's frames, the checks on the replies."""

    carrier = Carrier.JAMBONZ
    subprotocols: tuple[str, ...] = SUBPROTOCOLS[:1]
    echo_marks_on_clear = False  # jambonz answers them "cleared", not played (see cleared())
    send_ms = 20

    def __init__(self, custom_parameters: Mapping[str, str] | None = None, *,
                 call_sid: str | None = None, rate: int = DEFAULT_RATE,
                 clock: Callable[[], float] = time.time) -> None:
        self.call_sid = call_sid or str(uuid.uuid4())
        self.custom_parameters = dict(custom_parameters or {})
        self.fmt = AudioFormat(Codec.L16, rate)
        self.clock = clock
        self.ws_auth: WsAuth | None = None
        self._pending: dict[str, None] = {}  # marks not yet played, in order

    @property
    def call_id(self) -> str:
        # Once the verbs are read, the sid their metadata carries (a replayed stream's, too).
        return self.custom_parameters.get("call_sid") or self.call_sid

    @property
    def inbound(self) -> AudioFormat:
        return self.fmt

    @property
    def outbound(self) -> AudioFormat:
        return self.fmt

    def _number(self, name: str, default: str) -> str:
        return self.custom_parameters.get(name) or default

    # -- the call webhook ----------------------------------------------------------------

    def webhook(self, url: str, secret: str | None) -> HttpRequest:
        body = compact({
            "call_sid": self.call_sid, "direction": "inbound",
            "from": self._number("From", DEFAULT_CALLER),
            "to": self._number("To", DEFAULT_CALLEE), "call_id": f"{uuid.uuid4()}@10.0.0.1",
            "sip_status": 100, "sip_reason": "Trying", "call_status": "trying",
            "account_sid": ACCOUNT_SID, "application_sid": APPLICATION_SID,
            "caller_name": "", "trace_id": uuid.uuid4().hex})
        headers = {"Content-Type": "application/json"}
        if secret:
            headers[SIGNATURE_HEADER] = signature_header(secret, int(self.clock()), body)
        return HttpRequest("POST", url, headers, body)

    def stream_target(self, document: str) -> StreamTarget:
        try:
            verbs = json.loads(document)
        except ValueError as exc:
            raise CarrierProtocolError("the answer is not jambonz verbs (not JSON)") from exc
        listens = [v for v in (verbs if isinstance(verbs, list) else [])
                   if isinstance(v, dict) and v.get("verb") == "listen"]
        if len(listens) != 1 or not isinstance(listens[0].get("url"), str):
            raise CarrierProtocolError("the verbs have no listen to one url")
        listen = listens[0]
        rate = listen.get("sampleRate", 8000)  # jambonz's default
        both = listen.get("bidirectionalAudio")
        if rate not in RATES or listen.get("mixType", "mono") != "mono":
            raise CarrierProtocolError("the listen verb's sampleRate or mixType")
        if not isinstance(both, dict) or both.get("enabled") is not True \
                or both.get("streaming") is not True or both.get("sampleRate") != rate:
            raise CarrierProtocolError("the listen verb does not stream audio back at its rate")
        metadata = listen.get("metadata", {})
        ours = metadata.get(METADATA_KEY, {}) if isinstance(metadata, dict) else None
        if not isinstance(ours, dict) or not all(isinstance(v, str) for v in ours.values()):
            raise CarrierProtocolError("the listen verb's metadata")
        auth = listen.get("wsAuth")
        if auth is not None:
            if not isinstance(auth, dict) or not all(
                    isinstance(auth.get(k), str) for k in ("username", "password")):
                raise CarrierProtocolError("the listen verb's wsAuth")
            self.ws_auth = WsAuth(auth["username"], auth["password"])
        self.fmt = AudioFormat(Codec.L16, rate)
        self.custom_parameters = dict(ours)
        return StreamTarget(listen["url"], dict(ours))

    def upgrade_headers(self, url: str, secret: str | None) -> dict[str, str]:
        # jambonz signs no upgrade; it sends the verb's wsAuth as Basic credentials.
        if self.ws_auth is None:
            return {}
        pair = f"{self.ws_auth.username}:{self.ws_auth.password}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode()}

    # -- the stream ----------------------------------------------------------------------

    def opening(self) -> Sequence[Outgoing]:
        params = self.custom_parameters
        return [json.dumps({
            "sampleRate": self.fmt.rate, "mixType": "mono", "callSid": self.call_id,
            "direction": "inbound", "from": params.get("From", DEFAULT_CALLER),
            "to": params.get("To", DEFAULT_CALLEE), "callId": f"{self.call_id}@10.0.0.1",
            "sipStatus": 200, "sipReason": "OK", "callStatus": "in-progress",
            "accountSid": ACCOUNT_SID, "applicationSid": APPLICATION_SID,
            "traceId": "0" * 32, METADATA_KEY: dict(params)})]

    def media(self, audio: bytes) -> bytes:
        return bytes(audio)

    def dtmf(self, digit: str) -> Sequence[Outgoing]:
        return [json.dumps({"event": "dtmf", "dtmf": digit, "duration": DTMF_DURATION})]

    def _mark(self, name: str, event: str) -> str:
        return json.dumps({"type": "mark", "data": {"name": name, "event": event}})

    def played(self, name: str) -> Sequence[Outgoing]:
        self._pending.pop(name, None)
        return [self._mark(name, "playout")]

    def cleared(self) -> Sequence[Outgoing]:
        # A killAudio answers nothing of its own; the marks it dropped come back "cleared".
        names, self._pending = list(self._pending), {}
        return [self._mark(name, "cleared") for name in names]

    def hang_up(self) -> Sequence[Outgoing]:
        return []  # the socket's close is the hang-up

    def receive(self, frame: str | bytes) -> OutboundEvent:
        """Parse what the gateway sent; anything jambonz would not take raises."""
        if isinstance(frame, bytes):
            if frame[:1] == b"{" and _json_object(frame) is not None:
                raise WrongFrameType(True, call_sid=self.call_id)  # commands must be text
            if len(frame) != self.fmt.frame_bytes:
                raise CarrierProtocolError(
                    f"audio frame of {len(frame)} bytes; the gateway sends "
                    f"{self.fmt.frame_bytes} (20 ms at {self.fmt.rate} Hz)", field="audio",
                    call_sid=self.call_id)
            return OutMedia(frame)
        msg = _json_object(frame)
        if msg is None:
            raise WrongFrameType(False, call_sid=self.call_id)  # JSON commands only
        kind = msg.get("type")
        if kind == "killAudio":
            return OutClear()
        if kind == "mark":
            data = msg.get("data")
            name = data.get("name") if isinstance(data, dict) else None
            if not isinstance(name, str) or not name:
                raise CarrierProtocolError("a mark needs a name", field="data.name",
                                           call_sid=self.call_id)
            if len(self._pending) >= MAX_PENDING_MARKS:
                raise CarrierProtocolError("too many marks waiting", call_sid=self.call_id)
            self._pending[name] = None
            return OutMark(name)
        raise CarrierProtocolError(f"type {str(kind)[:40]!r} is not a command jambonz takes "
                                   "in streaming mode", field="type", call_sid=self.call_id)


def _json_object(frame: str | bytes) -> dict[str, Any] | None:
    try:
        msg = json.loads(frame)
    except (ValueError, RecursionError):
        return None
    return msg if isinstance(msg, dict) else None
