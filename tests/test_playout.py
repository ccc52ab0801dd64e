"""What the caller hears, without sockets: marks, heard position, odd reply rates, prompts;
and, for carriers unlike Twilio, messages cut to the carrier's size, the gateway's own marks
where the carrier confirms none, and its own pacing where the carrier cannot clear."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import numpy as np
import structlog

from gateway import live
from gateway.carriers.core import Outgoing, Played
from gateway.carriers.twilio import FORMAT, TwilioStream
from gateway.playout import CallerPlayout
from gateway.record import CallStats, Transcript
from gateway.rig.peers.twilio import TwilioPeer


class Sink:
    def send_nowait(self, frame: Outgoing) -> bool:
        return False  # these tests read what was queued

    async def send(self, frame: Outgoing) -> None:
        raise AssertionError("the writer is not run in these tests")


class Socket:
    """A caller socket with room in its buffers until told otherwise."""

    def __init__(self) -> None:
        self.written: list[dict[str, object]] = []
        self.room = True

    def send_nowait(self, frame: Outgoing) -> bool:
        if self.room:
            self.written.append(json.loads(frame))
        return self.room

    async def send(self, frame: Outgoing) -> None:
        self.written.append(json.loads(frame))


def playout(mark_interval_ms: int = 200, caller: Sink | Socket | None = None) -> CallerPlayout:
    stream = TwilioStream()
    peer = TwilioPeer(call_sid="CA" + "a" * 32, stream_sid="MZ" + "b" * 32)
    for message in peer.opening():
        stream.receive(message)
    return CallerPlayout(caller or Sink(), stream, FORMAT, CallStats(),
                         Transcript(time.perf_counter()), max_queued=100,
                         mark_interval_ms=mark_interval_ms, log=structlog.get_logger("test"))


def reply(ms: int, rate: int = 24000) -> live.ModelAudio:
    t = np.arange(rate * ms // 1000) / rate
    pcm = (8000 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes()
    return live.ModelAudio(pcm=pcm, rate=rate)


async def queued(p: CallerPlayout) -> list[dict[str, object]]:
    items = []
    while len(p.out):  # get() returns at once while items are queued
        wire = (await p.out.get()).wire
        assert wire is not None
        items.append(json.loads(wire))
    return items


async def test_marks_every_interval_and_at_the_end_of_the_turn() -> None:
    p = playout(mark_interval_ms=200)
    for _ in range(5):
        p.audio(reply(100), 0.0)
    p.turn_complete(live.TurnComplete(), 0.0)
    names = [m["mark"]["name"] for m in await queued(p) if m["event"] == "mark"]  # type: ignore[index]
    assert names == ["0:200", "0:400", "0:end"]
    assert p.turn == 1 and p.turn_done.is_set()


def test_echoed_marks_say_how_much_the_caller_heard() -> None:
    p = playout()
    p.audio(reply(400), 0.0)
    p.played(Played(name="0:200"))
    assert p.heard == (0, 200.0) and p.stats.marks_heard == 1
    p.played(Played(name="not-ours"))
    assert p.heard == (0, 200.0)


async def test_reply_audio_at_a_rate_that_cannot_be_resampled_is_dropped_and_counted() -> None:
    p = playout()
    p.audio(reply(20, rate=7), 0.0)
    assert p.stats.protocol_errors == 1 and not await queued(p)
    p.audio(reply(100), 0.0)  # the next valid audio plays
    assert [m["event"] for m in await queued(p)] == ["media"]


async def test_interrupted_drops_queued_audio_then_clears() -> None:
    p = playout(mark_interval_ms=0)
    for _ in range(3):
        p.audio(reply(100), 0.0)
    p.interrupted(0.0)
    assert [m["event"] for m in await queued(p)] == ["clear"]
    assert p.stats.media_dropped_barge_in == 3 and p.stats.interruptions == 1


async def test_a_prompt_is_queued_in_200_ms_messages() -> None:
    p = playout()
    p.prompt(b"\x00\x00" * 8000)  # one second of PCM16 at the carrier's rate
    assert [m["event"] for m in await queued(p)] == ["media"] * 5


def test_a_reply_chunk_written_after_the_last_finished_playing_is_a_gap() -> None:
    p = playout(mark_interval_ms=0)
    # Three 100 ms chunks written at 0, 0.1 and 0.35 s (the last one 150 ms late), then the
    # turn ends and the next reply starts 2 s later: only the 150 ms counts as a gap.
    p._played(0.0, 0.1)
    p._played(0.1, 0.1)
    p._played(0.35, 0.1)
    assert p.stats.reply_gap_max_ms == 150.0
    p._played_by = None  # what the writer does at a turn's end mark or a clear
    p._played(2.45, 0.1)
    assert p.stats.reply_gap_max_ms == 150.0


def test_with_room_in_the_socket_reply_audio_and_clear_are_written_in_place() -> None:
    socket = Socket()
    p = playout(mark_interval_ms=200, caller=socket)
    for _ in range(3):
        p.audio(reply(100), 0.0)
    p.interrupted(0.0)
    assert [m["event"] for m in socket.written] == ["media", "media", "mark", "media", "clear"]
    assert not len(p.out)
    # Counted as the writer counts what it sends.
    assert p.stats.media_out == 3 and p.stats.reply_latency.count == 3
    assert p.stats.barge_in.count == 1


async def test_once_anything_waits_what_follows_waits_too() -> None:
    socket = Socket()
    p = playout(mark_interval_ms=0, caller=socket)
    p.audio(reply(40), 0.0)
    socket.room = False  # buffers full: the next chunk must queue
    p.audio(reply(40), 0.0)
    socket.room = True  # room again, but a chunk is still queued ahead
    p.audio(reply(40), 0.0)
    assert [m["event"] for m in socket.written] == ["media"] and len(p.out) == 2
    p.interrupted(0.0)
    # The queued audio is dropped, which leaves nothing ahead of the clear: it goes at once.
    assert [m["event"] for m in socket.written] == ["media", "clear"]
    assert not await queued(p) and p.stats.media_dropped_barge_in == 2


async def test_nothing_is_written_in_place_while_the_writer_is_sending() -> None:
    socket = Socket()
    p = playout(mark_interval_ms=0, caller=socket)
    sending, gate, both = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def stalled_send(frame: Outgoing) -> None:
        sending.set()
        await gate.wait()
        socket.written.append(json.loads(frame))
        if len(socket.written) == 2:
            both.set()

    socket.room = False
    p.audio(reply(40), 0.0)  # queued: the writer will hold it in a stalled send
    socket.send = stalled_send  # type: ignore[method-assign]
    writer = asyncio.create_task(p.writer())
    await sending.wait()
    socket.room = True
    p.audio(reply(40), 1.0)  # the writer holds a chunk: this one queues behind it
    assert socket.written == [] and len(p.out) == 1
    gate.set()
    await both.wait()
    writer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await writer
    assert [m["event"] for m in socket.written] == ["media", "media"]
    assert p.stats.media_out == 2


class Timings:
    """Records what ``voicegw serve --trace`` would write, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, float]] = []

    def media(self, t: float, ms: float) -> None:
        self.events.append(("media", ms))

    def clear(self, t: float) -> None:
        self.events.append(("clear", 0.0))

    def turn_end(self, t: float) -> None:
        self.events.append(("turn_end", 0.0))


async def test_the_timing_trace_follows_the_socket_writes_not_the_model() -> None:
    socket = Socket()
    p = playout(mark_interval_ms=0, caller=socket)
    timings = Timings()
    p.timings = timings  # type: ignore[assignment]
    p.audio(reply(40), 0.0)
    socket.room = False  # the next chunk and the turn's end mark wait for the writer
    p.audio(reply(40), 0.0)
    p.turn_complete(live.TurnComplete(), 0.0)
    # The model's turn is over, but the caller's socket has had only the first chunk.
    assert timings.events == [("media", 40.0)]
    socket.room = True
    sent = asyncio.Event()

    async def send(frame: Outgoing) -> None:
        socket.written.append(json.loads(frame))
        if len(socket.written) == 3:
            sent.set()

    socket.send = send  # type: ignore[method-assign]
    writer = asyncio.create_task(p.writer())
    await sent.wait()
    p.audio(reply(40), 0.0)  # the next turn, written in place
    p.interrupted(0.0)
    writer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await writer
    assert timings.events == [("media", 40.0), ("media", 40.0), ("turn_end", 0.0),
                              ("media", 40.0), ("clear", 0.0)]
