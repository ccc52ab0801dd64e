"""Twilio's side of a Media Stream, sans-I/O (and SignalWire's, which speaks the same, with
its own ids and signature header).

:class:`TwilioPeer` sends the voice webhook Twilio would (form-encoded, signed with
``X-Twilio-Signature``), reads the TwiML answer, and builds the inbound
``connected``/``start``/``media``/``dtmf``/``mark``/``stop`` messages (counters as JSON strings,
20 ms frames); it parses what a gateway sends back, refusing what Twilio would (error 31924).
Twilio echoes a mark when playback reaches it, and every pending mark on ``clear``.
"""

from __future__ import annotations

import binascii
import json
import urllib.parse
import uuid
from collections.abc import Mapping, Sequence
from typing import Final
from xml.etree import ElementTree

from gateway.audio import AudioFormat
from gateway.carriers.core import Carrier, CarrierProtocolError, Outgoing
from gateway.carriers.signalwire import SIGNATURE_HEADER as SIGNALWIRE_HEADER
from gateway.carriers.twilio import FORMAT, MULAW_ENCODING, SAMPLE_RATE
from gateway.carriers.twilio_hooks import SIGNATURE_HEADER, compute_signature
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

FRAME_BYTES: Final = 160  # 20 ms of 8 kHz mu-law
ULAW_SILENCE: Final = 0xFF


class TwilioPeer:
    """One Twilio call: its webhook, its stream's messages, and the checks on the replies."""

    subprotocols: tuple[str, ...] = ()
    inbound: AudioFormat = FORMAT
    outbound: AudioFormat = FORMAT
    echo_marks_on_clear = True
    send_ms = 20

    def __init__(self, call_sid: str | None = None, stream_sid: str | None = None,
                 account_sid: str = "AC" + "0" * 32,
                 custom_parameters: Mapping[str, str] | None = None, *,
                 carrier: Carrier = Carrier.TWILIO,
                 signature_header: str = SIGNATURE_HEADER) -> None:
        # Twilio's SID format: two letters and 32 hex digits.
        self.call_sid = call_sid or "CA" + uuid.uuid4().hex
        self.stream_sid = stream_sid or "MZ" + uuid.uuid4().hex
        self.account_sid = account_sid
        self.custom_parameters = dict(custom_parameters or {})
        self.carrier = carrier
        self.signature_header = signature_header
        self._seq = 0
        self._chunk = 0
        self.timestamp_ms = 0

    @property
    def call_id(self) -> str:
        return self.call_sid

    # -- the answer webhook ----------------------------------------------------------------

    def webhook(self, url: str, secret: str | None) -> HttpRequest:
        form = {"CallSid": self.call_sid, "AccountSid": self.account_sid,
                "From": self.custom_parameters.get("From", DEFAULT_CALLER),
                "To": self.custom_parameters.get("To", DEFAULT_CALLEE),
                "Direction": "inbound", "CallStatus": "ringing"}
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if secret:
            headers[self.signature_header] = compute_signature(secret, url, form.items())
        return HttpRequest("POST", url, headers, urllib.parse.urlencode(form).encode())

    def stream_target(self, document: str) -> StreamTarget:
        root = ElementTree.fromstring(document)  # noqa: S314 - our own gateway's TwiML
        stream = root.find("./Connect/Stream")
        if stream is None or not stream.get("url"):
            raise CarrierProtocolError("the TwiML has no <Connect><Stream url>")
        params = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
        self.custom_parameters = params | {k: v for k, v in self.custom_parameters.items()
                                           if k not in params}
        return StreamTarget(stream.get("url", ""), params)

    def upgrade_headers(self, url: str, secret: str | None) -> dict[str, str]:
        # Twilio signs the stream URL exactly as written in the TwiML, with no parameters.
        return {self.signature_header: compute_signature(secret, url)} if secret else {}

    # -- the stream --------------------------------------------------------------------------

    def _next_seq(self) -> str:
        self._seq += 1
        return str(self._seq)

    @staticmethod
    def connected() -> str:
        return json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})

    def start(self) -> str:
        return json.dumps({
            "event": "start", "sequenceNumber": self._next_seq(), "streamSid": self.stream_sid,
            "start": {
                "streamSid": self.stream_sid, "accountSid": self.account_sid,
                "callSid": self.call_sid, "tracks": ["inbound"],
                "customParameters": self.custom_parameters,
                "mediaFormat": {"encoding": MULAW_ENCODING, "sampleRate": SAMPLE_RATE,
                                "channels": 1},
            },
        })

    def opening(self) -> Sequence[Outgoing]:
        return [self.connected(), self.start()]

    def media(self, audio: bytes) -> str:
        """One inbound frame; the timestamp advances by the frame's duration, as Twilio's."""
        self._chunk += 1
        payload = binascii.b2a_base64(audio, newline=False).decode("ascii")
        msg = (f'{{"event":"media","sequenceNumber":"{self._next_seq()}",'
               f'"streamSid":"{self.stream_sid}","media":{{"track":"inbound",'
               f'"chunk":"{self._chunk}","timestamp":"{self.timestamp_ms}",'
               f'"payload":"{payload}"}}}}')
        self.timestamp_ms += len(audio) * 1000 // SAMPLE_RATE
        return msg

    def mark(self, name: str) -> str:
        return json.dumps({"event": "mark", "sequenceNumber": self._next_seq(),
                           "streamSid": self.stream_sid, "mark": {"name": name}})

    def played(self, name: str) -> Sequence[Outgoing]:
        return [self.mark(name)]

    def cleared(self) -> Sequence[Outgoing]:
        return []  # Twilio confirms a clear only by echoing the pending marks

    def dtmf(self, digit: str) -> Sequence[Outgoing]:
        return [json.dumps({"event": "dtmf", "sequenceNumber": self._next_seq(),
                            "streamSid": self.stream_sid,
                            "dtmf": {"track": "inbound_track", "digit": digit}})]

    def stop(self) -> str:
        return json.dumps({"event": "stop", "sequenceNumber": self._next_seq(),
                           "streamSid": self.stream_sid,
                           "stop": {"accountSid": self.account_sid, "callSid": self.call_sid}})

    def hang_up(self) -> Sequence[Outgoing]:
        return [self.stop()]

    def receive(self, frame: str | bytes) -> OutboundEvent:
        """Parse what the gateway sent; anything Twilio would reject (error 31924) raises."""
        msg = json_message(frame)
        event = msg.get("event")
        if msg.get("streamSid") != self.stream_sid:
            raise CarrierProtocolError("wrong or missing streamSid", field="streamSid",
                                       call_sid=self.call_sid)
        if event == "media":
            media = msg.get("media")
            payload = media.get("payload") if isinstance(media, dict) else None
            if not isinstance(payload, str):
                raise CarrierProtocolError("missing", field="media.payload",
                                           call_sid=self.call_sid)
            try:
                raw = binascii.a2b_base64(payload, strict_mode=True)
            except binascii.Error as exc:
                raise CarrierProtocolError("not base64", field="media.payload",
                                           call_sid=self.call_sid) from exc
            if raw[:4] == b"RIFF":
                raise CarrierProtocolError("payload carries a WAV header",
                                           field="media.payload", call_sid=self.call_sid)
            return OutMedia(raw)
        if event == "mark":
            mark = msg.get("mark")
            name = mark.get("name") if isinstance(mark, dict) else None
            if not isinstance(name, str) or not name:
                raise CarrierProtocolError("missing", field="mark.name", call_sid=self.call_sid)
            return OutMark(name)
        if event == "clear":
            return OutClear()
        raise CarrierProtocolError(f"event {str(event)[:40]!r} is not one Twilio accepts",
                                   field="event", call_sid=self.call_sid)


def signalwire_peer(params: Mapping[str, str], call_sid: str | None = None) -> TwilioPeer:
    """A SignalWire call: Twilio's messages, SignalWire's ids (UUIDs) and signature header."""
    return TwilioPeer(call_sid=call_sid or str(uuid.uuid4()), stream_sid=str(uuid.uuid4()),
                      account_sid=str(uuid.uuid4()), custom_parameters=params,
                      carrier=Carrier.SIGNALWIRE, signature_header=SIGNALWIRE_HEADER)
