"""A model that goes quiet: when a reply is owed and none comes, noticed and recovered.

The Live model sometimes sends nothing at all after the caller's turn, after a tool response
or after an ``interrupted``: no audio, no ``turnComplete``. The caller says "hello?" into dead
air and hangs up. :class:`StallWatch` is the sans-I/O core of the per-call watchdog that
catches it (:mod:`gateway.watchdog` runs it): it is told what happens on the call, with times,
and says when to take the next step.

A reply is owed (the watch is *armed*) from:

* the end of the caller's speech, as the gateway itself measures it: frames whose peak is
  above the bridge's speech threshold (the signal that also times each turn's response
  latency), counted only while the agent is not being heard (no model turn open, and the
  turn's end mark confirmed played by the carrier, or by the gateway's clock for a carrier
  without marks) and not in the echo tail right after, and only once they span
  ``min_speech_s`` (a click or a cough is not a turn). Every further speech frame moves the
  deadline on: the clock runs from the *end* of the speech. This signal works whatever the
  setup asks for, and needs no transcription;
* an ``inputTranscription`` from the service (it heard words) while the agent is not heard:
  arms an idle watch too, for a caller too quiet for the energy threshold, but never moves a
  deadline (the service sends it late);
* a blocking tool's response sent to the model; an ``interrupted`` (the model should answer
  what the caller is saying); a text input that asks the model to speak (the greeting).

It is disarmed by the first reply audio, or by a tool call (the model answered; it now waits
for us). Each step then waits for reply audio: ``timeout_s`` from the reply being owed to a
stall (step 1, *nudge*: a text input), then ``step_s`` for each of step 2 (*resume*: a new
session with the newest handle, hearing the caller's held audio again) and step 3 (the
recorded *apology*, then the end of the call). While the Live session is not open or a tool
runs, a due step waits (:meth:`StallWatch.postpone`): the gateway, not the model, is what the
call waits for then. Every stall ends one way (:class:`StallOutcome`), counted and kept on
the call's record.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field
from typing import Final

from gateway.errors import GatewayError

MAX_RECORDS: Final = 100  # stalls kept per call (the counts cover them all)
DEFAULT_TIMEOUT_S: Final = 2.0
DEFAULT_STEP_S: Final = 1.0


class StallTrigger(enum.Enum):
    """Why a reply was owed when the model went quiet."""

    CALLER = "caller"  # the caller finished speaking
    TOOL_RESPONSE = "tool_response"  # a blocking tool's answer was sent
    INTERRUPTED = "interrupted"  # the caller talked over the model; no new turn came
    PROMPTED = "prompted"  # a text input asked the model to speak (the greeting)


class StallOutcome(enum.Enum):
    """How a stall ended: the ``outcome`` label of ``voicegw_stalls_total``."""

    NUDGED = "nudged"  # the model answered the text input
    RESUMED = "resumed"  # a resumed session answered
    APOLOGISED = "apologised"  # nothing answered: the apology played and the call ended
    ABANDONED = "abandoned"  # the call ended first (the caller hung up into the silence)


class Watch(enum.Enum):
    IDLE = "idle"  # no reply owed: the model is speaking, or nobody is waiting for it
    ARMED = "armed"  # a reply is owed; no model audio yet
    NUDGED = "nudged"  # stalled: the text input went; waiting again
    RESUMING = "resuming"  # still quiet: a resumed session was asked for
    APOLOGISING = "apologising"  # still quiet: the apology plays and the call ends


_MOVES: Final = {
    Watch.IDLE: {Watch.ARMED},
    Watch.ARMED: {Watch.IDLE, Watch.NUDGED},
    Watch.NUDGED: {Watch.IDLE, Watch.RESUMING},
    Watch.RESUMING: {Watch.IDLE, Watch.APOLOGISING},
    Watch.APOLOGISING: set[Watch](),
}
# The outcome of a stall that reply audio ends, by the step it was at.
_ANSWERED: Final = {Watch.NUDGED: StallOutcome.NUDGED, Watch.RESUMING: StallOutcome.RESUMED}


class Step(enum.Enum):
    """What :meth:`StallWatch.due` says to do now."""

    NUDGE = "nudge"
    RESUME = "resume"
    APOLOGISE = "apologise"


@dataclass(frozen=True, slots=True)
class StallTimes:
    """The watchdog's settings; ``timeout_s`` 0 turns it off."""

    timeout_s: float = DEFAULT_TIMEOUT_S  # reply owed -> stall (step 1)
    step_s: float = DEFAULT_STEP_S  # wait after the nudge, and after the resume
    min_speech_s: float = 0.2  # caller speech this long (or longer) owes a reply
    speech_gap_s: float = 0.6  # a pause this long starts a new utterance
    echo_tail_s: float = 0.3  # after the agent was heard, speech this soon may be its echo

    def __post_init__(self) -> None:
        for name in ("timeout_s", "min_speech_s", "speech_gap_s", "echo_tail_s"):
            if not getattr(self, name) >= 0:  # also refuses NaN
                raise ValueError(f"stall {name} must be >= 0")
        if not self.step_s > 0:
            raise ValueError("stall step_s must be > 0")

    @property
    def enabled(self) -> bool:
        return self.timeout_s > 0


@dataclass(frozen=True, slots=True)
class StallRecord:
    at_s: float  # when it was noticed (step 1), seconds since the call started
    trigger: StallTrigger
    outcome: StallOutcome
    quiet_ms: float  # reply owed -> reply audio (or the apology, or the call's end)


@dataclass(slots=True)
class StallStats:
    counts: dict[StallOutcome, int] = field(
        default_factory=lambda: dict.fromkeys(StallOutcome, 0))
    records: deque[StallRecord] = field(default_factory=lambda: deque(maxlen=MAX_RECORDS))

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def add(self, record: StallRecord) -> None:
        self.counts[record.outcome] += 1
        self.records.append(record)


class StallWatch:
    """One call's watch; times are ``time.perf_counter()`` values, ``t0`` the call's start."""

    def __init__(self, times: StallTimes, stats: StallStats, t0: float) -> None:
        self.times = times
        self.stats = stats
        self.t0 = t0
        self.state = Watch.IDLE
        self.deadline: float | None = None
        self._owed_since = 0.0
        self._trigger = StallTrigger.CALLER
        self._noticed = 0.0
        self._speech_from: float | None = None  # the current utterance's first speech frame
        self._speech_last: float | None = None
        self._audible_at: float | None = None  # last speech frame heard while the agent was

    def _move(self, new: Watch) -> None:
        if new not in _MOVES[self.state]:
            raise GatewayError(f"illegal stall watch move {self.state.value} -> {new.value}")
        self.state = new

    @property
    def stalled(self) -> bool:
        return self.state in (Watch.NUDGED, Watch.RESUMING, Watch.APOLOGISING)

    # -- what happens on the call --------------------------------------------------------

    def caller_speech(self, at: float, audible: bool) -> None:
        """A caller frame with speech energy; ``audible``: the caller may be hearing the
        agent (a model turn open, or its audio not confirmed played)."""
        t = self.times
        if audible:
            self._audible_at, self._speech_from = at, None
            return
        if self._audible_at is not None and at - self._audible_at < t.echo_tail_s:
            return
        if self._speech_from is None or self._speech_last is None \
                or at - self._speech_last > t.speech_gap_s:
            self._speech_from = at
        self._speech_last = at
        if at - self._speech_from < t.min_speech_s:
            return
        if self.state is Watch.IDLE:
            self._arm(at, StallTrigger.CALLER)
        elif self.state is Watch.ARMED:
            # The clock runs from the end of the caller's speech; a recovery step's does not
            # wait for a caller saying "hello?" into the silence.
            self._owed_since, self.deadline = at, at + t.timeout_s

    def heard_caller(self, at: float, audible: bool) -> None:
        """The service transcribed the caller's words."""
        if self.state is Watch.IDLE and not audible:
            self._arm(at, StallTrigger.CALLER)

    def asked(self, at: float, trigger: StallTrigger) -> None:
        """Something the model must answer: a tool response, an ``interrupted``, a prompt."""
        if self.state is Watch.IDLE:
            self._arm(at, trigger)
        elif self.state is Watch.ARMED and self.deadline is not None \
                and at + self.times.timeout_s > self.deadline:
            self._owed_since, self._trigger = at, trigger
            self.deadline = at + self.times.timeout_s

    def model_answered(self, at: float) -> StallRecord | None:
        """Reply audio (or a tool call) came: disarmed; the stall it ends, if any."""
        self._speech_from = self._speech_last = None
        if self.state is Watch.ARMED:
            self._move(Watch.IDLE)
            self.deadline = None
        elif self.state in _ANSWERED:
            return self._end(_ANSWERED[self.state], at, Watch.IDLE)
        return None

    def session_opened(self, at: float) -> None:
        """A new Live session (a resume, a reconnect): it gets a step's time to answer."""
        if self.deadline is not None:
            self.deadline = max(self.deadline, at + self.times.step_s)

    def postpone(self, now: float) -> None:
        """A step fell due while the call waits for the gateway (no session, a tool)."""
        if self.deadline is not None:
            self.deadline = max(self.deadline, now + self.times.step_s)

    def due(self, now: float) -> Step | None:
        """The step to take now, if the deadline has passed."""
        if self.deadline is None or now < self.deadline:
            return None
        step = self.times.step_s
        if self.state is Watch.ARMED:
            self._move(Watch.NUDGED)
            self._noticed, self.deadline = now, now + step
            return Step.NUDGE
        if self.state is Watch.NUDGED:
            self._move(Watch.RESUMING)
            self.deadline = now + step
            return Step.RESUME
        if self.state is Watch.RESUMING:
            self._end(StallOutcome.APOLOGISED, now, Watch.APOLOGISING)
            return Step.APOLOGISE
        return None

    def ended(self, at: float) -> StallRecord | None:
        """The call is over; a stall still open was abandoned."""
        if self.state in _ANSWERED and self.deadline is not None:
            return self._end(StallOutcome.ABANDONED, at, None)  # once: _end clears deadline
        return None

    # -- internals -----------------------------------------------------------------------

    def _arm(self, at: float, trigger: StallTrigger) -> None:
        self._move(Watch.ARMED)
        self._owed_since, self._trigger = at, trigger
        self.deadline = at + self.times.timeout_s

    def _end(self, outcome: StallOutcome, at: float, then: Watch | None) -> StallRecord:
        record = StallRecord(round(self._noticed - self.t0, 3), self._trigger, outcome,
                             round((at - self._owed_since) * 1000, 1))
        self.stats.add(record)
        if then is not None:
            self._move(then)
        self.deadline = None
        return record
