"""Telnyx's side of a TeXML media stream, sans-I/O.

:class:`TelnyxPeer` sends the voice webhook a TeXML application gets (form-encoded, signed
with Ed25519 as Telnyx signs: ``telnyx-signature-ed25519`` over ``"{timestamp}|{body}"``),
reads the TeXML answer, and builds the stream's snake_case ``connected``/``start``/``media``/
``dtmf``/``mark``/``stop`` messages (counters as JSON strings, 20 ms frames, every frame after
``connected`` numbered). It parses what a gateway sends back and refuses what Telnyx would: a
stream not in ``rtp`` mode or in another codec than the peer plays, audio that is not whole
samples or not 20 ms to 30 s long. Telnyx sends back a mark once the audio queued before it
has played, and every pending mark on ``clear``.

The peer signs with an Ed25519 private key (``secret``: base64 of its 32 bytes, as
:func:`new_key_pair` makes); any other text is turned into a key of its own, which the
gateway's public key does not match: a forgery.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import json
import secrets
import time
import urllib.parse
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Final
from xml.etree import ElementTree

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.audio import AudioFormat
from gateway.carriers.core import Carrier, CarrierProtocolError, Outgoing
from gateway.carriers.telnyx import DEFAULT_FORMAT, MAX_MESSAGE_S, texml_codec
from gateway.carriers.telnyx_hooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, signed_payload
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

_RAW: Final = serialization.Encoding.Raw


def new_key_pair() -> tuple[str, str]:
    """A fresh signing key: (the public key for ``TELNYX_PUBLIC_KEY``, the private key the
    peer signs with), both base64 of their 32 bytes."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(_RAW, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(_RAW, serialization.PublicFormat.Raw)
    return base64.b64encode(public).decode(), base64.b64encode(private).decode()


def private_key(secret: str) -> Ed25519PrivateKey:
    try:
        raw = base64.b64decode(secret, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:  # not a key: a key of its own (a forger's)
        raw = hashlib.sha256(secret.encode()).digest()
    return Ed25519PrivateKey.from_private_bytes(raw)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``telnyx-signature-ed25519`` header Telnyx would send with ``body``."""
    signature = private_key(secret).sign(signed_payload(timestamp, body))
    return base64.b64encode(signature).decode("ascii")


class TelnyxPeer:
    """One Telnyx call: its webhook, its stream's messages, and the checks on the replies.

    ``fmt`` is the audio the call streams both ways (the answer document must ask for it);
    ``clock`` dates the webhook's signature (a test can make it stale).
    """

    carrier = Carrier.TELNYX
    subprotocols: tuple[str, ...] = ()
    echo_marks_on_clear = True
    send_ms = 20

    def __init__(self, call_control_id: str | None = None, stream_id: str | None = None,
                 account_sid: str | None = None,
                 custom_parameters: Mapping[str, str] | None = None, *,
                 fmt: AudioFormat = DEFAULT_FORMAT,
                 clock: Callable[[], float] = time.time) -> None:
        # A TeXML CallSid is the call's call_control_id: "v3:" and base64url.
        self.call_control_id = call_control_id or "v3:" + secrets.token_urlsafe(36)
        self.stream_id = stream_id or str(uuid.uuid4())
        self.account_sid = account_sid or str(uuid.uuid4())
        self.custom_parameters = dict(custom_parameters or {})
        texml_codec(fmt)
        self.inbound = self.outbound = fmt
        self.clock = clock
        self._seq = 0
        self._chunk = 0
        self.timestamp_ms = 0

    @property
    def call_id(self) -> str:
        return self.call_control_id

    # -- the answer webhook ----------------------------------------------------------------

    def webhook(self, url: str, secret: str | None) -> HttpRequest:
        form = {"CallSid": self.call_control_id, "AccountSid": self.account_sid,
                "From": self.custom_parameters.get("From", DEFAULT_CALLER),
                "To": self.custom_parameters.get("To", DEFAULT_CALLEE),
                "CallStatus": "ringing", "Direction": "inbound"}
        body = urllib.parse.urlencode(form).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if secret:
            timestamp = str(int(self.clock()))
            headers[TIMESTAMP_HEADER] = timestamp
            headers[SIGNATURE_HEADER] = sign(secret, timestamp, body)
        return HttpRequest("POST", url, headers, body)

    def stream_target(self, document: str) -> StreamTarget:
        root = ElementTree.fromstring(document)  # noqa: S314 - our own gateway's TeXML
        stream = root.find("./Connect/Stream")
        if stream is None or not stream.get("url"):
            raise CarrierProtocolError("the TeXML has no <Connect><Stream url>")
        if stream.get("bidirectionalMode") != "rtp":
            raise CarrierProtocolError("the stream is not in rtp mode: Telnyx would take "
                                       "the audio sent back for MP3 files")
        codec, rate = texml_codec(self.outbound), str(self.outbound.rate)
        asked = (stream.get("bidirectionalCodec", "PCMU"),
                 stream.get("bidirectionalSamplingRate", "8000"), stream.get("codec", codec))
        if asked != (codec, rate, codec):
            raise CarrierProtocolError(f"the stream asks for {'/'.join(asked)}; this peer "
                                       f"plays {codec}/{rate}")
        params = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
        self.custom_parameters = params | {k: v for k, v in self.custom_parameters.items()
                                           if k not in params}
        return StreamTarget(stream.get("url", ""), params)

    def upgrade_headers(self, url: str, secret: str | None) -> dict[str, str]:
        return {}  # Telnyx does not sign the media socket's upgrade

    # -- the stream --------------------------------------------------------------------------

    def _next_seq(self) -> str:
        self._seq += 1
        return str(self._seq)

    @staticmethod
    def connected() -> str:
        return json.dumps({"event": "connected", "version": "1.0.0"})

    def start(self) -> str:
        return json.dumps({
            "event": "start", "sequence_number": self._next_seq(),
            "start": {
                "user_id": self.account_sid, "call_control_id": self.call_control_id,
                "call_session_id": str(uuid.uuid5(uuid.NAMESPACE_URL, self.call_control_id)),
                "from": self.custom_parameters.get("From", DEFAULT_CALLER),
                "to": self.custom_parameters.get("To", DEFAULT_CALLEE),
                "tags": [], "custom_parameters": self.custom_parameters,
                "media_format": {"encoding": texml_codec(self.inbound),
                                 "sample_rate": self.inbound.rate, "channels": 1},
            },
            "stream_id": self.stream_id,
        })

    def opening(self) -> Sequence[Outgoing]:
        return [self.connected(), self.start()]

    def media(self, audio: bytes) -> str:
        """One inbound frame; the timestamp advances by the frame's duration."""
        self._chunk += 1
        payload = base64.b64encode(audio).decode("ascii")
        msg = (f'{{"event":"media","sequence_number":"{self._next_seq()}",'
               f'"media":{{"track":"inbound","chunk":"{self._chunk}",'
               f'"timestamp":"{self.timestamp_ms}","payload":"{payload}"}},'
               f'"stream_id":"{self.stream_id}"}}')
        self.timestamp_ms += round(self.inbound.ms(len(audio)))
        return msg

    def mark(self, name: str) -> str:
        return json.dumps({"event": "mark", "stream_id": self.stream_id,
                           "sequence_number": self._next_seq(), "mark": {"name": name}})

    def played(self, name: str) -> Sequence[Outgoing]:
        return [self.mark(name)]

    def cleared(self) -> Sequence[Outgoing]:
        return []  # Telnyx confirms a clear only by sending back the pending marks

    def dtmf(self, digit: str) -> Sequence[Outgoing]:
        now = datetime.datetime.fromtimestamp(self.clock(), datetime.UTC)
        return [json.dumps({"event": "dtmf", "stream_id": self.stream_id,
                            "occurred_at": now.isoformat().replace("+00:00", "Z"),
                            "sequence_number": self._next_seq(), "dtmf": {"digit": digit}})]

    def stop(self) -> str:
        return json.dumps({"event": "stop", "sequence_number": self._next_seq(),
                           "stop": {"user_id": self.account_sid,
                                    "call_control_id": self.call_control_id},
                           "stream_id": self.stream_id})

    def hang_up(self) -> Sequence[Outgoing]:
        return [self.stop()]

    def receive(self, frame: str | bytes) -> OutboundEvent:
        """Parse what the gateway sent; anything Telnyx would refuse raises."""
        msg = json_message(frame)
        event = msg.get("event")
        if event == "media":
            return OutMedia(self._payload(msg.get("media")))
        if event == "mark":
            mark = msg.get("mark")
            name = mark.get("name") if isinstance(mark, dict) else None
            if not isinstance(name, str) or not name:
                raise CarrierProtocolError("missing", field="mark.name",
                                           call_sid=self.call_control_id)
            return OutMark(name)
        if event == "clear":
            return OutClear()
        raise CarrierProtocolError(f"event {str(event)[:40]!r} is not one Telnyx accepts",
                                   field="event", call_sid=self.call_control_id)

    def _payload(self, media: object) -> bytes:
        payload = media.get("payload") if isinstance(media, dict) else None
        if not isinstance(payload, str):
            raise CarrierProtocolError("missing", field="media.payload",
                                       call_sid=self.call_control_id)
        try:
            raw = binascii.a2b_base64(payload, strict_mode=True)
        except binascii.Error as exc:
            raise CarrierProtocolError("not base64", field="media.payload",
                                       call_sid=self.call_control_id) from exc
        fmt = self.outbound
        if raw[:4] == b"RIFF":
            problem = "carries a WAV header"
        elif len(raw) % fmt.codec.sample_bytes:
            problem = "is not whole samples"
        elif not fmt.frame_bytes <= len(raw) <= fmt.bytes_per_second * MAX_MESSAGE_S:
            problem = f"holds {fmt.ms(len(raw)):g} ms; Telnyx takes 20 ms to 30 s"
        else:
            return raw
        raise CarrierProtocolError(f"payload {problem}", field="media.payload",
                                   call_sid=self.call_control_id)
