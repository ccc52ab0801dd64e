"""Asterisk's WebSocket channel driver (``chan_websocket``), sans-I/O.

A dialplan ``Dial(WebSocket/<connection>/c(ulaw))`` makes Asterisk open a socket to the
gateway, to the ``uri`` of that connection in ``websocket_client.conf`` (with the user and
password configured there as HTTP Basic credentials). The dial string's ``v(name=value,...)``
adds parameters to that URI's query: they reach the stream core as ``query`` and become the
stream's parameters (the agent, the caller's number as ``From``...), beside the channel's
variables where the stream carries them.

**Binary frames are audio** in the codec the dial string chose (``ulaw``, ``alaw`` at 8 kHz;
``slin``, ``slin16``, ``slin24``: signed 16-bit linear, little-endian), 20 ms a frame inbound.
**Text frames are control**, in one of two dialects chosen by Asterisk's configuration
(``chan_websocket.conf`` or the dial string's ``f()``): plain text, ``MEDIA_START
connection_id:... channel:... channel_id:... format:ulaw optimal_frame_size:160 ptime:20``
(the oldest releases leave out ``channel_id`` and ``ptime``), or JSON objects named by
``event`` (from 20.18, 22.8 and 23.2), whose ``MEDIA_START`` also carries
``channel_variables``. The first control message is always ``MEDIA_START``; its dialect is
the stream's, and the commands this core builds answer in it (Asterisk parses commands in
the dialect it speaks and nothing else).

Inbound: ``DTMF_END`` (a keypad digit), ``MEDIA_MARK_PROCESSED`` (playback reached a mark),
``MEDIA_XOFF``/``MEDIA_XON`` (Asterisk's queue of our audio is nearly full: stop sending /
go on; :class:`Paused`/:class:`Resumed`), and the notices the gateway does not act on
(``MEDIA_BUFFERING_COMPLETED``, ``QUEUE_DRAINED``, ``STATUS``, ``ERROR``). Asterisk sends no
hang-up event: the caller hanging up closes the socket (normally).

Outbound: audio as binary frames of whole ``optimal_frame_size`` units (Asterisk drops the
odd tail of a frame), ``MARK_MEDIA <id>`` (answered by ``MEDIA_MARK_PROCESSED <id>`` once the
audio before it has been played), ``FLUSH_MEDIA`` (drops what is queued: barge-in; no
confirmation) and ``HANGUP`` (Asterisk hangs up the channel and closes the socket). Control
messages over 128 bytes are ignored by Asterisk, so mark names are kept short. Transfers need
ARI or the dialplan, out of the media socket's reach.

The stream is a state machine (``StreamState`` and ``_LEGAL``); every violation raises
:class:`CarrierProtocolError` naming the field and the call.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Callable, Mapping, Sequence
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
    Dtmf,
    EventRole,
    Paused,
    Played,
    Resumed,
    Started,
    StreamState,
    UnknownEvent,
    UnsupportedMediaFormat,
    check_digit,
    scalar_text,
    string_parameters,
)
from gateway.carriers.fields import EventTable, check_stream, int_field, parse_object, raw_audio

MEDIA_START: Final = "MEDIA_START"
DTMF_END: Final = "DTMF_END"
MARK_PROCESSED: Final = "MEDIA_MARK_PROCESSED"
XOFF: Final = "MEDIA_XOFF"
XON: Final = "MEDIA_XON"
BUFFERING_COMPLETED: Final = "MEDIA_BUFFERING_COMPLETED"
QUEUE_DRAINED: Final = "QUEUE_DRAINED"
STATUS: Final = "STATUS"
ERROR: Final = "ERROR"
AUDIO: Final = "audio"  # a binary frame: not a control message, but a move of the state machine

# Commands (case-sensitive, as Asterisk reads them).
MARK_MEDIA: Final = "MARK_MEDIA"
FLUSH_MEDIA: Final = "FLUSH_MEDIA"
HANGUP: Final = "HANGUP"

#: Asterisk's format names the gateway takes, and what each is on the wire.
FORMATS: Final = {
    "ulaw": AudioFormat(Codec.PCMU, 8000),
    "alaw": AudioFormat(Codec.PCMA, 8000),
    "slin": AudioFormat(Codec.L16, 8000),
    "slin16": AudioFormat(Codec.L16, 16000),
    "slin24": AudioFormat(Codec.L16, 24000),
}
DEFAULT_FORMAT: Final = "ulaw"
DEFAULT_PTIME_MS: Final = 20  # what the oldest releases, which do not say, use
MAX_MESSAGE_BYTES: Final = 65500  # Asterisk closes the socket on a larger frame
MAX_COMMAND_BYTES: Final = 128  # Asterisk ignores a longer control message
# Printable, no spaces (one word), and short: a JSON MARK_MEDIA stays within 128 bytes.
_MARK_NAME: Final = re.compile(r"^[!#-\[\]-~]{1,64}\Z")
# A channel id or name goes into logs and records: printable, bounded, no spaces.
_CHANNEL: Final = re.compile(r"^[\x21-\x7e]{1,128}\Z")
_EVENT_NAME: Final = re.compile(r"^[A-Z][A-Z0-9_]{0,39}\Z")
_MAX_QUERY: Final = 32  # URI parameters a dial string may add
_MAX_QUERY_CHARS: Final = 512
# The driver's own channel variables: what MEDIA_START says anyway, not the operator's.
_OWN_VARIABLES: Final = frozenset({"MEDIA_WEBSOCKET_OPTIMAL_FRAME_SIZE",
                                   "MEDIA_WEBSOCKET_CONNECTION_ID"})
# Where the caller's and the dialled number may come in (the dial string's v()).
CALLER_KEYS: Final = ("From", "caller")
CALLEE_KEYS: Final = ("To", "callee")


class Dialect(enum.Enum):
    """How a stream's control messages are written (Asterisk's ``control_message_format``)."""

    PLAIN = "plain-text"
    JSON = "json"


def capabilities(frame_bytes: int, *, marks: bool = True) -> Capabilities:
    """What a stream whose optimal frame is ``frame_bytes`` can do. Replies go in whole
    frames, up to 25 (half a second) a message; ``marks`` off for releases before
    ``MARK_MEDIA`` (the gateway then times playback itself)."""
    largest = min(frame_bytes * 25, MAX_MESSAGE_BYTES - MAX_MESSAGE_BYTES % frame_bytes)
    return Capabilities(clear=True, marks=marks, dtmf=True, hang_up=True, transfer=False,
                        stop_event=False, binary_audio=True,
                        chunking=Chunking(multiple=frame_bytes, minimum=frame_bytes,
                                          maximum=largest))


_LEGAL: Final[dict[StreamState, dict[str, StreamState]]] = {
    StreamState.NEW: {MEDIA_START: StreamState.STARTED},
    StreamState.CONNECTED: {},  # no handshake before MEDIA_START
    StreamState.STARTED: dict.fromkeys((AUDIO, DTMF_END, MARK_PROCESSED, XOFF, XON,
                                        BUFFERING_COMPLETED, QUEUE_DRAINED, STATUS, ERROR),
                                       StreamState.STARTED),
    StreamState.STOPPED: {},
}
_ROLES: Final = {MEDIA_START: EventRole.OPENS}


def parse_plain(text: str, call_id: str | None) -> tuple[str, dict[str, str]]:
    """A plain-text control message: its name, and its ``key:value`` words (the rest of the
    line as ``correlation_id`` for the two events whose argument is a bare id)."""
    name, _, rest = text.strip().partition(" ")
    rest = rest.strip()
    if not _EVENT_NAME.match(name):  # Asterisk names its events in upper-case words
        raise CarrierProtocolError(f"not a control message: {name[:24]!r}", call_sid=call_id)
    if name in (MARK_PROCESSED, BUFFERING_COMPLETED):
        return name, {"correlation_id": rest} if rest else {}
    if name == ERROR:  # the error text is free prose, spaces and colons included
        _, _, error = rest.partition("error_text:")
        return name, {"error_text": error}
    fields: dict[str, str] = {}
    for word in rest.split():
        key, sep, value = word.partition(":")
        if not sep or not key:
            # A start that cannot be read leaves the stream unusable.
            fault = BadStart if name == MEDIA_START else CarrierProtocolError
            raise fault(f"not a key:value word: {word[:24]!r}", field=name[:40],
                        call_sid=call_id)
        fields[key] = value
    return name, fields


class AsteriskStream:
    """One ``chan_websocket`` socket: validates what Asterisk sends and builds what we send.

    ``query`` is the media URL's query (the dial string's ``v()`` parameters); ``marks``
    is off for Asterisk releases that predate ``MARK_MEDIA``. ``max_payload`` bounds one
    inbound audio frame (Asterisk sends 20 ms: 160 bytes of ulaw, 640 of slin16).
    """

    carrier = Carrier.ASTERISK

    def __init__(self, *, query: Mapping[str, str] | None = None, marks: bool = True,
                 max_payload: int = 16000) -> None:
        self.state = StreamState.NEW
        self.query = dict(query or {})
        self.marks = marks
        self.max_payload = max_payload
        self.dialect = Dialect.PLAIN
        self._pending_dialect = Dialect.PLAIN  # the dialect MEDIA_START was read in
        self.channel_id: str | None = None  # the call's id once started
        self._checks_channel = False  # its control messages name the channel
        self.fmt = FORMATS[DEFAULT_FORMAT]
        self.frame_bytes = self.fmt.frame_bytes
        self._caps = capabilities(self.frame_bytes, marks=marks)

    @property
    def call_id(self) -> str | None:
        return self.channel_id

    @property
    def caps(self) -> Capabilities:
        """The message size follows the stream's optimal frame (ulaw's until it has said)."""
        return self._caps

    # -- inbound -------------------------------------------------------------------------

    def receive(self, frame: str | bytes) -> Sequence[CarrierEvent]:
        """Parse one frame; raise :class:`CarrierProtocolError` if it breaks the protocol."""
        if isinstance(frame, bytes):
            _EVENTS.move(self.state, AUDIO, self.channel_id)
            return (Audio(self._audio(frame)),)
        event, msg = self._read(frame)
        next_state = _EVENTS.move(self.state, event, self.channel_id)
        parsed = _EVENTS.parsers[event](self, msg)
        self.state = next_state
        return parsed

    def _read(self, frame: str) -> tuple[str, dict[str, Any]]:
        """The message's event and fields, in the stream's dialect (any, before the start)."""
        if not frame.strip():
            raise CarrierProtocolError("empty control message", call_sid=self.channel_id)
        is_json = frame.lstrip().startswith("{")
        if self.state is StreamState.NEW:
            dialect = Dialect.JSON if is_json else Dialect.PLAIN
        else:
            dialect = self.dialect
            if is_json != (dialect is Dialect.JSON):
                raise CarrierProtocolError(f"control message not in the stream's "
                                           f"{dialect.value} dialect", call_sid=self.channel_id)
        if dialect is Dialect.JSON:
            msg = parse_object(frame, self.channel_id)
            event = msg.get("event")
            if not isinstance(event, str):
                raise CarrierProtocolError("missing or not a string", field="event",
                                           call_sid=self.channel_id)
            if self._checks_channel:
                check_stream(msg, "channel_id", self.channel_id, self.channel_id)
        else:
            event, msg = parse_plain(frame, self.channel_id)
            if self._checks_channel and "channel_id" in msg:
                check_stream(msg, "channel_id", self.channel_id, self.channel_id)
        if event not in _EVENTS.parsers:
            raise UnknownEvent(event, call_sid=self.channel_id)
        if self.state is StreamState.NEW:
            self._pending_dialect = dialect
        return event, msg

    def _audio(self, payload: bytes) -> bytes:
        return raw_audio(payload, self.max_payload, self.channel_id,
                         sample_bytes=self.fmt.codec.sample_bytes)

    def _parse_start(self, msg: dict[str, Any]) -> Sequence[CarrierEvent]:
        # Any fault here leaves the stream unusable: every one is a BadStart.
        try:
            return self._start(msg)
        except BadStart:
            raise
        except CarrierProtocolError as exc:
            raise BadStart(exc.message, field=exc.field, call_sid=exc.call_sid) from exc

    def _start(self, msg: dict[str, Any]) -> Sequence[CarrierEvent]:
        name = scalar_text(msg.get("format"))
        fmt = FORMATS.get(name)
        if fmt is None:
            raise UnsupportedMediaFormat(
                f"unsupported format {name[:24]!r}; expected one of {', '.join(FORMATS)}",
                field="format")
        ptime = int_field(msg, "ptime", "", None) if "ptime" in msg else DEFAULT_PTIME_MS
        frame_bytes = int_field(msg, "optimal_frame_size", "", None)
        if not 10 <= ptime <= 120 or frame_bytes != fmt.bytes_per_second * ptime // 1000:
            raise BadStart(f"optimal_frame_size {frame_bytes} is not {ptime} ms of {name}",
                           field="optimal_frame_size")
        channel = scalar_text(msg.get("channel"))
        channel_id = scalar_text(msg.get("channel_id"))
        for key, value in (("channel", channel), ("channel_id", channel_id)):
            if value and not _CHANNEL.match(value):
                raise BadStart("malformed", field=key)
        if not channel and not channel_id:
            raise BadStart("names no channel", field="channel_id")
        variables = string_parameters(msg.get("channel_variables"), "channel_variables", None)
        params = {k: v for k, v in variables.items() if k not in _OWN_VARIABLES}
        params.update(self._query())  # what the operator's dial string says comes last
        call_id = channel_id or channel
        self.dialect = self._pending_dialect
        self.channel_id = call_id
        self._checks_channel = bool(channel_id)
        self.fmt = fmt
        self.frame_bytes = frame_bytes
        self._caps = capabilities(frame_bytes, marks=self.marks)
        return (Started(call_id=call_id, stream_id=channel or call_id,
                        caller=_first(params, CALLER_KEYS), callee=_first(params, CALLEE_KEYS),
                        parameters=params, inbound=fmt, outbound=fmt),)

    def _query(self) -> dict[str, str]:
        if len(self.query) > _MAX_QUERY or any(
                len(k) + len(v) > _MAX_QUERY_CHARS for k, v in self.query.items()):
            raise BadStart(f"more than {_MAX_QUERY} URI parameters, or one too long",
                           field="query")
        return dict(self.query)

    def _parse_dtmf(self, msg: dict[str, Any]) -> Sequence[CarrierEvent]:
        digit = msg.get("digit")
        return (Dtmf(check_digit(digit, "digit", self.channel_id)),)

    def _parse_mark(self, msg: dict[str, Any]) -> Sequence[CarrierEvent]:
        name = scalar_text(msg.get("correlation_id"))
        if not name:
            raise CarrierProtocolError("a mark without its id", field="correlation_id",
                                       call_sid=self.channel_id)
        return (Played(name),)

    def _parse_xoff(self, msg: dict[str, Any]) -> Sequence[CarrierEvent]:
        return (Paused(),)

    def _parse_xon(self, msg: dict[str, Any]) -> Sequence[CarrierEvent]:
        return (Resumed(),)

    def _parse_notice(self, msg: dict[str, Any]) -> Sequence[CarrierEvent]:
        return ()  # buffering done, queue drained, status, an error of ours: nothing to do

    # -- outbound ------------------------------------------------------------------------

    def _check_started(self) -> None:
        if self.state is not StreamState.STARTED:
            raise CarrierProtocolError("cannot send before the stream has started")

    def _command(self, name: str, correlation_id: str | None = None) -> str:
        if self.dialect is Dialect.JSON:
            body = {"command": name}
            if correlation_id is not None:
                body["correlation_id"] = correlation_id
            return json.dumps(body, separators=(",", ":"))
        return name if correlation_id is None else f"{name} {correlation_id}"

    def play(self, audio: bytes) -> bytes:
        """One binary frame of whole optimal frames: Asterisk drops an odd tail."""
        self._check_started()
        if not audio or len(audio) % self.frame_bytes or len(audio) > MAX_MESSAGE_BYTES:
            raise ValueError(f"an Asterisk audio message is a whole number of "
                             f"{self.frame_bytes}-byte frames, got {len(audio)} bytes")
        return audio

    def mark(self, name: str) -> str:
        """``MARK_MEDIA``: Asterisk answers ``MEDIA_MARK_PROCESSED`` with ``name`` once the
        audio sent before it has been played."""
        self._check_started()
        if not _MARK_NAME.match(name):
            raise ValueError("mark name must be 1..64 printable characters, no spaces or "
                             "quotes")
        return self._command(MARK_MEDIA, name)

    def clear(self) -> str:
        """``FLUSH_MEDIA``: Asterisk drops all it has queued for the caller (barge-in)."""
        self._check_started()
        return self._command(FLUSH_MEDIA)

    def hang_up(self) -> str:
        """``HANGUP``: Asterisk hangs up the channel and closes the socket."""
        self._check_started()
        return self._command(HANGUP)


def _first(params: Mapping[str, str], keys: Sequence[str]) -> str | None:
    return next((params[k] for k in keys if params.get(k)), None)


def stream_factory(*, marks: bool = True) -> Callable[[Mapping[str, str]], AsteriskStream]:
    """A new stream for each media socket, given the query of the URL Asterisk dialled."""
    def new(query: Mapping[str, str]) -> AsteriskStream:
        return AsteriskStream(query=query, marks=marks)
    return new


_EVENTS: Final[EventTable[AsteriskStream]] = EventTable({
    MEDIA_START: AsteriskStream._parse_start,
    DTMF_END: AsteriskStream._parse_dtmf,
    MARK_PROCESSED: AsteriskStream._parse_mark,
    XOFF: AsteriskStream._parse_xoff,
    XON: AsteriskStream._parse_xon,
    BUFFERING_COMPLETED: AsteriskStream._parse_notice,
    QUEUE_DRAINED: AsteriskStream._parse_notice,
    STATUS: AsteriskStream._parse_notice,
    ERROR: AsteriskStream._parse_notice,
}, _LEGAL, _ROLES)
