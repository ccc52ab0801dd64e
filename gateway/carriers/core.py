"""What every carrier's media stream says, in the gateway's own words. Pure: no I/O.

Each provider (Twilio, Telnyx, Plivo, Vonage, ...) is one module that turns the frames its
media socket carries into the neutral, frozen events below, and the neutral requests (play
this audio, clear, mark) into that provider's frames. The bridge and the playout speak only
these words, so they never name a provider.

A stream declares what it can do (:class:`Capabilities`) and, once ``Started``, the audio
format of each direction; the bridge builds its codecs and resamplers from those. Where a
provider has no ``clear`` (Asterisk AudioSocket), the gateway paces playback itself; where it
confirms no marks, the gateway's own pacing says what was heard.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol, runtime_checkable

from gateway.audio import AudioFormat
from gateway.ending import EndReason
from gateway.errors import ProtocolError

#: The stream parameter that carries the per-call token an answer document minted.
TOKEN_PARAMETER: Final = "voicegw_token"  # noqa: S105 - a name, not a secret
KEYPAD: Final = frozenset("0123456789*#ABCD")


class Carrier(enum.Enum):
    """Every provider the gateway speaks; the value is its route and metric label."""

    TWILIO = "twilio"
    SIGNALWIRE = "signalwire"
    TELNYX = "telnyx"
    PLIVO = "plivo"
    VONAGE = "vonage"
    EXOTEL = "exotel"
    JAMBONZ = "jambonz"
    ASTERISK = "asterisk"  # its WebSocket channel driver (chan_websocket)
    AUDIOSOCKET = "audiosocket"  # Asterisk's AudioSocket, over plain TCP
    BROWSER = "browser"  # the console's talk page (a signed-in operator), not a phone line


# -- what a provider can do --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Chunking:
    """How the provider wants outgoing audio cut: every message a whole number of
    ``multiple`` bytes, at least ``minimum`` and at most ``maximum`` (0: no limit)."""

    multiple: int = 1
    minimum: int = 1
    maximum: int = 0


ANY_SIZE: Final = Chunking()


@dataclass(frozen=True, slots=True)
class Capabilities:
    clear: bool  # drops what it has queued on request (else the gateway paces playback)
    marks: bool  # confirms when playback reaches a point we marked
    dtmf: bool  # tells us keypad digits
    hang_up: bool  # the gateway can end a call (its REST API, or a message on the stream)
    transfer: bool  # a call can be transferred through its REST API
    stop_event: bool  # says when the call ends (else a normal close of the socket does)
    binary_audio: bool = False  # audio travels in binary frames (else JSON text)
    chunking: Chunking = ANY_SIZE  # how outgoing audio must be cut


# -- events in ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Started:
    """The stream names its call. ``control_id`` is what call control uses for it (Telnyx's
    ``call_control_id``); most providers use ``call_id``."""

    call_id: str
    stream_id: str
    caller: str | None
    callee: str | None
    parameters: Mapping[str, str] = field(hash=False)
    inbound: AudioFormat  # what the caller's audio arrives as
    outbound: AudioFormat  # what the provider plays
    control_id: str = ""

    @property
    def control(self) -> str:
        return self.control_id or self.call_id


@dataclass(frozen=True, slots=True)
class Audio:
    payload: bytes  # in ``Started.inbound``'s codec; any length of whole samples


@dataclass(frozen=True, slots=True)
class Dtmf:
    digit: str


@dataclass(frozen=True, slots=True)
class Played:
    """The provider played everything sent before the mark (or checkpoint) ``name``."""

    name: str


@dataclass(frozen=True, slots=True)
class Cleared:
    """The provider confirmed a ``clear``: nothing queued remains."""


@dataclass(frozen=True, slots=True)
class Stopped:
    """The call ended at the provider: the caller hung up, or (``fault``, a few words) the
    provider ended the stream over a fault of its own."""

    fault: str = ""


@dataclass(frozen=True, slots=True)
class Paused:
    """Flow control: the provider's queue of reply audio is nearly full; send no more audio
    until :class:`Resumed` (control messages still go)."""


@dataclass(frozen=True, slots=True)
class Resumed:
    """Flow control: the provider takes reply audio again."""


CarrierEvent = Started | Audio | Dtmf | Played | Cleared | Stopped | Paused | Resumed
Outgoing = str | bytes  # a text or a binary WebSocket frame (a TCP frame for AudioSocket)


class CarrierStream(Protocol):
    """One call's media stream, sans-I/O. ``receive`` returns the events a frame carries
    (none for a frame that only keeps the protocol going, several where a provider batches
    or reorders); the other methods build what to send. Every violation raises
    :class:`CarrierProtocolError` (or a subclass below) and leaves the stream as it was."""

    @property
    def carrier(self) -> Carrier: ...
    @property
    def caps(self) -> Capabilities: ...
    @property
    def call_id(self) -> str | None:
        """Once started: for log lines."""

    def receive(self, frame: str | bytes) -> Sequence[CarrierEvent]: ...
    def play(self, audio: bytes) -> Outgoing:
        """One message playing ``audio`` (in the outbound codec, cut per ``chunking``)."""
    def mark(self, name: str) -> Outgoing: ...
    def clear(self) -> Outgoing: ...


@runtime_checkable
class HangsUpInBand(Protocol):
    """A stream whose call the gateway ends with a message on the stream itself (Asterisk's
    ``HANGUP``), not through a REST API: the bridge sends it before closing the socket."""

    def hang_up(self) -> Outgoing: ...


@runtime_checkable
class SaysWhyItEnded(Protocol):
    """A stream told, as its last message, that the call ended and why (the browser's page
    shows it), however the call ended: sent before the socket's close."""

    def ended(self, end: EndReason) -> Outgoing: ...


# -- what can go wrong -------------------------------------------------------------------


class CarrierProtocolError(ProtocolError):
    """A carrier (or something pretending to be one) broke its media-stream protocol."""


class UnknownEvent(CarrierProtocolError):
    """An event this gateway does not know; providers add events, so it is tolerated."""

    def __init__(self, event: str, *, call_sid: str | None) -> None:
        self.event = event[:40]
        super().__init__(f"unknown event {self.event!r}", field="event", call_sid=call_sid)


class StreamState(enum.Enum):
    NEW = "new"
    CONNECTED = "connected"
    STARTED = "started"
    STOPPED = "stopped"


class EventRole(enum.Enum):
    """What an event does to the stream, whatever the provider calls it."""

    OPENS = "opens"  # names the call (Twilio's `start`)
    ENDS = "ends"  # ends it (`stop`)
    OTHER = "other"


class OutOfOrder(CarrierProtocolError):
    """A known event the stream's state does not allow (audio before ``start``...)."""

    def __init__(self, event: str, state: StreamState, *, call_sid: str | None,
                 role: EventRole = EventRole.OTHER) -> None:
        self.event = event
        self.state = state
        self.role = role
        super().__init__(f"event {event!r} is not allowed in state {state.value!r}",
                         field="event", call_sid=call_sid)


class BadStart(CarrierProtocolError):
    """A start that cannot be used: without one no call can follow on this stream."""


class UnsupportedMediaFormat(BadStart):
    """The stream's audio is in a format the gateway does not take."""


class WrongFrameType(CarrierProtocolError):
    """A binary frame where the provider sends only text, or the other way round."""

    def __init__(self, binary: bool, *, call_sid: str | None) -> None:
        self.binary = binary
        kind = "binary" if binary else "text"
        super().__init__(f"{kind} frames are not accepted", call_sid=call_sid)


class FrameTooLarge(CarrierProtocolError):
    """A frame over the transport's size limit, refused unread by the socket adapter."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"frame larger than {limit} bytes")


def check_digit(digit: object, where: str, call_id: str | None) -> str:
    """A keypad digit, or :class:`CarrierProtocolError`."""
    if not isinstance(digit, str) or len(digit) != 1 or digit not in KEYPAD:
        shown = str(digit)[:8] if isinstance(digit, str | int) else type(digit).__name__
        raise CarrierProtocolError(f"not a keypad digit: {shown!r}", field=where,
                                   call_sid=call_id)
    return digit


def scalar_text(value: object) -> str:
    """A JSON scalar as text; absent, null or a container gives "" (never a deep ``str()``)."""
    if value is None or isinstance(value, dict | list):
        return ""
    return str(value)


def string_parameters(raw: object, where: str, call_id: str | None) -> dict[str, str]:
    """A provider's custom parameters: an object of scalars (nested values are refused)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict) or any(isinstance(v, dict | list) for v in raw.values()):
        raise CarrierProtocolError("must be an object of strings", field=where,
                                   call_sid=call_id)
    return {str(k): scalar_text(v) for k, v in raw.items()}


class Chunker:
    """Cuts encoded reply audio into the messages a provider takes (:class:`Chunking`).

    Audio is held only until a whole message can go, so the delay it adds is at most one
    message; :meth:`flush` pads the tail of a reply with silence to a whole message, and
    :meth:`drop` forgets it (a barge-in).
    """

    def __init__(self, rule: Chunking, silence: bytes) -> None:
        if rule.multiple < 1 or rule.minimum < 1 or (rule.maximum and rule.maximum
                                                        < max(rule.minimum, rule.multiple)):
            raise ValueError(f"unusable chunking {rule}")
        self.rule = rule
        self.silence = silence  # one sample
        self._free = rule == ANY_SIZE
        self._buf = b""
        # The largest message: a whole number of `multiple` within `maximum`.
        self._largest = rule.maximum - rule.maximum % rule.multiple if rule.maximum else 0

    @property
    def pending(self) -> int:
        return len(self._buf)

    def push(self, data: bytes) -> list[bytes]:
        if self._free:
            return [data] if data else []
        buf = self._buf + data
        out: list[bytes] = []
        rule = self.rule
        while len(buf) >= rule.minimum:
            n = len(buf) - len(buf) % rule.multiple
            if self._largest:
                n = min(n, self._largest)
            if n < rule.minimum:
                break
            out.append(buf[:n])
            buf = buf[n:]
        self._buf = buf
        return out

    def flush(self) -> list[bytes]:
        """What is held, padded with silence to a whole message (none if nothing is held)."""
        buf, self._buf = self._buf, b""
        if not buf:
            return []
        rule = self.rule
        size = max(rule.minimum, -(-len(buf) // rule.multiple) * rule.multiple)
        pad = (size - len(buf)) // len(self.silence)
        return [buf + self.silence * pad]

    def drop(self) -> None:
        self._buf = b""
