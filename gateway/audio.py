"""The call's audio path: G.711 mu-law and A-law, L16 in either byte order, the formats
carriers declare, and streaming sample-rate conversion.

Pure and synchronous: bytes in, bytes out, no I/O. Inside the gateway PCM16 is always
little-endian mono, as the Live API speaks it; each carrier's codec is converted at the edge
(:func:`decoder`, :func:`encoder`), so everything between works on one representation.

Resampler design, and why:

* Transition band 3.4-4.6 kHz around the 4 kHz Nyquist of the phone line. 3.4 kHz is where
  the telephone passband ends; 4.6 kHz is the lowest frequency whose image (8->16 kHz) or
  alias (24->8 kHz) falls back inside it. That is the widest transition that still protects
  every passband tone, and the widest transition needs the fewest taps, hence the least
  delay and CPU. Wideband lines (L16 at 16 kHz) are built the same way around their own
  passband, which ends at 7 kHz (G.722, AMR-WB): 7-9 kHz between 16 and 24 kHz, so no reply
  tone above 9 kHz folds back under 7. Other rates: +-15 % around half the lower rate.
* Kaiser window designed for 75 dB (beta 7.306) although 60 dB is required: the textbook
  length estimate is approximate and the band edge is the weakest point, so keep margin.
* The length is rounded up so the group delay is exactly 2 ms: 65 taps at 16 kHz (33 per
  phase for 8->16), 97 at 24 kHz (24->8 and 8->24); 1.25 ms between 16 and 24 kHz (121
  taps at 48 kHz). That is a whole number of samples at 8, 16 and 24 kHz, so nobody has to
  align by a fraction.
* Coefficients are quantised to multiples of 2**-24 and the arithmetic is float64. Every
  product and partial sum is then exactly representable, so results cannot depend on the
  BLAS summation order or on how the stream was chunked: streaming output is bit-identical
  to one-shot output by construction, not by luck. The quantisation floor is below -130 dB.
* Outputs are computed in blocks of B ratio periods (B a power of two, so 20 ms frames
  are whole blocks). A block's outputs are a fixed linear map of its input row and the row
  before it, so a call is one copy of those row pairs and one BLAS matrix product: no
  per-sample Python, no per-tap gathering. A trailing partial block is zero-padded, only
  outputs whose inputs have all arrived are emitted, and the block is redone next call.
* Where the package was built with a C compiler, the same filter runs as a plain polyphase
  loop in ``gateway._fir``: one call per frame instead of a dozen numpy calls, which cost
  three to four times their tight-loop figure inside the serving process. Exact arithmetic
  makes its output bit-identical to the numpy path, which stays as the fallback.
"""

from __future__ import annotations

import enum
import functools
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gateway.errors import AudioFormatError

try:
    from gateway import _fir
except ImportError:  # built without a C compiler: the numpy path gives the same audio
    _fir = None  # type: ignore[assignment]

with warnings.catch_warnings():
    # Deprecated in the 3.11/3.12 stdlib; on 3.13+ the audioop-lts wheel has the same name.
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

__all__ = ["COMPILED", "ULAW_RATE", "AudioFormat", "Codec", "Resampler", "alaw_to_pcm16",
           "decoder", "encoder", "frame_bytes", "pcm16_to_alaw", "pcm16_to_ulaw", "peak", "rms",
           "swap_bytes", "ulaw_to_pcm16"]

ULAW_RATE = 8000
COMPILED = _fir is not None  # whether Resampler runs the compiled kernel by default

_ATTENUATION_DB = 75.0
_BETA = 0.1102 * (_ATTENUATION_DB - 8.7)
_TRANSITION = 0.15  # half-width of the transition band, as a fraction of the lower Nyquist
# Where the passband ends, by the lower rate: the telephone band (G.712) and the wideband one.
_PASSBAND_END = {8000: 3400, 16000: 7000}
_COEF_BITS = 24
_MAX_TABLE = 4_000_000  # float64 entries; guards against ratios like 8000:8001
_MAX_CALL = 1 << 16  # input samples handled per matrix product

Floats = npt.NDArray[np.float64]
_PCM16 = np.dtype("<i2")


def ulaw_to_pcm16(data: bytes) -> bytes:
    """Decode G.711 mu-law to PCM16 (bit-exact with ``audioop.ulaw2lin(data, 2)``)."""
    return audioop.ulaw2lin(data, 2)


def pcm16_to_ulaw(pcm: bytes) -> bytes:
    """Encode PCM16 as G.711 mu-law (bit-exact with ``audioop.lin2ulaw(pcm, 2)``)."""
    if len(pcm) % 2:
        raise AudioFormatError(f"PCM16 needs an even number of bytes, got {len(pcm)}")
    return audioop.lin2ulaw(pcm, 2)


def alaw_to_pcm16(data: bytes) -> bytes:
    """Decode G.711 A-law to PCM16 (bit-exact with the ITU-T G.711 expansion table)."""
    return audioop.alaw2lin(data, 2)


def pcm16_to_alaw(pcm: bytes) -> bytes:
    """Encode PCM16 as G.711 A-law (the 13-bit segment encoding of ITU-T G.711)."""
    if len(pcm) % 2:
        raise AudioFormatError(f"PCM16 needs an even number of bytes, got {len(pcm)}")
    return audioop.lin2alaw(pcm, 2)


def swap_bytes(pcm: bytes) -> bytes:
    """PCM16 in the other byte order (big-endian L16 <-> little-endian); its own inverse."""
    if len(pcm) % 2:
        raise AudioFormatError(f"PCM16 needs an even number of bytes, got {len(pcm)}")
    return audioop.byteswap(pcm, 2)


def _same(pcm: bytes) -> bytes:
    if len(pcm) % 2:
        raise AudioFormatError(f"PCM16 needs an even number of bytes, got {len(pcm)}")
    return pcm


class Codec(enum.Enum):
    """How a carrier's audio bytes encode samples."""

    PCMU = "PCMU"  # G.711 mu-law, one byte a sample
    PCMA = "PCMA"  # G.711 A-law, one byte a sample
    L16 = "L16"  # signed 16-bit linear, little-endian (Vonage, Plivo, Exotel, AudioSocket)
    L16_BE = "L16_BE"  # signed 16-bit linear, big-endian: RTP's L16 (RFC 3551), as Telnyx sends

    @property
    def sample_bytes(self) -> int:
        return 1 if self in (Codec.PCMU, Codec.PCMA) else 2

    @property
    def silence(self) -> bytes:
        """One sample of silence in this codec."""
        return {Codec.PCMU: b"\xff", Codec.PCMA: b"\xd5"}.get(self, b"\x00\x00")


_DECODERS: dict[Codec, Callable[[bytes], bytes]] = {
    Codec.PCMU: ulaw_to_pcm16, Codec.PCMA: alaw_to_pcm16, Codec.L16: _same,
    Codec.L16_BE: swap_bytes,
}
_ENCODERS: dict[Codec, Callable[[bytes], bytes]] = {
    Codec.PCMU: pcm16_to_ulaw, Codec.PCMA: pcm16_to_alaw, Codec.L16: _same,
    Codec.L16_BE: swap_bytes,
}


def decoder(codec: Codec) -> Callable[[bytes], bytes]:
    """The function that turns ``codec`` bytes into PCM16 little-endian."""
    return _DECODERS[codec]


def encoder(codec: Codec) -> Callable[[bytes], bytes]:
    """The function that turns PCM16 little-endian into ``codec`` bytes."""
    return _ENCODERS[codec]


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """Audio as a carrier sends or takes it: codec, sample rate, and its frame length."""

    codec: Codec
    rate: int
    frame_ms: int = 20

    def __post_init__(self) -> None:
        if self.rate not in (8000, 16000, 24000):
            raise AudioFormatError(f"unsupported sample rate {self.rate} Hz")
        if self.frame_ms <= 0 or (self.rate * self.frame_ms) % 1000:
            raise AudioFormatError(f"{self.frame_ms} ms at {self.rate} Hz is not whole samples")

    @property
    def bytes_per_second(self) -> int:
        return self.rate * self.codec.sample_bytes

    @property
    def frame_bytes(self) -> int:
        """Bytes of one frame (``frame_ms``) in this format."""
        return self.bytes_per_second * self.frame_ms // 1000

    def ms(self, nbytes: int) -> float:
        """How long ``nbytes`` of this format play."""
        return nbytes * 1000 / self.bytes_per_second

    def silence(self, ms: float) -> bytes:
        return self.codec.silence * round(self.rate * ms / 1000)

    def __str__(self) -> str:
        return f"{self.codec.value}/{self.rate}"


def rms(pcm: bytes) -> int:
    """Root mean square of PCM16 audio, truncated to an integer (0 for none)."""
    return int(audioop.rms(pcm, 2)) if pcm else 0


def peak(pcm: bytes) -> int:
    """Largest absolute sample of PCM16 audio (0 for none)."""
    return int(audioop.max(pcm, 2)) if pcm else 0


def frame_bytes(rate: int, ms: int = 20) -> int:
    """Bytes of PCM16 mono in one frame of ``ms`` milliseconds at ``rate`` Hz."""
    samples, rest = divmod(rate * ms, 1000)
    if rest or samples <= 0:
        raise ValueError(f"{ms} ms at {rate} Hz is not a whole, positive number of samples")
    return 2 * samples


@dataclass(frozen=True)
class _Design:
    up: int  # L: output samples per ratio period
    down: int  # M: input samples per ratio period
    row: int  # P = B * M input samples per block
    out: int  # B * L output samples per block
    table: Floats  # (2P, B*L): a block's outputs from the previous row and its own row
    poly: bytes  # (L, taps) float64: phase p's taps, for the compiled kernel
    delay_ms: float


@functools.cache
def _design(src: int, dst: int) -> _Design:
    g = math.gcd(src, dst)
    up, down = dst // g, src // g
    fs = up * src  # the virtual rate at which the prototype filter runs
    low = min(src, dst)
    edge = low / 2
    width = 2 * (edge - _PASSBAND_END.get(low, (1 - _TRANSITION) * edge))
    # Kaiser's length estimate for the attenuation over this transition width.
    est = math.ceil((_ATTENUATION_DB - 7.95) / (2.285 * 2 * math.pi * width / fs)) + 1
    half = math.ceil((est - 1) / 2)
    if half > 1_000_000:
        raise ValueError(f"resampling {src} -> {dst} Hz needs an impractically long filter")
    # Whole input and output samples of delay when that costs little; else whole inputs.
    step = up * down if up * down * 8 <= half else up
    half = -(-half // step) * step
    n = 2 * half + 1
    cutoff = edge / fs
    h = 2 * cutoff * np.sinc(2 * cutoff * (np.arange(n) - half)) * np.kaiser(n, _BETA)
    h *= up / h.sum()  # zero-stuffing by `up` divides the level by `up`
    taps = -(-n // up)
    phases = np.zeros(taps * up)
    phases[:n] = h
    poly = phases.reshape(taps, up).T  # poly[p, k] = h[p + k * up]
    scale = float(1 << _COEF_BITS)
    poly = np.round(poly * scale) / scale

    blocks = 1
    while blocks * down < taps - 1:
        blocks *= 2
    row, out = blocks * down, blocks * up
    if 2 * row * out > _MAX_TABLE:
        raise ValueError(f"resampling {src} -> {dst} Hz needs an impractically large table")
    j = np.arange(out)[:, None]
    k = np.arange(taps)[None, :]
    # Output j of a block reads input (j*M)//L - k of its row; negative means the row before.
    table = np.zeros((2 * row, out))
    table[(j * down) // up - k + row, np.broadcast_to(j, (out, taps))] = poly[(j * down) % up, k]
    # Exactness needs every partial sum below 2**53 in units of 2**-24.
    assert np.abs(table).sum(axis=0).max() * 32768 * scale < 2.0**53
    table.setflags(write=False)
    return _Design(up, down, row, out, table, poly.tobytes(), 1000 * half / fs)


class Resampler:
    """Streaming PCM16 mono resampler from ``src_rate`` to ``dst_rate`` Hz.

    Feed any number of samples per call; the concatenated output equals what one call on
    the whole signal returns. Output lags input by ``delay_ms``; samples still inside the
    filter are held back until later input arrives, never flushed.

    ``compiled`` picks the kernel: the C one where it was built (the default), or numpy.
    Both give the same bytes.
    """

    def __init__(self, src_rate: int, dst_rate: int, *, compiled: bool = COMPILED) -> None:
        if src_rate <= 0 or dst_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {src_rate} -> {dst_rate}")
        self.src_rate = src_rate
        self.dst_rate = dst_rate
        self._d = None if src_rate == dst_rate else _design(src_rate, dst_rate)
        if compiled and _fir is None:
            raise ValueError("the compiled resampler kernel was not built with this install")
        self._fir = None
        if compiled and self._d is not None:
            self._fir = _fir.Fir(self._d.poly, self._d.up, self._d.down)
        self._row = self._d.row if self._d else 0
        # _buf holds the input row before the current block, then the input received since;
        # _win views it as overlapping (previous row | own row) pairs, one per block.
        self._buf: Floats = np.zeros(self._row)
        self._win: Floats = self._buf
        self.reset()
        if self._d is not None and self._fir is None:
            self._alloc(-(-src_rate // 50 // self._row) + 2)  # a 20 ms frame; grows on demand

    @property
    def delay_ms(self) -> float:
        """Algorithmic group delay in milliseconds (0 for passthrough)."""
        return 0.0 if self._d is None else self._d.delay_ms

    @property
    def compiled(self) -> bool:
        """Whether the C kernel does the work (False for numpy, and for passthrough)."""
        return self._fir is not None

    def reset(self) -> None:
        """Forget all history, as if newly created (barge-in: no old tail may leak)."""
        if self._fir is not None:
            self._fir.reset()
            return
        self._buf[: self._row] = 0.0
        self._fill = 0  # input samples of the current, incomplete block
        self._emitted = 0  # outputs of that block already returned

    def _alloc(self, rows: int) -> None:
        keep = self._row + self._fill
        buf = np.zeros(rows * self._row)
        buf[:keep] = self._buf[:keep]
        step = buf.strides[0]
        self._buf = buf
        self._win = np.lib.stride_tricks.as_strided(
            buf, (rows - 1, 2 * self._row), (self._row * step, step), writeable=False
        )

    def process(self, pcm16: bytes) -> bytes:
        """Resample a chunk of PCM16; returns every output sample its inputs now allow."""
        if len(pcm16) % 2:
            raise AudioFormatError(f"PCM16 needs an even number of bytes, got {len(pcm16)}")
        d = self._d
        if d is None:
            return bytes(pcm16)
        if not pcm16:
            return b""
        if len(pcm16) > 2 * _MAX_CALL:
            # Bounds the working buffers; exact arithmetic makes the split invisible.
            step = 2 * _MAX_CALL
            return b"".join(self.process(pcm16[i : i + step]) for i in range(0, len(pcm16), step))
        if self._fir is not None:
            return self._fir.process(pcm16)
        new = np.frombuffer(pcm16, _PCM16)
        row, fill = d.row, self._fill
        end = row + fill + len(new)
        full, rem = divmod(end - row, row)
        blocks = full + (rem > 0)
        if blocks > len(self._win):
            self._alloc(max(blocks + 1, 2 * len(self._win)))
        buf = self._buf
        buf[row + fill : end] = new
        if rem:
            buf[end : (blocks + 1) * row] = 0.0
        y: Floats = np.dot(np.ascontiguousarray(self._win[:blocks]), d.table).ravel()
        stop = full * d.out + -(-rem * d.up // d.down)
        out = y[self._emitted : stop]
        # The last complete row and the partial block move to the front for the next call.
        at = full * row
        buf[: row + rem] = buf[at : at + row + rem]
        self._fill = rem
        self._emitted = stop - full * d.out
        np.rint(out, out=out)
        # The ufuncs directly: ndarray.clip goes through a Python wrapper that cost more
        # than the clipping itself on a 20 ms frame.
        np.minimum(out, 32767.0, out=out)
        np.maximum(out, -32768.0, out=out)
        return out.astype(_PCM16).tobytes()
