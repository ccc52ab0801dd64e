"""The candidate echo cancellers and noise suppressors, each behind one small interface, so
``echo_noise_processing.py`` measures them by the same code.

An engine takes 20 ms of the caller's audio (``near``, as carriers send it) and the 20 ms of
reference that played
to the caller at the same moment (``far``; zeros for a noise suppressor), both PCM16 at the
line's rate as int16 arrays, and returns 20 ms of cleaned audio (libraries that take 10 ms
are called twice). Engines that only run at
another rate resample on the way in and out with the gateway's own resampler, and that cost
and delay are counted as theirs.
"""

from __future__ import annotations

import ctypes
import importlib.util
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from gateway.audio import Resampler

I16 = npt.NDArray[np.int16]


class Engine(Protocol):
    name: str

    def process(self, near: I16, far: I16) -> I16: ...


class WebRtcApm:
    """WebRTC's audio processing module (AEC3, NS) through the ``livekit`` package."""

    def __init__(self, rate: int, *, aec: bool, ns: bool, hpf: bool = False) -> None:
        from livekit import rtc  # noqa: PLC0415 (optional: pip install '.[echo-bench]')

        self._rtc = rtc
        self.rate, self.aec = rate, aec
        self.apm = rtc.AudioProcessingModule(echo_cancellation=aec, noise_suppression=ns,
                                             high_pass_filter=hpf)
        parts = [p for p, on in (("AEC3", aec), ("NS", ns), ("HPF", hpf)) if on]
        self.name = "webrtc " + "+".join(parts)

    def process(self, near: I16, far: I16) -> I16:
        h = self.rate // 100
        return np.concatenate([self._10ms(near[i:i + h], far[i:i + h])
                               for i in range(0, len(near), h)])

    def _10ms(self, near: I16, far: I16) -> I16:
        n = len(near)
        if self.aec:
            ref = self._rtc.AudioFrame(bytearray(far.tobytes()), self.rate, 1, n)
            self.apm.process_reverse_stream(ref)
            self.apm.set_stream_delay_ms(0)
        frame = self._rtc.AudioFrame(bytearray(near.tobytes()), self.rate, 1, n)
        self.apm.process_stream(frame)
        return np.frombuffer(bytes(frame.data.cast("B")), np.int16)


class SpeexAec:
    """speexdsp's echo canceller (MDF), optionally with its preprocessor (denoise and residual
    echo suppression), through the ``pyaec`` package's shared library, called directly on
    ctypes buffers (its Python wrapper converts through lists)."""

    def __init__(self, rate: int, *, tail_ms: int = 300, preprocess: bool = True,
                 frame_ms: int = 20, name: str | None = None) -> None:
        import pyaec  # noqa: PLC0415

        self._lib = pyaec.lib
        self.n = rate * frame_ms // 1000
        self._h = self._lib.AecNew(self.n, rate * tail_ms // 1000, rate, preprocess)
        self._out = (ctypes.c_int16 * self.n)()
        self.name = name or f"speex AEC {tail_ms} ms" + (" +pre" if preprocess else "")

    def process(self, near: I16, far: I16) -> I16:
        n = self.n
        return np.concatenate([self._10ms(near[i:i + n], far[i:i + n])
                               for i in range(0, len(near), n)])

    def _10ms(self, near: I16, far: I16) -> I16:
        n = self.n
        rec = (ctypes.c_int16 * n).from_buffer_copy(near.tobytes())
        echo = (ctypes.c_int16 * n).from_buffer_copy(far.tobytes())
        self._lib.AecCancelEcho(self._h, rec, echo, self._out, n)
        return np.frombuffer(bytes(self._out), np.int16)


class NoiseGain:
    """WebRTC's noise suppression as the ``webrtc_noise_gain`` package builds it (16 kHz)."""

    def __init__(self, rate: int, level: int = 2) -> None:
        import webrtc_noise_gain  # noqa: PLC0415

        self.proc = webrtc_noise_gain.AudioProcessor(0, level)
        self.up, self.down = Resampler(rate, 16000), Resampler(16000, rate)
        self._held = b""
        self._fifo = _Fifo()
        self.name = f"webrtc_noise_gain NS{level}"

    def process(self, near: I16, far: I16) -> I16:
        data = self._held + self.up.process(near.tobytes())
        out = []
        while len(data) >= 320:
            out.append(self.proc.Process10ms(data[:320]).audio)
            data = data[320:]
        self._held = data
        return self._fifo.take(self.down.process(b"".join(out)), len(near))


class RnNoise:
    """RNNoise (48 kHz) through the ``pyrnnoise`` package's shared library, loaded directly:
    the package's own module pulls in audiolab and matplotlib."""

    def __init__(self, rate: int) -> None:
        spec = importlib.util.find_spec("pyrnnoise")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("pyrnnoise is not installed: pip install '.[echo-bench]'")
        lib = ctypes.CDLL(str(Path(spec.submodule_search_locations[0]) / "librnnoise.so"))
        lib.rnnoise_create.restype = ctypes.c_void_p
        lib.rnnoise_create.argtypes = [ctypes.c_void_p]
        lib.rnnoise_process_frame.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_float),
                                              ctypes.POINTER(ctypes.c_float)]
        lib.rnnoise_process_frame.restype = ctypes.c_float
        self._lib, self._st = lib, lib.rnnoise_create(None)
        self.up, self.down = Resampler(rate, 48000), Resampler(48000, rate)
        self._held = np.zeros(0, np.float32)
        self._buf = (ctypes.c_float * 480)()
        self._fifo = _Fifo()
        self.name = "RNNoise"

    def process(self, near: I16, far: I16) -> I16:
        up = np.frombuffer(self.up.process(near.tobytes()), np.int16).astype(np.float32)
        data = np.concatenate([self._held, up])
        out = []
        while len(data) >= 480:
            frame = (ctypes.c_float * 480).from_buffer_copy(data[:480].tobytes())
            self._lib.rnnoise_process_frame(self._st, self._buf, frame)
            out.append(np.clip(np.frombuffer(bytes(self._buf), np.float32), -32768, 32767))
            data = data[480:]
        self._held = data
        pcm = np.concatenate(out).astype(np.int16).tobytes() if out else b""
        return self._fifo.take(self.down.process(pcm), len(near))


class Passthrough:
    name = "off (today)"

    def process(self, near: I16, far: I16) -> I16:
        return near


class _Fifo:
    """Exactly ``n`` samples out per call (a resampling round trip releases in blocks): the
    first calls are padded with the silence of the pipeline's start; nothing is dropped."""

    def __init__(self) -> None:
        self._x = np.zeros(0, np.int16)

    def take(self, pcm: bytes, n: int) -> I16:
        x = np.concatenate([self._x, np.frombuffer(pcm, np.int16)])
        if len(x) < n:  # only at the start: the resamplers' look-ahead
            x = np.concatenate([np.zeros(n - len(x), np.int16), x])
        self._x = x[n:]
        return x[:n]


class GatewayPath:
    """The gateway's own caller path (:mod:`gateway.voice_dsp` behind
    :class:`gateway.caller_processing.LineCleaner`): the echo's delay found by correlation, a
    64 ms speex filter placed there, and the comfort-noise gate until it has learnt. Each
    20 ms of reference plays at its time; the caller's frame carrying that moment arrives
    20 ms later, as on a call."""

    def __init__(self, rate: int) -> None:
        from gateway.caller_processing import LineProcessing  # noqa: PLC0415
        from gateway.voice_dsp import build_processing  # noqa: PLC0415

        cleaner = build_processing(LineProcessing(True, False), rate, rate)
        assert cleaner is not None
        self.cleaner = cleaner
        self.at = 1000.0
        self.name = "gateway (delay + speex 64 ms + gate)"

    def process(self, near: I16, far: I16) -> I16:
        self.cleaner.far_end(far.tobytes(), self.at)
        self.at += 0.02
        return np.frombuffer(self.cleaner.near_end(near.tobytes(), self.at), np.int16)
