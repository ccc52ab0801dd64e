"""A simulated phone line between the caller and the carrier (test/demo tool, pure).

What a real line does to what the phone sends, frame by frame: the echo of what the phone
played (a speakerphone, a cheap handset, a PSTN hybrid), background noise, and a G.711 leg's
quantisation; the spec (:mod:`gateway.rig.line_spec`) says which and how much. Everything is
streaming and stateful, and seeded: the same spec and the same audio give the same bytes.

The echo path is a bulk delay followed by a short dispersive filter, as echo paths are
modelled for echo cancellers: the telephone band (300 to 3400 Hz) as a minimum-phase FIR of
:data:`ECHO_PATH_MS`, so its response starts exactly ``delay_ms`` after what was played and
its energy follows within a few ms. The return loss is a level difference for speech, as
echo return loss is measured: the path is scaled so the bundled agent replies, together,
come back exactly ``RL`` dB down (each within 0.5 dB of it); a 1 kHz tone comes back about
1.1 dB louder than that, the band's edges (under 300 Hz, over 3400 Hz) more down.

The mix is ``caller + echo + noise``, rounded and clipped to PCM16, then the codec round
trip if any. :class:`PhoneLine` puts a :class:`LineModel` between the phone's codecs.
"""

from __future__ import annotations

import functools
from typing import Final

import numpy as np
import numpy.typing as npt

from gateway.audio import (
    AudioFormat,
    Resampler,
    alaw_to_pcm16,
    decoder,
    encoder,
    pcm16_to_alaw,
    pcm16_to_ulaw,
    ulaw_to_pcm16,
)
from gateway.rig.line_noise import NoiseSource, active_rms, recordings
from gateway.rig.line_spec import LineCodec, LineSpec

Floats = npt.NDArray[np.float64]

ECHO_PATH_MS: Final = 8  # the dispersive part's length
BAND_HZ: Final = (300.0, 3400.0)
_MAX_LAG_S: Final = 1.0  # heard audio kept beyond the delay, if sending falls behind

_ROUND_TRIP = {
    LineCodec.ULAW: lambda pcm: ulaw_to_pcm16(pcm16_to_ulaw(pcm)),
    LineCodec.ALAW: lambda pcm: alaw_to_pcm16(pcm16_to_alaw(pcm)),
}


@functools.cache
def echo_path(rate: int) -> Floats:
    """The echo's dispersive filter at ``rate``: minimum phase, unit gain for speech.

    The magnitude is a 2nd-order high-pass at 300 Hz times a 4th-order low-pass at 3400 Hz
    (Butterworth shapes); its minimum-phase version comes from the folded real cepstrum.
    It is scaled so the bundled agent replies, all together, pass at their own level.
    """
    nfft = 1 << 14
    f = np.fft.rfftfreq(nfft, 1 / rate)
    low, high = BAND_HZ
    with np.errstate(divide="ignore"):
        hp = 1 / np.sqrt(1 + (low / f) ** 4)
    lp = 1 / np.sqrt(1 + (f / high) ** 8)
    log_mag = np.log(np.maximum(hp * lp, 1e-6))
    cepstrum = np.fft.irfft(log_mag, nfft)
    fold = np.zeros(nfft)
    fold[0] = fold[nfft // 2] = 1.0
    fold[1:nfft // 2] = 2.0
    h = np.fft.irfft(np.exp(np.fft.rfft(cepstrum * fold)), nfft)
    taps = rate * ECHO_PATH_MS // 1000
    h = h[:taps] * np.hanning(2 * taps)[taps:]  # a soft end: truncation adds no ripple
    replies = recordings(rate, "agent")
    passed = sum(float(np.sum(np.convolve(x, h)[:len(x)] ** 2)) for x in replies)
    out: Floats = h / np.sqrt(passed / sum(float(np.sum(x * x)) for x in replies))
    return out


class LineModel:
    """One call's line at one sample rate, PCM16 in and out.

    Each tick, :meth:`send` the caller's frame, then :meth:`hear` what the phone played in
    that tick: the echo in a sent sample ``n`` is the played sample ``n - delay`` through the
    echo path. Played audio that comes later than the sending needs it counts as silence.
    """

    def __init__(self, spec: LineSpec, rate: int) -> None:
        self.spec = spec
        self.rate = rate
        self._path: Floats | None = None
        self._gain = 0.0
        self._delay = 0
        self._history = np.zeros(0)  # the last len(path) - 1 samples heard
        self._echo = np.zeros(0)  # filtered echo, for sent samples from _sent - _delay on
        self._heard = 0  # samples heard so far
        self._sent = 0  # samples sent so far
        if spec.echo is not None:
            self._path = echo_path(rate)
            self._gain = 10 ** (-spec.echo.return_loss_db / 20)
            self._delay = rate * spec.echo.delay_ms // 1000
            self._history = np.zeros(len(self._path) - 1)
        self._noise = None if spec.noise is None else \
            NoiseSource(spec.noise.kind, rate, spec.noise.dbov, spec.seed)
        self._codec = None if spec.codec is None else _ROUND_TRIP[spec.codec]

    @property
    def delay_samples(self) -> int:
        return self._delay

    def hear(self, pcm: bytes) -> None:
        """What the phone played (PCM16 at the line's rate), in order, tick after tick."""
        x = np.frombuffer(pcm, "<i2").astype(np.float64)
        self._heard += len(x)
        if self._path is None:
            return
        y = np.convolve(np.concatenate([self._history, x]), self._path, "valid")
        self._history = np.concatenate([self._history, x])[len(x):]
        self._echo = np.concatenate([self._echo, y * self._gain])
        # Keep only what a later send can still use (echo for sent samples not yet sent).
        start = self._heard - len(self._echo)
        needed = max(self._sent - self._delay, self._heard - self._delay
                     - int(_MAX_LAG_S * self.rate))
        if needed > start:
            self._echo = self._echo[min(needed - start, len(self._echo)):]

    def send(self, pcm: bytes) -> bytes:
        """The caller's frame (PCM16 at the line's rate) as the line delivers it."""
        said = np.frombuffer(pcm, "<i2")
        n = len(said)
        mix = said.astype(np.float64)
        if self._path is not None:
            mix += self._take_echo(n)
        if self._noise is not None:
            mix += self._noise.take(n)
        self._sent += n
        out = np.clip(np.rint(mix), -32768, 32767).astype("<i2").tobytes()
        return out if self._codec is None else self._codec(out)

    def _take_echo(self, n: int) -> Floats:
        lo = self._sent - self._delay  # heard sample index echoed in this frame's first
        start = self._heard - len(self._echo)  # heard index of self._echo[0]
        out = np.zeros(n)
        a, b = max(lo, start), min(lo + n, self._heard)
        if b > a:
            out[a - lo:b - lo] = self._echo[a - start:b - start]
        if lo + n > start:
            self._echo = self._echo[min(lo + n - start, len(self._echo)):]
        return out


class PhoneLine:
    """A :class:`LineModel` between the phone's codecs: the caller's frames in the format
    the phone sends, what played in the format the gateway sends (brought to the sending
    rate where they differ, which adds the resampler's delay to the echo's)."""

    def __init__(self, spec: LineSpec, inbound: AudioFormat, outbound: AudioFormat) -> None:
        self.model = LineModel(spec, inbound.rate)
        self._decode_in, self._encode_in = decoder(inbound.codec), encoder(inbound.codec)
        self._decode_out = decoder(outbound.codec)
        self._resample = None if outbound.rate == inbound.rate \
            else Resampler(outbound.rate, inbound.rate)

    def send(self, frame: bytes) -> bytes:
        return self._encode_in(self.model.send(self._decode_in(frame)))

    def hear(self, played: bytes) -> None:
        pcm = self._decode_out(played)
        if self._resample is not None:
            pcm = self._resample.process(pcm)
        self.model.hear(pcm)


def level_dbov(pcm: bytes) -> float:
    """RMS of PCM16 in dBov (relative to 32768); -inf for silence."""
    x = np.frombuffer(pcm, "<i2").astype(np.float64)
    rms = float(np.sqrt(np.mean(x * x))) if len(x) else 0.0
    return 20 * float(np.log10(rms / 32768)) if rms else float("-inf")


def active_level_dbov(pcm: bytes, rate: int) -> float:
    """Speech's active level in dBov (:func:`gateway.rig.line_noise.active_rms`)."""
    rms = active_rms(np.frombuffer(pcm, "<i2").astype(np.float64), rate)
    return 20 * float(np.log10(rms / 32768)) if rms else float("-inf")
