"""The Live session keeper with in-memory sessions: forwarding, replay, holding, retries,
give-up rules, and its state table (a planned swap never takes the failure path)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest
import structlog

from gateway import live
from gateway.audio import Resampler, ulaw_to_pcm16
from gateway.errors import GatewayError, LiveClosedError, LiveConnectError, LiveSetupTimeoutError
from gateway.faults import Fault, RetryPolicy
from gateway.live_keeper import KeeperStats, LinkState, LiveFault, LiveKeeper

FRAME = bytes(range(0, 160))  # one 20 ms mu-law frame, not silence


class Session:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.closed: tuple[int, str] | None = None
        self.gate: asyncio.Event | None = None  # when given, each send waits for it
        self.blocked = asyncio.Event()  # a send is waiting at the gate
        self.fail = False  # the connection is gone: sends raise as the real one's do

    def frames(self) -> AsyncIterator[str | bytes]:
        raise NotImplementedError  # the bridge's pump reads frames; these tests drive the keeper

    async def send(self, text: str | bytes) -> None:
        if self.fail:
            raise LiveClosedError(1006, "")
        if self.gate is not None:
            self.blocked.set()
            await self.gate.wait()
        self.sent.append(json.loads(text))

    def send_nowait(self, text: bytes) -> bool:
        return False  # every message through send(), where the tests can hold it

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = (code, reason)

    def audio(self) -> list[bytes]:
        return [base64.b64decode(m["realtimeInput"]["audio"]["data"])
                for m in self.sent if "realtimeInput" in m]

    def texts(self) -> list[str]:
        return [m["realtimeInput"]["text"] for m in self.sent
                if "text" in m.get("realtimeInput", {})]


class Connector:
    """Answers each connect with the next outcome: a Session, or an exception to raise."""

    def __init__(self, *outcomes: Session | Exception) -> None:
        self.outcomes = list(outcomes)
        self.setups: list[dict[str, Any]] = []

    async def __call__(self, setup: str) -> Session:
        self.setups.append(json.loads(setup))
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def setup_for(handle: str | None) -> str:
    return live.build_setup(live.SessionConfig(model="models/m", resumption_handle=handle))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Timings:
    """What ``serve --trace`` would be told: each caller frame's first delivery."""

    def __init__(self) -> None:
        self.forwarded_at: list[float] = []

    def forwarded(self, t: float, ms: float) -> None:
        assert ms == 20.0
        self.forwarded_at.append(t)


def to_live() -> Callable[[bytes], bytes]:
    resampler = Resampler(8000, 16000)
    return lambda audio: resampler.process(ulaw_to_pcm16(audio))


def keeper(connect: Connector, *, max_frames: int = 50, attempts: int = 3,
           clock: Clock | None = None) -> tuple[LiveKeeper, Timings, list[asyncio.Task[None]]]:
    tasks: list[asyncio.Task[None]] = []
    timings = Timings()

    def spawn(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        tasks.append(asyncio.ensure_future(coro))
        return tasks[-1]

    k = LiveKeeper(connect, spawn, to_live, log=structlog.get_logger("test"),  # type: ignore[arg-type]
                   stats=KeeperStats(), retry=RetryPolicy(attempts, 0.0, 0.0),
                   max_held_ms=20.0 * max_frames, overlap_s=0.3, clock=clock or Clock(),
                   timings=timings)  # type: ignore[arg-type]
    return k, timings, tasks


async def forward(k: LiveKeeper, frame: bytes, received: float) -> None:
    """One caller frame, as the bridge hands it over (the same audio at Live's rate)."""
    await k.forward(frame, 20.0, Resampler(8000, 16000).process(ulaw_to_pcm16(frame)), received)


def resampled(frames: list[bytes]) -> list[bytes]:
    r = Resampler(8000, 16000)
    return [r.process(ulaw_to_pcm16(f)) for f in frames]


async def test_audio_before_the_first_session_is_replayed_in_order_and_counted_once() -> None:
    first = Session()
    k, timings, _ = keeper(Connector(first))
    frames = [bytes([i]) * 160 for i in range(5)]
    for i, f in enumerate(frames):
        await forward(k, f, float(i))
    assert k.state is LinkState.IDLE and first.sent == []
    await k.connect(setup_for)
    assert first.audio() == resampled(frames)
    assert timings.forwarded_at == [100.0] * 5  # delivered when the replay wrote them
    assert k.stats.frames_forwarded == 5 and k.stats.frames_replayed == 0
    assert k.stats.forward_latency.count == 5
    assert k.session is first and k.state is LinkState.OPEN


async def test_with_a_session_open_each_frame_is_forwarded_at_once() -> None:
    session = Session()
    k, timings, _ = keeper(Connector(session))
    await k.connect(setup_for)
    await forward(k, FRAME, 99.5)
    assert session.audio() == resampled([FRAME])
    assert timings.forwarded_at == [100.0]
    assert k.stats.forward_latency.max == pytest.approx(0.5)


async def test_frames_arriving_during_a_replay_follow_it_in_order() -> None:
    session = Session()
    session.gate = asyncio.Event()
    k, _, _ = keeper(Connector(session))
    frames = [bytes([i]) * 160 for i in range(6)]
    for f in frames[:3]:
        await forward(k, f, 0.0)
    opening = asyncio.ensure_future(k.connect(setup_for))
    await session.blocked.wait()  # the replay is under way
    assert k.session is None  # so new frames are not sent past the replay
    for f in frames[3:]:
        await forward(k, f, 0.0)
    session.gate.set()
    await opening
    assert session.audio() == resampled(frames)


async def test_a_new_handle_ends_what_needs_replaying() -> None:
    first, second, clock = Session(), Session(), Clock()
    k, timings, _ = keeper(Connector(first, second), clock=clock)
    await k.connect(setup_for)
    for i in range(3):
        await forward(k, FRAME, float(i))
    clock.now += 1.0
    k.on_resumption(live.ResumptionUpdate(handle=None, resumable=False))  # mid-turn: no handle
    k.on_resumption(live.ResumptionUpdate(handle="h-1", resumable=True))
    await forward(k, FRAME, 9.0)
    k.dropped(LiveClosedError(1011, "Internal error occurred."))
    assert k.state is LinkState.DROPPED
    await k.connect(setup_for)
    assert len(second.audio()) == 1  # only the frame after the handle
    assert k.stats.frames_replayed == 1 and k.stats.drops == 1 and k.stats.reconnects == 1
    # Each frame was delivered once, when first written; the replay delivered none again.
    assert k.stats.frames_forwarded == 4 and len(timings.forwarded_at) == 4


async def test_frames_written_just_before_a_handle_arrived_are_replayed_too() -> None:
    # The service may have issued the handle before these reached it: a resume that left them
    # out would lose the start of what the caller said. (The race lost a frame in CI.)
    first, second, clock = Session(), Session(), Clock()
    k, timings, _ = keeper(Connector(first, second), clock=clock)
    await k.connect(setup_for)
    frames = [bytes([i]) * 160 for i in range(5)]
    for f in frames:  # written 0.25 s apart; the last as the handle arrives
        await forward(k, f, clock.now)
        clock.now += 0.25
    clock.now -= 0.25
    k.on_resumption(live.ResumptionUpdate(handle="h-1", resumable=True))
    held = bytes([9]) * 160
    first.fail = True  # the connection is gone: this one reaches no session
    await forward(k, held, clock.now)
    k.dropped(LiveClosedError(1006, ""))
    await k.connect(setup_for)
    # Only those written within the 0.3 s overlap, then the one never sent.
    assert second.audio() == resampled([frames[3], frames[4], held])
    assert k.stats.frames_replayed == 2
    # The five once each when first written, and the held one when the replay first sent it.
    assert timings.forwarded_at == [100.0, 100.25, 100.5, 100.75, 101.0, 101.0]


async def test_without_a_session_the_oldest_frames_are_lost_and_counted() -> None:
    k, _, _ = keeper(Connector(Session()), max_frames=10)
    for _ in range(25):
        await forward(k, FRAME, 0.0)
    assert k.stats.frames_lost == 15
    await k.connect(setup_for)
    assert k.session is not None
    await forward(k, FRAME, 0.0)  # while live, old frames are trimmed, not lost
    assert k.stats.frames_lost == 15 and k.stats.frames_trimmed == 1


async def test_messages_wait_for_the_next_session_and_follow_its_audio() -> None:
    session = Session()
    k, _, _ = keeper(Connector(session))
    await forward(k, FRAME, 0.0)
    await k.send_text(live.text_message("The caller pressed 5."))
    await k.connect(setup_for)
    assert [next(iter(m["realtimeInput"])) for m in session.sent] == ["audio", "text"]
    for i in range(80):
        k.session = None
        await k.send_text(live.text_message(str(i)))
    assert k.stats.text_dropped == 80 - 64


async def test_resuming_uses_the_newest_handle_and_a_stale_one_is_dropped() -> None:
    fresh = Session()
    connect = Connector(Session(), LiveClosedError(1008, "BidiGenerateContent session not found"),
                        fresh)
    k, _, _ = keeper(connect)
    await k.connect(setup_for)
    k.on_resumption(live.ResumptionUpdate(handle="h-7", resumable=True))
    k.dropped(LiveClosedError(1006, "connection lost"))
    assert await k.connect(setup_for) is fresh
    assert [s["setup"]["sessionResumption"] for s in connect.setups] == [
        {}, {"handle": "h-7"}, {}]
    assert k.stats.stale_handles == 1 and k.handle is None


@pytest.mark.parametrize(("error", "fault"), [
    (LiveClosedError(1007, "API key not valid. Please pass a valid API key."),
     Fault.CREDENTIALS),
    (LiveClosedError(1008, "models/x is not found for API version v1beta"), Fault.MODEL),
    (LiveClosedError(1011, "Resource has been exhausted (e.g. check quota)."), Fault.QUOTA),
    (LiveSetupTimeoutError("no setupComplete within 10 s"), Fault.TRANSIENT),
])
async def test_faults_no_retry_can_fix_are_not_retried(error: Exception, fault: Fault) -> None:
    connect = Connector(error)
    k, _, _ = keeper(connect)
    with pytest.raises(LiveFault) as raised:
        await k.connect(setup_for)
    assert raised.value.decision.fault is fault and len(connect.setups) == 1
    assert k.state is LinkState.CLOSED


async def test_passing_faults_are_retried_then_given_up() -> None:
    connect = Connector(LiveConnectError("cannot connect"),
                        LiveClosedError(1011, "The service is currently unavailable."),
                        LiveConnectError("cannot connect"))
    k, _, _ = keeper(connect, attempts=3)
    with pytest.raises(LiveFault, match="gave up after 3 attempts"):
        await k.connect(setup_for)
    assert len(connect.setups) == 3

    session = Session()
    k, _, _ = keeper(Connector(LiveConnectError("cannot connect"), session))
    assert await k.connect(setup_for) is session


async def test_sessions_that_keep_dying_young_end_in_a_fault() -> None:
    k, _, _ = keeper(Connector(Session(), Session(), Session()), attempts=3)
    for _ in range(2):
        await k.connect(setup_for)
        k.dropped(LiveClosedError(1011, "Internal error occurred."))
    await k.connect(setup_for)
    with pytest.raises(LiveFault, match="3 sessions in a row"):
        k.dropped(LiveClosedError(1011, "Internal error occurred."))
    assert k.state is LinkState.CLOSED


async def test_go_away_waits_for_the_turn_then_closes_the_old_session_first() -> None:
    old, new = Session(), Session()
    k, _, tasks = keeper(Connector(old, new))
    await k.connect(setup_for)
    turn_done = asyncio.Event()
    k.go_away(50.0, turn_done)
    k.go_away(49.0, turn_done)  # a repeat while waiting changes nothing
    assert len(tasks) == 1
    done, _ = await asyncio.wait(tasks, timeout=0.05)
    assert not done and old.closed is None and k.session is old  # mid-turn: still talking
    turn_done.set()
    await tasks[0]
    assert old.closed == (1000, "going away") and k.session is None
    assert k.state is LinkState.SWAPPING
    k.swapped()  # the pump saw the session it closed end: the planned path
    await k.connect(setup_for)
    assert k.stats.swaps == 1 and k.stats.drops == 0 and k.stats.reconnects == 1


async def test_go_away_with_no_time_left_swaps_mid_turn() -> None:
    old = Session()
    k, _, tasks = keeper(Connector(old))
    await k.connect(setup_for)
    k.go_away(0.0, asyncio.Event())  # the turn never ends
    await tasks[0]
    assert old.closed == (1000, "going away")


async def test_a_connection_that_breaks_during_a_swap_is_a_drop() -> None:
    old, new = Session(), Session()
    k, _, tasks = keeper(Connector(old, new))
    await k.connect(setup_for)
    done = asyncio.Event()
    done.set()
    k.go_away(10.0, done)
    await tasks[0]
    k.dropped(LiveClosedError(1006, ""))  # the close frame never came back
    await k.connect(setup_for)
    assert (k.stats.swaps, k.stats.drops) == (1, 1)


async def test_moves_the_table_does_not_allow_are_refused() -> None:
    k, _, _ = keeper(Connector(Session(), Session()))
    with pytest.raises(GatewayError, match="ended by itself in state idle"):
        k.swapped()
    await k.connect(setup_for)
    with pytest.raises(GatewayError, match="illegal Live link move open -> connecting"):
        await k.connect(setup_for)
    with pytest.raises(GatewayError, match="ended by itself in state open"):
        k.swapped()  # a session we did not close cannot end the planned way
    await k.aclose()
    assert k.state is LinkState.CLOSED


async def test_activity_markers_are_replayed_where_they_were_among_the_audio() -> None:
    """Local turn-taking: a session that replaces a dropped one hears the caller's speech
    framed by activityStart/activityEnd exactly as the old one did; speech that began before
    what is held still gets its activityStart first."""
    first, second, third, clock = Session(), Session(), Session(), Clock()
    k, _, _ = keeper(Connector(first, second, third), clock=clock)
    await k.connect(setup_for)
    await k.mark(live.activity_start(), opens=True)
    await forward(k, FRAME, 100.0)
    await k.mark(live.activity_end(), opens=False)
    await forward(k, FRAME, 100.0)
    assert [next(iter(m["realtimeInput"])) for m in first.sent] \
        == ["activityStart", "audio", "activityEnd", "audio"]
    k.dropped(LiveClosedError(1006, ""))
    await k.connect(setup_for)
    assert [next(iter(m["realtimeInput"])) for m in second.sent] \
        == ["activityStart", "audio", "activityEnd", "audio"]
    assert k.stats.frames_replayed == 2  # markers are not audio frames

    await k.mark(live.activity_start(), opens=True)  # the caller starts speaking...
    await forward(k, FRAME, 100.0)
    clock.now += 1.0
    k.on_resumption(live.ResumptionUpdate(resumable=True, handle="h1"))  # ...all of it read
    k.dropped(LiveClosedError(1006, ""))
    await k.connect(setup_for)
    assert [next(iter(m["realtimeInput"])) for m in third.sent] == ["activityStart"]
