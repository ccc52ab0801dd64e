"""Plivo Audio Streams (bidirectional ``<Stream>``), sans-I/O.

Plivo opens the socket with a ``start`` (``callId``, ``streamId``, ``accountId``, ``tracks``,
``mediaFormat`` ``{encoding, sampleRate}`` and ``extra_headers``), then sends ``media``
(base64 audio, about 20 ms each), ``dtmf``, ``playedStream`` once playback reaches a
``checkpoint`` of ours, and ``clearedAudio`` once a ``clearAudio`` has emptied its queue.
The documented protocol has no end message: Plivo closes the socket when the call ends
(Plivo's Java stream SDK knows a ``stop``; one is taken if it ever comes). We send
``playAudio``, ``checkpoint`` and ``clearAudio``. Text frames only.

**Audio.** The ``<Stream contentType>`` the answer asks for (:class:`ContentType`) is what
both directions carry; ``playAudio`` must name the same type and rate. L16 is little-endian
(Plivo's own examples feed its media straight to consumers of little-endian PCM and play
little-endian TTS output back). The ``start`` says which format came, and that one is used.

**Custom data.** What the answer document says reaches the stream's messages only through
the ``extraHeaders`` attribute, echoed as ``extra_headers`` in the ``start`` (a query string
on the socket's URL would reach the upgrade, which this core never sees). Plivo allows only
letters and digits in its keys and values (512 bytes in all) and documents both ``,`` and
``;`` between pairs, so every parameter (the per-call token, From, To) travels in one pair,
``voicegw=<hex>``, whose value is the hex of the parameters form-encoded
(:func:`encode_parameters`); it survives either separator and any character rule.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode

import pybase64

from gateway.audio import AudioFormat, Codec
from gateway.carriers.core import (
    Audio,
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
from gateway.jsonio import JSONDecodeError, loads


class ContentType(enum.Enum):
    """The ``contentType`` values a bidirectional ``<Stream>`` takes."""

    L16_16K = "audio/x-l16;rate=16000"
    L16_8K = "audio/x-l16;rate=8000"
    MULAW_8K = "audio/x-mulaw;rate=8000"

    @property
    def encoding(self) -> str:
        return self.value.partition(";")[0]

    @property
    def rate(self) -> int:
        return int(self.value.rpartition("=")[2])

    @property
    def format(self) -> AudioFormat:
        return _FORMATS[self]

    @classmethod
    def of(cls, encoding: str, rate: int) -> ContentType | None:
        """The content type a ``start`` declares (``encoding`` may carry parameters)."""
        media_type = encoding.partition(";")[0].strip().lower()
        return next((c for c in cls if (c.encoding, c.rate) == (media_type, rate)), None)


_FORMATS: Final = {c: AudioFormat(Codec.PCMU if c is ContentType.MULAW_8K else Codec.L16, c.rate)
                   for c in ContentType}
#: Wideband both ways: the Live API hears 16 kHz, so the caller's audio needs no resampling
#: and the reply loses nothing to mu-law; SIP and WebRTC callers keep their wideband audio.
DEFAULT_CONTENT_TYPE: Final = ContentType.L16_16K
#: Plivo takes up to 64 KB a message and advises 16 KB of base64 or less (12 000 bytes).
MAX_PLAY_BYTES: Final = 12_000
HEADER_KEY: Final = "voicegw"  # the one extraHeaders pair that carries our parameters
MAX_EXTRA_HEADERS: Final = 4096  # Plivo echoes at most 512 bytes; more is not Plivo's
_MAX_PARAMETERS: Final = 32
_MARK_NAME_MAX: Final = 256

# Ids go back inside JSON we build by template, so they must never need escaping.
# ``\Z``, not ``$``: ``$`` also matches before a trailing newline.
_ID_RE: Final = re.compile(r"^[A-Za-z0-9_\-]{2,64}\Z")
_HEX_RE: Final = re.compile(r"^(?:[0-9A-Fa-f]{2})*\Z")


def capabilities(content: ContentType) -> Capabilities:
    """What a stream in ``content`` can do. Messages are cut to whole samples and Plivo's
    advised size. (A transfer also needs the gateway's public URL, for Plivo to fetch the new
    XML from: the REST client says whether it has one.)"""
    sample = content.format.codec.sample_bytes
    return Capabilities(clear=True, marks=True, dtmf=True, hang_up=True, transfer=True,
                        stop_event=False,
                        chunking=Chunking(multiple=sample, minimum=sample,
                                          maximum=MAX_PLAY_BYTES))


CAPABILITIES: Final = capabilities(DEFAULT_CONTENT_TYPE)

# Which events each state accepts, and the state each one leads to. Plivo sends no
# ``connected``: ``start`` is the first frame.
_LEGAL: Final[dict[StreamState, dict[str, StreamState]]] = {
    StreamState.NEW: {"start": StreamState.STARTED},
    StreamState.CONNECTED: {"start": StreamState.STARTED},
    StreamState.STARTED: {
        "media": StreamState.STARTED,
        "dtmf": StreamState.STARTED,
        "playedStream": StreamState.STARTED,
        "played": StreamState.STARTED,
        "clearedAudio": StreamState.STARTED,
        "stop": StreamState.STOPPED,
    },
    StreamState.STOPPED: {},
}
_ROLES: Final = {"start": EventRole.OPENS, "stop": EventRole.ENDS}
_NOTHING: Final[tuple[CarrierEvent, ...]] = ()


# -- the parameters carried in extraHeaders --------------------------------------------


def encode_parameters(parameters: Mapping[str, str]) -> str:
    """The ``extraHeaders`` value that carries ``parameters``: ``voicegw=<hex>``."""
    return f"{HEADER_KEY}={urlencode(dict(parameters)).encode().hex()}"


def decode_parameters(raw: object, call_id: str | None = None) -> dict[str, str]:
    """The parameters in a ``start``'s ``extra_headers``; {} when it carries none of ours.

    Plivo documents the value as ``key=value`` pairs (its SDK calls it a JSON string), so
    a JSON object is read too. Other pairs are not the gateway's and are ignored.
    """
    where = "extra_headers"
    if raw is None or raw == "":
        return {}
    if isinstance(raw, str):
        if len(raw) > MAX_EXTRA_HEADERS:
            raise CarrierProtocolError(f"longer than {MAX_EXTRA_HEADERS} characters",
                                       field=where, call_sid=call_id)
        text = raw.strip()
        try:
            raw = loads(text) if text.startswith("{") else _pairs(text)
        except JSONDecodeError as exc:
            raise CarrierProtocolError("not key=value pairs nor a JSON object", field=where,
                                       call_sid=call_id) from exc
    pairs = string_parameters(raw, where, call_id) if isinstance(raw, dict) else None
    if pairs is None:
        raise CarrierProtocolError("not key=value pairs nor an object", field=where,
                                   call_sid=call_id)
    blob = next((v for k, v in pairs.items() if k.strip().lower() == HEADER_KEY), None)
    if blob is None:
        return {}
    blob = blob.strip()
    if not _HEX_RE.match(blob):
        raise CarrierProtocolError("our parameters are not hex", field=where, call_sid=call_id)
    try:
        found = parse_qsl(bytes.fromhex(blob).decode(), keep_blank_values=True,
                          strict_parsing=True, max_num_fields=_MAX_PARAMETERS)
    except (UnicodeDecodeError, ValueError) as exc:
        raise CarrierProtocolError("our parameters are not form-encoded", field=where,
                                   call_sid=call_id) from exc
    return dict(found)


def _pairs(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in re.split(r"[;,]", text):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            out.setdefault(key.strip(), value.strip())
    return out


# -- the stream --------------------------------------------------------------------------


class PlivoStream:
    """One Plivo audio stream: validates what Plivo sends and builds what we send back.

    ``content`` is what the answer asked for (the ``start`` may declare any supported type,
    and that one is used); ``max_payload`` bounds one inbound frame's audio bytes (20 ms is
    640 at most), so anything larger is refused before it is decoded.
    """

    carrier = Carrier.PLIVO

    def __init__(self, *, content: ContentType = DEFAULT_CONTENT_TYPE,
                 max_payload: int = 32_000) -> None:
        self.state = StreamState.NEW
        self.max_payload = max_payload
        self.stream_id: str | None = None
        self._call_id: str | None = None
        self._play_head = ""
        self._use(content)

    def _use(self, content: ContentType) -> None:
        self.content = content
        self.caps = capabilities(content)
        self._sample_bytes = content.format.codec.sample_bytes

    @property
    def call_id(self) -> str | None:
        return self._call_id

    # -- inbound -------------------------------------------------------------------------

    def receive(self, frame: str | bytes) -> Sequence[CarrierEvent]:
        """Parse one frame; raise :class:`CarrierProtocolError` if it breaks the protocol."""
        if isinstance(frame, bytes):
            raise WrongFrameType(True, call_sid=self._call_id)
        event, msg = _EVENTS.read(frame, self._call_id)
        next_state = _EVENTS.move(self.state, event, self._call_id)
        if self.state is StreamState.STARTED:
            check_stream(msg, "streamId", self.stream_id, self._call_id)
        parsed = _EVENTS.parsers[event](self, msg)
        self.state = next_state
        return parsed

    def _parse_start(self, msg: dict[str, Any]) -> Sequence[CarrierEvent]:
        start = obj_field(msg, "start", "", None)
        call_id = str_field(start, "callId", "start.", None)
        if not _ID_RE.match(call_id):
            raise CarrierProtocolError("malformed id", field="start.callId")
        stream_id = str_field(start, "streamId", "start.", call_id)
        if not _ID_RE.match(stream_id):
            raise CarrierProtocolError("malformed id", field="start.streamId", call_sid=call_id)
        str_field(start, "accountId", "start.", call_id)
        tracks = start.get("tracks", ["inbound"])
        if not isinstance(tracks, list) or not all(isinstance(t, str) for t in tracks):
            raise CarrierProtocolError("must be a list of strings", field="start.tracks",
                                       call_sid=call_id)
        fmt = obj_field(start, "mediaFormat", "start.", call_id)
        encoding = str_field(fmt, "encoding", "start.mediaFormat.", call_id)
        rate = int_field(fmt, "sampleRate", "start.mediaFormat.", call_id)
        content = ContentType.of(encoding, rate)
        if content is None:
            raise UnsupportedMediaFormat(
                f"unsupported media format {encoding[:40]}/{rate}; expected one of "
                f"{', '.join(c.value for c in ContentType)}",
                field="start.mediaFormat", call_sid=call_id)
        params = decode_parameters(msg.get("extra_headers"), call_id)
        self._call_id, self.stream_id = call_id, stream_id
        self._use(content)
        # Built once: every reply message starts the same way.
        self._play_head = ('{"event":"playAudio","media":{"contentType":"'
                           f'{content.encoding}","sampleRate":{content.rate},"payload":"')
        # The webhook's From and To reach the stream only as parameters our answer carried.
        return (Started(call_id=call_id, stream_id=stream_id,
                        caller=params.get("From") or None, callee=params.get("To") or None,
                        parameters=params, inbound=content.format, outbound=content.format),)

    def _parse_media(self, msg: dict[str, Any]) -> Sequence[CarrierEvent]:
        media = obj_field(msg, "media", "", self._call_id)
        track = media.get("track", "inbound")
        if not isinstance(track, str):
            raise CarrierProtocolError("not a string", field="media.track",
                                       call_sid=self._call_id)
        payload = b64_audio(media.get("payload"), "media.payload", self.max_payload,
                            self._call_id)
        if len(payload) % self._sample_bytes:
            raise CarrierProtocolError("not a whole number of 16-bit samples",
                                       field="media.payload", call_sid=self._call_id)
        # Checked for their shape only: the gateway does not reorder Plivo's frames.
        for key in ("chunk", "timestamp"):
            if key in media:
                int_field(media, key, "media.", self._call_id)
        if track != "inbound":
            return _NOTHING  # the call's other side (audioTrack="both"): not the caller
        return (Audio(payload),)

    def _parse_dtmf(self, msg: dict[str, Any]) -> Sequence[CarrierEvent]:
        dtmf = obj_field(msg, "dtmf", "", self._call_id)
        digit = str_field(dtmf, "digit", "dtmf.", self._call_id)
        return (Dtmf(check_digit(digit, "dtmf.digit", self._call_id)),)

    def _parse_played(self, msg: dict[str, Any]) -> Sequence[CarrierEvent]:
        # ``playedStream`` in Plivo's reference and SDKs; ``played`` in its support articles.
        return (Played(str_field(msg, "name", "", self._call_id)),)

    def _parse_cleared(self, msg: dict[str, Any]) -> Sequence[CarrierEvent]:
        return (Cleared(),)

    def _parse_stop(self, msg: dict[str, Any]) -> Sequence[CarrierEvent]:
        return (Stopped(),)  # ends the stream however malformed its body: nothing is needed

    # -- outbound ------------------------------------------------------------------------

    def _sid(self) -> str:
        if self.stream_id is None:
            raise CarrierProtocolError("cannot send before the stream has started")
        return self.stream_id

    def play(self, audio: bytes) -> str:
        """A ``playAudio`` of raw audio in the stream's content type."""
        self._sid()
        # Built by template: base64 never needs JSON escaping, and this runs for every
        # outbound message of every call.
        return f'{self._play_head}{pybase64.b64encode_as_string(audio)}"}}}}'

    def mark(self, name: str) -> str:
        """A ``checkpoint``; Plivo answers ``playedStream`` once what came before it played."""
        if not name or len(name) > _MARK_NAME_MAX:
            raise ValueError("checkpoint name must be 1..256 characters")
        return json.dumps({"event": "checkpoint", "streamId": self._sid(), "name": name},
                          separators=(",", ":"))

    def clear(self) -> str:
        """A ``clearAudio``: Plivo drops every queued sample and answers ``clearedAudio``."""
        return f'{{"event":"clearAudio","streamId":"{self._sid()}"}}'


_EVENTS: Final[EventTable[PlivoStream]] = EventTable({
    "start": opens_stream(PlivoStream._parse_start),
    "media": PlivoStream._parse_media,
    "dtmf": PlivoStream._parse_dtmf,
    "playedStream": PlivoStream._parse_played,
    "played": PlivoStream._parse_played,
    "clearedAudio": PlivoStream._parse_cleared,
    "stop": PlivoStream._parse_stop,
}, _LEGAL, _ROLES)
