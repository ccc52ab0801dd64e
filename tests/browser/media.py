"""The fake microphone for headless Chromium: the bundled caller recordings laid out on one
timeline, written as a WAV that Chromium plays once (``%noloop``) from the moment the page
opens the microphone."""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np

from gateway.audio import Resampler
from gateway.rig.simulator.speech import caller_pcm16

RATE: Final = 48000  # the rate a capture device commonly runs at


@dataclass(frozen=True, slots=True)
class Said:
    name: str  # a caller fixture
    gap_ms: int  # silence before it


# Speaks, waits for the reply to be well under way, then talks over it (barge-in), then
# listens to the next reply. With the simulator's 500 ms end-of-speech silence and 300 ms
# response delay, the first reply starts about 0.8 s after the first utterance ends, so the
# barge-in lands about 1.7 s into the 8.7 s reply.
BOOKING: Final = (Said("caller_book_table", 700), Said("caller_barge_in", 2500))
TAIL_MS: Final = 7000


def mic_wav(path: Path, script: tuple[Said, ...] = BOOKING, tail_ms: int = TAIL_MS) -> Path:
    """Write the fake microphone's WAV (mono PCM16 at 48 kHz); returns ``path``."""
    parts: list[np.ndarray] = []
    for said in script:
        parts.append(np.zeros(RATE * said.gap_ms // 1000, dtype="<i2"))
        pcm = Resampler(8000, RATE).process(caller_pcm16(said.name) + bytes(2 * 400))
        parts.append(np.frombuffer(pcm, dtype="<i2"))
    parts.append(np.zeros(RATE * tail_ms // 1000, dtype="<i2"))
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(RATE)
        f.writeframes(np.concatenate(parts).tobytes())
    return path
