"""Energy-based voice activity detection for the *simulated* Live server (test/demo tool).

Works on audio time (sample counts), never on wall-clock time, so a client that streams
faster than real time gets the same turn boundaries as one streaming at real time.
Speech starts once frames louder than ``threshold`` (RMS, PCM16 units) have lasted
``onset_ms``; it ends after ``silence_ms`` of quieter audio.

Energy is all it hears: the echo of the agent's own reply on the caller's line is speech to
it, as it is to a real server-side detector. Steady background noise is too, unless it is
given ``noise_margin_db``: then it tracks the noise floor (it falls at once to any quieter
frame and rises 0.5 dB a second) and a frame counts as loud only this far above it as well.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.audio import rms

FRAME_MS = 20
_FLOOR_RISE = 10 ** (0.5 / 20 / 50)  # per frame: 0.5 dB a second


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    audio_s: float  # position in the received audio where the speech began


@dataclass(frozen=True, slots=True)
class SpeechEnded:
    duration_s: float  # from the start of speech to the end of its last loud frame


VadEvent = SpeechStarted | SpeechEnded


class EnergyVad:
    def __init__(self, threshold: float = 400.0, onset_ms: int = 60,
                 silence_ms: int = 500, noise_margin_db: float | None = None) -> None:
        self.threshold = threshold
        self._margin = None if noise_margin_db is None else 10 ** (noise_margin_db / 20)
        self._floor = float("inf")  # the noise floor's RMS, with a margin
        self.onset_s = onset_ms / 1000
        self.silence_s = silence_ms / 1000
        self.in_speech = False
        self._pos = 0.0  # seconds of audio analysed so far
        self._rate = 0
        self._carry = b""  # bytes of an incomplete frame
        self._loud_run = 0.0  # seconds of consecutive loud frames
        self._quiet_run = 0.0  # seconds of consecutive quiet frames
        self._start = 0.0  # where the current (or candidate) speech began
        self._last_loud_end = 0.0

    @property
    def audio_s(self) -> float:
        return self._pos

    def feed(self, pcm: bytes, rate: int) -> list[VadEvent]:
        """Analyse PCM16 LE mono; returns the speech boundaries found in it."""
        if rate != self._rate:
            self._rate, self._carry = rate, b""
        data = self._carry + pcm
        frame_bytes = 2 * max(1, rate * FRAME_MS // 1000)
        usable = len(data) - len(data) % frame_bytes
        self._carry = data[usable:]
        if not usable:
            return []
        frame_s = frame_bytes / 2 / rate
        out: list[VadEvent] = []
        # audioop's C loop, one call per 20 ms: numpy's per-call overhead made this the
        # simulator's largest cost at hundreds of sessions.
        threshold = self.threshold
        for at in range(0, usable, frame_bytes):
            level = rms(data[at:at + frame_bytes])
            loud = level > threshold
            if self._margin is not None:
                loud = loud and level > self._floor * self._margin
                self._floor = min(float(level), self._floor * _FLOOR_RISE + 1.0)
            start = self._pos
            self._pos += frame_s
            if loud:
                if self._loud_run == 0.0 and not self.in_speech:
                    self._start = start
                self._loud_run += frame_s
                self._quiet_run = 0.0
                self._last_loud_end = self._pos
                if not self.in_speech and self._loud_run >= self.onset_s - 1e-9:
                    self.in_speech = True
                    out.append(SpeechStarted(self._start))
            else:
                self._loud_run = 0.0
                self._quiet_run += frame_s
                if self.in_speech and self._quiet_run >= self.silence_s - 1e-9:
                    out.extend(self.flush())
        return out

    def flush(self) -> list[VadEvent]:
        """End the current speech now (``audioStreamEnd``, ``activityEnd``)."""
        if not self.in_speech:
            return []
        self.in_speech = False
        self._loud_run = 0.0
        return [SpeechEnded(max(0.0, self._last_loud_end - self._start))]
