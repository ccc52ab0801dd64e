"""Exotel's side of a Voicebot stream, sans-I/O.

:class:`ExotelPeer` fetches the applet's dynamic URL as Exotel would (``GET`` with the call's
fields in the query, the Basic credentials the operator wrote into the applet's URL), reads
the ``{"url": "wss://..."}`` answer (refusing what Exotel would: no ``wss://`` URL, more than
three query pairs or 256 characters of them, a rate it does not stream), and presents the
credentials in that URL's userinfo on the upgrade. It builds the ``connected``/``start``/
``media``/``dtmf``/``mark``/``stop`` messages (snake_case, counters as JSON strings, the URL's
query as ``custom_parameters``, 100 ms of audio a message) and parses what a gateway sends
back, refusing what Exotel does not play well: audio that is not 3.2 KB to 100 KB and a whole
number of 320 bytes.

Exotel confirms a mark once the audio before it has played; a ``clear`` confirms nothing (its
guide documents no such echo), and it sends nothing back for the clear itself. When the
caller hangs up it sends ``stop``.
"""

from __future__ import annotations

import base64
import binascii
import json
import urllib.parse
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Final

from gateway.audio import AudioFormat
from gateway.carriers.core import Carrier, CarrierProtocolError, Outgoing
from gateway.carriers.exotel import CHUNKING, DEFAULT_RATE, RATE_QUERY, RATES, audio_format
from gateway.carriers.exotel_hooks import MAX_QUERY_CHARS
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

MAX_PAIRS: Final = 3  # what the stream URL's query may carry, per Exotel's guide
MAX_MESSAGE: Final = 256 * 1024


def basic_header(credentials: str) -> str:
    """``Authorization: Basic`` for ``user:password``."""
    return "Basic " + base64.b64encode(credentials.encode()).decode("ascii")


class ExotelPeer:
    """One call through a Voicebot applet: its URL fetch, its stream's messages, and the checks
    on the replies. ``rate`` is the audio the phone carries; the URL must ask for it."""

    subprotocols: tuple[str, ...] = ()
    echo_marks_on_clear = False
    send_ms = 100
    carrier = Carrier.EXOTEL

    def __init__(self, call_sid: str | None = None, stream_sid: str | None = None,
                 account_sid: str = "exotelrigaccount",
                 custom_parameters: Mapping[str, str] | None = None, *,
                 rate: int = DEFAULT_RATE) -> None:
        if rate not in RATES:
            raise ValueError(f"Exotel streams at {RATES} Hz")
        self.call_sid = call_sid or uuid.uuid4().hex  # Exotel's: 32 hex digits
        self.stream_sid = stream_sid or "MZ" + uuid.uuid4().hex
        self.account_sid = account_sid
        params = dict(custom_parameters or {})
        # The numbers travel in the start itself, not as parameters.
        self.caller = params.pop("From", DEFAULT_CALLER)
        self.callee = params.pop("To", DEFAULT_CALLEE)
        self.custom_parameters = params
        self.rate = rate
        self._seq = 0
        self._chunk = 0
        self.timestamp_ms = 0

    @property
    def call_id(self) -> str:
        return self.call_sid

    @property
    def inbound(self) -> AudioFormat:
        return audio_format(self.rate)

    @property
    def outbound(self) -> AudioFormat:
        return audio_format(self.rate)

    # -- the dynamic URL ---------------------------------------------------------------------

    def webhook(self, url: str, secret: str | None) -> HttpRequest:
        """The applet's GET; ``secret`` is ``user:password``, as written in its URL."""
        query = urllib.parse.urlencode({
            "CallSid": self.call_sid, "From": self.caller, "To": self.callee,
            "Direction": "incoming", "CallType": "call-attempt", "CurrentTime":
            "2025-01-15 10:30:00", "CustomField": ""})
        headers = {"Authorization": basic_header(secret)} if secret else {}
        return HttpRequest("GET", f"{url}{'&' if '?' in url else '?'}{query}", headers)

    def stream_target(self, document: str) -> StreamTarget:
        try:
            answer: Any = json.loads(document)
        except ValueError as exc:
            raise CarrierProtocolError("the answer is not JSON") from exc
        url = answer.get("url") if isinstance(answer, dict) else None
        if not isinstance(url, str) or not url.startswith(("ws://", "wss://")):
            raise CarrierProtocolError("the answer has no WebSocket url", field="url")
        query = urllib.parse.urlsplit(url).query
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
        if len(pairs) > MAX_PAIRS or len(query) > MAX_QUERY_CHARS:
            raise CarrierProtocolError("more custom parameters than Exotel carries",
                                       field="url")
        params = dict(pairs)
        asked = params.get(RATE_QUERY, "8000")  # Exotel's default
        if asked != str(self.rate):
            raise CarrierProtocolError(f"sample-rate {asked[:8]!r} is not this phone's "
                                       f"{self.rate}", field="url")
        self.custom_parameters = params | {k: v for k, v in self.custom_parameters.items()
                                           if k not in params}
        return StreamTarget(url, params)

    def upgrade_headers(self, url: str, secret: str | None) -> dict[str, str]:
        """Exotel presents the credentials in the stream URL's userinfo (else ``secret``)."""
        parts = urllib.parse.urlsplit(url)
        if parts.username is not None:
            user = urllib.parse.unquote(parts.username)
            password = urllib.parse.unquote(parts.password or "")
            return {"Authorization": basic_header(f"{user}:{password}")}
        return {"Authorization": basic_header(secret)} if secret else {}

    # -- the stream --------------------------------------------------------------------------

    def _next_seq(self) -> str:
        self._seq += 1
        return str(self._seq)

    def start(self) -> str:
        fmt = {"encoding": "audio/x-raw", "sample_rate": str(self.rate), "bit_rate": "16"}
        return json.dumps({
            "event": "start", "sequence_number": self._next_seq(),
            "stream_sid": self.stream_sid,
            "start": {"stream_sid": self.stream_sid, "call_sid": self.call_sid,
                      "account_sid": self.account_sid, "from": self.caller,
                      "to": self.callee, "custom_parameters": self.custom_parameters,
                      "media_format": fmt},
        })

    def opening(self) -> Sequence[Outgoing]:
        return [json.dumps({"event": "connected"}), self.start()]

    def media(self, audio: bytes) -> str:
        """One inbound message; the timestamp advances by its duration."""
        self._chunk += 1
        payload = binascii.b2a_base64(audio, newline=False).decode("ascii")
        msg = (f'{{"event":"media","sequence_number":"{self._next_seq()}",'
               f'"stream_sid":"{self.stream_sid}","media":{{"chunk":"{self._chunk}",'
               f'"timestamp":"{self.timestamp_ms}","payload":"{payload}"}}}}')
        self.timestamp_ms += round(self.inbound.ms(len(audio)))
        return msg

    def dtmf(self, digit: str) -> Sequence[Outgoing]:
        return [json.dumps({"event": "dtmf", "sequence_number": self._next_seq(),
                            "stream_sid": self.stream_sid,
                            "dtmf": {"digit": digit, "duration": "100"}})]

    def played(self, name: str) -> Sequence[Outgoing]:
        return [json.dumps({"event": "mark", "sequence_number": self._next_seq(),
                            "stream_sid": self.stream_sid, "mark": {"name": name}})]

    def cleared(self) -> Sequence[Outgoing]:
        return []  # Exotel confirms no clear

    def hang_up(self) -> Sequence[Outgoing]:
        return [json.dumps({"event": "stop", "sequence_number": self._next_seq(),
                            "stream_sid": self.stream_sid,
                            "stop": {"call_sid": self.call_sid,
                                     "account_sid": self.account_sid,
                                     "reason": "callended"}})]

    # -- what the gateway sends ------------------------------------------------------------

    def receive(self, frame: str | bytes) -> OutboundEvent:
        """Parse what the gateway sent; anything Exotel would not take (or play well) raises."""
        if len(frame) > MAX_MESSAGE:
            raise CarrierProtocolError(f"gateway sent a message over {MAX_MESSAGE} bytes")
        msg = json_message(frame)
        if msg.get("stream_sid") != self.stream_sid:
            raise CarrierProtocolError("wrong or missing stream_sid", field="stream_sid",
                                       call_sid=self.call_sid)
        event = msg.get("event")
        if event == "media":
            return OutMedia(self._audio(msg.get("media")))
        if event == "mark":
            mark = msg.get("mark")
            name = mark.get("name") if isinstance(mark, dict) else None
            if not isinstance(name, str) or not name:
                raise CarrierProtocolError("missing", field="mark.name", call_sid=self.call_sid)
            return OutMark(name)
        if event == "clear":
            return OutClear()
        raise CarrierProtocolError(f"event {str(event)[:40]!r} is not one Exotel accepts",
                                   field="event", call_sid=self.call_sid)

    def _audio(self, media: Any) -> bytes:
        payload = media.get("payload") if isinstance(media, dict) else None
        if not isinstance(payload, str):
            raise CarrierProtocolError("missing", field="media.payload", call_sid=self.call_sid)
        try:
            raw = binascii.a2b_base64(payload, strict_mode=True)
        except binascii.Error as exc:
            raise CarrierProtocolError("not base64", field="media.payload",
                                       call_sid=self.call_sid) from exc
        if raw[:4] == b"RIFF":
            raise CarrierProtocolError("payload carries a WAV header", field="media.payload",
                                       call_sid=self.call_sid)
        if not CHUNKING.minimum <= len(raw) <= CHUNKING.maximum \
                or len(raw) % CHUNKING.multiple:
            raise CarrierProtocolError(
                f"{len(raw)} bytes: Exotel plays 3200 to 100000, a multiple of 320",
                field="media.payload", call_sid=self.call_sid)
        return raw
