"""Vonage Voice API WebSockets, sans-I/O.

An NCCO ``connect`` action with a ``websocket`` endpoint makes Vonage open a socket to the
gateway. Its first frame is text, ``websocket:connected``, with the audio format in
``content-type`` and the endpoint's ``headers`` flattened beside it at the top level: that is
where the answer document puts the call's uuid, its numbers and the per-call token. From then
on the two kinds of frame never mix: **binary frames are audio** (16-bit linear PCM,
little-endian, mono, 20 ms each: 640 bytes at 16 kHz, 320 at 8 kHz) and **text frames are
JSON events** (``websocket:dtmf``, ``websocket:notify``, ``websocket:cleared``). Every frame
kind has a meaning, so an inbound frame is never of the wrong kind; what the gateway sends is
held to the same rule by the phone peer (:mod:`gateway.rig.peers.vonage`).

Outbound, audio goes as binary frames of exactly 20 ms (``Capabilities.chunking`` makes the
playout cut them so); Vonage buffers what it is sent and plays it in order. ``{"action":
"clear"}`` drops that buffer (answered by ``websocket:cleared``), and ``{"action": "notify",
"payload": {...}}`` is the mark: Vonage sends the payload back in ``websocket:notify`` once
everything queued before it has played. There is no stop event: the call's end is the
socket's normal close.

The stream is a state machine (``StreamState`` and ``_LEGAL``): only ``websocket:connected``
opens it, and audio, keypad, notify and cleared are legal only once it is open. Every
violation raises :class:`CarrierProtocolError` naming the field and the call.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, Final

from gateway.audio import AudioFormat, Codec
from gateway.carriers.core import (
    Audio,
    BadStart,
    Capabilities,
    Carrier,
    CarrierEvent,
    CarrierProtocolError,
    Chunking,
    Cleared,
    Dtmf,
    EventRole,
    Played,
    Started,
    StreamState,
    UnsupportedMediaFormat,
    check_digit,
    string_parameters,
)
from gateway.carriers.fields import (
    EventTable,
    int_field,
    obj_field,
    opens_stream,
    raw_audio,
    str_field,
)

CONNECTED: Final = "websocket:connected"
DTMF: Final = "websocket:dtmf"
NOTIFY: Final = "websocket:notify"
CLEARED: Final = "websocket:cleared"
AUDIO: Final = "audio"  # a binary frame: not a JSON event, but a move of the state machine

#: The rate the answer document asks for: wideband, twice the audio band of a phone line,
#: and the Live API's own input rate, so the caller's audio needs no resampling. 8 kHz (and
#: 24 kHz, which Vonage's own SDK offers) are taken where the stream declares them.
DEFAULT_RATE: Final = 16000
RATES: Final = frozenset({8000, 16000, 24000})
FORMAT: Final = AudioFormat(Codec.L16, DEFAULT_RATE)
_CONTENT_TYPE: Final = re.compile(r"^\s*audio/l16\s*;\s*rate\s*=\s*(\d{4,5})\s*\Z", re.I)

# Header names the answer document fills (:mod:`gateway.carriers.vonage_hooks`).
UUID_HEADER: Final = "uuid"
CONVERSATION_HEADER: Final = "conversation_uuid"
# Lower case: should anything on the way fold the names' case, as HTTP does, these survive.
CALLER_HEADER: Final = "from"
CALLEE_HEADER: Final = "to"
# Keys of websocket:connected that are Vonage's, not headers of ours.
_OWN_KEYS: Final = frozenset({"event", "content-type"})
# The uuid goes back into a REST path (PUT /v1/calls/{uuid}): nothing that needs escaping.
UUID_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,79}\Z")
_MARK_NAME_MAX: Final = 256
_CLEAR: Final = '{"action":"clear"}'


def content_type(rate: int) -> str:
    return f"audio/l16;rate={rate}"


def capabilities(rate: int) -> Capabilities:
    """What a stream at ``rate`` can do; every audio message is exactly one 20 ms frame."""
    frame = AudioFormat(Codec.L16, rate).frame_bytes
    return Capabilities(clear=True, marks=True, dtmf=True, hang_up=True, transfer=True,
                        stop_event=False, binary_audio=True,
                        chunking=Chunking(multiple=frame, minimum=frame, maximum=frame))


CAPABILITIES: Final = capabilities(DEFAULT_RATE)
_CAPS_BY_RATE: Final = {rate: capabilities(rate) for rate in RATES}

_LEGAL: Final[dict[StreamState, dict[str, StreamState]]] = {
    StreamState.NEW: {CONNECTED: StreamState.STARTED},
    StreamState.CONNECTED: {},  # Vonage has no separate handshake: connected is the start
    StreamState.STARTED: {
        AUDIO: StreamState.STARTED,
        DTMF: StreamState.STARTED,
        NOTIFY: StreamState.STARTED,
        CLEARED: StreamState.STARTED,
    },
    StreamState.STOPPED: {},
}
_ROLES: Final = {CONNECTED: EventRole.OPENS}


def parse_rate(value: str, call_id: str | None) -> int:
    """The sample rate of a ``content-type`` such as ``audio/l16;rate=16000``."""
    match = _CONTENT_TYPE.match(value)
    rate = int(match.group(1)) if match else 0
    if rate not in RATES:
        raise UnsupportedMediaFormat(
            f"unsupported content-type {value[:40]!r}; expected audio/l16 at "
            f"{', '.join(str(r) for r in sorted(RATES))} Hz", field="content-type",
            call_sid=call_id)
    return rate


class VonageStream:
    """One Vonage WebSocket: validates what Vonage sends and builds what we send back.

    ``max_payload`` bounds one inbound audio frame (Vonage sends 640 bytes per 20 ms at
    16 kHz); a larger frame is refused before anything reads it.
    """

    carrier = Carrier.VONAGE

    def __init__(self, *, max_payload: int = 16000) -> None:
        self.state = StreamState.NEW
        self.call_uuid: str | None = None
        self.max_payload = max_payload
        self.fmt = FORMAT

    @property
    def call_id(self) -> str | None:
        return self.call_uuid

    @property
    def caps(self) -> Capabilities:
        """The message size follows the rate the stream declared (16 kHz until it has)."""
        return _CAPS_BY_RATE[self.fmt.rate]

    # -- inbound -------------------------------------------------------------------------

    def receive(self, frame: str | bytes) -> Sequence[CarrierEvent]:
        """Parse one frame; raise :class:`CarrierProtocolError` if it breaks the protocol."""
        if isinstance(frame, bytes):
            self._allow(AUDIO)
            return (Audio(self._audio(frame)),)
        event, msg = _EVENTS.read(frame, self.call_uuid)
        next_state = self._allow(event)
        parsed = _EVENTS.parsers[event](self, msg)
        self.state = next_state
        return parsed

    def _allow(self, event: str) -> StreamState:
        return _EVENTS.move(self.state, event, self.call_uuid)

    def _audio(self, payload: bytes) -> bytes:
        return raw_audio(payload, self.max_payload, self.call_uuid)

    def _parse_connected(self, msg: dict[str, Any]) -> Sequence[CarrierEvent]:
        # Any fault here leaves the stream unusable: a BadStart (``opens_stream``).
        rate = parse_rate(str_field(msg, "content-type", "", None), None)
        headers = string_parameters({k: v for k, v in msg.items() if k not in _OWN_KEYS},
                                    "headers", None)
        uuid = headers.get(UUID_HEADER, "")
        if not UUID_RE.match(uuid):
            # The answer document carries it: a stream without it was not set up by us.
            raise BadStart("missing or malformed call uuid", field=UUID_HEADER)
        conversation = headers.get(CONVERSATION_HEADER, "")
        if conversation and not UUID_RE.match(conversation):
            raise BadStart("malformed conversation uuid", field=CONVERSATION_HEADER,
                           call_sid=uuid)
        self.call_uuid = uuid
        self.fmt = AudioFormat(Codec.L16, rate)
        return (Started(call_id=uuid, stream_id=conversation or uuid,
                        caller=headers.get(CALLER_HEADER) or None,
                        callee=headers.get(CALLEE_HEADER) or None,
                        parameters=headers, inbound=self.fmt, outbound=self.fmt),)

    def _parse_dtmf(self, msg: dict[str, Any]) -> Sequence[CarrierEvent]:
        # {"event":"websocket:dtmf","digit":"5","duration":260}: one digit per key press.
        digit = str_field(msg, "digit", "", self.call_uuid)
        if "duration" in msg and int_field(msg, "duration", "", self.call_uuid) < 0:
            raise CarrierProtocolError("negative", field="duration", call_sid=self.call_uuid)
        return (Dtmf(check_digit(digit, "digit", self.call_uuid)),)

    def _parse_notify(self, msg: dict[str, Any]) -> Sequence[CarrierEvent]:
        # Vonage returns the payload our notify carried, once the audio before it played.
        payload = obj_field(msg, "payload", "", self.call_uuid)
        return (Played(str_field(payload, "name", "payload.", self.call_uuid)),)

    def _parse_cleared(self, msg: dict[str, Any]) -> Sequence[CarrierEvent]:
        return (Cleared(),)

    # -- outbound ------------------------------------------------------------------------

    def _check_started(self) -> None:
        if self.state is not StreamState.STARTED:
            raise CarrierProtocolError("cannot send before the stream has started")

    def play(self, audio: bytes) -> bytes:
        """One binary frame of exactly 20 ms: Vonage plays nothing else correctly."""
        self._check_started()
        if len(audio) != self.fmt.frame_bytes:
            raise ValueError(f"a Vonage audio frame is {self.fmt.frame_bytes} bytes, "
                             f"got {len(audio)}")
        return audio

    def mark(self, name: str) -> str:
        """A ``notify``; Vonage sends its payload back when the audio before it has played."""
        self._check_started()
        if not name or len(name) > _MARK_NAME_MAX:
            raise ValueError("mark name must be 1..256 characters")
        return json.dumps({"action": "notify", "payload": {"name": name}},
                          separators=(",", ":"))

    def clear(self) -> str:
        """A ``clear``: Vonage drops all it has queued for the caller (barge-in)."""
        self._check_started()
        return _CLEAR


_EVENTS: Final[EventTable[VonageStream]] = EventTable({
    CONNECTED: opens_stream(VonageStream._parse_connected),
    DTMF: VonageStream._parse_dtmf,
    NOTIFY: VonageStream._parse_notify,
    CLEARED: VonageStream._parse_cleared,
}, _LEGAL, _ROLES)
