"""Each carrier's wire for the hostile-input tests: its valid messages (built by the rig's phone
peers, so they are what the carrier sends) and the ways to break them. This file holds the base
and the JSON-text carriers; ``hostile_wire_binary.py`` and ``hostile_wire_browser.py`` the
others, and ``hostile_wires.py`` all of them by carrier.

One :class:`Wire` per carrier. Each names its broken frames (dropped and counted), its
unsupported formats and a malformed opening (both close the stream before any call exists),
the frames of a type the carrier never sends (closed with 1003) and an event it may add
(ignored). What breaks differs by carrier: Twilio, SignalWire, Telnyx, Plivo and Exotel speak
JSON text only, with base64 audio; the binary-frame carriers are described in theirs. Limits
(the largest payload) are read from the gateway's own cores.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from gateway.audio import AudioFormat
from gateway.carriers import telnyx as telnyx_core
from gateway.carriers import twilio as twilio_core
from gateway.carriers.core import Carrier, Outgoing
from gateway.carriers.exotel import ExotelStream, audio_format
from gateway.carriers.plivo import ContentType, PlivoStream
from gateway.rig.peers import PhonePeer
from gateway.rig.peers.exotel import ExotelPeer
from gateway.rig.peers.plivo import PlivoPeer
from gateway.rig.peers.telnyx import TelnyxPeer
from gateway.rig.peers.twilio import TwilioPeer, signalwire_peer

CALLER = "+15550100"


@dataclass(frozen=True)
class Refused:
    """An opening the gateway refuses, and the reason it closes the stream with."""

    frame: Outgoing
    reason: str


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class Wire:
    """One call's frames at one carrier, valid and broken."""

    carrier: ClassVar[Carrier]
    fmt: ClassVar[AudioFormat]  # the caller's audio
    max_payload: ClassVar[int]  # the gateway core's bound on one frame's audio
    # The carrier says "stop" when the caller hangs up; else a normal close is the hang-up.
    stop_event: ClassVar[bool] = True
    upgrade_headers: ClassVar[dict[str, str]] = {}  # credentials its upgrade carries
    breakable_start: ClassVar[bool] = True  # its start has fields to break (malformed_start)
    start_key: ClassVar[str | None] = None  # where a JSON start holds its fields (start_with)
    peer: PhonePeer  # builds the valid messages

    @property
    def call_id(self) -> str:
        return self.peer.call_id

    @property
    def silence(self) -> bytes:
        """One 20 ms frame of silence in the caller's format."""
        return self.fmt.silence(20)

    def opening(self) -> list[Outgoing]:
        """Everything up to and including the message that names the call."""
        raise NotImplementedError

    def before_start(self) -> list[Outgoing]:
        """What may come before the start (Twilio's and Telnyx's ``connected``)."""
        return self.opening()[:-1]

    def start(self) -> Outgoing:
        return self.opening()[-1]

    def start_with(self, **changes: Any) -> str:
        """A JSON start changed as given (``None`` removes a key): the object under
        ``start_key``, or the whole message without one (Vonage's websocket:connected,
        jambonz's metadata)."""
        msg = json.loads(str(self.start()))
        fields = msg if self.start_key is None else msg[self.start_key]
        for key, value in changes.items():
            if value is None:
                fields.pop(key)
            else:
                fields[key] = value
        return json.dumps(msg)

    def media(self, audio: bytes | None = None) -> Outgoing:
        raise NotImplementedError

    def stop(self) -> Outgoing:
        raise NotImplementedError(f"{self.carrier.value} sends no stop")

    def unknown_event(self) -> tuple[Outgoing, str]:
        """An event the gateway does not know (the carrier may add one), and its name."""
        raise NotImplementedError

    def broken(self) -> dict[str, Outgoing]:
        """Frames the gateway drops and counts; the call goes on."""
        raise NotImplementedError

    def bad_formats(self) -> dict[str, Refused]:
        """Openings in an audio format the gateway does not take: 1003."""
        raise NotImplementedError

    def malformed_start(self) -> Refused:
        """An opening that names no usable call: 1008."""
        raise NotImplementedError

    def wrong_types(self) -> dict[str, Outgoing]:
        """Frames of a type the carrier never sends: 1003."""
        raise NotImplementedError

    def over_limit(self, limit: int) -> Outgoing:
        """A frame longer than ``limit`` bytes, of the carrier's own kind."""
        raise NotImplementedError


# -- JSON carriers: base64 audio in text frames -----------------------------------------------


class JsonWire(Wire):
    """What Twilio, SignalWire, Telnyx and Plivo share: every frame is a JSON object."""

    start_key: ClassVar[str | None] = "start"

    def media_with_payload(self, payload: str) -> str:
        """A media message of this stream carrying ``payload`` verbatim."""
        raise NotImplementedError

    def broken(self) -> dict[str, Outgoing]:
        return {
            "non-JSON text": "this is not JSON {",
            "JSON that is not an object": '["event", "media"]',
            "payload not base64": self.media_with_payload("not base64!"),
            "empty payload": self.media_with_payload(""),
            # Over the core's payload bound, inside the 64 KiB frame limit.
            "oversized payload": self.media_with_payload(_b64(bytes(self.max_payload + 4000))),
        }

    def wrong_types(self) -> dict[str, Outgoing]:
        return {
            "garbage": b"\x00\xff\x13\x37" * 40,
            # Even a valid message is refused in a binary frame: the carrier sends text.
            "json": str(self.media()).encode(),
        }

    def over_limit(self, limit: int) -> Outgoing:
        return self.media_with_payload("A" * (limit + 4))


# Linear PCM is two bytes a sample: half a sample cannot be decoded.
ODD_LENGTH: Final = bytes(641)


class TwilioWire(JsonWire):
    carrier = Carrier.TWILIO
    fmt = twilio_core.FORMAT
    max_payload = twilio_core.TwilioStream().max_payload

    def __init__(self) -> None:
        self.peer = self.new_peer()

    def new_peer(self) -> TwilioPeer:
        return TwilioPeer(custom_parameters={"From": CALLER})

    def opening(self) -> list[Outgoing]:
        return [self.peer.connected(), self.peer.start()]

    def media(self, audio: bytes | None = None) -> Outgoing:
        return self.peer.media(self.silence if audio is None else audio)

    def stop(self) -> Outgoing:
        return self.peer.stop()

    def media_with_payload(self, payload: str) -> str:
        return json.dumps({"event": "media", "sequenceNumber": "99",
                           "streamSid": self.peer.stream_sid,
                           "media": {"track": "inbound", "chunk": "99", "timestamp": "1980",
                                     "payload": payload}})

    def broken(self) -> dict[str, Outgoing]:
        return {**super().broken(), "connected after start": self.peer.connected()}

    def unknown_event(self) -> tuple[Outgoing, str]:
        return json.dumps({"event": "playAudio", "streamSid": self.peer.stream_sid}), "playAudio"

    def malformed_start(self) -> Refused:
        return Refused(self.start_with(callSid=None), "bad start: missing or not a string")

    def bad_formats(self) -> dict[str, Refused]:
        return {"l16": self._format("audio/l16", 8000, 1),
                "16kHz": self._format("audio/x-mulaw", 16000, 1),
                "stereo": self._format("audio/x-mulaw", 8000, 2)}

    def _format(self, encoding: str, rate: int, channels: int) -> Refused:
        fmt = {"encoding": encoding, "sampleRate": rate, "channels": channels}
        return Refused(self.start_with(mediaFormat=fmt),
                       f"unsupported media format {encoding}/{rate}/{channels}; "
                       "expected audio/x-mulaw/8000/1")


class SignalWireWire(TwilioWire):
    """Twilio's messages with SignalWire's ids (UUIDs): the same core, its own label."""

    carrier = Carrier.SIGNALWIRE

    def new_peer(self) -> TwilioPeer:
        return signalwire_peer({"From": CALLER})


class TelnyxWire(JsonWire):
    carrier = Carrier.TELNYX
    fmt = telnyx_core.DEFAULT_FORMAT
    max_payload = telnyx_core.TelnyxStream().max_payload

    def __init__(self) -> None:
        self.peer = TelnyxPeer(custom_parameters={"From": CALLER})

    def opening(self) -> list[Outgoing]:
        return [self.peer.connected(), self.peer.start()]

    def media(self, audio: bytes | None = None) -> Outgoing:
        return self.peer.media(self.silence if audio is None else audio)

    def numbered(self, seq: int) -> str:
        """A frame of silence numbered ``seq`` (the peer numbers its own in order)."""
        msg = json.loads(str(self.media()))
        msg["sequence_number"] = str(seq)
        return json.dumps(msg)

    def stop(self) -> Outgoing:
        return self.peer.stop()

    def media_with_payload(self, payload: str) -> str:
        # A broken frame is refused before it is put in order: its number is never used.
        return json.dumps({"event": "media", "sequence_number": "99",
                           "media": {"track": "inbound", "chunk": "99", "timestamp": "1980",
                                     "payload": payload},
                           "stream_id": self.peer.stream_id})

    def broken(self) -> dict[str, Outgoing]:
        return {
            **super().broken(),
            "odd-length payload": self.media_with_payload(_b64(ODD_LENGTH)),
            "connected after start": self.peer.connected(),
            # Telnyx's own report of a fault on the stream counts as a broken frame.
            "error event": json.dumps({
                "event": "error", "stream_id": self.peer.stream_id,
                "payload": {"code": "100003", "title": "malformed_frame"}}),
        }

    def unknown_event(self) -> tuple[Outgoing, str]:
        name = "media_quality"
        return json.dumps({"event": name, "stream_id": self.peer.stream_id}), name

    def malformed_start(self) -> Refused:
        return Refused(self.start_with(call_control_id=None),
                       "bad start: missing or not a string")

    def bad_formats(self) -> dict[str, Refused]:
        return {"opus": self._format("OPUS", 16000, 1),  # Telnyx offers it; not decoded here
                "16kHz mu-law": self._format("PCMU", 16000, 1),
                "stereo": self._format("L16", 16000, 2)}

    def _format(self, encoding: str, rate: int, channels: int) -> Refused:
        fmt = {"encoding": encoding, "sample_rate": rate, "channels": channels}
        return Refused(self.start_with(media_format=fmt),
                       f"unsupported media format {encoding}/{rate}/{channels}; "
                       "expected PCMU/8000, PCMA/8000 or L16 (mono)")


class PlivoWire(JsonWire):
    carrier = Carrier.PLIVO
    fmt = ContentType.L16_16K.format
    max_payload = PlivoStream().max_payload
    stop_event = False

    def __init__(self) -> None:
        self.peer = PlivoPeer(custom_parameters={"From": CALLER})

    def opening(self) -> list[Outgoing]:
        return [self.peer.start()]  # no connected: the start comes first

    def media(self, audio: bytes | None = None) -> Outgoing:
        return self.peer.media(self.silence if audio is None else audio)

    def stop(self) -> Outgoing:
        # Not in Plivo's documented protocol (it closes the socket), but its Java stream SDK
        # knows one, and the gateway's core takes it.
        return json.dumps({"event": "stop", "streamId": self.peer.stream_id})

    def media_with_payload(self, payload: str) -> str:
        return json.dumps({"event": "media", "sequenceNumber": 99,
                           "streamId": self.peer.stream_id,
                           "media": {"track": "inbound", "timestamp": "1980", "chunk": 99,
                                     "payload": payload},
                           "extra_headers": self.peer.extra_headers})

    def broken(self) -> dict[str, Outgoing]:
        # No "connected after start": Plivo has no connected message (one is an unknown event).
        return {**super().broken(),
                "odd-length payload": self.media_with_payload(_b64(ODD_LENGTH))}

    def unknown_event(self) -> tuple[Outgoing, str]:
        name = "mediaQuality"
        return json.dumps({"event": name, "streamId": self.peer.stream_id}), name

    def malformed_start(self) -> Refused:
        return Refused(self.start_with(callId=None), "bad start: missing or not a string")

    def bad_formats(self) -> dict[str, Refused]:
        return {"a-law": self._format("audio/x-alaw", 8000),
                "44.1kHz": self._format("audio/x-l16", 44100),
                "16kHz mu-law": self._format("audio/x-mulaw", 16000)}

    def _format(self, encoding: str, rate: int) -> Refused:
        expected = ", ".join(c.value for c in ContentType)
        return Refused(self.start_with(mediaFormat={"encoding": encoding, "sampleRate": rate}),
                       f"unsupported media format {encoding}/{rate}; expected one of {expected}")


class ExotelWire(JsonWire):
    carrier = Carrier.EXOTEL
    fmt = audio_format(16000)
    max_payload = ExotelStream().max_payload

    def __init__(self) -> None:
        self.peer = ExotelPeer(custom_parameters={"From": CALLER})

    def opening(self) -> list[Outgoing]:
        return list(self.peer.opening())  # connected, start

    def media(self, audio: bytes | None = None) -> Outgoing:
        return self.peer.media(self.silence if audio is None else audio)

    def stop(self) -> Outgoing:
        [stop] = self.peer.hang_up()
        return stop

    def media_with_payload(self, payload: str) -> str:
        return json.dumps({"event": "media", "sequence_number": "99",
                           "stream_sid": self.peer.stream_sid,
                           "media": {"chunk": "99", "timestamp": "1980", "payload": payload}})

    def broken(self) -> dict[str, Outgoing]:
        return {**super().broken(), "connected after start": json.dumps({"event": "connected"}),
                "odd-length payload": self.media_with_payload(_b64(ODD_LENGTH))}

    def unknown_event(self) -> tuple[Outgoing, str]:
        name = "transcript"
        return json.dumps({"event": name, "stream_sid": self.peer.stream_sid}), name

    def malformed_start(self) -> Refused:
        return Refused(self.start_with(call_sid=None), "bad start: missing or not a string")

    def bad_formats(self) -> dict[str, Refused]:
        return {"mu-law": self._format("audio/x-mulaw", "8000", "8"),
                "44.1kHz": self._format("audio/x-raw", "44100", "16"),
                "8-bit": self._format("audio/x-raw", "16000", "8")}

    def _format(self, encoding: str, rate: str, bits: str) -> Refused:
        fmt = {"encoding": encoding, "sample_rate": rate, "bit_rate": bits}
        return Refused(self.start_with(media_format=fmt),
                       f"unsupported media format {encoding}/{rate}/{bits}; expected 16-bit "
                       "PCM at 8000, 16000, 24000 Hz")
