"""Answering-machine detection on the answered audio of an outbound call. Pure: numpy only.

A person who picks up says something short ("hello?", "yeah, who's this?") and then waits; a
voicemail greeting talks on for seconds, with only the short pauses of read speech, and often
ends in a beep. :class:`MachineDetector` hears the first seconds of the callee's audio in 20 ms
frames, on audio time (samples fed), never the wall clock, and reports:

* one :class:`Verdict` (person, machine or unknown) and the cue that decided it;
* after a machine verdict, the voicemail's :class:`Beep` once the tone has ended, or
  :class:`GreetingOver` once the greeting has been followed by enough silence that a message
  can start without talking over it.

Speech is a frame well above an adaptive noise floor (the quietest frame of the last
``floor_window_ms``), so steady line noise at any level does not count as speech. A beep is a
steady single tone: over ``beep_min_ms`` or longer, one frequency of a :class:`ToneBank`
over the usual voicemail beep range holds most of each frame's power and stays put; vowels
spread their power over several harmonics and glide, so they do not pass. Tone frames are
never speech. Costs a few tens of microseconds per 20 ms frame (``benchmarks/amd.py``).
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from gateway.dialing.model import AnsweredBy
from gateway.goertzel import ToneBank, mean_square

FRAME_MS: Final = 20
_FULL_SCALE_MS: Final = 32768.0 ** 2  # dBov: mean square relative to PCM16's overload point


@dataclass(frozen=True, slots=True)
class AmdSettings:
    """Thresholds and limits; times are ms of audio, levels dB (dBov: relative to PCM16 full
    scale, where a full-scale sine is -3 dBov)."""

    speech_margin_db: float = 10.0  # a speech frame is this far above the noise floor ...
    min_speech_dbov: float = -50.0  # ... and at least this loud ...
    speech_range_db: float = 20.0  # ... and within this of the greeting's loudest frame
    floor_window_ms: int = 1500  # the noise floor: the quietest frame of this much audio
    min_word_ms: int = 60  # speech frames in a row before a word counts (clicks do not)
    word_gap_ms: int = 260  # a gap this long ends a word (shorter ones are inside words)
    max_greeting_ms: int = 1500  # talking longer than this (short gaps included): a machine
    human_silence_ms: int = 800  # silence after a short greeting: a person waiting for us
    initial_silence_ms: int = 3000  # nobody spoke for this long: unknown (treated as a person)
    max_decision_ms: int = 5000  # undecided this long: unknown
    beep_low_hz: float = 350.0  # the bank of frequencies a beep is looked for at
    beep_high_hz: float = 2200.0
    beep_step_hz: float = 12.5  # fine enough that a tone between two loses ~5 % of its power
    beep_purity: float = 0.8  # share of a frame's power (above the noise) in its one tone
    beep_drift_hz: float = 12.5  # how far a beep's frequency may wander from where it began
    beep_steady_db: float = 1.5  # how far its level may wander (a vowel's swells and fades)
    beep_min_ms: int = 80  # a shorter tone is not a beep
    beep_clear_ms: int = 40  # a beep is followed by this much quiet (a sung vowel by a word)
    beep_max_ms: int = 3000  # a longer one is not a voicemail beep either (a fax, a tone)
    greeting_over_ms: int = 1200  # after a machine verdict, silence that ends the greeting
    max_beep_wait_ms: int = 30000  # after a machine verdict, give up waiting: greeting over

    def __post_init__(self) -> None:
        if not 0 < self.beep_low_hz < self.beep_high_hz or self.beep_step_hz <= 0:
            raise ValueError("beep range: 0 < beep_low_hz < beep_high_hz, beep_step_hz > 0")
        if self.beep_min_ms < FRAME_MS or self.beep_max_ms < self.beep_min_ms:
            raise ValueError(f"beep_min_ms >= {FRAME_MS} and beep_max_ms >= beep_min_ms")


class Cue(enum.StrEnum):
    """What decided the verdict."""

    SHORT_GREETING = "short greeting"  # a few words, then silence: a person waiting
    LONG_GREETING = "long greeting"  # talking on for seconds: a recorded greeting
    BEEP = "beep"  # a voicemail beep before anything else decided
    SILENCE = "silence"  # nobody spoke
    TIMEOUT = "timeout"  # spoke, but neither short nor long by the time limit


@dataclass(frozen=True, slots=True)
class Verdict:
    answered_by: AnsweredBy
    at_ms: float  # audio time (ms of audio fed) when decided
    why: Cue


@dataclass(frozen=True, slots=True)
class Beep:
    """Reported once the tone has ended (at ``end_ms`` plus one frame)."""

    start_ms: float
    end_ms: float
    hz: float


@dataclass(frozen=True, slots=True)
class GreetingOver:
    """After a machine verdict with no beep: a message can start now."""

    at_ms: float
    timed_out: bool = False  # True: the greeting did not end by ``max_beep_wait_ms``


AmdEvent = Verdict | Beep | GreetingOver


class Sound(enum.Enum):
    """What one frame is."""

    QUIET = "quiet"  # line noise or nothing
    SPEECH = "speech"
    TONE = "tone"  # one steady frequency holds the frame: maybe a beep, maybe a held vowel


class Phase(enum.Enum):
    WAITING = "waiting"  # nobody has spoken yet
    SPEAKING = "speaking"  # a greeting is going on, undecided
    PAUSED = "paused"  # silence after some speech, undecided
    AWAITING_BEEP = "awaiting beep"  # a machine: listening for its beep or its greeting's end
    DONE = "done"  # nothing more to report


_MOVES: Final[Mapping[Phase, frozenset[Phase]]] = {
    Phase.WAITING: frozenset({Phase.SPEAKING, Phase.AWAITING_BEEP, Phase.DONE}),
    Phase.SPEAKING: frozenset({Phase.PAUSED, Phase.AWAITING_BEEP, Phase.DONE}),
    Phase.PAUSED: frozenset({Phase.SPEAKING, Phase.AWAITING_BEEP, Phase.DONE}),
    Phase.AWAITING_BEEP: frozenset({Phase.DONE}),
    Phase.DONE: frozenset(),
}


def can_move(current: Phase, new: Phase) -> bool:
    return new in _MOVES[current]


def _db(power: float) -> float:
    return 10 * math.log10(power / _FULL_SCALE_MS) if power > 0 else -120.0


@dataclass(slots=True)
class _ToneRun:
    """A steady tone going on, or one that ended and waits for the quiet after it."""

    clear_before: bool  # quiet just before it began (a vowel follows a consonant)
    hz: list[float]  # each frame's strongest frequency
    db: list[float]  # each frame's level
    end_frame: int = 0  # frames fed when it ended (0: going on)
    quiet_after: int = 0
    loud_after: int = 0


class MachineDetector:
    """Person or machine from PCM16LE mono at ``rate`` (8000 or 16000), fed in any sizes."""

    def __init__(self, rate: int = 16000, settings: AmdSettings = AmdSettings()) -> None:
        if rate not in (8000, 16000):
            raise ValueError(f"rate must be 8000 or 16000, got {rate}")
        s = self.settings = settings
        self.rate = rate
        self._frame = rate * FRAME_MS // 1000
        count = int((s.beep_high_hz - s.beep_low_hz) // s.beep_step_hz) + 1
        # At 8 kHz whatever the rate: beeps are well below 4 kHz, and half the samples cost
        # half the time.
        self._bank = ToneBank(8000, 8000 * FRAME_MS // 1000, [
            s.beep_low_hz + i * s.beep_step_hz for i in range(count)])
        self._carry = b""
        self._frames = 0  # whole frames analysed: audio time is frames * FRAME_MS
        self._phase = Phase.WAITING
        self._verdict: Verdict | None = None
        self._levels: deque[float] = deque(maxlen=max(1, s.floor_window_ms // FRAME_MS))
        self._floor_db = math.inf
        self._peak_db = -math.inf  # the loudest speech frame so far
        self._last: deque[Sound] = deque([Sound.QUIET, Sound.QUIET], maxlen=2)
        self._speech_run = 0  # consecutive speech frames
        self._silence_run = 0  # consecutive quiet frames since the last word
        self._talk_frames = 0  # frames from each word's start to its last speech frame
        self._spoken = False  # any word at all (after a machine verdict too)
        self._tone: _ToneRun | None = None  # a tone going on
        self._ended: _ToneRun | None = None  # a tone that ended, not yet confirmed a beep
        self._min_run = max(1, s.min_word_ms // FRAME_MS)
        self._clear_frames = max(1, s.beep_clear_ms // FRAME_MS)

    @property
    def verdict(self) -> Verdict | None:
        return self._verdict

    @property
    def done(self) -> bool:
        return self._phase is Phase.DONE

    @property
    def phase(self) -> Phase:
        return self._phase

    def feed(self, pcm: bytes) -> tuple[AmdEvent, ...]:
        """Analyse ``pcm``; the events its whole frames brought, in order."""
        if self._phase is Phase.DONE:
            return ()
        data = self._carry + pcm
        step = 2 * self._frame
        usable = len(data) - len(data) % step
        self._carry = data[usable:]
        if not usable:
            return ()
        samples = np.frombuffer(data[:usable], dtype="<i2").astype(np.float64)
        out: list[AmdEvent] = []
        for i in range(0, len(samples), self._frame):
            self._frames += 1
            sound = self._sound(samples[i:i + self._frame])
            self._beep(sound, out)
            self._speech(sound, out)
            self._last.append(sound)
            if self.done:
                self._carry = b""
                break
        return tuple(out)

    # -- one frame ----------------------------------------------------------------------

    def _sound(self, block: npt.NDArray[np.float64]) -> Sound:
        s = self.settings
        power = mean_square(block)
        level = _db(power)
        self._levels.append(level)
        self._floor_db = min(self._levels)
        if (level < s.min_speech_dbov or level < self._floor_db + s.speech_margin_db
                or level < self._peak_db - s.speech_range_db):
            return Sound.QUIET
        if self._frame != self._bank.size:  # 16 kHz: the bank listens at 8 kHz
            block = block[::2]
            power = mean_square(block)
        powers = self._bank.powers(block)
        best = int(np.argmax(powers))
        # The noise under a tone is not the tone's fault: its power is taken off first. A sine
        # reads half its power in its own bin.
        noise = 10 ** (self._floor_db / 10) * _FULL_SCALE_MS
        if 2 * powers[best] >= s.beep_purity * max(power - noise, 1e-9):
            self._tone_frame(self._bank.freqs[best], level)
            return Sound.TONE
        self._peak_db = max(self._peak_db, level)
        if self._tone is not None:
            self._tone_over()
        return Sound.SPEECH

    def _tone_frame(self, hz: float, level: float) -> None:
        s, run = self.settings, self._tone
        if run is not None and abs(hz - run.hz[0]) <= s.beep_drift_hz and (
                abs(level - run.db[min(1, len(run.db) - 1)]) <= s.beep_steady_db):
            run.hz.append(hz)
            run.db.append(level)
            return
        if run is not None:
            self._tone_over()
        self._tone = _ToneRun(Sound.QUIET in self._last, [hz], [level])

    def _tone_over(self) -> None:
        """The tone going on has ended: it may be a beep once quiet follows."""
        s, run = self.settings, self._tone
        self._tone = None
        if run is not None and run.clear_before and (
                s.beep_min_ms <= len(run.hz) * FRAME_MS <= s.beep_max_ms):
            run.end_frame = self._frames - 1
            self._ended = run

    def _beep(self, sound: Sound, out: list[AmdEvent]) -> None:
        """A tone that ended is a beep once ``beep_clear_ms`` of quiet follows it."""
        if sound is Sound.QUIET and self._tone is not None:
            self._tone_over()
        run = self._ended
        if run is None or (run.end_frame == self._frames - 1 and sound is not Sound.QUIET):
            return  # (the frame that ended it may hold the tone's last few ms)
        if sound is Sound.QUIET:
            run.quiet_after += 1
        else:
            run.loud_after += 1
        if run.loud_after > 1:
            self._ended = None
        elif run.quiet_after >= self._clear_frames:
            self._ended = None
            if self._verdict is None:
                self._decide(AnsweredBy.MACHINE, Cue.BEEP, out)
            if self._phase is Phase.AWAITING_BEEP:
                end = run.end_frame * FRAME_MS
                out.append(Beep(end - len(run.hz) * FRAME_MS, end, float(np.mean(run.hz))))
                self._move(Phase.DONE)

    def _speech(self, sound: Sound, out: list[AmdEvent]) -> None:
        """Words, pauses and the verdicts they make. A tone is neither speech nor silence."""
        if self._phase is Phase.DONE:
            return
        s = self.settings
        now = self._frames * FRAME_MS
        if sound is Sound.SPEECH:
            self._speech_run += 1
            if self._speech_run >= self._min_run:
                if self._phase is Phase.PAUSED:  # a pause inside the greeting counts
                    self._talk_frames += self._silence_run
                    self._move(Phase.SPEAKING)
                elif self._phase is Phase.SPEAKING:
                    self._talk_frames += self._silence_run  # a gap inside a word
                elif self._phase is Phase.WAITING:
                    self._talk_frames += self._speech_run - 1
                    self._move(Phase.SPEAKING)
                self._silence_run = 0
                self._spoken = True
                self._talk_frames += 1
        elif sound is Sound.QUIET:
            self._speech_run = 0
            self._silence_run += 1
        silence = self._silence_run * FRAME_MS
        if self._phase is Phase.SPEAKING:
            if silence >= s.word_gap_ms:
                self._move(Phase.PAUSED)
            elif self._talk_frames * FRAME_MS >= s.max_greeting_ms:
                self._decide(AnsweredBy.MACHINE, Cue.LONG_GREETING, out)
        elif self._phase is Phase.PAUSED and silence >= s.human_silence_ms and not (
                self._tone or self._ended):
            self._decide(AnsweredBy.HUMAN, Cue.SHORT_GREETING, out)
        elif self._phase is Phase.WAITING and now >= s.initial_silence_ms and not (
                self._tone or self._ended):
            self._decide(AnsweredBy.UNKNOWN, Cue.SILENCE, out)
        elif self._phase is Phase.AWAITING_BEEP:
            waited = now - (self._verdict.at_ms if self._verdict else 0.0)
            if (self._spoken and silence >= s.greeting_over_ms
                    and not (self._tone or self._ended)):
                out.append(GreetingOver(now))
                self._move(Phase.DONE)
            elif waited >= s.max_beep_wait_ms:
                out.append(GreetingOver(now, timed_out=True))
                self._move(Phase.DONE)
            return
        if self._verdict is None and now >= s.max_decision_ms:
            self._decide(AnsweredBy.UNKNOWN, Cue.TIMEOUT, out)

    def _decide(self, answered_by: AnsweredBy, why: Cue, out: list[AmdEvent]) -> None:
        self._verdict = Verdict(answered_by, float(self._frames * FRAME_MS), why)
        out.append(self._verdict)
        self._move(Phase.AWAITING_BEEP if answered_by is AnsweredBy.MACHINE else Phase.DONE)

    def _move(self, new: Phase) -> None:
        if not can_move(self._phase, new):
            raise AssertionError(f"AMD cannot move from {self._phase} to {new}")
        self._phase = new
