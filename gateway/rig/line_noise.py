"""Background noise for the simulated phone line (test/demo tool): white, pink, babble, car.

Each kind is made once per call as a loop of :data:`LOOP_S` seconds, from the spec's seed,
scaled to exactly unit RMS over the loop, and played round and round from a seeded starting
point. Shaping is done in the frequency domain over the whole loop, so the loop joins
without a click and nothing is filtered per frame.
"""

from __future__ import annotations

import functools
from typing import Final

import numpy as np
import numpy.typing as npt

from gateway.audio import Resampler
from gateway.rig.line_spec import NoiseKind
from gateway.rig.simulator.speech import fixtures
from gateway.wav import read_wav

Floats = npt.NDArray[np.float64]

LOOP_S: Final = 10
BABBLE_TALKERS: Final = 6
CAR_CORNER_HZ: Final = 120.0  # car noise falls ~9 dB an octave above this
_LOWEST_HZ: Final = 20.0  # nothing below: no line carries DC or sub-audio


def noise_loop(kind: NoiseKind, rate: int, seed: int) -> Floats:
    """``LOOP_S`` seconds of ``kind`` noise at ``rate``, RMS exactly 1.0."""
    rng = np.random.default_rng([seed, list(NoiseKind).index(kind)])
    n = LOOP_S * rate
    if kind is NoiseKind.BABBLE:
        x = _babble(rate, n, rng)
    else:
        spectrum = np.fft.rfft(rng.standard_normal(n))
        f = np.fft.rfftfreq(n, 1 / rate)
        shape = np.zeros_like(f)
        audible = f >= _LOWEST_HZ
        if kind is NoiseKind.WHITE:
            shape[audible] = 1.0
        elif kind is NoiseKind.PINK:  # power falls as 1/f
            shape[audible] = 1 / np.sqrt(f[audible])
        else:  # CAR: flat to the corner, then ~-9 dB an octave
            shape[audible] = (1 + (f[audible] / CAR_CORNER_HZ) ** 2) ** -0.75
        x = np.fft.irfft(spectrum * shape, n)
    rms = float(np.sqrt(np.mean(x * x)))
    return x / rms


def _babble(rate: int, n: int, rng: np.random.Generator) -> Floats:
    """Several talkers at once, each the bundled recordings in a random order from a random
    point, every recording at the same active level first."""
    voices = _voices(rate)
    out = np.zeros(n)
    for _ in range(BABBLE_TALKERS):
        order = rng.permutation(len(voices))
        talker = np.concatenate([voices[i] for i in order])
        talker = np.roll(talker, -int(rng.integers(len(talker))))
        reps = -(-n // len(talker))
        out += np.tile(talker, reps)[:n]
    return out


def _voices(rate: int) -> tuple[Floats, ...]:
    return tuple(x / max(1.0, active_rms(x, rate)) for x in recordings(rate))


@functools.cache
def recordings(rate: int, role: str | None = None) -> tuple[Floats, ...]:
    """The bundled recordings (of ``role``, else all) at ``rate``, as float samples."""
    out = []
    for f in fixtures(role):
        pcm, src = read_wav(f.path)
        if src != rate:
            pcm = Resampler(src, rate).process(pcm)
        out.append(np.frombuffer(pcm, "<i2").astype(np.float64))
    return tuple(out)


def active_rms(x: Floats, rate: int, floor_db: float = 40.0) -> float:
    """RMS over the 20 ms frames within ``floor_db`` of the loudest one: speech's level
    without the pauses around it."""
    step = rate // 50
    frames = x[:len(x) // step * step].reshape(-1, step)
    if not len(frames):
        return 0.0
    energy = np.mean(frames * frames, axis=1)
    keep = energy >= energy.max() * 10 ** (-floor_db / 10)
    return float(np.sqrt(np.mean(energy[keep])))


class NoiseSource:
    """Streams one noise loop at ``dbov`` from a seeded point in it."""

    def __init__(self, kind: NoiseKind, rate: int, dbov: float, seed: int) -> None:
        self._loop = noise_loop(kind, rate, seed) * (32768.0 * 10 ** (dbov / 20))
        self._pos = int(np.random.default_rng([seed, 99]).integers(len(self._loop)))

    def take(self, n: int) -> Floats:
        loop, pos = self._loop, self._pos
        if pos + n <= len(loop):
            self._pos = (pos + n) % len(loop)
            return loop[pos:pos + n]
        idx = (pos + np.arange(n)) % len(loop)
        self._pos = (pos + n) % len(loop)
        return loop[idx]
