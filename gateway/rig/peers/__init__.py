"""The carriers' side of a call, sans-I/O: what each provider sends a gateway, and how it plays
what the gateway sends back. Used by ``voicegw call``, the demo, the load tester and the tests
to act exactly as the carrier would.

A :class:`PhonePeer` is one call at one carrier: it builds the answer webhook the carrier would
send (signed, when given the secret), reads the answer document for the stream's URL and
parameters, builds the stream's opening, audio, keypad and goodbye messages, echoes marks
(or checkpoints) as playback reaches them, and parses what the gateway sends, refusing what the
carrier itself would refuse. :class:`PlaybackBuffer` models the carrier's playback queue.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, runtime_checkable

from gateway.audio import AudioFormat
from gateway.carriers.core import Carrier, CarrierProtocolError, Outgoing
from gateway.errors import ConfigError

DEFAULT_CALLER: Final = "+15550100"
DEFAULT_CALLEE: Final = "+15550199"


@dataclass(frozen=True, slots=True)
class OutMedia:
    payload: bytes  # in the peer's outbound codec


@dataclass(frozen=True, slots=True)
class OutMark:
    name: str


@dataclass(frozen=True, slots=True)
class OutClear:
    pass


@dataclass(frozen=True, slots=True)
class OutIgnored:
    """A message the carrier accepts that means nothing to the phone (a keep-alive)."""


OutboundEvent = OutMedia | OutMark | OutClear | OutIgnored


def json_message(frame: str | bytes) -> dict[str, Any]:
    """A gateway's message to a carrier that takes JSON text only, or what it would refuse."""
    if isinstance(frame, bytes):
        raise CarrierProtocolError("gateway sent a binary frame")
    try:
        msg: Any = json.loads(frame)
    except (ValueError, RecursionError) as exc:
        raise CarrierProtocolError("gateway sent a frame that is not JSON") from exc
    if not isinstance(msg, dict):
        raise CarrierProtocolError("gateway sent JSON that is not an object")
    return msg


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """A webhook as the carrier would send it."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class StreamTarget:
    """Where an answer document points the call, and what it carries."""

    url: str
    parameters: Mapping[str, str]


class PhonePeer(Protocol):
    @property
    def carrier(self) -> Carrier: ...
    @property
    def call_id(self) -> str: ...
    @property
    def inbound(self) -> AudioFormat:
        """What the phone sends (the caller's audio)."""
    @property
    def outbound(self) -> AudioFormat:
        """What the gateway sends back."""
    @property
    def subprotocols(self) -> tuple[str, ...]: ...
    @property
    def send_ms(self) -> int:
        """The caller's audio goes in messages of this length."""
    @property
    def echo_marks_on_clear(self) -> bool:
        """A clear confirms every pending mark (Twilio)."""
    @property
    def custom_parameters(self) -> dict[str, str]:
        """What the stream carries to the gateway (its token among them); a test may edit it."""

    def webhook(self, url: str, secret: str | None) -> HttpRequest:
        """The answer webhook for this call to ``url``, signed with ``secret`` if given."""
    def stream_target(self, document: str) -> StreamTarget:
        """The stream URL and parameters in the gateway's answer document; take them on."""
    def upgrade_headers(self, url: str, secret: str | None) -> dict[str, str]:
        """Headers of the media socket's upgrade (a signature, where the carrier signs it)."""
    def opening(self) -> Sequence[Outgoing]:
        """What the carrier sends once the socket is open: who the call is, the format."""
    def media(self, audio: bytes) -> Outgoing: ...
    def dtmf(self, digit: str) -> Sequence[Outgoing]: ...
    def played(self, name: str) -> Sequence[Outgoing]:
        """Playback reached mark ``name``: the carrier's confirmation."""
    def cleared(self) -> Sequence[Outgoing]:
        """The carrier's confirmation of a clear (none for Twilio)."""
    def hang_up(self) -> Sequence[Outgoing]:
        """What the carrier sends when the caller hangs up, before it closes the socket."""
    def receive(self, frame: str | bytes) -> OutboundEvent:
        """Parse what the gateway sent; anything the carrier would refuse raises."""


@runtime_checkable
class DialsDirect(Protocol):
    """A carrier with no answer document (a PBX): it opens the media socket it was configured
    with, the call's parameters in the URL's query."""

    def media_url(self, url: str) -> str:
        """``url`` with what this call adds to it (its parameters)."""


def parse_parameters(items: list[str]) -> dict[str, str]:
    """``NAME=VALUE`` items (``--param``, repeatable) as a stream's custom parameters."""
    params = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ConfigError(f"--param wants NAME=VALUE, got {item!r}")
        params[name] = value
    return params


@dataclass(slots=True)
class Played:
    """What one tick of playback produced."""

    audio: bytes  # exactly the requested number of bytes; silence where nothing was queued
    marks: list[str] = field(default_factory=list)  # marks reached, to echo
    underrun: bool = False  # queue ran dry part-way through this tick
    had_audio: bool = False  # any of the tick came from the queue


class PlaybackBuffer:
    """The carrier's outbound queue: audio and marks in order, played in real time.

    ``max_bytes`` bounds what a gateway can make us hold (a carrier's buffer is finite too);
    audio beyond it is dropped and counted. ``silence`` is one sample of silence in the
    codec played.
    """

    def __init__(self, max_bytes: int, silence: bytes) -> None:
        self._items: deque[bytes | str] = deque()  # bytes = audio, str = mark name
        self._head_offset = 0
        self.queued_bytes = 0
        self.max_bytes = max_bytes
        self.silence = silence
        self.dropped_bytes = 0

    def push_audio(self, audio: bytes) -> None:
        room = self.max_bytes - self.queued_bytes
        if len(audio) > room:
            self.dropped_bytes += len(audio) - room
            audio = audio[:room]
        if audio:
            self._items.append(audio)
            self.queued_bytes += len(audio)

    def push_mark(self, name: str) -> list[str]:
        """Queue a mark; if nothing is queued ahead of it, it has played already."""
        if not self._items:
            return [name]
        self._items.append(name)
        return []

    def clear(self) -> list[str]:
        """Drop all queued audio; returns the pending marks (Twilio echoes them)."""
        marks = [i for i in self._items if isinstance(i, str)]
        self._items.clear()
        self._head_offset = 0
        self.queued_bytes = 0
        return marks

    @property
    def playing(self) -> bool:
        return self.queued_bytes > 0

    def play(self, nbytes: int) -> Played:
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
        out += self.silence * ((nbytes - got) // len(self.silence))
        return Played(bytes(out), marks, underrun=0 < got < nbytes, had_audio=got > 0)
