"""jambonz's ``listen`` verb, bidirectional streaming mode, sans-I/O.

A ``listen`` verb makes jambonz (its FreeSWITCH module ``mod_audio_fork``) open a socket to the
gateway, asking for the subprotocol ``audio.jambonz.org`` (``audio.drachtio.org`` where the
operator left the module's default; both are accepted). Its **first frame is text**: a JSON
object with the call's attributes as jambonz names them in camelCase (``callSid``, ``from``,
``to``, ``direction``, ``accountSid``...), the stream's ``sampleRate`` and ``mixType``, and the
verb's ``metadata`` merged in at the top level. The answer document
(:mod:`gateway.carriers.jambonz_hooks`) puts everything of ours in one object under
:data:`METADATA_KEY`, so nothing jambonz adds can collide with it: the per-call token and the
numbers the webhook named. That frame is the start.

After it, **binary frames are audio**: 16-bit linear PCM, little-endian (the module hands the
channel's native samples over unchanged), mono, at the asked rate. **Text frames are JSON
events**, named by ``type`` (``{"type":"mark","data":{"name":...,"event":"playout"}}``) or, for
keypad digits passed with ``passDtmf``, by ``event`` (``{"event":"dtmf","dtmf":"5",
"duration":...}``).

Outbound, with ``bidirectionalAudio: {enabled, streaming: true, sampleRate}``, audio goes back
as binary frames appended to the module's playout buffer and played in order. They are cut to
exactly 20 ms (``Capabilities.chunking``): the module receives in 1024-byte pieces, and a
20 ms frame (at most 960 bytes at 24 kHz) arrives whole, never a sample split across two.
``{"type":"killAudio"}`` drops the buffer (barge-in); ``{"type":"mark","data":{"name":...}}``
is the mark: jambonz returns it with ``event: "playout"`` once the audio before it has been
played, or ``event: "cleared"`` if a ``killAudio`` dropped that audio first. There is no stop
event: the call's end is the socket's close.

The stream is a state machine (``StreamState`` and ``_LEGAL``): only the first text frame
opens it, and audio, keypad and marks are legal only once it is open. Every violation raises
:class:`CarrierProtocolError` naming the field and the call.
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
    UnknownEvent,
    UnsupportedMediaFormat,
    check_digit,
    scalar_text,
    string_parameters,
)
from gateway.carriers.fields import (
    EventTable,
    int_field,
    obj_field,
    opens_stream,
    parse_object,
    raw_audio,
    str_field,
)

#: The subprotocol jambonz's documentation names first; the module's built-in default second.
SUBPROTOCOLS: Final = ("audio.jambonz.org", "audio.drachtio.org")
#: The object of the first frame that holds what the answer document sent along.
METADATA_KEY: Final = "voicegw"

METADATA: Final = "metadata"  # the first text frame: not named, but a move of the machine
AUDIO: Final = "audio"  # a binary frame
DTMF: Final = "dtmf"
MARK: Final = "mark"
PLAYOUT: Final = "playout"
CLEARED: Final = "cleared"

#: What the answer document asks for: wideband, the Live API's own input rate. 8 kHz and
#: 24 kHz are taken where a listen verb of the operator's own asks for them.
DEFAULT_RATE: Final = 16000
RATES: Final = frozenset({8000, 16000, 24000})
FORMAT: Final = AudioFormat(Codec.L16, DEFAULT_RATE)
# The call sid goes back into a REST path (/v1/Accounts/{sid}/Calls/{call_sid}): jambonz's
# are UUIDs; nothing that needs escaping is taken.
SID_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,79}\Z")
_MARK_NAME_MAX: Final = 256
_KILL_AUDIO: Final = '{"type":"killAudio"}'


def capabilities(rate: int) -> Capabilities:
    """What a stream at ``rate`` can do; every audio message is exactly one 20 ms frame."""
    frame = AudioFormat(Codec.L16, rate).frame_bytes
    return Capabilities(clear=True, marks=True, dtmf=True, hang_up=True, transfer=True,
                        stop_event=False, binary_audio=True,
                        chunking=Chunking(multiple=frame, minimum=frame, maximum=frame))


CAPABILITIES: Final = capabilities(DEFAULT_RATE)
_CAPS_BY_RATE: Final = {rate: capabilities(rate) for rate in RATES}

_LEGAL: Final[dict[StreamState, dict[str, StreamState]]] = {
    StreamState.NEW: {METADATA: StreamState.STARTED},
    StreamState.CONNECTED: {},  # no handshake before the metadata: it is the start
    StreamState.STARTED: {
        AUDIO: StreamState.STARTED,
        DTMF: StreamState.STARTED,
        MARK: StreamState.STARTED,
    },
    StreamState.STOPPED: {},
}
_ROLES: Final = {METADATA: EventRole.OPENS}


def event_name(msg: dict[str, Any], call_id: str | None) -> str:
    """What a text frame after the first one is: its ``type`` (jambonz's commands and their
    answers) or its ``event`` (the keypad); a frame with neither is a second metadata."""
    for key in ("type", "event"):
        if key in msg:
            name = msg[key]
            if not isinstance(name, str):
                raise CarrierProtocolError("not a string", field=key, call_sid=call_id)
            return name
    return METADATA


class JambonzStream:
    """One ``listen`` socket: validates what jambonz sends and builds what we send back.

    ``max_payload`` bounds one inbound audio frame; a larger frame is refused before anything
    reads it.
    """

    carrier = Carrier.JAMBONZ

    def __init__(self, *, max_payload: int = 16000) -> None:
        self.state = StreamState.NEW
        self.call_sid: str | None = None
        self.max_payload = max_payload
        self.fmt = FORMAT

    @property
    def call_id(self) -> str | None:
        return self.call_sid

    @property
    def caps(self) -> Capabilities:
        """The message size follows the rate the stream declared (16 kHz until it has)."""
        return _CAPS_BY_RATE[self.fmt.rate]

    # -- inbound -------------------------------------------------------------------------

    def receive(self, frame: str | bytes) -> Sequence[CarrierEvent]:
        """Parse one frame; raise :class:`CarrierProtocolError` if it breaks the protocol."""
        if isinstance(frame, bytes):
            _EVENTS.move(self.state, AUDIO, self.call_sid)
            return (Audio(self._audio(frame)),)
        msg = parse_object(frame, self.call_sid)
        # Whatever the first text frame holds, it is the metadata: jambonz sends nothing else
        # first, and the operator's own metadata may use any name.
        event = METADATA if self.state is StreamState.NEW else event_name(msg, self.call_sid)
        if event not in _EVENTS.parsers:
            raise UnknownEvent(event, call_sid=self.call_sid)
        next_state = _EVENTS.move(self.state, event, self.call_sid)
        parsed = _EVENTS.parsers[event](self, msg)
        self.state = next_state
        return parsed

    def _audio(self, payload: bytes) -> bytes:
        return raw_audio(payload, self.max_payload, self.call_sid)

    def _parse_metadata(self, msg: dict[str, Any]) -> Sequence[CarrierEvent]:
        # Any fault here leaves the stream unusable: a BadStart (``opens_stream``).
        sid = msg.get("callSid")
        if not isinstance(sid, str) or not SID_RE.match(sid):
            raise BadStart("missing or malformed callSid", field="callSid")
        rate = int_field(msg, "sampleRate", "", sid)
        if rate not in RATES:
            raise UnsupportedMediaFormat(
                f"unsupported sampleRate {rate}; expected "
                f"{', '.join(str(r) for r in sorted(RATES))}", field="sampleRate", call_sid=sid)
        mix = msg.get("mixType", "mono")
        if mix != "mono":
            # Stereo interleaves both parties of a bridged call; the agent hears one caller.
            raise UnsupportedMediaFormat(f"unsupported mixType {scalar_text(mix)[:16]!r}; "
                                         "expected mono", field="mixType", call_sid=sid)
        ours = msg.get(METADATA_KEY)
        params = string_parameters(obj_field(msg, METADATA_KEY, "", sid)
                                   if ours is not None else None, METADATA_KEY, sid)
        self.call_sid = sid
        self.fmt = AudioFormat(Codec.L16, rate)
        return (Started(call_id=sid, stream_id=sid,
                        caller=scalar_text(msg.get("from")) or params.get("From") or None,
                        callee=scalar_text(msg.get("to")) or params.get("To") or None,
                        parameters=params, inbound=self.fmt, outbound=self.fmt),)

    def _parse_dtmf(self, msg: dict[str, Any]) -> Sequence[CarrierEvent]:
        # {"event":"dtmf","dtmf":"5","duration":...}: one digit per key press. The duration
        # (FreeSWITCH's, in samples) means nothing to the agent and is not read.
        digit = str_field(msg, "dtmf", "", self.call_sid)
        return (Dtmf(check_digit(digit, "dtmf", self.call_sid)),)

    def _parse_mark(self, msg: dict[str, Any]) -> Sequence[CarrierEvent]:
        data = obj_field(msg, "data", "", self.call_sid)
        name = str_field(data, "name", "data.", self.call_sid)
        what = data.get("event")
        if what == PLAYOUT:
            return (Played(name),)
        if what == CLEARED:
            # The audio before it was dropped by a killAudio: never heard, so no Played.
            return (Cleared(),)
        raise CarrierProtocolError("must be 'playout' or 'cleared'", field="data.event",
                                   call_sid=self.call_sid)

    # -- outbound ------------------------------------------------------------------------

    def _check_started(self) -> None:
        if self.state is not StreamState.STARTED:
            raise CarrierProtocolError("cannot send before the stream has started")

    def play(self, audio: bytes) -> bytes:
        """One binary frame of exactly 20 ms at the stream's rate."""
        self._check_started()
        if len(audio) != self.fmt.frame_bytes:
            raise ValueError(f"a jambonz audio frame is {self.fmt.frame_bytes} bytes, "
                             f"got {len(audio)}")
        return audio

    def mark(self, name: str) -> str:
        """A mark; jambonz returns it once the audio before it has played."""
        self._check_started()
        if not name or len(name) > _MARK_NAME_MAX:
            raise ValueError("mark name must be 1..256 characters")
        return json.dumps({"type": "mark", "data": {"name": name}}, separators=(",", ":"))

    def clear(self) -> str:
        """A ``killAudio``: jambonz drops all it has queued for the caller (barge-in)."""
        self._check_started()
        return _KILL_AUDIO


_EVENTS: Final[EventTable[JambonzStream]] = EventTable({
    METADATA: opens_stream(JambonzStream._parse_metadata),
    DTMF: JambonzStream._parse_dtmf,
    MARK: JambonzStream._parse_mark,
}, _LEGAL, _ROLES)
