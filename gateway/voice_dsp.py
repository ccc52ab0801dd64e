"""The libraries behind :mod:`gateway.caller_processing`: the only module that imports them.

Echo: speexdsp's echo canceller (MDF), as the ``pyaec`` wheel builds it, called directly on
preallocated ctypes buffers (its Python wrapper converts every frame through lists). Chosen
over WebRTC's AEC3 (the ``livekit`` wheel) on the figures of
``benchmarks/echo_noise_processing.py``: AEC3 cancels more echo (35-50 dB against 20-27)
and at once, but also mangles a caller talking over the agent (double-talk PESQ 1.4-1.8
against 2.8-3.8 for speex), adds 11 ms of delay (speex none) and costs about 160 µs per 20 ms
frame on an 8 kHz line against 50. A 300 ms speex filter needed 0.5-3 s of the first reply
to converge; placed at the echo (gateway.echo_path) a 64 ms one needs about half a second, and
the echo gate covers that. Its filter is kept between replies.

Noise: WebRTC's noise suppression as the ``webrtc_noise_gain`` wheel builds it (16 kHz only;
an 8 kHz line goes up and back down with the gateway's resampler). Off by default: on the
same benchmark no suppressor lowered the recogniser's word error rate at SNR 5 or 10 dB
(only at 20 dB, a little), the energy detector still fired on the noise, and each adds about
10 ms of delay or more.
"""

from __future__ import annotations

import ctypes
import weakref
from typing import Any, Final

import pyaec
import webrtc_noise_gain

from gateway.audio import Resampler
from gateway.caller_processing import FRAME_MS, CallerProcessing, LineCleaner, LineProcessing

# The filter sits at the echo's delay (gateway.echo_path finds it), so it spans only the echo
# path's response: a handset's or hybrid's, some tens of ms, plus the path's drift.
TAIL_MS: Final = 64
NOISE_LEVEL: Final = 2  # webrtc's suppression level, 0-4: 2 is its "high"


# The filter adapts once per block: 10 ms blocks learn the echo path fast enough, in line
# noise at 6 dB return loss, that the echo gate's comfort noise is not released early; with
# 20 ms blocks a filter that had settled on a quiet stretch still let loud echo through a
# second later (benchmarks/real_lines.py's 6 dB cells). The cost per 20 ms is about the same.
BLOCK_MS: Final = 10


class SpeexEcho:
    """One call's speex echo canceller at the line's rate: 20 ms frames in, run as 10 ms
    blocks."""

    def __init__(self, rate: int, tail_ms: int = TAIL_MS) -> None:
        lib: Any = pyaec.lib
        n = rate * BLOCK_MS // 1000
        blocks = FRAME_MS // BLOCK_MS
        self.frame_bytes = 2 * n * blocks
        self.tail_s = tail_ms / 1000
        self._lib = lib
        self._n, self._taps, self._rate = n, rate * tail_ms // 1000, rate
        self._state: Any = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self.reset()
        block = ctypes.c_int16 * n
        self._near = (ctypes.c_int16 * (n * blocks))()
        self._far = (ctypes.c_int16 * (n * blocks))()
        self._out = (ctypes.c_int16 * (n * blocks))()
        self._blocks = [tuple(block.from_buffer(buf, 2 * n * k)
                              for buf in (self._near, self._far, self._out))
                        for k in range(blocks)]

    def reset(self) -> None:
        """A new canceller: the library offers no reset of its own."""
        if self._finalizer is not None:
            self._finalizer()  # frees the old state now
        state = self._lib.AecNew(self._n, self._taps, self._rate, False)
        if not state:
            raise RuntimeError("the echo canceller could not be created")
        self._state = state
        self._finalizer = weakref.finalize(self, self._lib.AecDestroy, state)

    def process(self, near: bytes, far: bytes) -> bytes:
        ctypes.memmove(self._near, near, self.frame_bytes)
        ctypes.memmove(self._far, far, self.frame_bytes)
        for near_block, far_block, out_block in self._blocks:
            self._lib.AecCancelEcho(self._state, near_block, far_block, out_block, self._n)
        return bytes(self._out)


class WebRtcNoise:
    """One call's WebRTC noise suppressor; 20 ms frames at the line's rate."""

    def __init__(self, rate: int, level: int = NOISE_LEVEL) -> None:
        self.frame_bytes = 2 * rate * FRAME_MS // 1000
        self._proc: Any = webrtc_noise_gain.AudioProcessor(0, level)
        self._up = Resampler(rate, 16000) if rate != 16000 else None
        self._down = Resampler(16000, rate) if rate != 16000 else None
        self._in = b""
        self._out = b""

    def process(self, near: bytes) -> bytes:
        data = self._in + (self._up.process(near) if self._up is not None else near)
        usable = len(data) - len(data) % 320
        self._in = data[usable:]
        cleaned = b"".join(self._proc.Process10ms(data[i:i + 320]).audio
                           for i in range(0, usable, 320))
        out = self._out + (self._down.process(cleaned) if self._down is not None else cleaned)
        size = len(near)
        if len(out) < size:  # only at the start: the resamplers' look-ahead
            out = bytes(size - len(out)) + out
        self._out = out[size:]
        return out[:size]


def build_processing(choice: LineProcessing, rate: int,
                     reference_rate: int) -> CallerProcessing | None:
    """A :class:`gateway.caller_processing.ProcessingFactory` over these libraries."""
    if not choice.any:
        return None
    return LineCleaner(rate, reference_rate,
                       SpeexEcho(rate) if choice.echo_cancellation else None,
                       WebRtcNoise(rate) if choice.noise_suppression else None)
