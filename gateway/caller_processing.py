"""Cleaning the caller's audio before the model hears it: echo cancellation and noise
suppression, behind small protocols so the call never imports a DSP library.

Why the gateway: it knows exactly what the caller was played, and when. The playout hands each
reply chunk to :meth:`CallerProcessing.far_end` with the time the carrier starts playing it
(the playout's own clock of back-to-back play-out), and a barge-in's clear cuts what had not
played yet (:meth:`CallerProcessing.cut`). The bridge runs each caller frame through
:meth:`CallerProcessing.near_end` between decoding and resampling for the Live API.

Processing runs at the line's rate (8 kHz on most phone lines), not at the Live API's 16 kHz:
the reference is then exactly the audio the caller was played (no resampling of it, no
resampler delay on the caller path, half the samples to filter on an 8 kHz line), and an
8 kHz line holds nothing above 4 kHz to clean anyway.

The echo canceller's filter is short and sits at the echo's delay, which
:class:`gateway.echo_path.EchoPath` finds by correlating the caller's audio with the reference;
until it has learnt there, :class:`gateway.echo_gate.EchoGate` replaces what the reply can
explain with the line's own background. All of it is bypassed while nothing has played within
the longest echo delay (most of the caller's speech, when the agent is silent): the caller's
audio then passes untouched, bit for bit, and costs nothing. The adapted filter is kept, so
the next reply starts converged. The library is plugged in by the server
(:mod:`gateway.voice_dsp`) through :class:`ProcessingFactory`; pure: no I/O.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass
from typing import Final, Protocol

from gateway.audio import Resampler, rms
from gateway.echo_gate import EchoGate
from gateway.echo_path import MAX_DELAY_S, EchoPath

FRAME_MS: Final = 20  # what the stages take, and what carriers send
# A reference not yet due (the model's reply arrives faster than it plays) is kept up to
# this long; a reply longer than that ahead of its play-out is not a phone call.
MAX_AHEAD_S: Final = 60.0
# Reference due but not yet matched by caller audio (caller frames arriving late, in bursts)
# beyond this is stale: the oldest is dropped, so the two stay in step.
MAX_DUE_S: Final = 0.5
GAP_S: Final = 0.002  # reply audio sent this much after the last had played: a gap
# An echo canceller only takes away: a frame it makes louder passes unprocessed (a filter
# still converging, or one that learnt the caller's own speech as echo, would otherwise play
# the agent's voice, inverted, into the model's ear). Made louder by far (twice the input
# plus DIVERGED_RMS, loud enough for an activity detector) in RESET_AFTER frames in a row
# (0.5 s): the filter has diverged, and the canceller starts afresh.
DIVERGED_RMS: Final = 300
RESET_AFTER: Final = 25
# The canceller's filter starts this long before the echo's estimated delay: the delay is
# the echo path's strongest tap, and a handset or hybrid responds a little before it too.
LEAD_S: Final = 0.008
# The echo gate stands in front of a filter at a newly found delay until the filter has
# learnt: for SETTLE_S of reply in a row (counted where the echo should be), no frame came out
# louder than the line's background by more than SETTLED_DB (a detector that tracks the floor
# hears 10 dB), or each took at least TAKEN_DB off. A frame that does not counts the stretch
# again from zero. At most GATE_MAX_S (an echo no linear filter can take, or long double-talk:
# the gate would hold back soft speech all call). A delay that moves by more than the filter
# can absorb is learnt again (the path changed: a transfer, a new leg).
SETTLE_S: Final = 0.5
SETTLED_DB: Final = 6.0
TAKEN_DB: Final = 20.0
GATE_MAX_S: Final = 3.0
MAX_COUPLINGS: Final = 200
ECHO_EXPECTED_RMS: Final = 300  # reference frames this loud echo above a quiet line's floor
_SETTLED: Final = 10 ** (SETTLED_DB / 20)
_TAKEN: Final = 10 ** (TAKEN_DB / 20)
# Reference heard with no echo found in it, for this long: the echo is too weak to find, and
# then too weak to matter; the gate steps aside rather than hold back double-talk all call.
GIVE_UP_S: Final = 3.0


class EchoState(enum.Enum):
    """Where a call's echo canceller stands; the gate holds back what the reply can explain
    while it is SEARCHING or LEARNING."""

    SEARCHING = "searching"  # no echo delay found yet
    LEARNING = "learning"  # the filter is at the echo, not yet shown to take it
    SETTLED = "settled"  # the filter takes the echo
    ABSENT = "absent"  # GIVE_UP_S of reply with no echo found: too weak to matter


_ECHO_MOVES: Final = {
    EchoState.SEARCHING: {EchoState.LEARNING, EchoState.ABSENT},
    EchoState.ABSENT: {EchoState.LEARNING},
    # Again LEARNING: the delay moved by more than the filter absorbs, and it starts afresh.
    EchoState.LEARNING: {EchoState.LEARNING, EchoState.SETTLED},
    EchoState.SETTLED: {EchoState.LEARNING},
}
_GATED: Final = {EchoState.SEARCHING, EchoState.LEARNING}


class CallerProcessing(Protocol):
    """Caller frames in, cleaned frames out; the far end (what the caller was played) kept
    as the echo canceller's reference. PCM16 little-endian mono throughout."""

    def near_end(self, pcm: bytes, received: float) -> bytes:
        """One caller frame at the line's rate, received at ``received`` (perf_counter);
        the cleaned audio (the same length over time; a frame may be held back)."""

    def far_end(self, pcm: bytes, played_at: float) -> None:
        """Reply audio the gateway sent, at the carrier's outbound rate, starting to play at
        ``played_at`` (perf_counter)."""

    def cut(self, at: float) -> None:
        """A clear: reference that would have played from ``at`` on never plays."""


class EchoStage(Protocol):
    """One library's echo canceller: one frame of caller audio and the reference that
    played with it (both ``frame_bytes`` long) in, the caller's audio less the echo out."""

    frame_bytes: int
    tail_s: float  # how long an echo response it models, from where the reference is put

    def process(self, near: bytes, far: bytes) -> bytes: ...

    def reset(self) -> None:
        """Forget what it has learnt (a diverged filter)."""


class NoiseStage(Protocol):
    frame_bytes: int

    def process(self, near: bytes) -> bytes: ...


@dataclass(frozen=True, slots=True)
class LineProcessing:
    """Which cleaning a call gets."""

    echo_cancellation: bool = True
    noise_suppression: bool = False

    @property
    def any(self) -> bool:
        return self.echo_cancellation or self.noise_suppression

    def for_agent(self, echo: bool | None, noise: bool | None) -> LineProcessing:
        """The agent's own choice where it made one (None: the gateway's default)."""
        return LineProcessing(self.echo_cancellation if echo is None else echo,
                              self.noise_suppression if noise is None else noise)


class ProcessingFactory(Protocol):
    """Builds a call's processing (the server plugs the library's adapter in)."""

    def __call__(self, choice: LineProcessing, rate: int,
                 reference_rate: int) -> CallerProcessing | None: ...


class ReferenceLine:
    """The far end, in step with the caller's audio.

    Chunks wait in play-out order until the caller audio received reaches their play-out
    time; then they are due and are consumed sample for sample with the caller's audio. The
    echo of a chunk arrives one network round trip and the echo path later, which is the delay
    the canceller's tail models.
    """

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._ahead: deque[tuple[float, bytes]] = deque()
        self._ahead_bytes = 0
        self._due = bytearray()
        self._max_ahead = int(MAX_AHEAD_S * rate) * 2
        self._max_due = int(MAX_DUE_S * rate) * 2
        self.silent_s = float("inf")  # how long the reference taken has been silence
        # Where the reference resumes after a gap (a chunk sent after the one before had
        # finished playing): the carrier may start it up to a frame later than sent, and the
        # echo moves by as much. ``resumed`` says one became due with the latest take.
        self._ends_at: float | None = None
        self._gaps: deque[float] = deque(maxlen=64)
        self.resumed = False

    def add(self, pcm: bytes, at: float) -> None:
        if self._ends_at is not None and at - self._ends_at > GAP_S:
            self._gaps.append(at)
        self._ends_at = at + len(pcm) / 2 / self.rate
        self._ahead.append((at, pcm))
        self._ahead_bytes += len(pcm)
        while self._ahead_bytes > self._max_ahead:
            self._ahead_bytes -= len(self._ahead.popleft()[1])

    def _arrive(self, now: float) -> None:
        gaps = self._gaps
        self.resumed = bool(gaps) and gaps[0] <= now
        while gaps and gaps[0] <= now:
            gaps.popleft()
        ahead = self._ahead
        while ahead and ahead[0][0] <= now:
            pcm = ahead.popleft()[1]
            self._ahead_bytes -= len(pcm)
            self._due += pcm
        if len(self._due) > self._max_due:
            del self._due[:len(self._due) - self._max_due]

    def cut(self, at: float) -> None:
        self._ends_at = None
        self._gaps.clear()
        self._due.clear()
        kept: deque[tuple[float, bytes]] = deque()
        for start, pcm in self._ahead:
            if start < at:
                keep = min(len(pcm), 2 * int((at - start) * self.rate))
                kept.append((start, pcm[:keep]))
        self._ahead = kept
        self._ahead_bytes = sum(len(p) for _, p in kept)

    def idle(self, size: int, now: float, tail_s: float) -> bool:
        """Nothing has played for longer than ``tail_s``: the ``size`` bytes of caller audio
        received at ``now`` hold no echo (and are counted as silence)."""
        if self._due or self.silent_s <= tail_s + 0.1 \
                or (self._ahead and self._ahead[0][0] <= now):
            return False
        self.silent_s += size / 2 / self.rate
        return True

    def take(self, size: int, now: float) -> bytes | None:
        """``size`` bytes of reference for caller audio received at ``now``; None where none
        has played."""
        self._arrive(now)
        if not self._due:
            self.silent_s += size / 2 / self.rate
            return None
        self.silent_s = 0.0
        out = bytes(self._due[:size])
        del self._due[:size]
        return out + bytes(size - len(out))


class LineCleaner:
    """:class:`CallerProcessing` from an echo stage and/or a noise stage."""

    def __init__(self, rate: int, reference_rate: int, echo: EchoStage | None,
                 noise: NoiseStage | None) -> None:
        if echo is not None and noise is not None and echo.frame_bytes != noise.frame_bytes:
            raise ValueError("the echo and noise stages must take the same frames")
        self.rate = rate
        self.echo, self.noise = echo, noise
        self.reference = ReferenceLine(rate)
        self._to_line = Resampler(reference_rate, rate) if reference_rate != rate else None
        self._held = b""
        self.frames = 0  # frames run through the echo stage
        self.louder = 0  # of which came out louder than they went in, and passed unprocessed
        self.resets = 0
        self._louder_run = 0
        if echo is not None:
            frame = echo.frame_bytes // 2
            self.window_s = MAX_DELAY_S + echo.tail_s  # the longest an echo lasts
            self.path = EchoPath(rate, frame)
            self.gate = EchoGate(frame, window_frames=-(-int(MAX_DELAY_S * rate) // frame) + 1)
        self.echo_state = EchoState.SEARCHING
        self._lag: int | None = None  # where the echo stage's filter was put
        self._settling = 0.0  # seconds of reference since the filter was last put to learn
        self._clean_run = 0.0  # seconds of echo in a row the filter has taken
        self._was_playing = False
        self._couplings: list[float] = []  # the echo's level, frames of the clean run
        self._searching = 0.0  # seconds of reference without an echo found

    def far_end(self, pcm: bytes, played_at: float) -> None:
        if self.echo is None:
            return
        if self._to_line is not None:
            pcm = self._to_line.process(pcm)
        self.reference.add(pcm, played_at)

    def cut(self, at: float) -> None:
        self.reference.cut(at)
        if self._to_line is not None:
            self._to_line.reset()

    def near_end(self, pcm: bytes, received: float) -> bytes:
        stage = self.echo or self.noise
        if stage is None:
            return pcm
        if self.noise is None and self.echo is not None \
                and self.reference.idle(len(pcm), received, self.window_s):
            out, self._held = self._held + pcm, b""  # untouched, nothing held back
            size = self.echo.frame_bytes
            for i in range(0, len(out) - size + 1, size):
                self.gate.listen(out[i:i + size])  # the line's background, for comfort noise
            return out
        data = self._held + pcm
        size = stage.frame_bytes
        usable = len(data) - len(data) % size
        self._held = data[usable:]
        # A message of several frames (100 ms from some carriers) arrives when its last one
        # ends: each earlier frame was spoken that much earlier.
        per_byte = 1 / (2 * self.rate)
        return b"".join(self._frame(data[i:i + size], received - (usable - i - size) * per_byte)
                        for i in range(0, usable, size))

    def _frame(self, near: bytes, received: float) -> bytes:
        echo = self.echo
        if echo is not None:
            far = self.reference.take(len(near), received)
            # Skipped once the whole echo window holds silence: nothing to cancel.
            if far is not None or self.reference.silent_s <= self.window_s + 0.1:
                near = self._echo(echo, near, far)
            else:
                self.gate.listen(near)
        return near if self.noise is None else self.noise.process(near)

    def _echo(self, echo: EchoStage, near: bytes, far: bytes | None) -> bytes:
        """The echo stage's filter sits at the echo's delay once :class:`EchoPath` has found
        it; until it has learnt there, :class:`EchoGate` holds back what the reply explains."""
        path, gate = self.path, self.gate
        far_rms = rms(far) if far is not None else 0
        path.push(near, far, far_rms)
        gate.reference(far_rms)
        frame_s = len(near) / 2 / self.rate
        playing = gate.playing
        if (self.reference.resumed or (playing and not self._was_playing)) \
                and self.echo_state is EchoState.SETTLED:
            # A reply after a silence, or after a gap in one: the carrier may start playing it
            # a little earlier or later than the last (its jitter buffer, its frame clock),
            # which moves the echo under the filter. The gate stands in again until the
            # filter has shown it still takes the echo.
            self._learn()
        self._was_playing = playing
        lag = path.delay
        if lag is not None and (self._lag is None or not
                                0 <= lag - self._lag <= echo.tail_s * self.rate * 0.75):
            if self._lag is not None:
                echo.reset()
                self.resets += 1
            self._lag = max(0, lag - int(LEAD_S * self.rate))
            self._learn()
        if self._lag is not None:
            aligned = path.reference(self._lag)
            cleaned = self._cancel(echo, near, aligned)
            # Judged only where the echo should be (its reference has sound): in a pause of
            # the reply the line is background alone, which says nothing of the filter.
            if self.echo_state is EchoState.LEARNING and rms(aligned) > ECHO_EXPECTED_RMS:
                self._settling += frame_s
                if self._learnt(near, cleaned, frame_s):
                    self._move(EchoState.SETTLED)
            near = cleaned
        elif playing:
            self._searching += frame_s
            if self.echo_state is EchoState.SEARCHING and self._searching >= GIVE_UP_S:
                self._move(EchoState.ABSENT)
        if not playing:
            gate.listen(near)
            return near
        return gate.apply(near) if self.echo_state in _GATED else near

    def _move(self, new: EchoState) -> None:
        if new not in _ECHO_MOVES[self.echo_state]:
            raise ValueError(f"illegal echo move {self.echo_state.value} -> {new.value}")
        self.echo_state = new

    def _learn(self) -> None:
        """The filter has to show again that it takes the echo."""
        self._move(EchoState.LEARNING)
        self._settling = self._clean_run = 0.0

    def _learnt(self, near: bytes, cleaned: bytes, frame_s: float) -> bool:
        out = rms(cleaned)
        taken = out <= _SETTLED * self.gate.floor or out * _TAKEN <= rms(near)
        if taken:
            self._clean_run += frame_s
            if len(self._couplings) < MAX_COUPLINGS and self.gate.loudest:
                self._couplings.append(rms(near) / self.gate.loudest)
        else:
            self._clean_run = 0.0
            self._couplings.clear()
        if self._clean_run >= SETTLE_S or self._settling >= GATE_MAX_S:
            self.gate.learnt(self._couplings)
            self._couplings.clear()
            return True
        return False

    def _cancel(self, echo: EchoStage, near: bytes, far: bytes) -> bytes:
        self.frames += 1
        cleaned = echo.process(near, far)
        before, after = rms(near), rms(cleaned)
        if after > 2 * before + DIVERGED_RMS:
            self._louder_run += 1
            if self._louder_run >= RESET_AFTER:
                echo.reset()
                self.resets += 1
                self._louder_run = 0
        else:
            self._louder_run = 0
        if after <= before:
            return cleaned
        self.louder += 1
        return near
