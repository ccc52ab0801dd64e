"""Plivo's side of a bidirectional audio stream, sans-I/O.

:class:`PlivoPeer` sends the answer-URL request Plivo would (form-encoded, signed with
``X-Plivo-Signature-V3``), reads the ``<Stream>`` answer (refusing what Plivo would: an
unknown ``contentType``, ``extraHeaders`` beyond its characters or 512 bytes), signs the
socket's upgrade, and builds the ``start``/``media``/``dtmf``/``playedStream``/
``clearedAudio`` messages (counters as JSON numbers, ``extra_headers`` echoed on each, 20 ms
frames). It parses what a gateway sends back, refusing what Plivo would: a ``playAudio``
whose type or rate is not the stream's, a checkpoint or clear for another stream.

Plivo confirms a checkpoint only once the audio before it has played, so a clear confirms
none of the pending ones; it answers the clear itself with ``clearedAudio``. It sends nothing
when the caller hangs up: it closes the socket.
"""

from __future__ import annotations

import binascii
import json
import re
import secrets
import urllib.parse
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Final
from xml.etree import ElementTree

from gateway.audio import AudioFormat
from gateway.carriers.core import Carrier, CarrierProtocolError, Outgoing
from gateway.carriers.plivo import (
    DEFAULT_CONTENT_TYPE,
    ContentType,
    decode_parameters,
    encode_parameters,
)
from gateway.carriers.plivo_hooks import (
    MAX_EXTRA_HEADERS,
    NONCE_HEADER,
    SIGNATURE_HEADER,
    compute_signature,
)
from gateway.rig.peers import (
    DEFAULT_CALLEE,
    DEFAULT_CALLER,
    HttpRequest,
    OutboundEvent,
    OutClear,
    OutMark,
    OutMedia,
    StreamTarget,
    json_message,
)

MAX_MESSAGE: Final = 64 * 1024  # Plivo's limit on one WebSocket message
# What Plivo takes in extraHeaders: letters and digits, key=value pairs.
_PAIR: Final = r"[A-Za-z0-9]+=[A-Za-z0-9]+"
_EXTRA_HEADERS: Final = re.compile(rf"^{_PAIR}(?:[;,]{_PAIR})*\Z")
_WS_TO_HTTP: Final = {"ws": "http", "wss": "https"}


def _nonce() -> str:
    return str(secrets.randbelow(10**20)).zfill(20)  # Plivo's nonces are 20 digits


class PlivoPeer:
    """One Plivo call: its answer request, its stream's messages, and the checks on the
    replies. ``content`` is the audio the phone carries; the answer must ask for it."""

    subprotocols: tuple[str, ...] = ()
    echo_marks_on_clear = False
    send_ms = 20
    carrier = Carrier.PLIVO

    def __init__(self, call_uuid: str | None = None, stream_id: str | None = None,
                 account_id: str = "MA" + "0" * 18,
                 custom_parameters: Mapping[str, str] | None = None, *,
                 content: ContentType = DEFAULT_CONTENT_TYPE) -> None:
        self.call_uuid = call_uuid or str(uuid.uuid4())
        self.stream_id = stream_id or str(uuid.uuid4())
        self.account_id = account_id
        self.custom_parameters = dict(custom_parameters or {})
        self.content = content
        self._seq = 0
        self._chunk = 0
        self.timestamp_ms = 0

    @property
    def call_id(self) -> str:
        return self.call_uuid

    @property
    def inbound(self) -> AudioFormat:
        return self.content.format

    @property
    def outbound(self) -> AudioFormat:
        return self.content.format

    # -- the answer URL --------------------------------------------------------------------

    def webhook(self, url: str, secret: str | None) -> HttpRequest:
        form = {"CallUUID": self.call_uuid,
                "From": self.custom_parameters.get("From", DEFAULT_CALLER),
                "To": self.custom_parameters.get("To", DEFAULT_CALLEE),
                "Direction": "inbound", "CallStatus": "ringing", "Event": "StartApp",
                "CallerName": ""}
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if secret:
            nonce = _nonce()
            headers[SIGNATURE_HEADER] = compute_signature(secret, "POST", url, nonce,
                                                          form.items())
            headers[NONCE_HEADER] = nonce
        return HttpRequest("POST", url, headers, urllib.parse.urlencode(form).encode())

    def stream_target(self, document: str) -> StreamTarget:
        root = ElementTree.fromstring(document)  # noqa: S314 - our own gateway's XML
        stream = root.find("./Stream")
        url = (stream.text or "").strip() if stream is not None else ""
        if root.tag != "Response" or stream is None or not url.startswith(("ws://", "wss://")):
            raise CarrierProtocolError("the XML has no <Stream> with a WebSocket URL")
        if stream.get("bidirectional") != "true" or stream.get("keepCallAlive") != "true":
            raise CarrierProtocolError("the <Stream> is not bidirectional and kept alive")
        asked = stream.get("contentType", "audio/x-l16;rate=8000")  # Plivo's default
        if asked != self.content.value:
            raise CarrierProtocolError(f"contentType {asked[:40]!r} is not this phone's "
                                       f"{self.content.value}", field="contentType")
        extra = stream.get("extraHeaders", "")
        if extra and (len(extra.encode()) > MAX_EXTRA_HEADERS or not _EXTRA_HEADERS.match(extra)):
            raise CarrierProtocolError("extraHeaders Plivo would refuse", field="extraHeaders")
        params = decode_parameters(extra)
        self.custom_parameters = params | {k: v for k, v in self.custom_parameters.items()
                                           if k not in params}
        return StreamTarget(url, params)

    def upgrade_headers(self, url: str, secret: str | None) -> dict[str, str]:
        """Plivo signs the upgrade as a GET of the stream's URL in its ``https://`` form."""
        if not secret:
            return {}
        parts = urllib.parse.urlsplit(url)
        signed = urllib.parse.urlunsplit(
            parts._replace(scheme=_WS_TO_HTTP.get(parts.scheme, parts.scheme)))
        nonce = _nonce()
        return {SIGNATURE_HEADER: compute_signature(secret, "GET", signed, nonce),
                NONCE_HEADER: nonce}

    # -- the stream --------------------------------------------------------------------------

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    @property
    def extra_headers(self) -> str:
        """What Plivo echoes: the answer's ``extraHeaders`` (with this peer's edits)."""
        return encode_parameters(self.custom_parameters) if self.custom_parameters else ""

    def start(self) -> str:
        return json.dumps({
            "event": "start", "sequenceNumber": self._next_seq(),
            "start": {
                "callId": self.call_uuid, "streamId": self.stream_id,
                "accountId": self.account_id, "tracks": ["inbound"],
                "mediaFormat": {"encoding": self.content.encoding,
                                "sampleRate": self.content.rate},
            },
            "extra_headers": self.extra_headers,
        })

    def opening(self) -> Sequence[Outgoing]:
        return [self.start()]

    def media(self, audio: bytes) -> str:
        """One inbound frame; the timestamp advances by the frame's duration."""
        self._chunk += 1
        payload = binascii.b2a_base64(audio, newline=False).decode("ascii")
        msg = (f'{{"event":"media","sequenceNumber":{self._next_seq()},'
               f'"streamId":"{self.stream_id}","media":{{"track":"inbound",'
               f'"timestamp":"{self.timestamp_ms}","chunk":{self._chunk},'
               f'"payload":"{payload}"}},"extra_headers":"{self.extra_headers}"}}')
        self.timestamp_ms += round(self.content.format.ms(len(audio)))
        return msg

    def dtmf(self, digit: str) -> Sequence[Outgoing]:
        return [json.dumps({"event": "dtmf", "sequenceNumber": self._next_seq(),
                            "streamId": self.stream_id,
                            "dtmf": {"track": "inbound", "digit": digit,
                                     "timestamp": str(self.timestamp_ms)},
                            "extra_headers": self.extra_headers})]

    def played(self, name: str) -> Sequence[Outgoing]:
        return [json.dumps({"event": "playedStream", "sequenceNumber": self._next_seq(),
                            "streamId": self.stream_id, "name": name})]

    def cleared(self) -> Sequence[Outgoing]:
        return [json.dumps({"event": "clearedAudio", "sequenceNumber": self._next_seq(),
                            "streamId": self.stream_id})]

    def hang_up(self) -> Sequence[Outgoing]:
        return []  # Plivo just closes the socket

    # -- what the gateway sends ------------------------------------------------------------

    def receive(self, frame: str | bytes) -> OutboundEvent:
        """Parse what the gateway sent; anything Plivo would not take raises."""
        if len(frame) > MAX_MESSAGE:
            raise CarrierProtocolError(f"gateway sent a message over {MAX_MESSAGE} bytes")
        msg = json_message(frame)
        event = msg.get("event")
        if event == "playAudio":
            return OutMedia(self._audio(msg.get("media")))
        if msg.get("streamId") != self.stream_id:
            raise CarrierProtocolError("wrong or missing streamId", field="streamId",
                                       call_sid=self.call_uuid)
        if event == "checkpoint":
            name = msg.get("name")
            if not isinstance(name, str) or not name:
                raise CarrierProtocolError("missing", field="name", call_sid=self.call_uuid)
            return OutMark(name)
        if event == "clearAudio":
            return OutClear()
        raise CarrierProtocolError(f"event {str(event)[:40]!r} is not one Plivo accepts",
                                   field="event", call_sid=self.call_uuid)

    def _audio(self, media: Any) -> bytes:
        def refuse(why: str, where: str) -> CarrierProtocolError:
            return CarrierProtocolError(why, field=f"media.{where}", call_sid=self.call_uuid)

        if not isinstance(media, dict):
            raise refuse("missing", "")
        if media.get("contentType") != self.content.encoding:
            raise refuse("not the stream's content type", "contentType")
        rate = media.get("sampleRate")
        if isinstance(rate, bool) or rate not in (self.content.rate, str(self.content.rate)):
            raise refuse("not the stream's sample rate", "sampleRate")
        payload = media.get("payload")
        if not isinstance(payload, str):
            raise refuse("missing", "payload")
        try:
            raw = binascii.a2b_base64(payload, strict_mode=True)
        except binascii.Error as exc:
            raise refuse("not base64", "payload") from exc
        if raw[:4] == b"RIFF":
            raise refuse("payload carries a WAV header", "payload")
        if not raw or len(raw) % self.content.format.codec.sample_bytes:
            raise refuse("not a whole number of samples", "payload")
        return raw
