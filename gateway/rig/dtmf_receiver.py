"""A DTMF receiver in the manner of ITU-T Q.24: the keys a phone hears, from its audio.

Test tooling (the rig's IVR listens with it), built on :class:`gateway.goertzel.ToneBank`.
Every ``hop_ms`` it looks at the last ``block_ms`` of audio and asks whether that is a key:
one tone of each group clearly stronger than the rest of its group, each loud enough, the
high tone neither much weaker nor much stronger than the low one (twist), and the two tones
holding nearly all the block's energy (speech and noise spread theirs). A key counts once it
has held for ``min_tone_ms``; the next key (the same one again included) only after at least
``min_gap_ms`` without one, so one long press is one key and a dropout inside a tone is not
two.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from gateway.dtmf import FREQUENCIES, FULL_SCALE_DBM0, HIGH, LOW
from gateway.goertzel import ToneBank, mean_square

_BY_PAIR: Final = {pair: key for key, pair in FREQUENCIES.items()}


@dataclass(frozen=True, slots=True)
class ReceiverSpec:
    """What a receiver accepts. Twists are in dB of the high tone against the low one."""

    block_ms: int = 20
    hop_ms: int = 5
    min_tone_ms: int = 40  # Q.24: a 40 ms key must be taken
    min_gap_ms: int = 20  # silence (no key) that separates two keys
    min_level_dbm0: float = -30.0  # each tone
    max_twist_db: float = 8.0  # high tone weaker than the low one by at most this
    max_reverse_twist_db: float = 6.0  # high tone stronger by at most this
    min_purity: float = 0.75  # share of the block's energy in the two tones
    min_dominance_db: float = 8.0  # each tone over the next strongest of its group


@dataclass(frozen=True, slots=True)
class Key:
    """A key heard: which, and when the receiver took it (ms into the audio pushed so far:
    the end of the block that completed its ``min_tone_ms``)."""

    key: str
    at_ms: float


class DtmfReceiver:
    """Feed it PCM16 at ``rate`` in any pieces; :meth:`push` returns the keys completed."""

    def __init__(self, rate: int, spec: ReceiverSpec = ReceiverSpec()) -> None:
        self.rate = rate
        self.spec = spec
        self._size = rate * spec.block_ms // 1000
        self._hop = rate * spec.hop_ms // 1000
        self._bank = ToneBank(rate, self._size, LOW + HIGH)
        # The peak of a sine at min_level_dbm0, squared over 4: what its bin reads.
        floor = 32767 * 10 ** ((spec.min_level_dbm0 - FULL_SCALE_DBM0) / 20)
        self._min_power = floor * floor / 4
        self._buf = np.zeros(0)
        self._done = 0  # samples consumed (hops) so far
        self._candidate: str | None = None
        self._run = 0  # hops it has held
        self._quiet = 0  # hops without a key
        self._armed = True  # a gap has been heard since the last key
        self.keys: list[Key] = []

    @property
    def holding(self) -> bool:
        """A key has been taken and is still down (no ``min_gap_ms`` since)."""
        return not self._armed

    def push(self, pcm: bytes) -> list[str]:
        x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
        self._buf = np.concatenate([self._buf, x])
        found: list[str] = []
        while len(self._buf) >= self._size:
            key = self.classify(self._buf[:self._size])
            self._buf = self._buf[self._hop:]
            self._done += self._hop
            heard = self._step(key)
            if heard is not None:
                self.keys.append(Key(heard, 1000 * (self._done - self._hop + self._size)
                                     / self.rate))
            if heard is not None:
                found.append(heard)
        return found

    def classify(self, block: np.ndarray) -> str | None:
        """The key ``block`` (``block_ms`` of samples) holds, if it passes every check."""
        spec = self.spec
        energy = mean_square(block)
        if energy <= 0:
            return None
        powers = self._bank.powers(block)
        low, high = powers[:4], powers[4:]
        li, hi = int(np.argmax(low)), int(np.argmax(high))
        pl, ph = float(low[li]), float(high[hi])
        if min(pl, ph) < self._min_power:
            return None
        twist = _db(ph / pl)
        if twist < -spec.max_twist_db or twist > spec.max_reverse_twist_db:
            return None
        if 2 * (pl + ph) / energy < spec.min_purity:
            return None
        for group, i in ((low, li), (high, hi)):
            others = np.delete(group, i)
            if _db(float(group[i]) / max(float(others.max()), 1e-12)) < spec.min_dominance_db:
                return None
        return _BY_PAIR[(LOW[li], HIGH[hi])]

    def _step(self, key: str | None) -> str | None:
        spec = self.spec
        if key is None:
            self._candidate, self._run = None, 0
            self._quiet += 1
            if self._quiet * spec.hop_ms >= spec.min_gap_ms:
                self._armed = True
            return None
        self._quiet = 0
        if key != self._candidate:
            self._candidate, self._run = key, 0
        self._run += 1
        # A run of n blocks spans (n - 1) hops plus one block of audio.
        held = (self._run - 1) * spec.hop_ms + spec.block_ms
        if self._armed and held >= spec.min_tone_ms:
            self._armed = False
            return key
        return None


def _db(ratio: float) -> float:
    return float(10 * np.log10(max(ratio, 1e-12)))
