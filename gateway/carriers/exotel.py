"""Exotel's Voicebot applet (its bidirectional stream), sans-I/O.

Exotel opens the socket and sends ``connected``, then ``start`` (``stream_sid``, ``call_sid``,
``account_sid``, ``from``, ``to``, ``custom_parameters`` and ``media_format``
``{encoding, sample_rate, bit_rate}``), then ``media`` (base64 16-bit PCM, little-endian,
about 100 ms a message), ``dtmf``, ``mark`` once playback reaches a mark of ours, and
``stop``. Every message after the first carries ``sequence_number`` and ``stream_sid``, in
snake_case; counters come as JSON strings. We send ``media``, ``mark`` and ``clear``. Text
frames only: the shapes are Twilio's, the names are not.

**Audio.** 16-bit PCM at 8 kHz, or at 16 or 24 kHz where the stream's URL asked with
``?sample-rate=``; both directions carry the same. The answer asks for 16 kHz
(:data:`DEFAULT_RATE`): the Live API hears 16 kHz, so the caller's audio needs no resampling,
and at Exotel's smallest message (3200 bytes) 16 kHz holds a reply back 100 ms where 8 kHz
holds it 200 ms. The ``start`` says which rate came, and that one is used.

**Outgoing messages.** Exotel plays a message well only if it is 3.2 KB to 100 KB and a whole
number of 320 bytes (smaller ones break up on network jitter, larger ones time out, a ragged
tail leaves a gap): :data:`CHUNKING`, which the playout's chunker applies.

**Custom parameters.** What the stream's URL carries in its query (up to three pairs, 256
characters in all, per Exotel's guide) comes back in the ``start``'s ``custom_parameters``:
the per-call token travels there. The caller's and the dialled numbers come in the ``start``
itself.

**Ending.** Exotel has no REST call that ends or transfers a call held by the Voicebot applet:
closing the socket ends the applet, and the call goes on to the flow's next applet (a Hangup
applet ends it). So the capabilities say no REST hang-up and no transfer.
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
    Chunking,
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

RATES: Final = (8000, 16000, 24000)
#: See the module's docstring: no resampling in, half the chunker's delay of 8 kHz out.
DEFAULT_RATE: Final = 16000
#: The stream URL's query parameter that asks Exotel for a rate.
RATE_QUERY: Final = "sample-rate"
#: Exotel's rule for a played message: 3.2 KB to 100 KB, a whole number of 320 bytes.
CHUNKING: Final = Chunking(multiple=320, minimum=3200, maximum=100_000)
CAPABILITIES: Final = Capabilities(clear=True, marks=True, dtmf=True, hang_up=False,
                                   transfer=False, stop_event=True, chunking=CHUNKING)
#: Names Exotel and its integrators use for 16-bit linear PCM ("audio/x-raw" in the guide).
_PCM_ENCODINGS: Final = frozenset({"audio/x-raw", "raw", "raw/slin", "slin", "slin16",
                                   "audio/l16", "audio/x-l16", "pcm", "linear16"})
_MARK_NAME_MAX: Final = 256

# Sids go back inside JSON we build by template, so they must never need escaping.
# ``\Z``, not ``$``: ``$`` also matches before a trailing newline.
_SID_RE: Final = re.compile(r"^[A-Za-z0-9_\-]{2,64}\Z")

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


def audio_format(rate: int) -> AudioFormat:
    return AudioFormat(Codec.L16, rate)


class ExotelStream:
    """One Voicebot stream: validates what Exotel sends and builds what we send back.

    ``max_payload`` bounds one inbound message's audio bytes (Exotel sends about 100 ms:
    4800 bytes at 24 kHz), so anything larger is refused before it is decoded.
    """

    carrier = Carrier.EXOTEL
    caps = CAPABILITIES

    def __init__(self, *, max_payload: int = 32_000) -> None:
        self.state = StreamState.NEW
        self.max_payload = max_payload
        self.stream_sid: str | None = None
        self.call_sid: str | None = None
        self.rate = DEFAULT_RATE
        self._play_head = ""

    @property
    def call_id(self) -> str | None:
        return self.call_sid

    # -- inbound -------------------------------------------------------------------------

    def receive(self, frame: str | bytes) -> Sequence[CarrierEvent]:
        """Parse one frame; raise :class:`CarrierProtocolError` if it breaks the protocol."""
        if isinstance(frame, bytes):  # Exotel sends only JSON text
            raise WrongFrameType(binary=True, call_sid=self.call_sid)
        event, msg = _EVENTS.read(frame, self.call_sid)
        next_state = _EVENTS.move(self.state, event, self.call_sid)
        if self.state is StreamState.STARTED:
            check_stream(msg, "stream_sid", self.stream_sid, self.call_sid)
            # Checked for its shape only: Exotel's socket is ordered, nothing is reordered.
            if "sequence_number" in msg:
                int_field(msg, "sequence_number", "", self.call_sid)
        parsed = _EVENTS.parsers[event](self, msg)
        self.state = next_state
        return parsed

    def _parse_connected(self, msg: dict[str, Any]) -> Sequence[CarrierEvent]:
        return _NOTHING  # informational only

    def _parse_start(self, msg: dict[str, Any]) -> Sequence[CarrierEvent]:
        start = obj_field(msg, "start", "", None)
        call_sid = str_field(start, "call_sid", "start.", None)
        if not _SID_RE.match(call_sid):
            raise CarrierProtocolError("malformed sid", field="start.call_sid")
        stream_sid = str_field(start, "stream_sid", "start.", call_sid)
        if not _SID_RE.match(stream_sid):
            raise CarrierProtocolError("malformed sid", field="start.stream_sid",
                                       call_sid=call_sid)
        outer = msg.get("stream_sid")
        if outer is not None and outer != stream_sid:
            raise CarrierProtocolError("does not match start.stream_sid", field="stream_sid",
                                       call_sid=call_sid)
        numbers = {}
        for key in ("from", "to"):
            value = start.get(key)
            if value is not None and not isinstance(value, str):
                raise CarrierProtocolError("not a string", field=f"start.{key}",
                                           call_sid=call_sid)
            numbers[key] = value or None
        params = string_parameters(start.get("custom_parameters"),
                                   "start.custom_parameters", call_sid)
        params.pop(RATE_QUERY, None)  # how the stream was asked for, not about the call
        rate = self._media_format(obj_field(start, "media_format", "start.", call_sid),
                                  call_sid)
        self.call_sid, self.stream_sid, self.rate = call_sid, stream_sid, rate
        # Built once: every reply message starts the same way.
        self._play_head = f'{{"event":"media","stream_sid":"{stream_sid}","media":{{"payload":"'
        fmt = audio_format(rate)
        return (Started(call_id=call_sid, stream_id=stream_sid, caller=numbers["from"],
                        callee=numbers["to"], parameters=params, inbound=fmt, outbound=fmt),)

    @staticmethod
    def _media_format(fmt: dict[str, Any], call_sid: str) -> int:
        where = "start.media_format."
        # Exotel's only encoding is 16-bit PCM; one named otherwise is refused, not guessed.
        encoding = fmt.get("encoding", "audio/x-raw")
        if not isinstance(encoding, str):
            raise CarrierProtocolError("not a string", field=f"{where}encoding",
                                       call_sid=call_sid)
        rate = int_field(fmt, "sample_rate", where, call_sid)
        bits = int_field(fmt, "bit_rate", where, call_sid) if "bit_rate" in fmt else 16
        media_type = encoding.partition(";")[0].strip().lower()
        if media_type not in _PCM_ENCODINGS or rate not in RATES or bits != 16:
            raise UnsupportedMediaFormat(
                f"unsupported media format {encoding[:40]}/{rate}/{bits}; expected 16-bit "
                f"PCM at {', '.join(map(str, RATES))} Hz",
                field="start.media_format", call_sid=call_sid)
        return rate

    def _parse_media(self, msg: dict[str, Any]) -> Sequence[CarrierEvent]:
        media = obj_field(msg, "media", "", self.call_sid)
        payload = b64_audio(media.get("payload"), "media.payload", self.max_payload,
                            self.call_sid)
        if len(payload) % 2:
            raise CarrierProtocolError("not a whole number of 16-bit samples",
                                       field="media.payload", call_sid=self.call_sid)
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
        return (Stopped(),)  # ends the stream however malformed its body: nothing is needed

    # -- outbound ------------------------------------------------------------------------

    def _sid(self) -> str:
        if self.stream_sid is None:
            raise CarrierProtocolError("cannot send before the stream has started")
        return self.stream_sid

    def play(self, audio: bytes) -> str:
        """A ``media`` message of raw PCM (cut to :data:`CHUNKING` by the playout)."""
        self._sid()
        # Built by template: base64 never needs JSON escaping, and this runs for every
        # outbound message of every call.
        return f'{self._play_head}{pybase64.b64encode_as_string(audio)}"}}}}'

    def mark(self, name: str) -> str:
        """A ``mark``; Exotel sends it back once the audio queued before it has played."""
        if not name or len(name) > _MARK_NAME_MAX:
            raise ValueError("mark name must be 1..256 characters")
        return json.dumps({"event": "mark", "stream_sid": self._sid(), "mark": {"name": name}},
                          separators=(",", ":"))

    def clear(self) -> str:
        """A ``clear``: Exotel drops every queued outbound sample (barge-in)."""
        return f'{{"event":"clear","stream_sid":"{self._sid()}"}}'


_EVENTS: Final[EventTable[ExotelStream]] = EventTable({
    "connected": ExotelStream._parse_connected,
    "start": opens_stream(ExotelStream._parse_start),
    "media": ExotelStream._parse_media,
    "mark": ExotelStream._parse_mark,
    "dtmf": ExotelStream._parse_dtmf,
    "stop": ExotelStream._parse_stop,
}, _LEGAL, _ROLES)
