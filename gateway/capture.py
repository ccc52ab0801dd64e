"""Captures: a call's inbound Twilio stream saved as JSON lines, to replay it later.

Each line is ``{"t": seconds since the stream opened, "frame": the text frame as received}``.
``voicegw call CAPTURE.jsonl`` (and the load tester) replay the caller's side of it: its
``start`` parameters and its audio, frame for frame, while the replaying phone answers marks
and ``clear`` itself, as Twilio would for the new call.

Frames are kept in memory only until the next write, once a second, off the event loop; the
backlog is bounded, and what a full disk or a stuck write drops is counted and logged.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from gateway import twilio
from gateway.errors import ConfigError, TwilioProtocolError

MAX_BACKLOG: Final = 5000  # lines (100 s of frames) waiting for a write


class CaptureWriter:
    FLUSH_S: Final = 1.0

    def __init__(self, folder: Path, t0: float, log: Any) -> None:
        self.folder = folder
        self.t0 = t0
        self.log = log
        self.name: str | None = None  # the call sid, once `start` has said it
        self.path: Path | None = None
        self._lines: list[str] = []
        self.dropped = 0

    def add(self, frame: str, at: float) -> None:
        if len(self._lines) >= MAX_BACKLOG:
            self.dropped += 1
            return
        self._lines.append(json.dumps({"t": round(at - self.t0, 4), "frame": frame}) + "\n")

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.FLUSH_S)  # a write period, not synchronisation
            await self._flush()

    async def _flush(self) -> None:
        if not self._lines:
            return
        lines, self._lines = self._lines, []
        if self.path is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.path = self.folder / f"{self.name or 'unstarted-' + uuid.uuid4().hex}.jsonl"
        try:
            await asyncio.to_thread(_append, self.path, lines)
        except OSError as exc:
            self.dropped += len(lines)
            self.log.error("capture_failed", path=str(self.path), error=str(exc))

    async def finish(self) -> None:
        await self._flush()
        if self.path is not None:
            self.log.info("capture_saved", path=str(self.path), dropped=self.dropped)


def _append(path: Path, lines: list[str]) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.writelines(lines)


@dataclass
class Capture:
    """The caller's side of a captured stream."""

    parameters: dict[str, str] = field(default_factory=dict)
    ulaw: bytearray = field(default_factory=bytearray)  # every media payload, in order
    frames: int = 0
    dtmf: list[str] = field(default_factory=list)
    duration_s: float = 0.0


def load_capture(path: str | Path) -> Capture:
    """Read a capture, checking every frame with the same Twilio core the gateway uses."""
    stream = twilio.TwilioStream()
    capture = Capture()
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read capture {path}: {exc}") from exc
    for number, line in enumerate(lines, 1):
        try:
            entry = json.loads(line)
            event = stream.receive(entry["frame"])
            capture.duration_s = float(entry["t"])
        except (ValueError, KeyError, TypeError, TwilioProtocolError) as exc:
            raise ConfigError(f"{path}:{number}: not a capture line: {exc}") from exc
        match event:
            case twilio.Start():
                capture.parameters = dict(event.custom_parameters)
            case twilio.Media():
                capture.ulaw += event.payload
                capture.frames += 1
            case twilio.Dtmf():
                capture.dtmf.append(event.digit)
            case _:
                pass
    if not capture.frames:
        raise ConfigError(f"{path}: no media frames in this capture")
    return capture
