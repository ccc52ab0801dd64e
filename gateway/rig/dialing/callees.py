"""Who is at the other end of a number the gateway dials (test and demo tooling).

A :class:`Callee` says what happens when the number is rung: busy, no answer, a failure, or an
answer by a person (who says "hello?" and waits) or a machine (a greeting, a beep, then it
records). :func:`by_last_digit` gives every number a callee without a list, for campaigns of
thousands of contacts.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

import numpy as np

from gateway.audio import pcm16_to_ulaw
from gateway.carriers.twilio import FORMAT as ULAW_8K
from gateway.rig.phone import Speech, Utterance, When, load_utterance
from gateway.rig.simulator.speech import fixture


class CalleeKind(enum.Enum):
    HUMAN = "human"
    MACHINE = "machine"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Callee:
    kind: CalleeKind
    utterances: tuple[Utterance, ...] = ()  # what the callee says once answered
    ring_s: float = 0.3
    # Where the callee's audio has a beep: where it ends, in ms from the answer.
    beep_end_ms: float | None = None
    tail_ms: int = 800  # silence heard after the last utterance before hanging up
    max_s: float = 30.0


BEEP_HZ: Final = 1000.0
_RATE: Final = 8000


def tone(hz: float, ms: int, rate: int = _RATE, level: float = 0.3) -> Speech:
    """A beep, with 5 ms ramps (no click), on the line as mu-law."""
    n = int(rate * ms / 1000)
    t = np.arange(n) / rate
    wave = level * 32767 * np.sin(2 * np.pi * hz * t)
    ramp = min(40, n // 4)
    if ramp:
        env = np.ones(n)
        env[:ramp] = np.linspace(0, 1, ramp)
        env[-ramp:] = np.linspace(1, 0, ramp)
        wave *= env
    return Speech(pcm16_to_ulaw(wave.astype("<i2").tobytes()), ULAW_8K)


def silence(ms: int, rate: int = _RATE) -> Speech:
    return Speech(pcm16_to_ulaw(b"\0\0" * int(rate * ms / 1000)), ULAW_8K)


def _fixture(name: str) -> Speech:
    return silence(0) + load_utterance(fixture(name).path)  # on the line: 8 kHz mu-law


def person(*, hello: str = "caller_goodbye", then: str | None = None) -> Callee:
    """Says a short phrase as soon as the call connects, waits for the agent, maybe answers."""
    said = [Utterance(_fixture(hello), When.START, delay_ms=300, text="hello?")]
    if then is not None:
        said.append(Utterance(_fixture(then), When.AFTER_REPLY, delay_ms=400))
    return Callee(CalleeKind.HUMAN, tuple(said))


def machine(*, beep_hz: float = BEEP_HZ, beep_ms: int = 400, beep: bool = True) -> Callee:
    """A voicemail: a greeting (several phrases back to back), the beep, then it records."""
    greeting = (_fixture("agent_greeting") + silence(250) + _fixture("agent_options")
                + silence(250) + _fixture("agent_moved") + silence(300))
    audio = greeting + tone(beep_hz, beep_ms) if beep else greeting
    end = audio.seconds * 1000 + 200 if beep else None  # + the utterance's start delay
    return Callee(CalleeKind.MACHINE, (Utterance(audio, When.START, delay_ms=200),),
                  beep_end_ms=end, tail_ms=60_000, max_s=120.0)


Book = Callable[[str], Callee]


def book(entries: Mapping[str, Callee], default: Callee | None = None) -> Book:
    table = dict(entries)
    fallback = default or person()
    return lambda number: table.get(number, fallback)


@dataclass(frozen=True, slots=True)
class DigitBook:
    """A callee by the number's last digit: 0-5 a person, 6 a machine, 7 busy, 8 no answer,
    9 a failure."""

    people: Callee = field(default_factory=person)
    machines: Callee = field(default_factory=machine)

    def __call__(self, number: str) -> Callee:
        digit = number[-1:] if number[-1:].isdigit() else "0"
        kind = {"6": self.machines, "7": Callee(CalleeKind.BUSY),
                "8": Callee(CalleeKind.NO_ANSWER), "9": Callee(CalleeKind.FAIL)}
        return kind.get(digit, self.people)


def by_last_digit() -> Book:
    return DigitBook()
