"""A call's audio as the two ends heard it: a stereo WAV, caller left, agent right.

Pure and synchronous (the bridge feeds it, a worker thread writes the file). The caller's
frames set the clock: Twilio streams 20 ms frames back to back, so frame *n* covers samples
``n*160 ... n*160+159`` of the call. Anything the gateway sends the caller is placed on that
clock by the wall time it was written, relative to the newest caller frame, and plays back to
back after what is already queued, as Twilio's buffer does. A ``clear`` cuts everything queued
past the moment it was sent, so a barge-in sounds in the recording exactly as the caller heard
it: the reply stops where the ``clear`` went out.

Memory stays bounded on calls of any length: samples before the newest caller frame can no
longer change (a ``clear`` only cuts what is still queued), so they are handed out by
:meth:`CallRecording.take_settled` to be written, and only the queued tail is kept.
"""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path
from typing import Any, Final

import numpy as np

from gateway.audio import ulaw_to_pcm16

RATE: Final = 8000
FRAME: Final = 160
ULAW_SILENCE: Final = 0xFF


class CallRecording:
    def __init__(self) -> None:
        self._caller = bytearray()  # mu-law from sample `_base` on
        self._agent = bytearray()
        self._base = 0  # samples already handed out
        self._frames = 0  # caller frames seen
        self._clock: tuple[float, int] | None = None  # (wall time, sample) of the newest frame
        self._cursor = 0  # where the next agent audio starts playing (absolute sample)

    def _position(self, at: float) -> int:
        if self._clock is None:
            return 0
        t, sample = self._clock
        return max(sample, sample + round((at - t) * RATE))

    def _ensure(self, buf: bytearray, end: int) -> None:
        short = end - self._base - len(buf)
        if short > 0:
            buf.extend(bytes([ULAW_SILENCE]) * short)

    def caller(self, ulaw: bytes, at: float) -> None:
        """One inbound frame, received at wall time ``at``."""
        start = self._frames * FRAME
        self._frames += 1
        self._clock = (at, start)
        self._ensure(self._caller, start)
        self._caller[start - self._base:start - self._base + len(ulaw)] = ulaw

    def agent(self, ulaw: bytes, at: float) -> None:
        """Reply audio written to the caller at wall time ``at``; plays after what is queued."""
        start = max(self._cursor, self._position(at), self._base)
        end = start + len(ulaw)
        self._ensure(self._agent, end)
        self._agent[start - self._base:end - self._base] = ulaw
        self._cursor = end

    def clear(self, at: float) -> None:
        """Twilio dropped everything not yet played when this ``clear`` arrived."""
        cut = max(self._position(at), self._base)
        if cut < self._base + len(self._agent):
            del self._agent[cut - self._base:]
        self._cursor = min(self._cursor, cut)

    def take_settled(self) -> tuple[bytes, bytes]:
        """(caller, agent) mu-law up to the newest caller frame, equal lengths; forgotten here."""
        # The newest frame's own span can still be cut by a clear sent during it.
        return self._take(max(self._base, (self._frames - 1) * FRAME))

    def take_all(self) -> tuple[bytes, bytes]:
        """Everything left, at the end of the call (the agent's queued tail included)."""
        end = max(self._base + len(self._caller), self._base + len(self._agent))
        return self._take(end)

    def _take(self, end: int) -> tuple[bytes, bytes]:
        n = end - self._base
        if n <= 0:
            return b"", b""
        self._ensure(self._caller, end)
        self._ensure(self._agent, end)
        caller, agent = bytes(self._caller[:n]), bytes(self._agent[:n])
        del self._caller[:n]
        del self._agent[:n]
        self._base = end
        return caller, agent


class StereoWavWriter:
    """Appends (caller, agent) mu-law pairs to a PCM16 stereo WAV; blocking file I/O."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._wav = wave.open(str(path), "wb")  # noqa: SIM115 - closed by close()
        self._wav.setnchannels(2)
        self._wav.setsampwidth(2)
        self._wav.setframerate(RATE)

    def write(self, caller: bytes, agent: bytes) -> None:
        stereo = np.empty((len(caller), 2), dtype="<i2")
        stereo[:, 0] = np.frombuffer(ulaw_to_pcm16(caller), dtype="<i2")
        stereo[:, 1] = np.frombuffer(ulaw_to_pcm16(agent), dtype="<i2")
        self._wav.writeframesraw(stereo.tobytes())

    def close(self) -> None:
        self._wav.close()  # patches the header's sizes and closes the file


class WavRecorder:
    """One call's recording: fed on the call's task, written to disk off it, once a second."""

    FLUSH_S: Final = 1.0

    def __init__(self, path: Path, log: Any) -> None:
        self.path = path
        self.log = log
        self.audio = CallRecording()
        self._writer: StereoWavWriter | None = None
        self.failed = False

    async def run(self) -> None:
        """Write settled audio every second until cancelled; then :meth:`finish`."""
        try:
            self._writer = await asyncio.to_thread(StereoWavWriter, self.path)
            while True:
                await asyncio.sleep(self.FLUSH_S)  # a write period, not synchronisation
                await self._write(*self.audio.take_settled())
        except OSError as exc:  # a full disk must not end the call; the log says why
            self.failed = True
            self.log.error("recording_failed", path=str(self.path), error=str(exc))

    async def _write(self, caller: bytes, agent: bytes) -> None:
        if caller and self._writer is not None:
            await asyncio.to_thread(self._writer.write, caller, agent)

    async def finish(self) -> None:
        """Write the rest and close the file (after the call has ended)."""
        if self._writer is None or self.failed:
            return
        try:
            await self._write(*self.audio.take_all())
            await asyncio.to_thread(self._writer.close)
            self.log.info("recording_saved", path=str(self.path))
        except OSError as exc:
            self.log.error("recording_failed", path=str(self.path), error=str(exc))
