"""The browser carrier: the console's talk page as a caller, sans-I/O.

The page opens ``/browser/media/{agent}?format=...`` (signed-in operators only; the route
checks that before the upgrade) and speaks a small WebSocket protocol of its own. Text frames
are JSON with an ``event``: ``start`` first, then ``mark`` (a mark we sent, echoed once the
audio before it has played), ``dtmf`` (one keypad digit) and ``stop`` (hang up). **Binary
frames are the caller's audio**, in the format the URL chose (:class:`BrowserFormat`):

* ``pcm16``: PCM16LE mono at 16 kHz in (the Live API's own input rate: the model hears the
  microphone's samples untouched) and 24 kHz out (the model's own output rate: its audio
  reaches the page untouched);
* ``mulaw8k``: G.711 μ-law at 8 kHz both ways, so the page hears what a phone caller hears.

The gateway sends ``started`` once the start is taken (:func:`started_message`; the route
sends it), reply audio in binary frames as the model sends it (any length of whole samples),
``mark`` after audio, ``clear`` on a barge-in (the page drops everything queued), the call's
monitor events (``monitor``), and last ``ended`` with the call's end (then it closes 1000).

The stream is a state machine (``StreamState`` and ``_LEGAL``): only ``start`` opens it, and
audio, marks, digits and ``stop`` are legal only once it has. Every violation raises
:class:`CarrierProtocolError` naming the field and the call; the bridge's table ("Hostile
input") says which are dropped and counted and which close the socket.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

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
    check_digit,
)
from gateway.carriers.fields import EventTable, raw_audio, str_field
from gateway.ending import EndReason

START: Final = "start"
MARK: Final = "mark"
DTMF: Final = "dtmf"
STOP: Final = "stop"
AUDIO: Final = "audio"  # a binary frame: not a JSON event, but a move of the state machine

CAPABILITIES: Final = Capabilities(clear=True, marks=True, dtmf=True, hang_up=True,
                                   transfer=False, stop_event=True, binary_audio=True)
MAX_FRAME_MS: Final = 200  # the page sends 20 ms; a frame longer than this is not a page's
_MARK_NAME_MAX: Final = 256
_CLEAR: Final = '{"event":"clear"}'


@dataclass(frozen=True, slots=True)
class Formats:
    inbound: AudioFormat  # what the page sends
    outbound: AudioFormat  # what the page plays
    wire: str  # the ``format`` query value

    def describe(self) -> dict[str, Any]:
        """The ``format`` of the ``started`` message: what the page is sent."""
        encoding = "mulaw" if self.outbound.codec is Codec.PCMU else "pcm16"
        return {"encoding": encoding, "sample_rate": self.outbound.rate}


class BrowserFormat(enum.Enum):
    PCM16 = Formats(AudioFormat(Codec.L16, 16000), AudioFormat(Codec.L16, 24000), "pcm16")
    MULAW8K = Formats(AudioFormat(Codec.PCMU, 8000), AudioFormat(Codec.PCMU, 8000), "mulaw8k")

    @classmethod
    def parse(cls, value: str | None) -> BrowserFormat:
        """The ``format`` query parameter (absent: pcm16); ValueError for any other."""
        for fmt in cls:
            if fmt.value.wire == (value or "pcm16"):
                return fmt
        raise ValueError(f"format must be one of {', '.join(f.value.wire for f in cls)}")


_LEGAL: Final[dict[StreamState, dict[str, StreamState]]] = {
    StreamState.NEW: {START: StreamState.STARTED},
    StreamState.CONNECTED: {},  # no separate handshake: the start is the first word
    StreamState.STARTED: {
        AUDIO: StreamState.STARTED,
        MARK: StreamState.STARTED,
        DTMF: StreamState.STARTED,
        STOP: StreamState.STOPPED,
    },
    StreamState.STOPPED: {},
}
_ROLES: Final = {START: EventRole.OPENS, STOP: EventRole.ENDS}


class BrowserStream:
    """One page's socket: validates what it sends and builds what we send back.

    ``call_id`` is the gateway's own (the page has no call of its own to name); ``agent`` the
    agent its URL named.
    """

    carrier = Carrier.BROWSER
    caps = CAPABILITIES

    def __init__(self, call_id: str, fmt: BrowserFormat = BrowserFormat.PCM16) -> None:
        self.state = StreamState.NEW
        self.fmt = fmt.value
        self._id = call_id
        inbound = self.fmt.inbound
        self.max_payload = inbound.bytes_per_second * MAX_FRAME_MS // 1000

    @property
    def call_id(self) -> str | None:
        return self._id if self.state is not StreamState.NEW else None

    # -- inbound -------------------------------------------------------------------------

    def receive(self, frame: str | bytes) -> Sequence[CarrierEvent]:
        """Parse one frame; raise :class:`CarrierProtocolError` if it breaks the protocol."""
        if isinstance(frame, bytes):
            _EVENTS.move(self.state, AUDIO, self.call_id)
            return (Audio(raw_audio(frame, self.max_payload, self.call_id,
                                    sample_bytes=self.fmt.inbound.codec.sample_bytes)),)
        event, msg = _EVENTS.read(frame, self.call_id)
        next_state = _EVENTS.move(self.state, event, self.call_id)
        parsed = _EVENTS.parsers[event](self, msg)
        self.state = next_state
        return parsed

    def _parse_start(self, msg: dict[str, Any]) -> Sequence[CarrierEvent]:
        # Nothing the page says names the call: its id is ours, its agent the URL's, and a
        # page has no phone number.
        return (Started(call_id=self._id, stream_id=self._id, caller=None, callee=None,
                        parameters={}, inbound=self.fmt.inbound, outbound=self.fmt.outbound),)

    def _parse_mark(self, msg: dict[str, Any]) -> Sequence[CarrierEvent]:
        name = str_field(msg, "name", "", self.call_id)
        if not name or len(name) > _MARK_NAME_MAX:
            raise CarrierProtocolError("must be 1..256 characters", field="name",
                                       call_sid=self.call_id)
        return (Played(name),)

    def _parse_dtmf(self, msg: dict[str, Any]) -> Sequence[CarrierEvent]:
        return (Dtmf(check_digit(msg.get("digit"), "digit", self.call_id)),)

    def _parse_stop(self, msg: dict[str, Any]) -> Sequence[CarrierEvent]:
        return (Stopped(),)

    # -- outbound ------------------------------------------------------------------------

    def _check_started(self) -> None:
        if self.state is not StreamState.STARTED:
            raise CarrierProtocolError("cannot send before the stream has started")

    def play(self, audio: bytes) -> bytes:
        """Reply audio as a binary frame, exactly as given (any length of whole samples)."""
        self._check_started()
        return audio

    def mark(self, name: str) -> str:
        """The page echoes it once the audio before it has played."""
        self._check_started()
        if not name or len(name) > _MARK_NAME_MAX:
            raise ValueError("mark name must be 1..256 characters")
        return _compact({"event": MARK, "name": name})

    def clear(self) -> str:
        """The page drops everything it has queued (barge-in)."""
        self._check_started()
        return _CLEAR

    def ended(self, end: EndReason) -> str:
        """The last message before the socket's close: how and why the call ended. Nothing is
        sent or taken after it."""
        self.state = StreamState.STOPPED
        return _compact({"event": "ended", "end_kind": end.kind.value,
                         "end_reason": end.detail})


def started_message(call_id: str, agent: str, fmt: BrowserFormat) -> str:
    """What the page is told once its start is taken."""
    return _compact({"event": "started", "call_id": call_id, "agent": agent,
                     "format": fmt.value.describe()})


def monitor_message(event: dict[str, Any]) -> str:
    """One of the call's live-call monitor events, for the page."""
    return _compact({"event": "monitor", "data": event})


def _compact(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


_EVENTS: Final[EventTable[BrowserStream]] = EventTable({
    START: BrowserStream._parse_start,
    MARK: BrowserStream._parse_mark,
    DTMF: BrowserStream._parse_dtmf,
    STOP: BrowserStream._parse_stop,
}, _LEGAL, _ROLES)
