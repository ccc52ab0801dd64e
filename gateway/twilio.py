"""Twilio Media Streams, sans-I/O.

Text frames from Twilio go in through :meth:`TwilioStream.receive`; typed, frozen events come
out. Outgoing ``media``/``mark``/``clear`` messages are built as JSON text. Nothing here awaits
or touches a socket, so the whole protocol is tested with recorded frames.

The stream is a small state machine (``StreamState`` and the ``_LEGAL`` table): only
``connected`` may precede ``start``; ``media``/``mark``/``dtmf`` are legal only while started;
nothing is legal after ``stop``. Every violation raises :class:`TwilioProtocolError` naming the
field and the call.
"""

from __future__ import annotations

import binascii
import enum
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from gateway.errors import TwilioProtocolError

#: The only audio format a bidirectional stream carries.
MULAW_ENCODING: Final = "audio/x-mulaw"
SAMPLE_RATE: Final = 8000

# Sids are sent back inside JSON we build by string template, so they must never need escaping.
# ``\Z``, not ``$``: ``$`` also matches before a trailing newline, which would break that JSON.
_SID_RE: Final = re.compile(r"^[A-Za-z0-9_\-]{2,64}\Z")
_MARK_NAME_MAX: Final = 256


class StreamState(enum.Enum):
    NEW = "new"
    CONNECTED = "connected"
    STARTED = "started"
    STOPPED = "stopped"


# Which events each state accepts, and the state each one leads to.
_LEGAL: Final[dict[StreamState, dict[str, StreamState]]] = {
    StreamState.NEW: {"connected": StreamState.CONNECTED, "start": StreamState.STARTED},
    StreamState.CONNECTED: {"start": StreamState.STARTED},
    StreamState.STARTED: {
        "media": StreamState.STARTED,
        "mark": StreamState.STARTED,
        "dtmf": StreamState.STARTED,
        "stop": StreamState.STOPPED,
    },
    StreamState.STOPPED: {},
}


@dataclass(frozen=True, slots=True)
class MediaFormat:
    encoding: str
    sample_rate: int
    channels: int


@dataclass(frozen=True, slots=True)
class Connected:
    protocol: str
    version: str


@dataclass(frozen=True, slots=True)
class Start:
    stream_sid: str
    call_sid: str
    account_sid: str
    tracks: tuple[str, ...]
    custom_parameters: dict[str, str] = field(hash=False)
    media_format: MediaFormat


@dataclass(frozen=True, slots=True)
class Media:
    track: str
    chunk: int
    timestamp_ms: int
    payload: bytes  # raw mu-law, already base64-decoded


@dataclass(frozen=True, slots=True)
class Mark:
    name: str


@dataclass(frozen=True, slots=True)
class Dtmf:
    digit: str
    track: str


@dataclass(frozen=True, slots=True)
class Stop:
    call_sid: str
    account_sid: str


TwilioEvent = Connected | Start | Media | Mark | Dtmf | Stop


def _str_field(obj: dict[str, Any], key: str, path: str, call_sid: str | None) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise TwilioProtocolError(
            "missing or not a string", field=f"{path}{key}", call_sid=call_sid
        )
    return value


def _int_field(obj: dict[str, Any], key: str, path: str, call_sid: str | None) -> int:
    # Twilio sends counters as JSON strings; accept real integers too (emulators do).
    value = obj.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    # ASCII only and bounded: str.isdigit() accepts "²" (int() rejects it) and int() refuses
    # strings over 4300 digits, either of which would escape as a bare ValueError.
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18:
        return int(value)
    raise TwilioProtocolError(
        "missing or not an integer", field=f"{path}{key}", call_sid=call_sid
    )


def _obj_field(obj: dict[str, Any], key: str, call_sid: str | None) -> dict[str, Any]:
    value = obj.get(key)
    if not isinstance(value, dict):
        raise TwilioProtocolError("missing or not an object", field=key, call_sid=call_sid)
    return value


class TwilioStream:
    """One Media Stream: validates what Twilio sends and builds what we send back.

    ``max_payload`` bounds one inbound frame's mu-law bytes (Twilio sends 160 per 20 ms);
    anything larger is rejected instead of being decoded into memory.
    """

    def __init__(self, *, max_payload: int = 8000) -> None:
        self.state = StreamState.NEW
        self.stream_sid: str | None = None
        self.call_sid: str | None = None
        self.max_payload = max_payload
        self.media_frames = 0

    # -- inbound -------------------------------------------------------------------------

    def receive(self, text: str | bytes) -> TwilioEvent:
        """Parse one frame; raise :class:`TwilioProtocolError` if it breaks the protocol."""
        try:
            msg = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise TwilioProtocolError("frame is not JSON", call_sid=self.call_sid) from exc
        if not isinstance(msg, dict):
            raise TwilioProtocolError("frame is not a JSON object", call_sid=self.call_sid)
        event = msg.get("event")
        if not isinstance(event, str):
            raise TwilioProtocolError("missing or not a string", field="event",
                                      call_sid=self.call_sid)
        handler = _PARSERS.get(event)
        if handler is None:
            raise TwilioProtocolError(f"unknown event {event[:40]!r}", field="event",
                                      call_sid=self.call_sid)
        next_state = _LEGAL[self.state].get(event)
        if next_state is None:
            raise TwilioProtocolError(
                f"event {event!r} is not allowed in state {self.state.value!r}",
                field="event", call_sid=self.call_sid,
            )
        if self.state is StreamState.STARTED:
            self._check_stream_sid(msg)
        parsed = handler(self, msg)
        self.state = next_state
        return parsed

    def _check_stream_sid(self, msg: dict[str, Any]) -> None:
        sid = msg.get("streamSid")
        # Twilio stamps every post-start frame; a different sid means frames from another stream.
        if sid is not None and sid != self.stream_sid:
            raise TwilioProtocolError("streamSid does not match this stream",
                                      field="streamSid", call_sid=self.call_sid)

    def _parse_connected(self, msg: dict[str, Any]) -> Connected:
        protocol = msg.get("protocol", "")
        version = msg.get("version", "")
        return Connected(protocol=str(protocol), version=str(version))

    def _parse_start(self, msg: dict[str, Any]) -> Start:
        start = _obj_field(msg, "start", None)
        call_sid = _str_field(start, "callSid", "start.", None)
        stream_sid = _str_field(start, "streamSid", "start.", call_sid)
        account_sid = _str_field(start, "accountSid", "start.", call_sid)
        for name, sid in (("callSid", call_sid), ("streamSid", stream_sid)):
            if not _SID_RE.match(sid):
                raise TwilioProtocolError("malformed sid", field=f"start.{name}",
                                          call_sid=call_sid if name != "callSid" else None)
        tracks_raw = start.get("tracks", ["inbound"])
        if not isinstance(tracks_raw, list) or not all(isinstance(t, str) for t in tracks_raw):
            raise TwilioProtocolError("must be a list of strings", field="start.tracks",
                                      call_sid=call_sid)
        params_raw = start.get("customParameters", {})
        if not isinstance(params_raw, dict):
            raise TwilioProtocolError("must be an object", field="start.customParameters",
                                      call_sid=call_sid)
        params = {str(k): str(v) for k, v in params_raw.items()}
        fmt_raw = start.get("mediaFormat")
        if not isinstance(fmt_raw, dict):
            raise TwilioProtocolError("missing or not an object", field="start.mediaFormat",
                                      call_sid=call_sid)
        fmt = MediaFormat(
            encoding=_str_field(fmt_raw, "encoding", "start.mediaFormat.", call_sid),
            sample_rate=_int_field(fmt_raw, "sampleRate", "start.mediaFormat.", call_sid),
            channels=_int_field(fmt_raw, "channels", "start.mediaFormat.", call_sid),
        )
        if (fmt.encoding, fmt.sample_rate, fmt.channels) != (MULAW_ENCODING, SAMPLE_RATE, 1):
            raise TwilioProtocolError(
                f"unsupported media format {fmt.encoding}/{fmt.sample_rate}/{fmt.channels}; "
                f"expected {MULAW_ENCODING}/{SAMPLE_RATE}/1",
                field="start.mediaFormat", call_sid=call_sid,
            )
        self.call_sid = call_sid
        self.stream_sid = stream_sid
        return Start(stream_sid=stream_sid, call_sid=call_sid, account_sid=account_sid,
                     tracks=tuple(tracks_raw), custom_parameters=params, media_format=fmt)

    def _parse_media(self, msg: dict[str, Any]) -> Media:
        media = _obj_field(msg, "media", self.call_sid)
        payload_b64 = _str_field(media, "payload", "media.", self.call_sid)
        # Base64 is 4/3 the size of its bytes; check before decoding so a huge frame costs nothing.
        if len(payload_b64) > (self.max_payload * 4) // 3 + 4:
            raise TwilioProtocolError(
                f"payload larger than {self.max_payload} bytes", field="media.payload",
                call_sid=self.call_sid,
            )
        try:
            payload = binascii.a2b_base64(payload_b64, strict_mode=True)
        except (binascii.Error, ValueError) as exc:
            raise TwilioProtocolError("payload is not base64", field="media.payload",
                                      call_sid=self.call_sid) from exc
        if not payload:
            raise TwilioProtocolError("payload is empty", field="media.payload",
                                      call_sid=self.call_sid)
        if len(payload) > self.max_payload:  # the length pre-check rounds up to whole quanta
            raise TwilioProtocolError(
                f"payload larger than {self.max_payload} bytes", field="media.payload",
                call_sid=self.call_sid,
            )
        self.media_frames += 1
        track = media.get("track", "inbound")
        return Media(
            track=track if isinstance(track, str) else "inbound",
            chunk=_int_field(media, "chunk", "media.", self.call_sid) if "chunk" in media else 0,
            timestamp_ms=(_int_field(media, "timestamp", "media.", self.call_sid)
                          if "timestamp" in media else 0),
            payload=payload,
        )

    def _parse_mark(self, msg: dict[str, Any]) -> Mark:
        mark = _obj_field(msg, "mark", self.call_sid)
        return Mark(name=_str_field(mark, "name", "mark.", self.call_sid))

    def _parse_dtmf(self, msg: dict[str, Any]) -> Dtmf:
        dtmf = _obj_field(msg, "dtmf", self.call_sid)
        digit = _str_field(dtmf, "digit", "dtmf.", self.call_sid)
        if len(digit) != 1 or digit not in "0123456789*#ABCD":
            raise TwilioProtocolError(f"not a keypad digit: {digit[:8]!r}", field="dtmf.digit",
                                      call_sid=self.call_sid)
        track = dtmf.get("track", "inbound_track")
        return Dtmf(digit=digit, track=track if isinstance(track, str) else "inbound_track")

    def _parse_stop(self, msg: dict[str, Any]) -> Stop:
        stop = msg.get("stop")
        stop = stop if isinstance(stop, dict) else {}
        return Stop(call_sid=str(stop.get("callSid", self.call_sid or "")),
                    account_sid=str(stop.get("accountSid", "")))

    # -- outbound ------------------------------------------------------------------------

    def _sid(self) -> str:
        if self.stream_sid is None:
            raise TwilioProtocolError("cannot send before the stream has started")
        return self.stream_sid

    def media(self, ulaw: bytes) -> str:
        """A ``media`` message carrying raw mu-law (no WAV header) for the caller to hear."""
        # Built by template: base64 and a validated sid never need JSON escaping, and this
        # runs for every outbound frame of every call.
        payload = binascii.b2a_base64(ulaw, newline=False).decode("ascii")
        return f'{{"event":"media","streamSid":"{self._sid()}","media":{{"payload":"{payload}"}}}}'

    def mark(self, name: str) -> str:
        """A ``mark``; Twilio echoes it back once the audio queued before it has played."""
        if not name or len(name) > _MARK_NAME_MAX:
            raise ValueError("mark name must be 1..256 characters")
        return json.dumps({"event": "mark", "streamSid": self._sid(), "mark": {"name": name}},
                          separators=(",", ":"))

    def clear(self) -> str:
        """A ``clear``: Twilio drops every queued outbound sample (barge-in)."""
        return f'{{"event":"clear","streamSid":"{self._sid()}"}}'


_PARSERS: Final[dict[str, Callable[[TwilioStream, dict[str, Any]], TwilioEvent]]] = {
    "connected": TwilioStream._parse_connected,
    "start": TwilioStream._parse_start,
    "media": TwilioStream._parse_media,
    "mark": TwilioStream._parse_mark,
    "dtmf": TwilioStream._parse_dtmf,
    "stop": TwilioStream._parse_stop,
}
