"""The binary-frame carriers' wires for the hostile-input tests
(:mod:`tests.integration.hostile_wire` has the base and the JSON-text ones): Vonage and
jambonz send audio as binary frames of raw PCM and events as JSON text, so every frame type has
a meaning there, and their first text frame is the start; Asterisk's WebSocket driver alike
(binary audio, plain-text control, ``MEDIA_START`` its start)."""

from __future__ import annotations

import json

from gateway.carriers import asterisk as asterisk_core
from gateway.carriers import jambonz as jambonz_core
from gateway.carriers import vonage as vonage_core
from gateway.carriers.core import Carrier, Outgoing
from gateway.rig.peers.asterisk import AsteriskPeer
from gateway.rig.peers.jambonz import JambonzPeer
from gateway.rig.peers.vonage import VonagePeer
from tests.integration.hostile_wire import CALLER, ODD_LENGTH, Refused, Wire

# -- Vonage: binary audio, JSON events ----------------------------------------------------------


class VonageWire(Wire):
    carrier = Carrier.VONAGE
    fmt = vonage_core.FORMAT
    max_payload = vonage_core.VonageStream().max_payload
    stop_event = False

    def __init__(self) -> None:
        self.peer = VonagePeer({"From": CALLER})

    def opening(self) -> list[Outgoing]:
        return list(self.peer.opening())  # websocket:connected is the start

    def media(self, audio: bytes | None = None) -> Outgoing:
        return self.peer.media(self.silence if audio is None else audio)

    def broken(self) -> dict[str, Outgoing]:
        # No "payload not base64" (audio is raw bytes), no "connected after start" (a second
        # websocket:connected is a second start: its own row, closed with 1008).
        return {"non-JSON text": "this is not JSON {",
                "JSON that is not an object": '["event", "websocket:dtmf"]',
                "empty audio frame": b"",
                "oversized audio frame": bytes(self.max_payload + 2),
                "odd-length audio frame": ODD_LENGTH}

    def wrong_types(self) -> dict[str, Outgoing]:
        # None: binary frames are its audio and text frames its events. A text frame that is
        # not JSON is a broken event, dropped and counted, as it is for the JSON carriers.
        return {}

    def unknown_event(self) -> tuple[Outgoing, str]:
        name = "websocket:transcript"
        return json.dumps({"event": name}), name

    def malformed_start(self) -> Refused:
        return Refused(self.start_with(uuid=None),
                       "bad start: missing or malformed call uuid")

    def bad_formats(self) -> dict[str, Refused]:
        return {"44.1kHz": self._format("audio/l16;rate=44100"),
                "mu-law": self._format("audio/pcmu;rate=8000")}

    def _format(self, kind: str) -> Refused:
        return Refused(self.start_with(**{"content-type": kind}),
                       f"unsupported content-type {kind!r}; expected audio/l16 at "
                       "8000, 16000, 24000 Hz")

    def over_limit(self, limit: int) -> Outgoing:
        return bytes(limit + 4)


# -- jambonz: binary audio, JSON events, the metadata first -------------------------------------


class JambonzWire(Wire):
    carrier = Carrier.JAMBONZ
    fmt = jambonz_core.FORMAT
    max_payload = jambonz_core.JambonzStream().max_payload
    stop_event = False

    def __init__(self) -> None:
        self.peer = JambonzPeer({"From": CALLER})

    def opening(self) -> list[Outgoing]:
        return list(self.peer.opening())  # the metadata is the start

    def media(self, audio: bytes | None = None) -> Outgoing:
        return self.peer.media(self.silence if audio is None else audio)

    def broken(self) -> dict[str, Outgoing]:
        # As Vonage's: audio is raw bytes, and a second metadata is a second start (1008).
        return {"non-JSON text": "this is not JSON {",
                "JSON that is not an object": '["event", "dtmf"]',
                "event name not a string": json.dumps({"type": 5}),
                "empty audio frame": b"",
                "oversized audio frame": bytes(self.max_payload + 2),
                "odd-length audio frame": ODD_LENGTH}

    def wrong_types(self) -> dict[str, Outgoing]:
        return {}  # binary frames are its audio and text frames its events

    def unknown_event(self) -> tuple[Outgoing, str]:
        name = "playDone"  # non-streaming mode's answer to playAudio: never asked for here
        return json.dumps({"type": name, "data": {"id": "x"}}), name

    def malformed_start(self) -> Refused:
        return Refused(self.start_with(callSid=None), "bad start: missing or malformed callSid")

    def bad_formats(self) -> dict[str, Refused]:
        return {"44.1kHz": Refused(self.start_with(sampleRate=44100),
                                   "unsupported sampleRate 44100; expected 8000, 16000, 24000"),
                "stereo": Refused(self.start_with(mixType="stereo"),
                                  "unsupported mixType 'stereo'; expected mono")}

    def over_limit(self, limit: int) -> Outgoing:
        return bytes(limit + 4)


# -- Asterisk's WebSocket driver: binary audio, plain-text control --------------------------------


class AsteriskWire(Wire):
    carrier = Carrier.ASTERISK
    fmt = asterisk_core.FORMATS["ulaw"]
    max_payload = asterisk_core.AsteriskStream().max_payload
    stop_event = False

    def __init__(self) -> None:
        self.peer = AsteriskPeer({"From": CALLER})

    def opening(self) -> list[Outgoing]:
        return list(self.peer.opening())  # MEDIA_START is the start

    def media(self, audio: bytes | None = None) -> Outgoing:
        return self.peer.media(self.silence if audio is None else audio)

    def start_with(self, **changes: str | None) -> str:
        """MEDIA_START with its words changed as given (``None`` removes one)."""
        name, *words = str(self.start()).split()
        fields = dict(w.split(":", 1) for w in words)
        for key, value in changes.items():
            if value is None:
                fields.pop(key)
            else:
                fields[key] = value
        return " ".join([name, *(f"{k}:{v}" for k, v in fields.items())])

    def broken(self) -> dict[str, Outgoing]:
        # No "payload not base64" (audio is raw bytes); mu-law has no odd lengths.
        return {"blank control message": "   ",
                "JSON on a plain-text stream": '{"event": "DTMF_END", "digit": "1"}',
                "not a keypad digit": "DTMF_END digit:x",
                "mark without its id": "MEDIA_MARK_PROCESSED",
                "another channel's message": "DTMF_END digit:1 channel_id:pbx9-1.1",
                "empty audio frame": b"",
                "oversized audio frame": bytes(self.max_payload + 2)}

    def wrong_types(self) -> dict[str, Outgoing]:
        return {}  # binary frames are its audio and text frames its control

    def unknown_event(self) -> tuple[Outgoing, str]:
        name = "MEDIA_DIRECTION_CHANGED"
        return f"{name} direction:in", name

    def malformed_start(self) -> Refused:
        return Refused(self.start_with(channel=None, channel_id=None),
                       "bad start: names no channel")

    def bad_formats(self) -> dict[str, Refused]:
        return {name: Refused(self.start_with(format=name, optimal_frame_size=size),
                              f"unsupported format {name!r}; expected one of "
                              f"{', '.join(asterisk_core.FORMATS)}")
                for name, size in (("opus", "0"), ("g722", "160"))}

    def over_limit(self, limit: int) -> Outgoing:
        return bytes(limit + 4)
