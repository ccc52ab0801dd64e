"""Until the echo canceller has the echo path, caller frames that the agent's own voice can
explain are replaced by the line's own background noise. Pure (numpy), no I/O.

Why: the first reply of a call echoes before any canceller knows where the echo is (it must
hear some of it first), and half a second of the agent's voice at 6 dB return loss is a barge-in
to any activity detector. Silence in its place is no better: a detector that tracks the noise
floor (as the real service's and the simulator's do) hears the noise coming back after it as
speech, which is why a plain gate failed on the benchmark's lines. So a gated frame is
replaced by comfort noise: a frame of the line's own background, kept from the moments
nothing was playing, or, before there was one, noise at the quietest level heard.

Which frames: those no louder than the loudest reference frame of the echo's delay window,
less the issue's worst return loss (6 dB), plus a margin. A caller talking over the agent
louder than that comes through; softer double-talk in the first second of a call's first
reply is the price. The gate is open whenever nothing has played within the window, and for
good once the canceller is settled (:class:`gateway.caller_processing.LineCleaner` decides).
"""

from __future__ import annotations

import random
from collections import deque
from typing import Final

import numpy as np

from gateway.audio import rms

WORST_RETURN_LOSS_DB: Final = 6.0  # the strongest echo lines are expected to have
MARGIN_DB: Final = 3.0  # a hybrid's response may lift some frames above the average
NOISE_FRAMES: Final = 25  # half a second of the line's background, at 20 ms frames
_FLOOR_RISE: Final = 10 ** (0.5 / 20 / 50)  # per frame: 0.5 dB a second
_EXPLAINED: Final = 10 ** ((MARGIN_DB - WORST_RETURN_LOSS_DB) / 20)
_MARGIN: Final = 10 ** (MARGIN_DB / 20)




class EchoGate:
    """Tracks the line's background noise; replaces frames the reference explains."""

    def __init__(self, frame: int, window_frames: int, seed: int = 0) -> None:
        self.frame = frame
        self._refs: deque[int] = deque(maxlen=window_frames)  # reference RMS per frame
        self._noise: deque[bytes] = deque(maxlen=NOISE_FRAMES)
        self._floor = float("inf")  # RMS of the line's quietest stretch, rising slowly
        self._random = random.Random(seed)
        self.gated = 0  # frames replaced
        self.limit = _EXPLAINED  # the loudest echo, over the loudest reference (the worst line)

    def reference(self, far_rms: int) -> None:
        """The RMS of the reference frame that played with the caller frame about to be
        passed (0: none played)."""
        self._refs.append(far_rms)

    @property
    def floor(self) -> float:
        """The RMS of the line's background (0 before any was heard)."""
        return 0.0 if self._floor == float("inf") else self._floor

    @property
    def playing(self) -> bool:
        return any(self._refs)

    def listen(self, near: bytes) -> None:
        """A caller frame with nothing playing in the window: learn the background from it."""
        level = rms(near)
        self._floor = min(level, self._floor * _FLOOR_RISE + 1.0)
        if level <= 2 * self._floor:
            self._noise.append(near)

    def learnt(self, couplings: list[float]) -> None:
        """What the line's echo was found to be, as caller level over the loudest reference
        of the window on frames of echo alone (their 90th percentile): a frame up to 3 dB
        over that is echo from now on, rather than the worst line's (so a caller on a line
        with little echo is not held back by the gate)."""
        if couplings:
            ranked = sorted(couplings)
            self.limit = min(_EXPLAINED, _MARGIN * ranked[int(0.9 * (len(ranked) - 1))])

    def explains(self, level: int) -> bool:
        """A frame this loud could be the reply's echo (and is louder than the background)."""
        return bool(self._refs) and self._floor < level <= max(self._refs) * self.limit

    @property
    def loudest(self) -> int:
        """The loudest reference frame of the window (0: none)."""
        return max(self._refs, default=0)

    def apply(self, near: bytes) -> bytes:
        """The frame, or comfort noise in its place if the reference explains it as echo."""
        level = rms(near)
        self._floor = min(level, self._floor * _FLOOR_RISE + 1.0)
        if not self.explains(level):
            return near
        self.gated += 1
        return self._comfort(len(near))

    def _comfort(self, size: int) -> bytes:
        if self._noise:
            pcm = np.frombuffer(self._random.choice(self._noise), np.int16)
            if self._random.random() < 0.5:  # a frame repeated often would be a tone
                pcm = -np.maximum(pcm, -32767)
            return pcm.astype(np.int16).tobytes()[:size]
        noise = np.random.default_rng(self._random.getrandbits(32)).normal(0, self.floor,
                                                                           size // 2)
        return np.clip(noise, -32768, 32767).astype(np.int16).tobytes()
