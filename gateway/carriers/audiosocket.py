"""Asterisk AudioSocket, sans-I/O: the TCP framing and one call's stream.

Asterisk's ``AudioSocket()`` dialplan application (and its ``AudioSocket/`` channel driver)
opens a plain TCP connection to the gateway. Every message is a 3-byte header, the *kind* and
the payload's length as a big-endian 16-bit number, then the payload. Asterisk sends, in order:
``0x01`` the call's UUID (16 bytes), then ``0x10`` audio (16-bit signed linear, little-endian,
8 kHz mono; 320 bytes per 20 ms), ``0x03`` a keypad digit (one ASCII byte), ``0x00`` hang-up
(no payload) and ``0xff`` an error (one byte: ``0x01`` the caller hung up, ``0x02`` a frame
could not be forwarded, ``0x04`` out of memory). The channel driver may negotiate other rates,
each with a kind of its own; ``0x12`` (16 kHz) is taken too, and the gateway answers in the
kind the call uses. Asterisk takes only audio and hang-up from the gateway: any other kind it
treats as a fault and hangs up.

What the protocol lacks shapes the rest: no identification beyond the UUID (the gateway finds
the call's agent and parameters from it: :class:`Route`), no authentication (loopback or a
private network only), no clear and no playback confirmation. Asterisk writes each audio
message to the channel as it arrives, so the gateway paces playback itself
(:class:`gateway.playout.Pacer`) and its own clock says what the caller heard.

:class:`FrameReader` cuts a byte stream into whole messages (the rig and the fuzz tests use
it; the server reads with :data:`HEADER` directly), :class:`AudioSocketStream` turns messages
into neutral events, and :func:`frame` builds them.
"""

from __future__ import annotations

import enum
import struct
import uuid as uuidlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from gateway.audio import AudioFormat, Codec
from gateway.carriers.core import (
    KEYPAD,
    Audio,
    BadStart,
    Capabilities,
    Carrier,
    CarrierEvent,
    CarrierProtocolError,
    Chunking,
    Dtmf,
    EventRole,
    FrameTooLarge,
    OutOfOrder,
    Started,
    Stopped,
    StreamState,
    UnknownEvent,
    UnsupportedMediaFormat,
)
from gateway.carriers.fields import raw_audio

HEADER: Final = struct.Struct("!BH")  # kind, payload length
#: Asterisk sends 320 bytes per 20 ms at 8 kHz; a payload past this is not audio from a PBX.
MAX_PAYLOAD: Final = 8192


class Kind(enum.IntEnum):
    HANGUP = 0x00
    UUID = 0x01
    DTMF = 0x03
    AUDIO = 0x10  # 8 kHz
    AUDIO_16K = 0x12  # the channel driver's slin16
    ERROR = 0xFF


_RATES: Final = {Kind.AUDIO: 8000, Kind.AUDIO_16K: 16000}
#: The other signed-linear kinds Asterisk defines (12, 24, 32, 44.1, 48, 96, 192 kHz): known,
#: but not taken: a call in one of them is refused as an unsupported format, not as noise.
_OTHER_AUDIO: Final = frozenset({0x11, *range(0x13, 0x19)})
ERROR_TEXT: Final = {0x01: "hung up", 0x02: "frame forwarding error", 0x04: "out of memory"}


def frame(kind: Kind, payload: bytes = b"") -> bytes:
    """One message: header and payload."""
    if len(payload) > 0xFFFF:
        raise ValueError("an AudioSocket payload is at most 65535 bytes")
    return HEADER.pack(kind, len(payload)) + payload


HANGUP_FRAME: Final = frame(Kind.HANGUP)


def uuid_frame(call: uuidlib.UUID) -> bytes:
    return frame(Kind.UUID, call.bytes)


def capabilities(rate: int) -> Capabilities:
    """Exactly 20 ms per message: the pacer's unit, and what Asterisk's own frames are."""
    size = AudioFormat(Codec.L16, rate).frame_bytes
    return Capabilities(clear=False, marks=False, dtmf=True, hang_up=False, transfer=False,
                        stop_event=True, binary_audio=True,
                        chunking=Chunking(multiple=size, minimum=size, maximum=size))


_CAPS: Final = {rate: capabilities(rate) for rate in _RATES.values()}


@dataclass(frozen=True, slots=True)
class Route:
    """What the gateway knows of a call beyond its UUID: found by the server before the
    stream starts (registered from the dialplan, or the operator's lookup)."""

    agent: str | None = None
    caller: str | None = None
    callee: str | None = None
    parameters: Mapping[str, str] = field(default_factory=dict)


class FrameReader:
    """Cuts bytes from the socket into whole messages, refusing an oversized one from its
    header, before its payload is read or buffered."""

    def __init__(self, max_payload: int = MAX_PAYLOAD) -> None:
        self.max_payload = max_payload
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        out: list[bytes] = []
        while len(self._buf) >= HEADER.size:
            _, length = HEADER.unpack_from(self._buf)
            if length > self.max_payload:
                raise FrameTooLarge(self.max_payload)
            end = HEADER.size + length
            if len(self._buf) < end:
                break
            out.append(bytes(self._buf[:end]))
            del self._buf[:end]
        return out

    @property
    def pending(self) -> int:
        return len(self._buf)


# The moves each kind makes. The UUID names the call; its first audio starts it, since only
# the audio's kind says the rate (a digit first starts it at 8 kHz, the application's rate).
_LEGAL: Final[dict[StreamState, dict[Kind, StreamState]]] = {
    StreamState.NEW: {Kind.UUID: StreamState.CONNECTED, Kind.HANGUP: StreamState.STOPPED,
                      Kind.ERROR: StreamState.STOPPED},
    StreamState.CONNECTED: {Kind.AUDIO: StreamState.STARTED,
                            Kind.AUDIO_16K: StreamState.STARTED,
                            Kind.DTMF: StreamState.STARTED, Kind.HANGUP: StreamState.STOPPED,
                            Kind.ERROR: StreamState.STOPPED},
    StreamState.STARTED: {Kind.AUDIO: StreamState.STARTED, Kind.AUDIO_16K: StreamState.STARTED,
                          Kind.DTMF: StreamState.STARTED, Kind.HANGUP: StreamState.STOPPED,
                          Kind.ERROR: StreamState.STOPPED},
    StreamState.STOPPED: {},
}


def _uuid(payload: bytes) -> str:
    if len(payload) != 16:
        raise BadStart("the UUID message must carry 16 bytes", field="uuid")
    return str(uuidlib.UUID(bytes=payload))


def read_uuid(message: bytes) -> str | None:
    """The call's UUID, if ``message`` is a well-formed UUID message (for the server's
    lookup, before the stream exists)."""
    if len(message) != HEADER.size + 16 or message[0] != Kind.UUID:
        return None
    return str(uuidlib.UUID(bytes=message[HEADER.size:]))


class AudioSocketStream:
    """One AudioSocket connection. ``route`` is what the server found for the call's UUID
    (it reads the UUID message first, then builds the stream and hands it that message)."""

    carrier = Carrier.AUDIOSOCKET

    def __init__(self, route: Route | None = None, *, max_payload: int = MAX_PAYLOAD) -> None:
        self.route = route or Route()
        self.max_payload = max_payload
        self.state = StreamState.NEW
        self.call_uuid: str | None = None
        self.kind = Kind.AUDIO  # the audio kind of this call, answered in kind
        self.fmt = AudioFormat(Codec.L16, 8000)

    @property
    def call_id(self) -> str | None:
        return self.call_uuid

    @property
    def caps(self) -> Capabilities:
        return _CAPS[self.fmt.rate]

    # -- inbound -------------------------------------------------------------------------

    def receive(self, message: str | bytes) -> Sequence[CarrierEvent]:
        """One whole message (header and payload)."""
        call = self.call_uuid
        if isinstance(message, str):
            raise CarrierProtocolError("AudioSocket carries bytes, not text", call_sid=call)
        if len(message) < HEADER.size:
            raise CarrierProtocolError("message shorter than its header", call_sid=call)
        raw_kind, length = HEADER.unpack_from(message)
        payload = message[HEADER.size:]
        if len(payload) != length:
            raise CarrierProtocolError(f"header says {length} bytes, message has "
                                       f"{len(payload)}", field="length", call_sid=call)
        if length > self.max_payload:
            raise FrameTooLarge(self.max_payload)
        try:
            kind = Kind(raw_kind)
        except ValueError:
            if raw_kind in _OTHER_AUDIO and self.state is StreamState.CONNECTED:
                raise UnsupportedMediaFormat(f"audio kind 0x{raw_kind:02x}: only 8 and 16 kHz "
                                             "signed linear are taken", field="kind",
                                             call_sid=call) from None
            raise UnknownEvent(f"0x{raw_kind:02x}", call_sid=call) from None
        next_state = _LEGAL[self.state].get(kind)
        if next_state is None:
            role = EventRole.OPENS if kind is Kind.UUID else (
                EventRole.ENDS if kind in (Kind.HANGUP, Kind.ERROR) else EventRole.OTHER)
            raise OutOfOrder(kind.name.lower(), self.state, call_sid=call, role=role)
        events = self._parse(kind, payload)
        self.state = next_state
        return events

    def _parse(self, kind: Kind, payload: bytes) -> Sequence[CarrierEvent]:
        call = self.call_uuid
        if kind is Kind.UUID:
            self.call_uuid = _uuid(payload)
            return ()
        starting: tuple[CarrierEvent, ...] = ()
        if kind is Kind.AUDIO or kind is Kind.AUDIO_16K:
            raw_audio(payload, self.max_payload, call)
            if self.state is StreamState.CONNECTED:
                self.kind, self.fmt = kind, AudioFormat(Codec.L16, _RATES[kind])
                starting = (self._started(),)
            elif kind is not self.kind:
                raise CarrierProtocolError("audio changed rate mid-call", field="kind",
                                           call_sid=call)
            return (*starting, Audio(payload))
        if kind is Kind.DTMF:
            digit = payload.decode("ascii", "replace") if len(payload) == 1 else ""
            if not digit or digit not in KEYPAD:
                raise CarrierProtocolError("not one keypad digit", field="dtmf", call_sid=call)
            if self.state is StreamState.CONNECTED:
                starting = (self._started(),)
            return (*starting, Dtmf(digit))
        if kind is Kind.HANGUP:
            return (Stopped(),)
        # An error ends the call either way; a hang-up reported as one is a hang-up.
        code = payload[0] if len(payload) == 1 else -1
        if code == 0x01:
            return (Stopped(),)
        return (Stopped(fault=ERROR_TEXT.get(code, "unknown error")),)

    def _started(self) -> Started:
        call = self.call_uuid
        assert call is not None  # CONNECTED: the UUID came first
        route = self.route
        return Started(call_id=call, stream_id=call, caller=route.caller, callee=route.callee,
                       parameters=dict(route.parameters), inbound=self.fmt, outbound=self.fmt)

    # -- outbound ------------------------------------------------------------------------

    def play(self, audio: bytes) -> bytes:
        if self.state is not StreamState.STARTED:
            raise CarrierProtocolError("cannot send before the stream has started")
        if len(audio) != self.fmt.frame_bytes:
            raise ValueError(f"an AudioSocket message is {self.fmt.frame_bytes} bytes here, "
                             f"got {len(audio)}")
        return frame(self.kind, audio)

    def mark(self, name: str) -> bytes:
        raise CarrierProtocolError("AudioSocket has no marks: the gateway's clock keeps them")

    def clear(self) -> bytes:
        raise CarrierProtocolError("AudioSocket has no clear: the gateway paces playback")

    @staticmethod
    def hang_up() -> bytes:
        return HANGUP_FRAME
