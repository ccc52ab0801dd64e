"""What the caller hears, without sockets: marks, heard position, odd reply rates, prompts."""

from __future__ import annotations

import json
import time

import numpy as np
import structlog

from gateway import live, twilio
from gateway.playout import CallerPlayout
from gateway.record import CallStats, Transcript
from gateway.twilio_peer import TwilioPeer


class Sink:
    async def send(self, text: str) -> None:
        raise AssertionError("the writer is not run in these tests")


def playout(mark_interval_ms: int = 200) -> CallerPlayout:
    stream = twilio.TwilioStream()
    peer = TwilioPeer(call_sid="CA" + "a" * 32, stream_sid="MZ" + "b" * 32)
    stream.receive(peer.connected())
    stream.receive(peer.start())
    return CallerPlayout(Sink(), stream, CallStats(), Transcript(time.perf_counter()),
                         max_queued=100, mark_interval_ms=mark_interval_ms,
                         log=structlog.get_logger("test"))


def reply(ms: int, rate: int = 24000) -> live.ModelAudio:
    t = np.arange(rate * ms // 1000) / rate
    pcm = (8000 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes()
    return live.ModelAudio(pcm=pcm, rate=rate)


async def queued(p: CallerPlayout) -> list[dict[str, object]]:
    items = []
    while len(p.out):  # get() returns at once while items are queued
        items.append(json.loads((await p.out.get()).text))
    return items


async def test_marks_every_interval_and_at_the_end_of_the_turn() -> None:
    p = playout(mark_interval_ms=200)
    for _ in range(5):
        p.audio(reply(100), 0.0)
    p.turn_complete(live.TurnComplete())
    names = [m["mark"]["name"] for m in await queued(p) if m["event"] == "mark"]  # type: ignore[index]
    assert names == ["0:200", "0:400", "0:end"]
    assert p.turn == 1 and p.turn_done.is_set()


def test_echoed_marks_say_how_much_the_caller_heard() -> None:
    p = playout()
    p.audio(reply(400), 0.0)
    p.mark(twilio.Mark(name="0:200"))
    assert p.heard == (0, 200.0) and p.stats.marks_heard == 1
    p.mark(twilio.Mark(name="not-ours"))
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
    p.prompt(bytes([0xFF]) * 8000)
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
