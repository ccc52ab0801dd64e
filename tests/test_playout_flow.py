"""Flow control in the playout, without sockets: while the carrier says its queue is full
(Asterisk's ``MEDIA_XOFF``), no reply audio is written, what waits is bounded and its drops
counted, control messages still go in order, and a barge-in still drops the held audio and
sends the carrier's ``clear`` in the same step."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

import structlog

from gateway import live
from gateway.carriers.asterisk import AsteriskStream
from gateway.carriers.core import Outgoing
from gateway.playout import CallerPlayout
from gateway.record import CallStats, Transcript
from tests.test_playout import reply

START = ("MEDIA_START connection_id:c1 channel:WebSocket/c1/0x1 channel_id:pbx-1.1 "
         "format:ulaw optimal_frame_size:160 ptime:20")


class Socket:
    """A caller socket that always has room: every frame, in the order written."""

    def __init__(self) -> None:
        self.written: list[Outgoing] = []

    def send_nowait(self, frame: Outgoing) -> bool:
        self.written.append(frame)
        return True

    async def send(self, frame: Outgoing) -> None:
        self.written.append(frame)

    def kinds(self) -> list[str]:
        return ["audio" if isinstance(f, bytes) else f.split()[0] for f in self.written]


def playout(socket: Socket, max_queued: int = 100) -> CallerPlayout:
    stream = AsteriskStream()
    stream.receive(START)
    return CallerPlayout(socket, stream, stream.fmt, CallStats(),
                         Transcript(time.perf_counter()), max_queued=max_queued,
                         mark_interval_ms=0, log=structlog.get_logger("test"))


@contextlib.asynccontextmanager
async def writing(p: CallerPlayout) -> AsyncIterator[None]:
    task = asyncio.create_task(p.writer())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def settle(done: Callable[[], bool]) -> None:
    """Let the writer run until ``done`` (it needs only loop turns: nothing it waits on is
    timed)."""
    for _ in range(100):
        if done():
            return
        await asyncio.sleep(0)
    raise AssertionError("the writer did not get there")


async def test_audio_waits_while_paused_and_goes_in_order_once_resumed() -> None:
    socket = Socket()
    p = playout(socket)
    async with writing(p):
        p.audio(reply(100), 0.0)
        sent = len(socket.written)
        assert sent > 0  # written in place while flowing
        p.pause()
        p.audio(reply(200), 0.0)
        p.turn_complete(live.TurnComplete(), 0.0)
        await settle(lambda: p._holding)
        assert len(socket.written) == sent  # nothing more while paused, not even the mark
        held = len(p.out) + 1  # the writer holds one
        p.resume()
        await settle(lambda: not p.out and not p._holding)
    assert socket.kinds()[sent:] == ["audio"] * (held - 1) + ["MARK_MEDIA"]
    assert p.stats.flow_pauses == 1 and p.stats.media_dropped_full == 0
    audio = b"".join(f for f in socket.written if isinstance(f, bytes))
    assert len(audio) % 160 == 0 and len(audio) >= 160 * 15  # 300 ms, whole frames


async def test_what_waits_is_bounded_and_the_drops_counted() -> None:
    socket = Socket()
    p = playout(socket, max_queued=3)
    p.pause()
    for _ in range(20):
        p.audio(reply(100), 0.0)  # 100 ms of reply: one message
    assert socket.written == []
    assert len(p.out) == 3
    assert p.stats.media_dropped_full == 17


async def test_a_barge_in_while_paused_clears_at_once_and_drops_the_held_audio() -> None:
    socket = Socket()
    p = playout(socket)
    async with writing(p):
        p.pause()
        for _ in range(5):
            p.audio(reply(100), 0.0)
        await settle(lambda: p._holding)
        p.interrupted(time.perf_counter())
        # One synchronous step: the clear is on the wire before anything else can run.
        assert socket.kinds() == ["FLUSH_MEDIA"]
        assert len(p.out) == 0
        await settle(lambda: not p._holding)
        p.resume()
        p.audio(reply(100), 0.0)  # the next reply flows
        await settle(lambda: len(socket.written) > 1)
    assert socket.kinds() == ["FLUSH_MEDIA", "audio"]
    assert p.stats.media_dropped_barge_in == 5  # four queued and the one held


async def test_control_goes_while_paused_when_no_audio_waits() -> None:
    socket = Socket()
    p = playout(socket)
    p.pause()
    p.queue_mark("standalone")
    assert socket.kinds() == ["MARK_MEDIA"]
    p.resume()
    p.resume()  # twice is once
    assert p.stats.flow_pauses == 1
