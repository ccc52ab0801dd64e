"""The provider's side of a Media Stream, sans-I/O: what Twilio sends, and how it plays ours.

Used by ``voicegw call``, the demo, the tests and the load tester to act exactly as Twilio does:
:class:`TwilioPeer` builds the inbound ``connected``/``start``/``media``/``dtmf``/``mark``/``stop``
messages (counters as JSON strings, 20 ms frames) and parses what a gateway sends back;
:class:`PlaybackBuffer` models the phone's jitter buffer: audio queued in order, played in real
time, ``mark`` echoed when playback reaches it, and ``clear`` dropping the queue and echoing
every pending mark.
"""

from __future__ import annotations

import binascii
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final

from gateway.errors import ConfigError, TwilioProtocolError
from gateway.twilio import MULAW_ENCODING, SAMPLE_RATE

FRAME_BYTES: Final = 160  # 20 ms of 8 kHz mu-law
ULAW_SILENCE: Final = 0xFF


@dataclass(frozen=True, slots=True)
class OutMedia:
    payload: bytes


@dataclass(frozen=True, slots=True)
class OutMark:
    name: str


@dataclass(frozen=True, slots=True)
class OutClear:
    pass


OutboundEvent = OutMedia | OutMark | OutClear


def parse_parameters(items: list[str]) -> dict[str, str]:
    """``NAME=VALUE`` items (``--param``, repeatable) as a stream's custom parameters."""
    params = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ConfigError(f"--param wants NAME=VALUE, got {item!r}")
        params[name] = value
    return params


class TwilioPeer:
    """Builds one stream's inbound messages and checks the gateway's replies."""

    def __init__(self, call_sid: str, stream_sid: str, account_sid: str = "AC" + "0" * 32,
                 custom_parameters: dict[str, str] | None = None) -> None:
        self.call_sid = call_sid
        self.stream_sid = stream_sid
        self.account_sid = account_sid
        self.custom_parameters = dict(custom_parameters or {})
        self._seq = 0
        self._chunk = 0
        self.timestamp_ms = 0

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

    def media(self, ulaw: bytes) -> str:
        """One inbound frame; the timestamp advances by the frame's duration, as Twilio's."""
        self._chunk += 1
        payload = binascii.b2a_base64(ulaw, newline=False).decode("ascii")
        msg = (f'{{"event":"media","sequenceNumber":"{self._next_seq()}",'
               f'"streamSid":"{self.stream_sid}","media":{{"track":"inbound",'
               f'"chunk":"{self._chunk}","timestamp":"{self.timestamp_ms}",'
               f'"payload":"{payload}"}}}}')
        self.timestamp_ms += len(ulaw) * 1000 // SAMPLE_RATE
        return msg

    def mark(self, name: str) -> str:
        return json.dumps({"event": "mark", "sequenceNumber": self._next_seq(),
                           "streamSid": self.stream_sid, "mark": {"name": name}})

    def dtmf(self, digit: str) -> str:
        return json.dumps({"event": "dtmf", "sequenceNumber": self._next_seq(),
                           "streamSid": self.stream_sid,
                           "dtmf": {"track": "inbound_track", "digit": digit}})

    def stop(self) -> str:
        return json.dumps({"event": "stop", "sequenceNumber": self._next_seq(),
                           "streamSid": self.stream_sid,
                           "stop": {"accountSid": self.account_sid, "callSid": self.call_sid}})

    def receive(self, text: str | bytes) -> OutboundEvent:
        """Parse what the gateway sent; anything Twilio would reject (error 31924) raises."""
        try:
            msg: Any = json.loads(text)
        except ValueError as exc:
            raise TwilioProtocolError("gateway sent a frame that is not JSON") from exc
        if not isinstance(msg, dict):
            raise TwilioProtocolError("gateway sent JSON that is not an object")
        event = msg.get("event")
        if msg.get("streamSid") != self.stream_sid:
            raise TwilioProtocolError("wrong or missing streamSid", field="streamSid",
                                      call_sid=self.call_sid)
        if event == "media":
            media = msg.get("media")
            payload = media.get("payload") if isinstance(media, dict) else None
            if not isinstance(payload, str):
                raise TwilioProtocolError("missing", field="media.payload",
                                          call_sid=self.call_sid)
            try:
                raw = binascii.a2b_base64(payload, strict_mode=True)
            except binascii.Error as exc:
                raise TwilioProtocolError("not base64", field="media.payload",
                                          call_sid=self.call_sid) from exc
            if raw[:4] == b"RIFF":
                raise TwilioProtocolError("payload carries a WAV header", field="media.payload",
                                          call_sid=self.call_sid)
            return OutMedia(raw)
        if event == "mark":
            mark = msg.get("mark")
            name = mark.get("name") if isinstance(mark, dict) else None
            if not isinstance(name, str) or not name:
                raise TwilioProtocolError("missing", field="mark.name", call_sid=self.call_sid)
            return OutMark(name)
        if event == "clear":
            return OutClear()
        raise TwilioProtocolError(f"event {str(event)[:40]!r} is not one Twilio accepts",
                                  field="event", call_sid=self.call_sid)


@dataclass(slots=True)
class Played:
    """What one tick of playback produced."""

    audio: bytes  # exactly the requested number of bytes; silence where nothing was queued
    marks: list[str] = field(default_factory=list)  # marks reached, to echo
    underrun: bool = False  # queue ran dry part-way through this tick
    had_audio: bool = False  # any of the tick came from the queue


class PlaybackBuffer:
    """The phone side's outbound queue: audio and marks in order, played in real time.

    ``max_bytes`` bounds what a gateway can make us hold (Twilio's buffer is finite too); audio
    beyond it is dropped and counted.
    """

    def __init__(self, max_bytes: int = SAMPLE_RATE * 120) -> None:
        self._items: deque[bytes | str] = deque()  # bytes = audio, str = mark name
        self._head_offset = 0
        self.queued_bytes = 0
        self.max_bytes = max_bytes
        self.dropped_bytes = 0

    def push_audio(self, ulaw: bytes) -> None:
        room = self.max_bytes - self.queued_bytes
        if len(ulaw) > room:
            self.dropped_bytes += len(ulaw) - room
            ulaw = ulaw[:room]
        if ulaw:
            self._items.append(ulaw)
            self.queued_bytes += len(ulaw)

    def push_mark(self, name: str) -> list[str]:
        """Queue a mark; if nothing is queued ahead of it, it has played already."""
        if not self._items:
            return [name]
        self._items.append(name)
        return []

    def clear(self) -> list[str]:
        """Drop all queued audio; every pending mark is echoed, as Twilio does."""
        marks = [i for i in self._items if isinstance(i, str)]
        self._items.clear()
        self._head_offset = 0
        self.queued_bytes = 0
        return marks

    @property
    def playing(self) -> bool:
        return self.queued_bytes > 0

    def play(self, nbytes: int = FRAME_BYTES) -> Played:
        out = bytearray()
        marks: list[str] = []
        while self._items and (len(out) < nbytes or isinstance(self._items[0], str)):
            head = self._items[0]
            if isinstance(head, str):
                marks.append(head)
                self._items.popleft()
                continue
            take = head[self._head_offset:self._head_offset + nbytes - len(out)]
            out += take
            self._head_offset += len(take)
            self.queued_bytes -= len(take)
            if self._head_offset >= len(head):
                self._items.popleft()
                self._head_offset = 0
        got = len(out)
        out += bytes([ULAW_SILENCE]) * (nbytes - got)
        return Played(bytes(out), marks, underrun=0 < got < nbytes, had_audio=got > 0)
