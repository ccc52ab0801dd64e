"""How the audio tests measure: tones read from an exact DFT bin, an ideal (brick-wall)
resampler as the reference, and PESQ. Shared by the unit tests of the audio core and the
end-to-end tests that score what crosses a whole call."""

from __future__ import annotations

import math
import warnings

import numpy as np

from gateway.audio import Resampler, frame_bytes
from gateway.rig.simulator.speech import fixture
from gateway.wav import read_wav

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

AMPLITUDE = 16384.0  # -6 dBFS
MIN_REJECTION_DB = 60.0


def i16(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64)


def pcm(x: np.ndarray) -> bytes:
    return bytes(np.clip(np.rint(x), -32768, 32767).astype("<i2").tobytes())


def noise(seed: int, n: int) -> bytes:
    return np.random.default_rng(seed).integers(-20000, 20000, n).astype("<i2").tobytes()


def tone(freq: float, rate: int, seconds: float = 1.2) -> bytes:
    return pcm(AMPLITUDE * np.sin(2 * np.pi * freq * np.arange(int(rate * seconds)) / rate))


def stream(r: Resampler, data: bytes, frame: int) -> bytes:
    return b"".join(r.process(data[i : i + frame]) for i in range(0, len(data), frame))


def level_db(out: bytes, rate: int, freq: float) -> float:
    """Level of ``freq`` relative to the input tone: exact DFT bin over one second, after
    the start-up transient, so there is no leakage between the tone and its image."""
    y = i16(out)[rate // 10 : rate // 10 + rate]
    assert len(y) == rate
    amp = 2 * abs(np.dot(y, np.exp(-2j * np.pi * freq * np.arange(rate) / rate))) / rate
    return 20 * math.log10(max(amp, 1e-9) / AMPLITUDE)


def through(src: int, dst: int, freq: float) -> bytes:
    return stream(Resampler(src, dst), tone(freq, src), frame_bytes(src))


def alias_of(freq: float, rate: int) -> float:
    """Where a tone at ``freq`` lands once sampled at ``rate``."""
    return abs(freq - rate * round(freq / rate))


def ideal_resample(pcm: np.ndarray, src: int, dst: int) -> np.ndarray:
    """A brick-wall reference: whole-signal FFT, cut (or zero-extended) at the new Nyquist."""
    n_out = len(pcm) * dst // src
    spectrum = np.fft.rfft(pcm.astype(np.float64))
    bins = n_out // 2 + 1
    if bins <= len(spectrum):
        spectrum = spectrum[:bins]
    else:
        spectrum = np.concatenate([spectrum, np.zeros(bins - len(spectrum))])
    return np.fft.irfft(spectrum, n_out) * (dst / src)


def as_i16(x: np.ndarray) -> bytes:
    return bytes(np.clip(np.rint(x), -32768, 32767).astype("<i2").tobytes())


def agent_speech(name: str, rate: int) -> bytes:
    """A bundled 24 kHz speech recording (espeak-ng, wideband), ideally resampled to ``rate``.

    Computed here, with no TTS or sox at test time, so the tests need nothing beyond the
    repository on a fresh machine."""
    pcm24, got = read_wav(fixture(name).path)
    assert got == 24000
    return pcm24 if rate == 24000 else as_i16(ideal_resample(i16(pcm24), 24000, rate))


def ratecv_stream(data: bytes, src: int, dst: int) -> bytes:
    state, parts = None, []
    for i in range(0, len(data), frame_bytes(src)):
        out, state = audioop.ratecv(data[i : i + frame_bytes(src)], 2, 1, src, dst, state)
        parts.append(out)
    return b"".join(parts)


def pesq_of(ref: bytes, deg: bytes, rate: int) -> float:
    """PESQ of ``deg`` against ``ref`` (aligned by the caller): narrow-band at 8 kHz,
    wide-band (P.862.2) at 16 kHz."""
    from pesq import pesq

    a, b = i16(ref), i16(deg)
    n = min(len(a), len(b))
    assert n > 2 * rate, "PESQ wants seconds of speech"
    return float(pesq(rate, a[:n], b[:n], "nb" if rate == 8000 else "wb"))


def pesq_scores(
    ref: bytes, ours: bytes, ratecv: bytes, rate: int, delay_ms: float
) -> tuple[float, float]:
    """PESQ of our output (shifted back by its delay) and of ``audioop.ratecv``'s, over the
    length all three share."""
    shift = round(delay_ms * rate / 1000)
    ours = ours[2 * shift :]
    n = min(len(ref), len(ours), len(ratecv))
    assert n > 6 * rate
    return pesq_of(ref[:n], ours[:n], rate), pesq_of(ref[:n], ratecv[:n], rate)
