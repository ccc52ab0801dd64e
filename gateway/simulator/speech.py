"""Bundled recorded-speech fixtures (test and demo material, not product audio).

``gateway/assets/speech/`` holds short synthetic utterances made by ``make_speech.sh``:
caller lines as 8 kHz mono G.711 mu-law WAV (what arrives from a phone) and agent replies
as 24 kHz mono PCM16 WAV (what the Live API sends back). ``index.json`` lists each file with
its text and duration; its order of ``agent`` entries is the simulator's default reply cycle.

The stdlib :mod:`wave` module cannot read mu-law (format tag 7) files, so those are parsed
here from their RIFF chunks; PCM files go through :mod:`wave`.
"""

from __future__ import annotations

import functools
import json
import struct
import wave
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Final

import numpy as np

_WAVE_FORMAT_MULAW: Final = 7


@dataclass(frozen=True, slots=True)
class SpeechFixture:
    """One bundled recording, as described by ``index.json``."""

    name: str  # file stem, e.g. "agent_greeting"
    role: str  # "caller" (8 kHz mu-law) or "agent" (24 kHz PCM16)
    path: Path
    text: str
    sample_rate: int
    encoding: str  # "mulaw" | "pcm16"
    duration_s: float


def speech_dir() -> Path:
    """The directory of the bundled fixtures (package data, installed with ``gateway``)."""
    return Path(str(resources.files("gateway").joinpath("assets", "speech")))


@functools.cache
def _index() -> tuple[SpeechFixture, ...]:
    base = speech_dir()
    raw = json.loads((base / "index.json").read_text(encoding="utf-8"))
    return tuple(
        SpeechFixture(name=e["name"], role=e["role"], path=base / e["file"], text=e["text"],
                      sample_rate=int(e["sample_rate"]), encoding=e["encoding"],
                      duration_s=float(e["duration_s"]))
        for e in raw)


def fixtures(role: str | None = None) -> tuple[SpeechFixture, ...]:
    """All fixtures in ``index.json`` order, optionally only one role."""
    return tuple(f for f in _index() if role is None or f.role == role)


def fixture(name: str) -> SpeechFixture:
    """A fixture by name (``"agent_greeting"``; a trailing ``.wav`` is tolerated)."""
    stem = name.removesuffix(".wav")
    for f in _index():
        if f.name == stem:
            return f
    known = ", ".join(f.name for f in _index())
    raise KeyError(f"no bundled speech fixture {name!r} (known: {known})")


def _riff_chunks(data: bytes, path: Path) -> dict[bytes, bytes]:
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError(f"{path}: not a RIFF/WAVE file")
    chunks: dict[bytes, bytes] = {}
    pos = 12
    while pos + 8 <= len(data):
        cid = data[pos:pos + 4]
        (size,) = struct.unpack_from("<I", data, pos + 4)
        chunks.setdefault(cid, data[pos + 8:pos + 8 + size])
        pos += 8 + size + (size & 1)  # chunks are word-aligned
    return chunks


def load_ulaw_wav(path: str | Path) -> bytes:
    """Raw G.711 mu-law bytes of an 8 kHz mono mu-law WAV (as written by sox)."""
    p = Path(path)
    chunks = _riff_chunks(p.read_bytes(), p)
    fmt, data = chunks.get(b"fmt "), chunks.get(b"data")
    if fmt is None or data is None or len(fmt) < 16:
        raise ValueError(f"{p}: missing fmt or data chunk")
    tag, channels, rate, _byte_rate, _align, bits = struct.unpack_from("<HHIIHH", fmt)
    if (tag, channels, rate, bits) != (_WAVE_FORMAT_MULAW, 1, 8000, 8):
        raise ValueError(f"{p}: expected 8 kHz mono 8-bit mu-law, got format {tag}, "
                         f"{channels} channel(s), {rate} Hz, {bits} bits")
    return data


def load_pcm_wav(path: str | Path) -> tuple[bytes, int]:
    """PCM16 little-endian mono samples and their rate, from a PCM WAV file."""
    p = Path(path)
    try:
        with wave.open(str(p), "rb") as w:
            if w.getnchannels() != 1 or w.getsampwidth() != 2:
                raise ValueError(f"{p}: expected mono 16-bit PCM, got {w.getnchannels()} "
                                 f"channel(s) of {8 * w.getsampwidth()} bits")
            return w.readframes(w.getnframes()), w.getframerate()
    except wave.Error as exc:
        raise ValueError(f"{p}: not a PCM WAV file ({exc})") from exc


def _ulaw_table() -> np.ndarray[tuple[int], np.dtype[np.int16]]:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    magnitude = (((u & 0x0F) << 3) + 0x84) << ((u >> 4) & 0x07)
    return np.where(u & 0x80, 0x84 - magnitude, magnitude - 0x84).astype(np.int16)


_ULAW: Final = _ulaw_table()


def ulaw_to_pcm16(data: bytes) -> bytes:
    """G.711 mu-law to PCM16 LE (same values as ``audioop.ulaw2lin(data, 2)``)."""
    return _ULAW[np.frombuffer(data, dtype=np.uint8)].astype("<i2").tobytes()


def caller_pcm16(name: str) -> bytes:
    """A caller fixture decoded to 8 kHz PCM16, ready for ``audio/pcm;rate=8000``."""
    return ulaw_to_pcm16(load_ulaw_wav(fixture(name).path))


def silence_pcm16(ms: int, rate: int = 8000) -> bytes:
    """Digital silence of ``ms`` milliseconds."""
    return b"\x00\x00" * (rate * ms // 1000)


@functools.lru_cache(maxsize=32)
def reply_pcm(path: Path) -> bytes:
    """A reply WAV's PCM16 samples, cached (replies are replayed many times)."""
    return load_pcm_wav(path)[0]


def split_text(text: str, n: int) -> list[str]:
    """``text`` in ``n`` pieces of whole words, early pieces first, that join back to it.

    Used to interleave ``outputTranscription`` with ``n`` audio chunks.
    """
    words = text.split()
    out: list[str] = []
    started = False
    for k in range(n):
        piece = " ".join(words[-(-k * len(words) // n):-(-(k + 1) * len(words) // n)])
        if piece and started:
            piece = " " + piece
        started = started or bool(piece)
        out.append(piece)
    return out
