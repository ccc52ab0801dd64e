"""Tone power at a few chosen frequencies. Pure: numpy only.

Used where the gateway listens for tones rather than speech: a voicemail's beep, keypad digits
played in-band. This is what the Goertzel algorithm computes (one bin of a DFT, at any
frequency, not only an FFT bin's), done as one matrix product against precomputed complex
exponentials: for a handful of frequencies over a 10-20 ms block that costs a few
microseconds in numpy, where a per-sample Goertzel loop in Python costs a hundred.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt


class ToneBank:
    """The power of ``freqs`` in blocks of ``size`` samples at ``rate``."""

    def __init__(self, rate: int, size: int, freqs: Sequence[float]) -> None:
        self.rate = rate
        self.size = size
        self.freqs = tuple(freqs)
        n = np.arange(size)
        self._basis = np.exp(-2j * np.pi * np.outer(n, np.asarray(self.freqs)) / rate)

    def powers(self, block: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Each frequency's power in ``block`` (``size`` samples, as floats): a sine of
        amplitude A at that frequency reads A**2 / 4, whatever ``size`` is."""
        if len(block) != self.size:
            raise ValueError(f"expected {self.size} samples, got {len(block)}")
        spectrum = block @ self._basis
        return np.asarray((spectrum.real ** 2 + spectrum.imag ** 2) / (self.size * self.size))


def mean_square(block: npt.NDArray[np.float64]) -> float:
    """The block's mean square (a sine of amplitude A: A**2 / 2), to compare with
    :meth:`ToneBank.powers`: a pure tone has half its mean square in its own bin."""
    return float(np.mean(block * block)) if len(block) else 0.0
