"""Twilio Media Streams, sans-I/O.

Text frames from Twilio go in through :meth:`TwilioStream.receive`; typed, frozen events come
out. Outgoing ``media``/``mark``/``clear`` messages are built as JSON text. Nothing here awaits
or touches a socket, so the whole protocol is tested with recorded frames.

The stream is a small state machine (``StreamState`` and the ``_LEGAL`` table): only
``connected`` may precede ``start``; ``media``/``mark``/``dtmf`` are legal only while started;
nothing is legal after ``stop``. Every violation raises :class:`TwilioProtocolError` naming the
field and the call; a few kinds get their own subclass, because the bridge treats them
differently (README, "Hostile input"): an :class:`UnknownEvent` is tolerated (Twilio may add
events), an :class:`OutOfOrder` ``start`` or ``stop`` and a :class:`BadStart` end the stream.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import pybase64

from gateway.errors import TwilioProtocolError
from gateway.jsonio import JSONDecodeError, json_error, loads

#: The only audio format a bidirectional stream carries.
MULAW_ENCODING: Final = "audio/x-mulaw"
SAMPLE_RATE: Final = 8000

# Sids are sent back inside JSON we build by string template, so they must never need escaping.
# ``\Z``, not ``$``: ``$`` also matches before a trailing newline, which would break that JSON.
_SID_RE: Final = re.compile(r"^[A-Za-z0-9_\-]{2,64}\Z")
_MARK_NAME_MAX: Final = 256


class UnknownEvent(TwilioProtocolError):
    """An ``event`` this gateway does not know; ``event`` is its name (truncated)."""

    def __init__(self, event: str, *, call_sid: str | None) -> None:
        self.event = event[:40]
        super().__init__(f"unknown event {self.event!r}", field="event", call_sid=call_sid)


class OutOfOrder(TwilioProtocolError):
    """A known event the stream's state does not allow (``media`` before ``start``...)."""

    def __init__(self, event: str, state: StreamState, *, call_sid: str | None) -> None:
        self.event = event
        self.state = state
        super().__init__(f"event {event!r} is not allowed in state {state.value!r}",
                         field="event", call_sid=call_sid)


class BadStart(TwilioProtocolError):
    """A ``start`` that cannot be used: without one no call can follow on this stream."""


class UnsupportedMediaFormat(BadStart):
    """``start.mediaFormat`` is not the mu-law 8 kHz mono that a bidirectional stream carries."""


class BinaryFrame(TwilioProtocolError):
    """A binary WebSocket frame: Twilio sends only JSON text (its socket adapter tells us)."""

    def __init__(self, *, call_sid: str | None) -> None:
        super().__init__("binary frames are not accepted", call_sid=call_sid)


class FrameTooLarge(TwilioProtocolError):
    """A frame over the transport's size limit, refused unread by the socket adapter."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"frame larger than {limit} bytes")


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


def _scalar_str(value: Any) -> str:
    """A JSON scalar as text; absent, null or a container gives ""."""
    if value is None or isinstance(value, dict | list):
        return ""
    return str(value)


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
            msg = loads(text)
        except JSONDecodeError as exc:
            raise TwilioProtocolError(json_error(exc), call_sid=self.call_sid) from exc
        if not isinstance(msg, dict):
            raise TwilioProtocolError("frame is not a JSON object", call_sid=self.call_sid)
        event = msg.get("event")
        if not isinstance(event, str):
            raise TwilioProtocolError("missing or not a string", field="event",
                                      call_sid=self.call_sid)
        handler = _PARSERS.get(event)
        if handler is None:
            raise UnknownEvent(event, call_sid=self.call_sid)
        next_state = _LEGAL[self.state].get(event)
        if next_state is None:
            raise OutOfOrder(event, self.state, call_sid=self.call_sid)
        if self.state is StreamState.STARTED:
            self._check_stream_sid(msg)
        try:
            parsed = handler(self, msg)
        except BadStart:
            raise
        except TwilioProtocolError as exc:
            if event != "start":
                raise
            # Any fault in ``start`` leaves the stream unusable, so it gets the type that says so.
            raise BadStart(exc.message, field=exc.field, call_sid=exc.call_sid) from exc
        self.state = next_state
        return parsed

    def _check_stream_sid(self, msg: dict[str, Any]) -> None:
        sid = msg.get("streamSid")
        # Twilio stamps every post-start frame; a different sid means frames from another stream.
        if sid is not None and sid != self.stream_sid:
            raise TwilioProtocolError("streamSid does not match this stream",
                                      field="streamSid", call_sid=self.call_sid)

    def _parse_connected(self, msg: dict[str, Any]) -> Connected:
        # Informational only; str() is kept to scalars (str() of a value nested ~1000 deep
        # can itself hit the recursion limit).
        return Connected(protocol=_scalar_str(msg.get("protocol")),
                         version=_scalar_str(msg.get("version")))

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
        # <Parameter name value> makes strings; other scalars are tolerated, nested values
        # are not (they are no parameter, and str() of a deep one can hit the recursion limit).
        if not isinstance(params_raw, dict) or any(
                isinstance(v, dict | list) for v in params_raw.values()):
            raise TwilioProtocolError("must be an object of strings",
                                      field="start.customParameters", call_sid=call_sid)
        params = {str(k): _scalar_str(v) for k, v in params_raw.items()}
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
            raise UnsupportedMediaFormat(
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
            payload = pybase64.b64decode(payload_b64, validate=True)
        except ValueError as exc:  # binascii.Error is one
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
        track = media.get("track", "inbound")
        event = Media(
            track=track if isinstance(track, str) else "inbound",
            chunk=_int_field(media, "chunk", "media.", self.call_sid) if "chunk" in media else 0,
            timestamp_ms=(_int_field(media, "timestamp", "media.", self.call_sid)
                          if "timestamp" in media else 0),
            payload=payload,
        )
        self.media_frames += 1  # only once the frame is accepted (a fuzzer caught it before)
        return event

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
        # A stop always ends the stream, however malformed its body: nothing in it is needed.
        stop = msg.get("stop")
        stop = stop if isinstance(stop, dict) else {}
        call_sid = stop.get("callSid")
        return Stop(call_sid=call_sid if isinstance(call_sid, str) else self.call_sid or "",
                    account_sid=_scalar_str(stop.get("accountSid")))

    # -- outbound ------------------------------------------------------------------------

    def _sid(self) -> str:
        if self.stream_sid is None:
            raise TwilioProtocolError("cannot send before the stream has started")
        return self.stream_sid

    def media(self, ulaw: bytes) -> str:
        """A ``media`` message carrying raw mu-law (no WAV header) for the caller to hear."""
        # Built by template: base64 and a validated sid never need JSON escaping, and this
        # runs for every outbound frame of every call.
        payload = pybase64.b64encode_as_string(ulaw)
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
