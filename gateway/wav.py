"""Minimal WAV reading and writing: PCM16 and G.711 mu-law, mono or stereo.

The stdlib ``wave`` module reads only integer PCM, while telephone recordings (and the fixtures
made with sox) are often mu-law (format tag 7), so the RIFF chunks are walked here.
"""

from __future__ import annotations

import struct
import wave
from pathlib import Path
from typing import Final

import numpy as np

from gateway.audio import ulaw_to_pcm16
from gateway.errors import AudioFormatError

_PCM: Final = 1
_MULAW: Final = 7
_EXTENSIBLE: Final = 0xFFFE


def read_wav(path: str | Path) -> tuple[bytes, int]:
    """Mono PCM16 little-endian and its sample rate; stereo is mixed down to mono."""
    data = Path(path).read_bytes()
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioFormatError(f"{path}: not a RIFF/WAVE file")
    fmt: tuple[int, int, int, int] | None = None
    pos = 12
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = data[pos + 8:pos + 8 + size]
        if cid == b"fmt ":
            tag, channels, rate = struct.unpack_from("<HHI", body)
            bits = struct.unpack_from("<H", body, 14)[0]
            if tag == _EXTENSIBLE and len(body) >= 26:
                tag = struct.unpack_from("<H", body, 24)[0]
            fmt = (tag, channels, rate, bits)
        elif cid == b"data":
            if fmt is None:
                raise AudioFormatError(f"{path}: data chunk before fmt chunk")
            return _decode(body, *fmt, path=path)
        pos += 8 + size + (size & 1)
    raise AudioFormatError(f"{path}: no data chunk")


def _decode(body: bytes, tag: int, channels: int, rate: int, bits: int, *,
            path: str | Path) -> tuple[bytes, int]:
    if tag == _MULAW and bits == 8:
        pcm = ulaw_to_pcm16(body)
    elif tag == _PCM and bits == 16:
        pcm = body[:len(body) & ~1]
    else:
        raise AudioFormatError(f"{path}: unsupported WAV format tag {tag} with {bits} bits; "
                               "use 16-bit PCM or 8-bit mu-law")
    if channels == 2:
        frames = np.frombuffer(pcm[:len(pcm) & ~3], dtype="<i2").reshape(-1, 2)
        pcm = (frames.astype(np.int32).sum(axis=1) // 2).astype("<i2").tobytes()
    elif channels != 1:
        raise AudioFormatError(f"{path}: {channels} channels; expected 1 or 2")
    return pcm, rate


def write_wav(path: str | Path, pcm16: bytes, rate: int, channels: int = 1) -> None:
    """16-bit PCM; for stereo, ``pcm16`` is interleaved left/right."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm16)
