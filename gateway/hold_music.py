"""What a caller on hold hears while the agent fetches a person: a soft chime, made once per
rate (pure numpy; no recording to ship or license).

Four notes of a major chord, each a sine with a quick rise and a long decay, then a rest:
gentle at -24 dBFS, and nothing like speech, so a detector on the line never takes it for a
person talking.
"""

from __future__ import annotations

import functools
from typing import Final

import numpy as np

NOTES_HZ: Final = (523.25, 659.25, 783.99, 659.25)  # C5 E5 G5 E5
NOTE_S: Final = 0.45
REST_S: Final = 1.2
LEVEL: Final = 10 ** (-24 / 20) * 32767


@functools.cache
def hold_music(rate: int) -> bytes:
    """One phrase (about 3 s) of PCM16 at ``rate``; loop it."""
    n = int(NOTE_S * rate)
    t = np.arange(n) / rate
    rise = min(n, int(0.01 * rate))
    envelope = np.exp(-t * 5.0)
    envelope[:rise] *= np.linspace(0.0, 1.0, rise)
    notes = [np.sin(2 * np.pi * hz * t) * envelope for hz in NOTES_HZ]
    phrase = np.concatenate([*notes, np.zeros(int(REST_S * rate))]) * LEVEL
    return phrase.astype("<i2").tobytes()
