"""A call's audio as the two ends heard it: a stereo WAV, caller left, agent right.

Pure and synchronous (the bridge feeds it, a worker thread writes the file). Both channels are
PCM16 at the rate the caller's audio arrives in (8 kHz for a mu-law line, 16 kHz for a
wideband one); a reply that reaches the carrier at another rate is resampled to it
(:class:`Feed`). The caller's audio sets the clock: a carrier streams it back to back, so the
*n*-th sample received is sample *n* of the call. Anything the gateway sends the caller is
placed on that clock by the wall time it was written, relative to the newest caller audio,
and plays back to back after what is already queued, as a carrier's buffer does. A clear cuts
everything queued past the moment it took effect, so a barge-in sounds in the recording
exactly as the caller heard it: the reply stops where the caller stopped hearing it.

Memory stays bounded on calls of any length: samples before the newest caller audio can no
longer change (a clear only cuts what is still queued), so they are handed out by
:meth:`CallRecording.take_settled` to be written, and only the queued tail is kept.
"""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path
from typing import Any, Final

import numpy as np

from gateway.audio import AudioFormat, Resampler, decoder

SILENCE: Final = b"\x00\x00"


class Feed:
    """A carrier's audio (in ``fmt``) as PCM16 at the recording's ``rate``."""

    def __init__(self, fmt: AudioFormat, rate: int) -> None:
        self._decode = decoder(fmt.codec)
        self._resampler = Resampler(fmt.rate, rate)

    def __call__(self, data: bytes) -> bytes:
        return self._resampler.process(self._decode(data))


class CallRecording:
    def __init__(self, rate: int = 8000) -> None:
        self.rate = rate
        self._caller = bytearray()  # PCM16 from sample `_base` on
        self._agent = bytearray()
        self._base = 0  # samples already handed out
        self._received = 0  # caller samples seen
        self._newest = 0  # the first sample of the newest caller audio
        self._clock: tuple[float, int] | None = None  # (wall time, sample) of the newest audio
        self._cursor = 0  # where the next agent audio starts playing (absolute sample)

    def _position(self, at: float) -> int:
        if self._clock is None:
            return 0
        t, sample = self._clock
        return max(sample, sample + round((at - t) * self.rate))

    def _ensure(self, buf: bytearray, end: int) -> None:
        short = end - self._base - len(buf) // 2
        if short > 0:
            buf.extend(SILENCE * short)

    def _put(self, buf: bytearray, start: int, pcm: bytes) -> None:
        at = 2 * (start - self._base)
        buf[at:at + len(pcm)] = pcm

    def caller(self, pcm: bytes, at: float) -> None:
        """Caller audio (PCM16 at ``rate``), received at wall time ``at``."""
        start = self._received
        self._received += len(pcm) // 2
        self._newest = start
        self._clock = (at, start)
        self._ensure(self._caller, start)
        self._put(self._caller, start, pcm)

    def agent(self, pcm: bytes, at: float) -> None:
        """Reply audio (PCM16 at ``rate``) written to the caller at wall time ``at``; it plays
        after what is queued."""
        start = max(self._cursor, self._position(at), self._base)
        end = start + len(pcm) // 2
        self._ensure(self._agent, end)
        self._put(self._agent, start, pcm)
        self._cursor = end

    def clear(self, at: float) -> None:
        """Everything not yet played at wall time ``at`` was dropped (a barge-in)."""
        cut = max(self._position(at), self._base)
        if cut < self._base + len(self._agent) // 2:
            del self._agent[2 * (cut - self._base):]
        self._cursor = min(self._cursor, cut)

    def take_settled(self) -> tuple[bytes, bytes]:
        """(caller, agent) PCM16 up to the newest caller audio, equal lengths; forgotten here."""
        # The newest audio's own span can still be cut by a clear sent during it.
        return self._take(max(self._base, self._newest))

    def take_all(self) -> tuple[bytes, bytes]:
        """Everything left, at the end of the call (the agent's queued tail included)."""
        end = max(self._base + len(self._caller) // 2, self._base + len(self._agent) // 2)
        return self._take(end)

    def _take(self, end: int) -> tuple[bytes, bytes]:
        n = end - self._base
        if n <= 0:
            return b"", b""
        self._ensure(self._caller, end)
        self._ensure(self._agent, end)
        caller, agent = bytes(self._caller[:2 * n]), bytes(self._agent[:2 * n])
        del self._caller[:2 * n]
        del self._agent[:2 * n]
        self._base = end
        return caller, agent


class StereoWavWriter:
    """Appends (caller, agent) PCM16 pairs to a stereo WAV; blocking file I/O."""

    def __init__(self, path: Path, rate: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._wav = wave.open(str(path), "wb")  # noqa: SIM115 - closed by close()
        self._wav.setnchannels(2)
        self._wav.setsampwidth(2)
        self._wav.setframerate(rate)

    def write(self, caller: bytes, agent: bytes) -> None:
        stereo = np.empty((len(caller) // 2, 2), dtype="<i2")
        stereo[:, 0] = np.frombuffer(caller, dtype="<i2")
        stereo[:, 1] = np.frombuffer(agent, dtype="<i2")
        self._wav.writeframesraw(stereo.tobytes())

    def close(self) -> None:
        self._wav.close()  # patches the header's sizes and closes the file


class WavRecorder:
    """One call's recording: fed on the call's task, written to disk off it, once a second."""

    FLUSH_S: Final = 1.0

    def __init__(self, path: Path, rate: int, log: Any) -> None:
        self.path = path
        self.log = log
        self.audio = CallRecording(rate)
        self._writer: StereoWavWriter | None = None
        self.failed = False

    async def run(self) -> None:
        """Write settled audio every second until cancelled; then :meth:`finish`."""
        try:
            self._writer = await asyncio.to_thread(StereoWavWriter, self.path, self.audio.rate)
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
