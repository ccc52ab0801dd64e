"""Bundled recorded-speech fixtures (test and demo material, not product audio).

``gateway/assets/speech/`` holds short synthetic utterances made by ``make_speech.sh``:
caller lines as 8 kHz mono G.711 mu-law WAV (what arrives from a phone) and agent replies
as 24 kHz mono PCM16 WAV (what the Live API sends back). ``index.json`` lists each file with
its text and duration; its order of ``agent`` entries is the simulator's default reply cycle.

Files are read with the gateway's one WAV reader (:func:`gateway.wav.read_wav`) and decoded
with its one G.711 (:mod:`gateway.audio`).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from gateway.wav import read_wav


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


def load_pcm_wav(path: str | Path) -> tuple[bytes, int]:
    """PCM16 little-endian mono samples and their rate (a mu-law file decoded)."""
    return read_wav(path)


def caller_pcm16(name: str) -> bytes:
    """A caller fixture decoded to 8 kHz PCM16, ready for ``audio/pcm;rate=8000``."""
    pcm, rate = read_wav(fixture(name).path)
    if rate != 8000:
        raise ValueError(f"{name}: a caller fixture is 8 kHz, this one {rate} Hz")
    return pcm


def silence_pcm16(ms: int, rate: int = 8000) -> bytes:
    """Digital silence of ``ms`` milliseconds."""
    return b"\x00\x00" * (rate * ms // 1000)


@functools.lru_cache(maxsize=32)
def reply_pcm(path: Path) -> bytes:
    """A reply WAV's PCM16 samples, cached (replies are replayed many times)."""
    return read_wav(path)[0]


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
