"""What a simulated phone line does to the caller's audio, as a short spec (test/demo tool).

``echo=12dB@120ms,noise=babble@15dB,codec=ulaw,seed=7``: items separated by commas, each at
most once, in any order; ``none`` (or an empty spec) is a clean line.

- ``echo=RLdB@Dms``: what the phone played comes back in what it sends, ``D`` ms later
  (20 to 1000, whole ms: at least one 20 ms tick, since the phone plays a tick after it sent
  the caller's) and ``RL`` dB down (0 to 60), through the telephone band.
- ``noise=KIND@SNRdB``: background noise (``white``, ``pink``, ``babble``, ``car``) ``SNR``
  dB (-10 to 60) below :data:`SPEECH_LEVEL_DBOV`, the bundled callers' speech level; or
  ``noise=KIND@LdBov``: at an absolute level ``L`` (-90 to 0 dBov).
- ``codec=ulaw`` (or ``alaw``): a G.711 leg's quantisation, applied last.
- ``seed=N``: the noise's randomness (default 0); the same spec gives the same audio.

Levels are in dBov: RMS relative to 32768, the PCM16 overload point (a full-scale sine is
-3 dBov). Only the standard library here: ``voicegw --help`` parses no audio.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Final

from gateway.errors import ConfigError

# The active speech level of the bundled caller utterances (gateway/assets/speech, the four
# ``caller_*`` files together): the RMS of their 20 ms frames within 40 dB of the loudest,
# which leaves out the digital silence around the words. ``noise=KIND@SNRdB`` puts the noise
# SNR dB below this, so the SNR is the real one for the bundled callers; a recording at
# another level shifts it by the difference. tests/test_line.py measures it again.
SPEECH_LEVEL_DBOV: Final = -14.8

MIN_DELAY_MS: Final = 20
MAX_DELAY_MS: Final = 1000
_NUMBER = r"([-+]?\d+(?:\.\d+)?)"
_ECHO = re.compile(_NUMBER + r"db@(\d+)ms")
_NOISE = re.compile(r"([a-z]+)@" + _NUMBER + r"(db|dbov)")


class NoiseKind(enum.Enum):
    WHITE = "white"  # flat spectrum
    PINK = "pink"  # 3 dB less per octave, like most room and street noise
    BABBLE = "babble"  # several bundled voices at once: a café, a call centre
    CAR = "car"  # a rumble below a few hundred Hz: engine and road


class LineCodec(enum.Enum):
    ULAW = "ulaw"
    ALAW = "alaw"


@dataclass(frozen=True, slots=True)
class EchoSpec:
    return_loss_db: float
    delay_ms: int

    def __post_init__(self) -> None:
        if not 0 <= self.return_loss_db <= 60:
            raise ConfigError(f"echo return loss must be 0 to 60 dB, got {self.return_loss_db}")
        if not MIN_DELAY_MS <= self.delay_ms <= MAX_DELAY_MS:
            raise ConfigError(f"echo delay must be {MIN_DELAY_MS} to {MAX_DELAY_MS} ms, got "
                              f"{self.delay_ms}")

    def __str__(self) -> str:
        return f"echo={_num(self.return_loss_db)}dB@{self.delay_ms}ms"


@dataclass(frozen=True, slots=True)
class NoiseSpec:
    """Exactly one of ``snr_db`` (relative to :data:`SPEECH_LEVEL_DBOV`) and ``level_dbov``."""

    kind: NoiseKind
    snr_db: float | None = None
    level_dbov: float | None = None

    def __post_init__(self) -> None:
        if (self.snr_db is None) == (self.level_dbov is None):
            raise ConfigError("noise needs either an SNR (dB) or a level (dBov)")
        if self.snr_db is not None and not -10 <= self.snr_db <= 60:
            raise ConfigError(f"noise SNR must be -10 to 60 dB, got {self.snr_db}")
        if self.level_dbov is not None and not -90 <= self.level_dbov <= 0:
            raise ConfigError(f"noise level must be -90 to 0 dBov, got {self.level_dbov}")

    @property
    def dbov(self) -> float:
        """The noise's RMS level."""
        if self.level_dbov is not None:
            return self.level_dbov
        assert self.snr_db is not None
        return SPEECH_LEVEL_DBOV - self.snr_db

    def __str__(self) -> str:
        level = f"{_num(self.snr_db)}dB" if self.snr_db is not None \
            else f"{_num(self.level_dbov or 0.0)}dBov"
        return f"noise={self.kind.value}@{level}"


@dataclass(frozen=True, slots=True)
class LineSpec:
    echo: EchoSpec | None = None
    noise: NoiseSpec | None = None
    codec: LineCodec | None = None
    seed: int = 0

    @property
    def clean(self) -> bool:
        return self.echo is None and self.noise is None and self.codec is None

    def __str__(self) -> str:
        """The spec in canonical form: ``parse_line(str(spec)) == spec``."""
        items = [str(x) for x in (self.echo, self.noise) if x is not None]
        if self.codec is not None:
            items.append(f"codec={self.codec.value}")
        if self.seed:
            items.append(f"seed={self.seed}")
        return ",".join(items) or "none"


def parse_line(text: str) -> LineSpec:
    """``echo=12dB@120ms,noise=babble@15dB,codec=ulaw,seed=1`` as a :class:`LineSpec`;
    anything else is a :class:`ConfigError` naming the item at fault."""
    spec = text.strip()
    if spec.lower() in ("", "none"):
        return LineSpec()
    seen: dict[str, str] = {}
    for item in spec.split(","):
        key, sep, value = (s.strip() for s in item.partition("="))
        key = key.lower()
        if not sep or not value:
            raise ConfigError(f"line spec item {item.strip()!r}: want KEY=VALUE, e.g. "
                              f"echo=12dB@120ms")
        if key not in _PARSERS:
            raise ConfigError(f"line spec item {item.strip()!r}: unknown {key!r} (known: "
                              f"{', '.join(_PARSERS)})")
        if key in seen:
            raise ConfigError(f"line spec: {key} given twice")
        seen[key] = value
    try:
        echo = _echo(seen["echo"]) if "echo" in seen else None
        noise = _noise(seen["noise"]) if "noise" in seen else None
        codec = _codec(seen["codec"]) if "codec" in seen else None
        seed = _seed(seen["seed"]) if "seed" in seen else 0
    except ConfigError as exc:
        raise ConfigError(f"line spec {spec!r}: {exc}") from None
    return LineSpec(echo, noise, codec, seed)


def _echo(value: str) -> EchoSpec:
    m = _ECHO.fullmatch(value.lower())
    if m is None:
        raise ConfigError(f"echo={value!r}: want RETURN_LOSSdB@DELAYms, e.g. echo=12dB@120ms")
    return EchoSpec(float(m.group(1)), int(m.group(2)))


def _noise(value: str) -> NoiseSpec:
    m = _NOISE.fullmatch(value.lower())
    if m is None:
        raise ConfigError(f"noise={value!r}: want KIND@SNRdB or KIND@LEVELdBov, e.g. "
                          f"noise=babble@15dB")
    try:
        kind = NoiseKind(m.group(1))
    except ValueError:
        raise ConfigError(f"noise={value!r}: unknown kind {m.group(1)!r} (known: "
                          f"{', '.join(k.value for k in NoiseKind)})") from None
    level = float(m.group(2))
    if m.group(3) == "dbov":
        return NoiseSpec(kind, level_dbov=level)
    return NoiseSpec(kind, snr_db=level)


def _codec(value: str) -> LineCodec:
    try:
        return LineCodec(value.lower())
    except ValueError:
        raise ConfigError(f"codec={value!r}: want ulaw or alaw") from None


def _seed(value: str) -> int:
    if not value.isdigit() or len(value) > 18:
        raise ConfigError(f"seed={value!r}: want a whole number >= 0")
    return int(value)


_PARSERS: Final = ("echo", "noise", "codec", "seed")


def _num(x: float) -> str:
    return f"{x:g}"
