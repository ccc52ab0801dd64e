"""Telnyx media streaming (TeXML ``<Connect><Stream bidirectionalMode="rtp">``), sans-I/O.

Text frames go in through :meth:`TelnyxStream.receive`; neutral events come out
(:mod:`gateway.carriers.core`). Telnyx's messages are Twilio's in snake_case: ``connected``,
``start`` (``stream_id``, ``start.call_control_id``, ``start.from``/``to``,
``start.custom_parameters``, ``start.media_format``), ``media`` (base64 RTP payload without
its header), ``dtmf``, ``mark`` (a mark we sent, played), ``error`` and ``stop``. We send
``media``, ``mark`` and ``clear``; Telnyx echoes every queued mark on a clear, as Twilio does.

**Audio.** In ``rtp`` mode Telnyx plays what we send in the codec the answer asked for
(``bidirectionalCodec``/``bidirectionalSamplingRate``); it documents PCMU and PCMA at 8 kHz
and L16 at 16 kHz for that, and L16 there is RTP's, big-endian. What it sends us is declared
by ``start.media_format``, so the inbound format is read from there (PCMU, PCMA or L16) and
the outbound one is the one this stream was built with. Each message we send carries 20 ms
to 30 s of audio (:func:`capabilities` tells the playout).

**Order.** Telnyx does not guarantee the order of the frames on its socket; every frame after
``start`` carries a ``sequence_number``. Frames are validated as they arrive and then released
in sequence order through a reorder window of :data:`REORDER_WINDOW` frames (160 ms of 20 ms
audio): a frame ahead of the next expected one is held; a duplicate, or one older than what
was already released, is dropped. When more than the window is held, the missing frames are
given up for lost (counted in ``gaps``) and the held ones go on in order; one of them arriving
later is then dropped as late. ``stop`` releases everything held, in order, before it ends the
stream. Frames without a sequence number are not reordered.

**Ids.** ``call_control_id`` is what call control acts on (``Started.control_id``). The
``call_id`` is the TeXML ``CallSid`` that the answer document forwarded as a ``<Parameter>``:
the id the stream token was minted for (Telnyx documents the two as the same id; the parameter
is used so the check cannot depend on that), else ``call_control_id``.

The stream is a state machine (``StreamState`` and the ``_LEGAL`` table): ``connected`` may
precede ``start``; ``media``/``mark``/``dtmf`` are legal only while started; ``error`` whenever
the stream is open; nothing after ``stop``. A frame that breaks the protocol raises a
:class:`CarrierProtocolError` naming the field and the call and leaves the stream as it was.
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
    OutOfOrder,
    Played,
    Started,
    Stopped,
    StreamState,
    UnsupportedMediaFormat,
    WrongFrameType,
    check_digit,
    scalar_text,
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
from gateway.errors import AudioFormatError

# The bidirectional RTP formats Telnyx documents, by the name TeXML gives each codec (G722,
# OPUS and AMR-WB exist too; the gateway does not decode them).
FORMATS: Final = {
    "L16": AudioFormat(Codec.L16_BE, 16000),
    "PCMU": AudioFormat(Codec.PCMU, 8000),
    "PCMA": AudioFormat(Codec.PCMA, 8000),
}
#: Wideband, and no companding: the best Telnyx plays back, and 16 kHz is what Live takes.
DEFAULT_FORMAT: Final = FORMATS["L16"]
# What ``media_format.encoding`` may say the caller's audio is.
_ENCODINGS: Final = {"PCMU": Codec.PCMU, "PCMA": Codec.PCMA, "L16": Codec.L16_BE}
REORDER_WINDOW: Final = 8
MAX_MESSAGE_S: Final = 30  # the longest audio Telnyx takes in one media message
_MARK_NAME_MAX: Final = 256
# Ids end up in REST paths and log lines: no separators, no dots (no ``..`` path segments).
_ID_RE: Final = re.compile(r"^[A-Za-z0-9:_\-]{1,200}\Z")


def texml_codec(fmt: AudioFormat) -> str:
    """The TeXML codec name for ``fmt`` (one of :data:`FORMATS`)."""
    for name, known in FORMATS.items():
        if known == fmt:
            return name
    raise ValueError(f"Telnyx plays no {fmt} stream")


def chunking(fmt: AudioFormat) -> Chunking:
    """Telnyx takes 20 ms to 30 s of audio per media message, in whole samples."""
    return Chunking(multiple=fmt.codec.sample_bytes, minimum=fmt.frame_bytes,
                    maximum=fmt.bytes_per_second * MAX_MESSAGE_S)


def capabilities(fmt: AudioFormat) -> Capabilities:
    return Capabilities(clear=True, marks=True, dtmf=True, hang_up=True, transfer=True,
                        stop_event=True, chunking=chunking(fmt))


CAPABILITIES: Final = capabilities(DEFAULT_FORMAT)


class ReportedError(CarrierProtocolError):
    """Telnyx reported an error on the stream (an ``error`` frame): counted like a broken
    frame, so a stream that keeps failing is ended."""

    def __init__(self, code: str, title: str, *, call_sid: str | None) -> None:
        self.code = code[:20]
        self.title = title[:80]
        super().__init__(f"Telnyx reported error {self.code} {self.title!r}", field="payload",
                         call_sid=call_sid)


# Which events each state accepts, and the state each one leads to.
_LEGAL: Final[dict[StreamState, dict[str, StreamState]]] = {
    StreamState.NEW: {"connected": StreamState.CONNECTED, "start": StreamState.STARTED,
                      "error": StreamState.NEW},
    StreamState.CONNECTED: {"start": StreamState.STARTED, "error": StreamState.CONNECTED},
    StreamState.STARTED: {
        "media": StreamState.STARTED,
        "mark": StreamState.STARTED,
        "dtmf": StreamState.STARTED,
        "error": StreamState.STARTED,
        "stop": StreamState.STOPPED,
    },
    StreamState.STOPPED: {},
}
_ROLES: Final = {"start": EventRole.OPENS, "stop": EventRole.ENDS}
_NOTHING: Final[tuple[CarrierEvent, ...]] = ()


class TelnyxStream:
    """One media stream: validates what Telnyx sends, puts it in order, builds what we send.

    ``outbound`` is the format the answer document asked Telnyx to play (one of
    :data:`FORMATS`). ``max_payload`` bounds one inbound frame's audio bytes (20 ms of L16 at
    16 kHz is 640); anything larger is rejected before it is decoded.
    """

    carrier = Carrier.TELNYX

    def __init__(self, *, outbound: AudioFormat = DEFAULT_FORMAT,
                 max_payload: int = 16000, window: int = REORDER_WINDOW) -> None:
        texml_codec(outbound)  # one Telnyx can play, or ValueError
        self.outbound = outbound
        self.caps = capabilities(outbound)
        self.max_payload = max_payload
        self.window = window
        self.state = StreamState.NEW
        self.stream_id: str | None = None
        self.control_id: str | None = None
        self.inbound: AudioFormat | None = None
        self._call_id: str | None = None
        self._next: int | None = None  # the sequence number due next
        self._held: dict[int, Sequence[CarrierEvent]] = {}
        self._stop_seq: int | None = None
        self.gaps = 0  # frames given up for lost
        self.dropped = 0  # duplicates and frames that came after their turn

    @property
    def call_id(self) -> str | None:
        return self._call_id

    # -- inbound -------------------------------------------------------------------------

    def receive(self, frame: str | bytes) -> Sequence[CarrierEvent]:
        """Parse one frame; raise :class:`CarrierProtocolError` if it breaks the protocol.
        Returns the events now due, in sequence order (none while a frame is held)."""
        if isinstance(frame, bytes):
            raise WrongFrameType(True, call_sid=self._call_id)
        event, msg = _EVENTS.read(frame, self._call_id)
        try:
            next_state = _EVENTS.move(self.state, event, self._call_id)
        except OutOfOrder:
            if self._late_after_stop(msg):
                self.dropped += 1
                return _NOTHING
            raise
        if self.state is StreamState.STARTED:
            check_stream(msg, "stream_id", self.stream_id, self._call_id)
        # ``start``'s parser reads its own sequence number: a fault there is the start's.
        seq = None if event == "start" else self._sequence(msg, event)
        parsed = _EVENTS.parsers[event](self, msg)
        # Valid: from here on the stream changes.
        previous, self.state = self.state, next_state
        if event == "start":
            return parsed
        if event == "stop":
            self._stop_seq = seq
            return (*self._release_all(), *parsed)
        if previous is not StreamState.STARTED or seq is None:
            return parsed  # not part of the ordered stream
        return self._in_order(seq, parsed)

    def _sequence(self, msg: dict[str, Any], event: str) -> int | None:
        if msg.get("sequence_number") is None or event == "error":
            return None
        return int_field(msg, "sequence_number", "", self._call_id)

    def _late_after_stop(self, msg: dict[str, Any]) -> bool:
        """A frame from before the ``stop`` that arrived after it: late, not a violation."""
        if self.state is not StreamState.STOPPED or self._stop_seq is None:
            return False
        try:
            seq = int_field(msg, "sequence_number", "", self._call_id)
        except CarrierProtocolError:
            return False
        return seq < self._stop_seq

    # -- ordering ------------------------------------------------------------------------

    def _in_order(self, seq: int, events: Sequence[CarrierEvent]) -> Sequence[CarrierEvent]:
        if self._next is None:  # a start without a sequence number: this one sets it
            self._next = seq
        if seq < self._next or seq in self._held:
            self.dropped += 1
            return _NOTHING
        self._held[seq] = events
        if len(self._held) > self.window:
            first = min(self._held)
            self.gaps += first - self._next
            self._next = first
        return self._drain()

    def _drain(self) -> list[CarrierEvent]:
        out: list[CarrierEvent] = []
        assert self._next is not None
        while self._next in self._held:
            out += self._held.pop(self._next)
            self._next += 1
        return out

    def _release_all(self) -> list[CarrierEvent]:
        out: list[CarrierEvent] = []
        for seq in sorted(self._held):
            out += self._held[seq]
        self._held.clear()
        return out

    # -- parsers -------------------------------------------------------------------------

    def _parse_connected(self, msg: dict[str, Any]) -> tuple[CarrierEvent, ...]:
        return _NOTHING  # informational only

    def _parse_start(self, msg: dict[str, Any]) -> tuple[CarrierEvent, ...]:
        seq = self._sequence(msg, "start")
        start = obj_field(msg, "start", "", None)
        control_id = _id(str_field(start, "call_control_id", "start.", None),
                         "start.call_control_id", None)
        params = string_parameters(start.get("custom_parameters"), "start.custom_parameters",
                                   control_id)
        call_id = _id(params.get("CallSid") or control_id,
                      "start.custom_parameters.CallSid", control_id)
        raw_stream = msg.get("stream_id", start.get("stream_id"))
        if not isinstance(raw_stream, str):
            raise CarrierProtocolError("missing or not a string", field="stream_id",
                                       call_sid=call_id)
        stream_id = _id(raw_stream, "stream_id", call_id)
        inbound = _media_format(obj_field(start, "media_format", "start.", call_id), call_id)
        caller = _party(start, "from", call_id) or params.get("From") or None
        callee = _party(start, "to", call_id) or params.get("To") or None
        self._call_id, self.control_id, self.stream_id = call_id, control_id, stream_id
        self.inbound = inbound
        self._next = None if seq is None else seq + 1
        return (Started(call_id=call_id, stream_id=stream_id, caller=caller, callee=callee,
                        parameters=params, inbound=inbound, outbound=self.outbound,
                        control_id=control_id),)

    def _parse_media(self, msg: dict[str, Any]) -> tuple[CarrierEvent, ...]:
        media = obj_field(msg, "media", "", self._call_id)
        payload = b64_audio(media.get("payload"), "media.payload", self.max_payload,
                            self._call_id)
        for key in ("chunk", "timestamp"):  # their shape only: the sequence number orders
            if key in media:
                int_field(media, key, "media.", self._call_id)
        track = media.get("track")
        if track is not None and not isinstance(track, str):
            raise CarrierProtocolError("not a string", field="media.track",
                                       call_sid=self._call_id)
        assert self.inbound is not None
        if len(payload) % self.inbound.codec.sample_bytes:
            raise CarrierProtocolError("payload is not whole samples", field="media.payload",
                                       call_sid=self._call_id)
        if track == "outbound":
            return _NOTHING  # what we play, echoed: the answer asks for the caller's only
        return (Audio(payload),)

    def _parse_mark(self, msg: dict[str, Any]) -> tuple[CarrierEvent, ...]:
        mark = obj_field(msg, "mark", "", self._call_id)
        return (Played(str_field(mark, "name", "mark.", self._call_id)),)

    def _parse_dtmf(self, msg: dict[str, Any]) -> tuple[CarrierEvent, ...]:
        dtmf = obj_field(msg, "dtmf", "", self._call_id)
        digit = str_field(dtmf, "digit", "dtmf.", self._call_id)
        return (Dtmf(check_digit(digit, "dtmf.digit", self._call_id)),)

    def _parse_error(self, msg: dict[str, Any]) -> tuple[CarrierEvent, ...]:
        payload = msg.get("payload")
        body = payload if isinstance(payload, dict) else {}
        raise ReportedError(scalar_text(body.get("code")), scalar_text(body.get("title")),
                            call_sid=self._call_id)

    def _parse_stop(self, msg: dict[str, Any]) -> tuple[CarrierEvent, ...]:
        # A stop always ends the stream, however malformed its body: nothing in it is needed.
        return (Stopped(),)

    # -- outbound ------------------------------------------------------------------------

    def _check_started(self) -> None:
        if self.stream_id is None:
            raise CarrierProtocolError("cannot send before the stream has started")

    def play(self, audio: bytes) -> str:
        """A ``media`` message: raw RTP payload in the outbound codec, no RTP header."""
        self._check_started()
        # Built by template: base64 never needs JSON escaping, and this runs for every
        # outbound frame of every call.
        payload = pybase64.b64encode_as_string(audio)
        return f'{{"event":"media","media":{{"payload":"{payload}"}}}}'

    def mark(self, name: str) -> str:
        """A ``mark``; Telnyx sends it back once the audio queued before it has played."""
        if not name or len(name) > _MARK_NAME_MAX:
            raise ValueError("mark name must be 1..256 characters")
        self._check_started()
        return json.dumps({"event": "mark", "mark": {"name": name}}, separators=(",", ":"))

    def clear(self) -> str:
        """A ``clear``: Telnyx drops what it has queued (barge-in) and echoes queued marks."""
        self._check_started()
        return '{"event":"clear"}'


def _id(value: str, where: str, call_id: str | None) -> str:
    if not _ID_RE.match(value):
        raise CarrierProtocolError("malformed id", field=where, call_sid=call_id)
    return value


def _party(start: dict[str, Any], key: str, call_id: str) -> str | None:
    value = start.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 256:
        raise CarrierProtocolError("not a string", field=f"start.{key}", call_sid=call_id)
    return value or None


def _media_format(fmt: dict[str, Any], call_id: str) -> AudioFormat:
    encoding = str_field(fmt, "encoding", "start.media_format.", call_id)
    rate = int_field(fmt, "sample_rate", "start.media_format.", call_id)
    channels = int_field(fmt, "channels", "start.media_format.", call_id) \
        if "channels" in fmt else 1
    codec = _ENCODINGS.get(encoding.upper())
    try:
        if codec is None or channels != 1:
            raise AudioFormatError("not a codec the gateway decodes")
        inbound = AudioFormat(codec, rate)
        if codec is not Codec.L16_BE and rate != 8000:
            raise AudioFormatError("G.711 is 8 kHz")
    except AudioFormatError as exc:
        shown = f"{encoding[:16]}/{rate}/{channels}"
        raise UnsupportedMediaFormat(
            f"unsupported media format {shown}; expected PCMU/8000, PCMA/8000 or L16 (mono)",
            field="start.media_format", call_sid=call_id) from exc
    return inbound


_EVENTS: Final[EventTable[TelnyxStream]] = EventTable({
    "connected": TelnyxStream._parse_connected,
    "start": opens_stream(TelnyxStream._parse_start),
    "media": TelnyxStream._parse_media,
    "mark": TelnyxStream._parse_mark,
    "dtmf": TelnyxStream._parse_dtmf,
    "error": TelnyxStream._parse_error,
    "stop": TelnyxStream._parse_stop,
}, _LEGAL, _ROLES)
