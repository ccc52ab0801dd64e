"""Keypad tones played in-band: ITU-T Q.23 DTMF, as PCM16 at any rate. Pure: numpy only.

Each key is the sum of one tone of the low group (697, 770, 852, 941 Hz: the keypad's row)
and one of the high group (1209, 1336, 1477, 1633 Hz: its column). The defaults are what
every receiver accepts: 100 ms of tone and 100 ms of silence after it (Q.24 receivers must
take 40 ms), each tone at -9 dBm0 (low) and -7 dBm0 (high: a high tone 2 dB stronger than
the low one, as telephone sets send it, since a line loses more at high frequencies), and a
5 ms raised-cosine fade at each end so a key does not click. ``,`` (or ``w``) in a key string
waits :attr:`ToneSpec.pause_ms` (half a second), as in a dial string.

Used by the ``send_dtmf`` tool (:mod:`gateway.agent`): the agent presses keys where a carrier
offers no out-of-band way to, which is everywhere the audio flows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import numpy as np

from gateway.carriers.core import KEYPAD
from gateway.errors import GatewayError

LOW: Final = (697.0, 770.0, 852.0, 941.0)
HIGH: Final = (1209.0, 1336.0, 1477.0, 1633.0)
_ROWS: Final = ("123A", "456B", "789C", "*0#D")
#: Each key's (low, high) frequencies in Hz, per Q.23.
FREQUENCIES: Final[Mapping[str, tuple[float, float]]] = {
    key: (LOW[r], HIGH[c]) for r, row in enumerate(_ROWS) for c, key in enumerate(row)}
PAUSES: Final = frozenset(",wW")  # wait ``pause_ms``, as in a dial string
MAX_KEYS: Final = 32  # keys and pauses in one press: a card number with room to spare
# Keys wait at most this long behind what the agent is saying, on top of their own length.
KEYS_WAIT_S: Final = 20.0
#: A full-scale sine in G.711 is +3.17 dBm0 (mu-law; A-law +3.14): the dBm0 reference.
FULL_SCALE_DBM0: Final = 3.17
# Runs of this many digits or more (an account, card or PIN) are masked in logs.
_LONG_RUN: Final = re.compile(r"[0-9]{4,}")


class DtmfError(GatewayError, ValueError):
    """A key string that cannot be played; the message says which character and why."""


@dataclass(frozen=True, slots=True)
class ToneSpec:
    """How keys are played. Levels are per tone, in dBm0."""

    tone_ms: int = 100
    gap_ms: int = 100
    pause_ms: int = 500
    low_dbm0: float = -9.0
    high_dbm0: float = -7.0
    fade_ms: float = 5.0

    def __post_init__(self) -> None:
        if not 40 <= self.tone_ms <= 2000:
            raise DtmfError(f"tone_ms must be 40 to 2000 (a receiver needs 40), "
                            f"got {self.tone_ms}")
        if not 40 <= self.gap_ms <= 2000:
            raise DtmfError(f"gap_ms must be 40 to 2000, got {self.gap_ms}")
        if not 0 <= self.pause_ms <= 5000:
            raise DtmfError(f"pause_ms must be 0 to 5000, got {self.pause_ms}")
        if not 0 <= self.fade_ms <= self.tone_ms / 4:
            raise DtmfError(f"fade_ms must be 0 to a quarter of the tone, got {self.fade_ms}")
        for name in ("low_dbm0", "high_dbm0"):
            if not -40.0 <= getattr(self, name) <= -3.0:
                raise DtmfError(f"{name} must be -40 to -3 dBm0 (two tones must not clip)")


DEFAULT_SPEC: Final = ToneSpec()


def parse(digits: str, *, max_keys: int = MAX_KEYS) -> str:
    """``digits`` as keys to play (spaces and dashes dropped, ``a``-``d`` upper-cased);
    raises :class:`DtmfError` on anything else, naming it."""
    if not isinstance(digits, str):
        raise DtmfError(f"keys must be a string, got {type(digits).__name__}")
    keys = []
    for i, ch in enumerate(digits):
        if ch in " -":
            continue
        key = ch.upper() if ch in "abcd" else ch
        if key not in KEYPAD and key not in PAUSES:
            raise DtmfError(f"{ch!r} (position {i + 1}) is not a keypad key: use 0-9, *, #, "
                            f"A-D, and ',' for a half-second pause")
        keys.append(key)
    if not any(k in KEYPAD for k in keys):
        raise DtmfError("no keys to press: give at least one of 0-9, *, #, A-D")
    if len(keys) > max_keys:
        raise DtmfError(f"{len(keys)} keys is too many at once; press at most {max_keys}")
    return "".join(keys)


def duration_ms(keys: str, spec: ToneSpec = DEFAULT_SPEC) -> int:
    """How long :func:`tones` of ``keys`` (already :func:`parse`-d) plays."""
    pauses = sum(1 for k in keys if k in PAUSES)
    return pauses * spec.pause_ms + (len(keys) - pauses) * (spec.tone_ms + spec.gap_ms)


def tones(keys: str, rate: int, spec: ToneSpec = DEFAULT_SPEC) -> bytes:
    """PCM16 little-endian at ``rate`` for ``keys`` (parsed here): each key's tone, then its
    gap; a pause is silence."""
    keys = parse(keys, max_keys=len(keys) or 1)
    pieces = [_key(k, rate, spec) if k in KEYPAD
              else np.zeros(rate * spec.pause_ms // 1000) for k in keys]
    out = np.concatenate(pieces)
    return np.asarray(np.round(out), dtype="<i2").tobytes()


def amplitude(dbm0: float) -> float:
    """The peak, in PCM16 units, of a sine at ``dbm0``."""
    return float(32767 * 10 ** ((dbm0 - FULL_SCALE_DBM0) / 20))


def _key(key: str, rate: int, spec: ToneSpec) -> np.ndarray:
    low, high = FREQUENCIES[key]
    n = rate * spec.tone_ms // 1000
    t = np.arange(n) / rate
    tone = (amplitude(spec.low_dbm0) * np.sin(2 * np.pi * low * t)
            + amplitude(spec.high_dbm0) * np.sin(2 * np.pi * high * t))
    fade = int(rate * spec.fade_ms / 1000)
    if fade:
        ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(fade) + 0.5) / fade)
        tone[:fade] *= ramp
        tone[-fade:] *= ramp[::-1]
    return np.concatenate([tone, np.zeros(rate * spec.gap_ms // 1000)])


def mask(keys: str) -> str:
    """``keys`` for a log line: menu choices as pressed, but every run of four digits or more
    (an account, card or PIN) masked to its last two."""
    return _LONG_RUN.sub(lambda m: "*" * (len(m.group()) - 2) + m.group()[-2:], keys)
