"""Twilio Media Streams (and SignalWire's, which speaks the same messages), sans-I/O.

Text frames go in through :meth:`TwilioStream.receive`; neutral events come out
(:mod:`gateway.carriers.core`). Outgoing ``media``/``mark``/``clear`` messages are built as JSON
text. Nothing here awaits or touches a socket, so the whole protocol is tested with recorded
frames.

The stream is a small state machine (``StreamState`` and the ``_LEGAL`` table): only
``connected`` may precede ``start``; ``media``/``mark``/``dtmf`` are legal only while started;
nothing is legal after ``stop``. Every violation raises :class:`CarrierProtocolError` naming the
field and the call; a few kinds get their own subclass, because the bridge treats them
differently (README, "Hostile input"): an :class:`UnknownEvent` is tolerated (Twilio may add
events), an :class:`OutOfOrder` ``start`` or ``stop`` and a :class:`BadStart` end the stream.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, Final

import pybase64

from gateway.audio import AudioFormat, Codec
from gateway.carriers.core import (
    Audio,
    Capabilities,
    Carrier,
    CarrierEvent,
    CarrierProtocolError,
    Dtmf,
    EventRole,
    Played,
    Started,
    Stopped,
    StreamState,
    UnsupportedMediaFormat,
    WrongFrameType,
    check_digit,
    string_parameters,
)
from gateway.carriers.fields import (
    EventTable,
    b64_audio,
    check_stream,
    int_field,
    obj_field,
    opens_stream,
    str_field,
)

#: The only audio format a bidirectional stream carries.
MULAW_ENCODING: Final = "audio/x-mulaw"
SAMPLE_RATE: Final = 8000
FORMAT: Final = AudioFormat(Codec.PCMU, SAMPLE_RATE)
CAPABILITIES: Final = Capabilities(clear=True, marks=True, dtmf=True, hang_up=True,
                                   transfer=True, stop_event=True)

# Sids are sent back inside JSON we build by string template, so they must never need escaping.
# ``\Z``, not ``$``: ``$`` also matches before a trailing newline, which would break that JSON.
_SID_RE: Final = re.compile(r"^[A-Za-z0-9_\-]{2,64}\Z")
_MARK_NAME_MAX: Final = 256

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
_ROLES: Final = {"start": EventRole.OPENS, "stop": EventRole.ENDS}
_NOTHING: Final[tuple[CarrierEvent, ...]] = ()


class TwilioStream:
    """One Media Stream: validates what Twilio sends and builds what we send back.

    ``max_payload`` bounds one inbound frame's mu-law bytes (Twilio sends 160 per 20 ms);
    anything larger is rejected instead of being decoded into memory. ``carrier`` is
    SignalWire for its Twilio-compatible streams.
    """

    caps = CAPABILITIES

    def __init__(self, *, max_payload: int = 8000, carrier: Carrier = Carrier.TWILIO) -> None:
        self.carrier = carrier
        self.state = StreamState.NEW
        self.stream_sid: str | None = None
        self.call_sid: str | None = None
        self.max_payload = max_payload

    @property
    def call_id(self) -> str | None:
        return self.call_sid

    # -- inbound -------------------------------------------------------------------------

    def receive(self, frame: str | bytes) -> Sequence[CarrierEvent]:
        """Parse one frame; raise :class:`CarrierProtocolError` if it breaks the protocol."""
        if isinstance(frame, bytes):  # a binary WebSocket frame: Twilio sends only JSON text
            raise WrongFrameType(binary=True, call_sid=self.call_sid)
        event, msg = _EVENTS.read(frame, self.call_sid)
        next_state = _EVENTS.move(self.state, event, self.call_sid)
        if self.state is StreamState.STARTED:
            check_stream(msg, "streamSid", self.stream_sid, self.call_sid)
        parsed = _EVENTS.parsers[event](self, msg)
        self.state = next_state
        return parsed

    def _parse_connected(self, msg: dict[str, Any]) -> Sequence[CarrierEvent]:
        return _NOTHING  # informational only

    def _parse_start(self, msg: dict[str, Any]) -> Sequence[CarrierEvent]:
        start = obj_field(msg, "start", "", None)
        call_sid = str_field(start, "callSid", "start.", None)
        stream_sid = str_field(start, "streamSid", "start.", call_sid)
        str_field(start, "accountSid", "start.", call_sid)
        for name, sid in (("callSid", call_sid), ("streamSid", stream_sid)):
            if not _SID_RE.match(sid):
                raise CarrierProtocolError("malformed sid", field=f"start.{name}",
                                           call_sid=call_sid if name != "callSid" else None)
        tracks = start.get("tracks", ["inbound"])
        if not isinstance(tracks, list) or not all(isinstance(t, str) for t in tracks):
            raise CarrierProtocolError("must be a list of strings", field="start.tracks",
                                       call_sid=call_sid)
        # <Parameter name value> makes strings; other scalars are tolerated, nested values
        # are not (they are no parameter, and str() of a deep one can hit the recursion limit).
        params = string_parameters(start.get("customParameters", {}),
                                   "start.customParameters", call_sid)
        fmt = obj_field(start, "mediaFormat", "start.", call_sid)
        encoding = str_field(fmt, "encoding", "start.mediaFormat.", call_sid)
        rate = int_field(fmt, "sampleRate", "start.mediaFormat.", call_sid)
        channels = int_field(fmt, "channels", "start.mediaFormat.", call_sid)
        if (encoding, rate, channels) != (MULAW_ENCODING, SAMPLE_RATE, 1):
            raise UnsupportedMediaFormat(
                f"unsupported media format {encoding}/{rate}/{channels}; "
                f"expected {MULAW_ENCODING}/{SAMPLE_RATE}/1",
                field="start.mediaFormat", call_sid=call_sid,
            )
        self.call_sid = call_sid
        self.stream_sid = stream_sid
        # The webhook's From and To reach the stream only as <Parameter>s our answer added.
        return (Started(call_id=call_sid, stream_id=stream_sid,
                        caller=params.get("From") or None, callee=params.get("To") or None,
                        parameters=params, inbound=FORMAT, outbound=FORMAT),)

    def _parse_media(self, msg: dict[str, Any]) -> Sequence[CarrierEvent]:
        media = obj_field(msg, "media", "", self.call_sid)
        payload = b64_audio(media.get("payload"), "media.payload", self.max_payload,
                            self.call_sid)
        # Checked for their shape only: the gateway does not reorder Twilio's frames.
        for key in ("chunk", "timestamp"):
            if key in media:
                int_field(media, key, "media.", self.call_sid)
        return (Audio(payload),)

    def _parse_mark(self, msg: dict[str, Any]) -> Sequence[CarrierEvent]:
        mark = obj_field(msg, "mark", "", self.call_sid)
        return (Played(str_field(mark, "name", "mark.", self.call_sid)),)

    def _parse_dtmf(self, msg: dict[str, Any]) -> Sequence[CarrierEvent]:
        dtmf = obj_field(msg, "dtmf", "", self.call_sid)
        digit = str_field(dtmf, "digit", "dtmf.", self.call_sid)
        return (Dtmf(check_digit(digit, "dtmf.digit", self.call_sid)),)

    def _parse_stop(self, msg: dict[str, Any]) -> Sequence[CarrierEvent]:
        # A stop always ends the stream, however malformed its body: nothing in it is needed.
        return (Stopped(),)

    # -- outbound ------------------------------------------------------------------------

    def _sid(self) -> str:
        if self.stream_sid is None:
            raise CarrierProtocolError("cannot send before the stream has started")
        return self.stream_sid

    def play(self, audio: bytes) -> str:
        """A ``media`` message carrying raw mu-law (no WAV header) for the caller to hear."""
        # Built by template: base64 and a validated sid never need JSON escaping, and this
        # runs for every outbound frame of every call.
        payload = pybase64.b64encode_as_string(audio)
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


_EVENTS: Final[EventTable[TwilioStream]] = EventTable({
    "connected": TwilioStream._parse_connected,
    "start": opens_stream(TwilioStream._parse_start),
    "media": TwilioStream._parse_media,
    "mark": TwilioStream._parse_mark,
    "dtmf": TwilioStream._parse_dtmf,
    "stop": TwilioStream._parse_stop,
}, _LEGAL, _ROLES)
