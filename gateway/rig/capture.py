"""Reading a capture (``VOICEGW_CAPTURE_DIR``) back, to replay its caller with ``voicegw call``
or the load tester: every frame is checked with the same carrier core the gateway used."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path

from gateway.audio import AudioFormat
from gateway.carriers import core
from gateway.carriers.core import Carrier, CarrierProtocolError
from gateway.errors import ConfigError
from gateway.rig.peers.registry import stream_core


@dataclass
class Capture:
    """The caller's side of a captured stream."""

    carrier: Carrier = Carrier.TWILIO
    parameters: dict[str, str] = field(default_factory=dict)
    audio: bytearray = field(default_factory=bytearray)  # every media payload, in order
    fmt: AudioFormat | None = None  # the caller's audio format, from the start
    frames: int = 0
    dtmf: list[str] = field(default_factory=list)
    duration_s: float = 0.0


def load_capture(path: str | Path) -> Capture:
    """Read a capture (a first line naming the carrier; older captures are Twilio's)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read capture {path}: {exc}") from exc
    capture = Capture()
    first = 1
    if lines:
        try:
            head = json.loads(lines[0])
            if isinstance(head, dict) and "capture" in head:
                capture.carrier = Carrier(head["carrier"])
                lines, first = lines[1:], 2
        except (ValueError, KeyError) as exc:
            raise ConfigError(f"{path}:1: not a capture header: {exc}") from exc
    stream = stream_core(capture.carrier)
    for number, line in enumerate(lines, first):
        try:
            entry = json.loads(line)
            frame: str | bytes = entry["frame"] if "frame" in entry \
                else base64.b64decode(entry["bytes"])
            events = stream.receive(frame)
            capture.duration_s = float(entry["t"])
        except core.UnknownEvent:
            continue
        except (ValueError, KeyError, TypeError, CarrierProtocolError) as exc:
            raise ConfigError(f"{path}:{number}: not a capture line: {exc}") from exc
        for event in events:
            match event:
                case core.Started():
                    capture.parameters = dict(event.parameters)
                    capture.parameters.pop(core.TOKEN_PARAMETER, None)  # spent, long ago
                    capture.fmt = event.inbound
                case core.Audio():
                    capture.audio += event.payload
                    capture.frames += 1
                case core.Dtmf():
                    capture.dtmf.append(event.digit)
                case _:
                    pass
    if not capture.frames or capture.fmt is None:
        raise ConfigError(f"{path}: no media frames in this capture")
    return capture
