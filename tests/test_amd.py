"""Answering-machine detection (gateway/amd.py) on the bundled flite/espeak speech, numpy
tones and noise: fast, no TTS. Figures on a large generated corpus: benchmarks/amd.py."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from gateway.amd import (
    FRAME_MS,
    AmdEvent,
    AmdSettings,
    Beep,
    Cue,
    GreetingOver,
    MachineDetector,
    Phase,
    Verdict,
    can_move,
)
from gateway.audio import Resampler
from gateway.dialing.model import AnsweredBy
from gateway.rig.line_noise import noise_loop
from gateway.rig.line_spec import NoiseKind
from gateway.rig.simulator.speech import fixtures
from gateway.wav import read_wav

RATES = (8000, 16000)


@functools.cache
def speech(name: str, rate: int) -> np.ndarray:
    """A bundled recording at ``rate``, at about -20 dBov active level."""
    path = next(f.path for f in fixtures(None) if f.path.stem == name)
    pcm, src = read_wav(path)
    if src != rate:
        pcm = Resampler(src, rate).process(pcm + bytes(2 * src // 10))
    x = np.frombuffer(pcm, "<i2").astype(np.float64)
    return x * (3300 / np.sqrt(np.mean(x[np.abs(x) > 300] ** 2)))


def silence(seconds: float, rate: int) -> np.ndarray:
    return np.zeros(round(seconds * rate))


def tone(hz: float, seconds: float, rate: int, dbov: float = -14.0) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return np.sqrt(2) * 32768 * 10 ** (dbov / 20) * np.sin(2 * np.pi * hz * t)


def line(x: np.ndarray, rate: int, noise_dbov: float = -55.0,
         kind: NoiseKind = NoiseKind.WHITE) -> bytes:
    noise = np.resize(noise_loop(kind, rate, seed=3), len(x)) * 32768 * 10 ** (noise_dbov / 20)
    return np.clip(np.round(x + noise), -32768, 32767).astype("<i2").tobytes()


def run(pcm: bytes, rate: int, chunk_ms: int = FRAME_MS) -> tuple[AmdEvent, ...]:
    detector = MachineDetector(rate)
    step = 2 * rate * chunk_ms // 1000
    events: list[AmdEvent] = []
    for at in range(0, len(pcm), step):
        events += detector.feed(pcm[at:at + step])
    assert detector.done or detector.verdict is not None
    return tuple(events)


def verdict(events: tuple[AmdEvent, ...]) -> Verdict:
    found = [e for e in events if isinstance(e, Verdict)]
    assert len(found) == 1, events
    return found[0]


def greeting(rate: int) -> np.ndarray:
    """A voicemail greeting: several sentences back to back with the short pauses of read
    speech."""
    parts = [silence(0.4, rate)]
    for name in ("agent_greeting", "agent_moved", "agent_goodbye"):
        parts += [speech(name, rate), silence(0.35, rate)]
    return np.concatenate(parts)


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("name", ["caller_goodbye", "caller_seven_thirty"])
def test_a_short_hello_then_silence_is_a_person(rate: int, name: str) -> None:
    x = np.concatenate([silence(0.5, rate), speech(name, rate), silence(3, rate)])
    v = verdict(run(line(x, rate), rate))
    assert (v.answered_by, v.why) == (AnsweredBy.HUMAN, Cue.SHORT_GREETING)
    end_ms = (0.5 + len(speech(name, rate)) / rate) * 1000
    assert end_ms < v.at_ms <= end_ms + 1200  # the silence after it, not much more


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("hz", [440.0, 1000.0, 1400.0, 2000.0])
def test_a_long_greeting_is_a_machine_and_its_beep_is_found(rate: int, hz: float) -> None:
    g = greeting(rate)
    x = np.concatenate([g, tone(hz, 0.4, rate), silence(1.5, rate)])
    events = run(line(x, rate, -45.0, NoiseKind.PINK), rate)
    v = verdict(events)
    assert (v.answered_by, v.why) == (AnsweredBy.MACHINE, Cue.LONG_GREETING)
    assert v.at_ms < 3000
    beeps = [e for e in events if isinstance(e, Beep)]
    assert len(beeps) == 1
    true_end = (len(g) / rate + 0.4) * 1000
    assert abs(beeps[0].end_ms - true_end) <= 300
    assert abs(beeps[0].hz - hz) <= 15
    assert not any(isinstance(e, GreetingOver) for e in events)


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize(("hz", "seconds"), [(440.0, 0.1), (850.0, 1.0), (1600.0, 0.25)])
def test_a_beep_alone_decides_a_machine(rate: int, hz: float, seconds: float) -> None:
    x = np.concatenate([silence(0.7, rate), tone(hz, seconds, rate, -20.0), silence(1, rate)])
    events = run(line(x, rate, -50.0), rate)
    v = verdict(events)
    assert (v.answered_by, v.why) == (AnsweredBy.MACHINE, Cue.BEEP)
    beep = next(e for e in events if isinstance(e, Beep))
    assert abs(beep.end_ms - (0.7 + seconds) * 1000) <= 300
    assert abs(beep.start_ms - 700) <= 300
    assert v.at_ms <= beep.end_ms + 300  # reported soon after it ended


@pytest.mark.parametrize("rate", RATES)
def test_no_beep_in_speech_the_greeting_over_instead(rate: int) -> None:
    """All the bundled speech as one long greeting: never a beep; the greeting's end is
    reported once silence follows it."""
    names = ("agent_greeting", "caller_book_table", "caller_barge_in", "agent_moved",
             "caller_seven_thirty", "agent_goodbye", "caller_goodbye")
    parts = [silence(0.3, rate)]
    for name in names:
        parts += [speech(name, rate), silence(0.3, rate)]
    talk = np.concatenate(parts[:-1])
    x = np.concatenate([talk, silence(3, rate)])
    events = run(line(x, rate, -50.0, NoiseKind.BABBLE), rate)
    assert verdict(events).answered_by is AnsweredBy.MACHINE
    assert not any(isinstance(e, Beep) for e in events)
    over = [e for e in events if isinstance(e, GreetingOver)]
    assert len(over) == 1 and not over[0].timed_out
    assert len(talk) / rate * 1000 < over[0].at_ms <= len(talk) / rate * 1000 + 1500


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("kind", [NoiseKind.WHITE, NoiseKind.PINK, NoiseKind.CAR])
def test_line_noise_alone_is_nobody_speaking(rate: int, kind: NoiseKind) -> None:
    """Steady line noise at any level is not speech: nobody spoke by the cap, so unknown.
    (Babble alone is voices: under a callee's speech it is measured in benchmarks/amd.py.)"""
    for level in (-60.0, -40.0, -25.0):
        events = run(line(silence(4, rate), rate, level, kind), rate)
        v = verdict(events)
        assert (v.answered_by, v.why, v.at_ms) == (AnsweredBy.UNKNOWN, Cue.SILENCE, 3000.0)
        assert len(events) == 1


def test_digital_silence_is_unknown_at_the_cap() -> None:
    settings = AmdSettings(initial_silence_ms=2000)
    detector = MachineDetector(8000, settings)
    assert detector.feed(bytes(2 * 8000 * 19 // 10)) == ()
    events = detector.feed(bytes(2 * 8000))
    assert events == (Verdict(AnsweredBy.UNKNOWN, 2000.0, Cue.SILENCE),)
    assert detector.done and detector.feed(bytes(3200)) == ()


@pytest.mark.parametrize("rate", RATES)
def test_time_is_counted_in_samples_whatever_the_chunks(rate: int) -> None:
    x = np.concatenate([greeting(rate)[: 3 * rate], silence(0.2, rate),
                        tone(1000, 0.3, rate), silence(1, rate)])
    pcm = line(x, rate, -50.0)
    whole = run(pcm, rate)
    detector = MachineDetector(rate)
    odd: list[AmdEvent] = []
    at, sizes = 0, (7, 333, 1001, 2, 4095)
    for i in range(10_000):
        odd += detector.feed(pcm[at:at + sizes[i % len(sizes)]])
        at += sizes[i % len(sizes)]
        if at >= len(pcm):
            break
    assert tuple(odd) == whole
    assert [type(e) for e in whole] == [Verdict, Beep]


def test_phases_move_only_as_the_table_allows() -> None:
    assert can_move(Phase.WAITING, Phase.SPEAKING)
    assert can_move(Phase.PAUSED, Phase.SPEAKING)
    assert can_move(Phase.SPEAKING, Phase.AWAITING_BEEP)
    assert not can_move(Phase.AWAITING_BEEP, Phase.SPEAKING)
    assert not any(can_move(Phase.DONE, p) for p in Phase)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="rate"):
        MachineDetector(44100)
    with pytest.raises(ValueError, match="beep"):
        AmdSettings(beep_low_hz=2000, beep_high_hz=1000)
