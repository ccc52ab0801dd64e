"""Headless Chromium for the console's browser tests, benchmark and screenshots (a test tool).

Debian's ``chromium`` driven by Playwright (never a browser of Playwright's own download), with
a fake microphone: the bundled caller recordings laid out on one timeline in a WAV that
Chromium plays once (``%noloop``) from the moment the page opens the microphone.
"""

from __future__ import annotations

import os
import shutil
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np

from gateway.audio import Resampler
from gateway.rig.simulator.speech import caller_pcm16

CHROMIUM: Final = "/usr/bin/chromium"
RATE: Final = 48000  # the rate a capture device commonly runs at


def chromium_path() -> str | None:
    """Debian's Chromium (``VOICEGW_CHROMIUM`` overrides), or None if it is not installed."""
    found = os.environ.get("VOICEGW_CHROMIUM") or CHROMIUM
    return found if Path(found).is_file() else shutil.which("chromium")


def chromium_args(mic: Path | None) -> list[str]:
    """Headless, no network of its own, media permission granted, the fake devices."""
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
    if mic is not None:
        args.append(f"--use-file-for-fake-audio-capture={mic}%noloop")
    return args


@dataclass(frozen=True, slots=True)
class Said:
    name: str  # a caller fixture
    gap_ms: int  # silence before it


# Listens to the agent's greeting (4.8 s, starting about 0.5 s after the call does), speaks,
# waits for the reply to be well under way, then talks over it (barge-in), then listens to the
# next reply. With the simulator's 500 ms end-of-speech silence and 300 ms response delay,
# the reply starts about 0.8 s after the caller stops, so the barge-in lands about 1.7 s
# into the 8.7 s reply.
BOOKING: Final = (Said("caller_book_table", 6300), Said("caller_barge_in", 2500))
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
