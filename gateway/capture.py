"""Captures: a call's inbound carrier stream saved as JSON lines, to replay it later.

The first line names the carrier (``{"capture": 2, "carrier": "twilio"}``); each other line is
``{"t": seconds since the stream opened, "frame": the text frame as received}``, or ``"bytes"``
with the base64 of a binary frame. ``voicegw call CAPTURE.jsonl`` (and the load tester) replay
the caller's side of it: its start parameters and its audio, frame for frame, while the
replaying phone answers marks and clears itself, as the carrier would for the new call.

Frames are kept in memory only until the next write, once a second, off the event loop; the
backlog is bounded, and what a full disk or a stuck write drops is counted and logged.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from pathlib import Path
from typing import Any, Final

MAX_BACKLOG: Final = 5000  # lines (100 s of frames) waiting for a write
FORMAT_VERSION: Final = 2


class CaptureWriter:
    FLUSH_S: Final = 1.0

    def __init__(self, folder: Path, carrier: str, t0: float, log: Any) -> None:
        self.folder = folder
        self.carrier = carrier
        self.t0 = t0
        self.log = log
        self.name: str | None = None  # the call sid, once `start` has said it
        self.path: Path | None = None
        self._lines: list[str] = []
        self.dropped = 0

    def add(self, frame: str | bytes, at: float) -> None:
        if len(self._lines) >= MAX_BACKLOG:
            self.dropped += 1
            return
        entry: dict[str, Any] = {"t": round(at - self.t0, 4)}
        if isinstance(frame, str):
            entry["frame"] = frame
        else:
            entry["bytes"] = base64.b64encode(frame).decode("ascii")
        self._lines.append(json.dumps(entry) + "\n")

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
            header = {"capture": FORMAT_VERSION, "carrier": self.carrier}
            lines.insert(0, json.dumps(header) + "\n")
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
