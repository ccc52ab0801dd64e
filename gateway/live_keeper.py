"""Keeps one call's Live session alive across ``goAway``, drops and restarts, and forwards the
caller's audio to it.

A Live connection lives about ten minutes; the service says ``goAway`` shortly before it cuts
the socket, and a connection can also just drop (1006, 1011 "Internal error"). The keeper makes
either invisible to the caller:

* Every caller frame goes through :meth:`LiveKeeper.forward`: kept (in the carrier's own
  encoding, bounded to ``max_held_ms`` of audio), then written to the session if one is open.
  A handle restores the conversation as it was when the handle was issued, not the audio sent
  after it, so on every new connection the keeper replays what it holds: what the caller said
  during a swap, or mid-sentence when a connection dropped, reaches the model. The service
  issues a handle for what it had *read*; frames written shortly before the handle arrived may
  still have been on their way, and the Gemini API does not say which message a handle ends
  at (``lastConsumedClientMessageIndex`` is Vertex-only). So frames written in the last
  ``overlap_s`` before a handle arrived are kept too: after a resume the model may hear that
  much of the caller twice, but never misses the start of a word. While no session is open
  the same buffer holds the caller's audio, so nothing is lost unless a reconnect takes longer
  than the buffer (10 s by default); that loss is counted and logged.
* Messages other than audio (tool responses, keypad notices) sent while no session is open
  wait in a small bounded queue and follow the replayed audio.
* :meth:`connect` opens a session with the newest handle, retrying passing faults with the
  project's retry policy; a fault that no retry can fix (bad key, unknown model, quota, setup
  timeout) raises :class:`LiveFault` so the bridge can apologise instead of leaving dead air.

The link's state is explicit (:class:`LinkState` and its table of legal moves): a ``goAway``
swap is a planned move (``OPEN -> SWAPPING -> CONNECTING``), never the failure path a dropped
connection takes (``OPEN -> DROPPED``, where the close is classified and retries counted).
:meth:`LiveKeeper.restart` takes the same planned path at once, for a model that went quiet
(:mod:`gateway.stall`): a new connection resumes with the newest handle and hears the replay.
The keeper does no parsing and owns no task but the swap it schedules on the call's group.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from gateway import live
from gateway.errors import (
    GatewayError,
    LiveClosedError,
    LiveConnectError,
    LiveSetupTimeoutError,
    PeerError,
)
from gateway.faults import LIVE_RETRY, Decision, Fault, RetryPolicy, classify_close
from gateway.stats import Histogram
from gateway.timing_trace import CallTimings

MAX_HELD_TEXT: Final = 64
# A session that lived this long proved the service works: its failure starts a fresh count.
HEALTHY_AFTER_S: Final = 10.0
DEFAULT_OVERLAP_S: Final = 0.3  # a network round trip and the service's read lag, with room
DEFAULT_HELD_MS: Final = 10_000.0


class LiveFault(PeerError):
    """The Live service cannot serve this call; ``decision`` says why."""

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        super().__init__(decision.why)


class LinkState(enum.Enum):
    IDLE = "idle"  # no session yet: caller audio is held
    CONNECTING = "connecting"
    OPEN = "open"
    SWAPPING = "swapping"  # a goAway: the old session is being closed on purpose
    DROPPED = "dropped"  # the session was lost; a reconnect was decided
    CLOSED = "closed"  # the call is over, or the Live API cannot serve it


_MOVES: Final = {
    LinkState.IDLE: {LinkState.CONNECTING, LinkState.CLOSED},
    LinkState.CONNECTING: {LinkState.OPEN, LinkState.CLOSED},
    LinkState.OPEN: {LinkState.SWAPPING, LinkState.DROPPED, LinkState.CLOSED},
    LinkState.SWAPPING: {LinkState.CONNECTING, LinkState.DROPPED, LinkState.CLOSED},
    LinkState.DROPPED: {LinkState.CONNECTING, LinkState.CLOSED},
    LinkState.CLOSED: set[LinkState](),
}


@dataclass(slots=True)
class KeeperStats:
    sessions: int = 0  # opened
    reconnects: int = 0  # opened after the first: swaps and recoveries
    swaps: int = 0  # reconnects asked for by a goAway
    restarts: int = 0  # reconnects the gateway chose: the model had gone quiet
    drops: int = 0  # sessions lost without being asked to go
    frames_forwarded: int = 0  # caller frames that reached a session (each once)
    frames_replayed: int = 0  # caller frames sent again to a new session
    frames_lost: int = 0  # caller frames dropped because no session was open for too long
    frames_trimmed: int = 0  # frames too old to replay (the caller spoke > buffer since a handle)
    stale_handles: int = 0
    text_dropped: int = 0
    reconnect_gap: Histogram = field(default_factory=Histogram)  # old gone -> new one ready
    forward_latency: Histogram = field(default_factory=Histogram)  # caller frame in -> Live


class LiveLink(Protocol):
    """An open Live session (``gateway.live_client.LiveSession``)."""

    def frames(self) -> AsyncIterator[str | bytes]:
        """Frames until the socket closes: ends when we closed it, raises
        :class:`LiveClosedError` when the peer did or the connection broke."""
    async def send(self, text: str | bytes) -> None: ...
    def send_nowait(self, text: bytes) -> bool: ...
    async def close(self, code: int = 1000, reason: str = "") -> None: ...


LiveConnector = Callable[[str], Awaitable[LiveLink]]
SetupFor = Callable[[str | None], str]  # resumption handle -> setup message
Spawn = Callable[[Coroutine[Any, Any, None]], "asyncio.Task[None]"]
# Caller audio as held (the carrier's encoding) -> PCM16 at the Live API's input rate; a new
# one per replay, since each carries a resampler's state.
ReplayPipeline = Callable[[], Callable[[bytes], bytes]]
Clock = Callable[[], float]


@dataclass(slots=True)
class Frame:
    seq: int
    audio: bytes  # as the carrier sent it
    ms: float
    received: float  # time.perf_counter() when it came from the caller
    written: float | None = None  # when it was last written to a session; None: never
    # A message that belongs at this place in the caller's audio (the gateway's own
    # activityStart/activityEnd, in local turn-taking) instead of audio: a replay sends it
    # where it was, so the new session hears the caller's speech framed as the old one did.
    marker: str | None = None


class LiveKeeper:
    def __init__(self, connect: LiveConnector, spawn: Spawn, replay: ReplayPipeline, *,
                 log: Any, stats: KeeperStats, retry: RetryPolicy = LIVE_RETRY,
                 max_held_ms: float = DEFAULT_HELD_MS, resumption: bool = True,
                 overlap_s: float = DEFAULT_OVERLAP_S, timings: CallTimings | None = None,
                 clock: Clock = time.perf_counter) -> None:
        self._connect = connect
        self._spawn = spawn
        self._replay_pipeline = replay
        self.log = log
        self.stats = stats
        self.retry = retry
        self.max_held_ms = max_held_ms
        self.resumption = resumption
        self.overlap_s = overlap_s
        self.timings = timings
        self._clock = clock
        self.state = LinkState.IDLE
        self.session: LiveLink | None = None
        self.handle: str | None = None
        self._frames: deque[Frame] = deque()  # caller audio since the newest handle
        self._held_ms = 0.0
        self._seq = 0
        self._texts: deque[str] = deque()
        self._gone_at: float | None = None
        self._opened_at = 0.0
        self._swap_task: asyncio.Task[None] | None = None
        self._quick_failures = 0  # sessions in a row that died young
        # The activityStart of speech still going on (local turn-taking): a replay that no
        # longer holds it (trimmed behind a handle, or past the holding limit) sends it first.
        self._open_activity: str | None = None

    def _move(self, new: LinkState) -> None:
        if new not in _MOVES[self.state]:
            raise GatewayError(f"illegal Live link move {self.state.value} -> {new.value}")
        self.state = new

    # -- caller side ---------------------------------------------------------------------

    async def forward(self, audio: bytes, ms: float, pcm: bytes, received: float) -> None:
        """One caller frame: ``audio`` as the carrier sent it (kept for a replay), ``pcm``
        the same at the Live API's rate (sent now, if a session is open)."""
        frame = self._hold(audio, ms, received)
        session = self.session
        if session is None:
            return  # no session yet, or a reconnect: the replay brings it
        message = live.audio_message(pcm)
        try:
            if not session.send_nowait(message):
                await session.send(message)
        except LiveClosedError:
            return  # the model pump reconnects; the replay brings it
        self._written(frame)

    async def mark(self, text: str, *, opens: bool) -> None:
        """A message that belongs at its place among the caller's audio: ``opens`` for an
        activityStart, False for its activityEnd. Held with the frames, sent now if a session
        is open."""
        self._open_activity = text if opens else None
        frame = self._hold(b"", 0.0, self._clock(), marker=text)
        session = self.session
        if session is None:
            return
        try:
            await session.send(text)
        except LiveClosedError:
            return  # the replay brings it
        frame.written = self._clock()

    def _hold(self, audio: bytes, ms: float, received: float, *,
              marker: str | None = None) -> Frame:
        frames = self._frames
        while frames and self._held_ms + ms > self.max_held_ms:
            old = frames.popleft()
            self._held_ms -= old.ms
            if old.marker is not None:
                continue
            if old.written is None:
                self.stats.frames_lost += 1
                if self.stats.frames_lost % 50 == 1:
                    self.log.warning("caller_audio_lost", reason="Live session not open",
                                     lost=self.stats.frames_lost)
            else:
                self.stats.frames_trimmed += 1
        self._seq += 1
        frame = Frame(self._seq, audio, ms, received, marker=marker)
        frames.append(frame)
        self._held_ms += ms
        return frame

    def _written(self, frame: Frame) -> None:
        """``frame`` was just written to a session: stamp it; count its first delivery."""
        at = self._clock()
        if frame.written is None:
            self.stats.frames_forwarded += 1
            self.stats.forward_latency.observe(at - frame.received)
            if self.timings is not None:
                self.timings.forwarded(at, frame.ms)
        else:
            self.stats.frames_replayed += 1
        frame.written = at

    async def send_text(self, text: str) -> None:
        """A non-audio message; held in order while no session is open."""
        if self.session is not None:
            try:
                await self.session.send(text)
                return
            except LiveClosedError:
                pass  # the pump sees the close too; this message waits for the next session
        if len(self._texts) >= MAX_HELD_TEXT:
            self._texts.popleft()
            self.stats.text_dropped += 1
            self.log.warning("live_message_dropped", reason="Live session not open")
        self._texts.append(text)

    def on_resumption(self, update: live.ResumptionUpdate) -> None:
        if update.resumable and update.handle:
            self.handle = update.handle
            # The service holds what it had read when it issued this; the newest frames may
            # not have reached it yet (see the module's docstring).
            keep_from = self._clock() - self.overlap_s
            frames = self._frames
            while frames and frames[0].written is not None and frames[0].written < keep_from:
                self._held_ms -= frames.popleft().ms

    # -- sessions ------------------------------------------------------------------------

    async def connect(self, setup_for: SetupFor) -> LiveLink:
        """Open a session (resuming when there is a handle), then replay what it missed."""
        self._move(LinkState.CONNECTING)
        retry = 0
        while True:
            handle = self.handle if self.resumption else None
            try:
                session = await self._connect(setup_for(handle))
                break
            except LiveSetupTimeoutError as exc:
                decision = Decision(Fault.TRANSIENT, False, str(exc))
            except LiveConnectError as exc:
                decision = Decision(Fault.TRANSIENT, True, str(exc))
            except LiveClosedError as exc:
                decision = classify_close(exc.code, exc.reason)
                if decision.retry and handle and exc.code == 1008:
                    self.stats.stale_handles += 1
                    self.handle = None  # resume failed: a fresh session still serves the call
            retry += 1
            if decision.retry and retry >= self.retry.attempts:
                decision = Decision(decision.fault, False,
                                    f"{decision.why} (gave up after {retry} attempts)")
            if not decision.retry:
                self._move(LinkState.CLOSED)
                raise LiveFault(decision)
            delay = self.retry.delay_s(retry)
            self.log.warning("live_connect_retry", attempt=retry, delay_s=delay,
                             why=decision.why)
            await asyncio.sleep(delay)
        self.stats.sessions += 1
        self._opened_at = time.monotonic()
        if self._gone_at is not None:
            gap = time.monotonic() - self._gone_at
            self.stats.reconnect_gap.observe(gap)
            self.stats.reconnects += 1
            # replay_from: the caller's frame (1 = the call's first) the new session hears from.
            self.log.info("live_reconnected", resumed=handle is not None,
                          gap_ms=round(gap * 1000, 1), replayed=len(self._frames),
                          replay_from=self._frames[0].seq if self._frames else self._seq + 1)
        self._gone_at = None
        await self._replay(session)
        # Only now do new frames go straight to the session: the replay kept them in order.
        self.session = session
        self._move(LinkState.OPEN)
        return session

    async def _replay(self, session: LiveLink) -> None:
        """Everything since the handle, in order, including frames arriving meanwhile."""
        to_live = self._replay_pipeline()
        frames = self._frames
        opening = self._open_activity
        if opening is not None and not any(f.marker == opening for f in frames):
            await session.send(opening)  # speech began before what is held: say so first
        cursor = frames[0].seq if frames else self._seq + 1
        while frames and cursor <= frames[-1].seq:
            frame = frames[max(0, cursor - frames[0].seq)]  # the oldest may have been trimmed
            cursor = frame.seq + 1
            if frame.marker is not None:
                await session.send(frame.marker)
                frame.written = self._clock()
                continue
            await session.send(live.audio_message(to_live(frame.audio)))
            self._written(frame)
        while self._texts:
            await session.send(self._texts.popleft())

    def dropped(self, exc: LiveClosedError) -> None:
        """The session's socket closed without our asking: reconnect, or raise
        :class:`LiveFault` if no retry can help."""
        session, self.session = self.session, None
        self._move(LinkState.DROPPED)
        if self._gone_at is None:
            self._gone_at = time.monotonic()
        decision = classify_close(exc.code, exc.reason)
        self.log.warning("live_session_lost", code=exc.code, reason=exc.reason[:200],
                         fault=decision.fault.value, retry=decision.retry,
                         had_session=session is not None)
        if not decision.retry:
            self._move(LinkState.CLOSED)
            raise LiveFault(decision) from exc
        self.stats.drops += 1
        self._quick_failures = 0 if self.healthy else self._quick_failures + 1
        if self._quick_failures >= self.retry.attempts:
            self._move(LinkState.CLOSED)
            raise LiveFault(Decision(decision.fault, False,
                                     f"{decision.why} ({self._quick_failures} sessions in a "
                                     "row failed within seconds)")) from exc

    def swapped(self) -> None:
        """The session ended because the keeper closed it for a ``goAway``: the planned
        move; the next :meth:`connect` resumes at once."""
        if self.state is not LinkState.SWAPPING:
            raise GatewayError(f"a session ended by itself in state {self.state.value}")

    @property
    def healthy(self) -> bool:
        return time.monotonic() - self._opened_at >= HEALTHY_AFTER_S

    def go_away(self, time_left_s: float | None, turn_done: asyncio.Event) -> None:
        """Swap to a new session at the next turn boundary, or before ``time_left_s`` ends."""
        if self._swap_task is not None and not self._swap_task.done():
            return
        # Leave room to reconnect before the service cuts the socket.
        budget = max(0.0, (time_left_s or 0.0) - min(5.0, (time_left_s or 0.0) / 2))
        self._swap_task = self._spawn(self._swap_when_idle(budget, turn_done))

    def restart(self) -> bool:
        """Swap to a new session now, resuming with the newest handle (the model went quiet);
        False if no session is open or a swap is already under way."""
        if self.state is not LinkState.OPEN or (self._swap_task is not None
                                                and not self._swap_task.done()):
            return False
        self.stats.restarts += 1
        self._swap_task = self._spawn(self._swap_when_idle(0.0, None, "restarting"))
        return True

    async def _swap_when_idle(self, budget_s: float, turn_done: asyncio.Event | None,
                              reason: str = "going away") -> None:
        session = self.session
        if budget_s > 0 and turn_done is not None:
            try:
                async with asyncio.timeout(budget_s):
                    await turn_done.wait()
            except TimeoutError:
                self.log.info("live_swap_mid_turn", reason="goAway time running out")
        if session is None or self.session is not session or self.state is not LinkState.OPEN:
            return  # already gone (dropped, or the call ended)
        self._move(LinkState.SWAPPING)
        if turn_done is not None:  # a goAway's (restart() counted its own)
            self.stats.swaps += 1
        self.session = None
        self._gone_at = time.monotonic()
        # The service allows one connection per handle: close the old one first.
        try:
            await session.close(1000, reason)
        except Exception as exc:  # already closing; the pump still sees the end
            self.log.debug("live_close_failed", error=repr(exc))

    async def aclose(self) -> None:
        if self._swap_task is not None:
            self._swap_task.cancel()
            await asyncio.gather(self._swap_task, return_exceptions=True)
        if self.state is not LinkState.CLOSED:
            self._move(LinkState.CLOSED)
        if self.session is not None:
            session, self.session = self.session, None
            try:
                await session.close(1000, "call ended")
            except Exception as exc:
                self.log.debug("live_close_failed", error=repr(exc))
