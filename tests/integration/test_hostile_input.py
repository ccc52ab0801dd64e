"""Hostile and broken Media Streams input, each kind beside a healthy call on the same gateway.

One row of the README's "Hostile input" table per test. Every test runs one gateway in front of
two simulated Live servers (the healthy line's and the hostile line's, so each side's audio is
counted apart) and places a healthy call with :func:`gateway.rig.phone.place_call`; once that call
is hearing its reply, a hand-made client (:class:`RawCaller`) breaks the protocol on a second
stream. The test then checks both the defined outcome for the hostile stream (ignored and
counted, or closed with the stated code and reason, with its warning log line) and that the
healthy call did not notice: every frame it sent reached its Live session, its reply was
heard in full, no ``clear`` it did not cause.

Calls run time-compressed (SPEED x real time) on the phone and the healthy simulator.
Synchronisation is by events (the simulators' ``wait_until``, socket reads), never by sleeping.
"""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from gateway import bridge, playout
from gateway.rig.peers.twilio import FRAME_BYTES, ULAW_SILENCE
from gateway.rig.phone import load_utterance
from gateway.rig.simulator.record import SessionRecord
from gateway.rig.simulator.speech import speech_dir
from gateway.server import MAX_FRAME_BYTES
from tests.integration.hostile_bench import (
    BAD_FRAMES,
    FLOOD_FRAMES,
    FLOOD_MEMORY_BOUND,
    SILENCE,
    Bench,
    _check_warned,
    _ends_normally,
    beside_a_healthy_call,
    tone_wav,
)


@pytest.fixture(scope="module")
def long_reply(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tone_wav(tmp_path_factory.mktemp("hostile") / "long_reply.wav", 60.0)


@pytest.mark.parametrize("kind", list(BAD_FRAMES))
async def test_a_broken_frame_is_dropped_counted_and_logged(long_reply: Path, kind: str) -> None:
    caller_sid: list[str] = []

    async def hostile(b: Bench) -> None:
        async with b.caller() as c:
            caller_sid.append(c.peer.call_sid)
            await c.send(c.peer.connected(), c.peer.start(), BAD_FRAMES[kind](c))
            await _ends_normally(c, b)

    o = await beside_a_healthy_call(long_reply, hostile)
    assert o.hostile.stats.protocol_errors == 1
    assert o.hostile.stats.frames_forwarded == 1  # the valid frame after it
    assert o.hostile.end_reason == "caller hung up"
    _check_warned(o, caller_sid[0], 1)


async def test_media_before_start_is_dropped_counted_and_logged(long_reply: Path) -> None:
    async def hostile(b: Bench) -> None:
        async with b.caller() as c:
            await c.send(c.peer.connected(), c.peer.media(SILENCE), c.peer.start())
            await _ends_normally(c, b)

    o = await beside_a_healthy_call(long_reply, hostile)
    assert o.hostile.stats.protocol_errors == 1
    assert o.hostile.stats.frames_in == 1  # only the frame after start reached the bridge
    assert o.hostile.end_reason == "caller hung up"
    _check_warned(o, None, 1)  # no call sid before start


async def test_an_unknown_event_is_ignored_and_counted_apart(long_reply: Path) -> None:
    async def hostile(b: Bench) -> None:
        async with b.caller() as c:
            unknown = json.dumps({"event": "playAudio", "streamSid": c.peer.stream_sid})
            await c.send(c.peer.connected(), c.peer.start(), unknown, unknown)
            await _ends_normally(c, b)

    o = await beside_a_healthy_call(long_reply, hostile)
    assert o.hostile.stats.unknown_events == 2
    assert o.hostile.stats.protocol_errors == 0  # a future Twilio event must not end calls
    assert o.hostile.end_reason == "caller hung up"
    [warned] = o.warnings("unknown_event")  # the first, then every 100th
    assert warned["name"] == "playAudio"
    assert warned["call_sid"] == o.hostile.call_sid


# -- the stream closed -------------------------------------------------------------------------


async def test_too_many_protocol_errors_close_the_stream_with_1008(long_reply: Path) -> None:
    codes: list[tuple[int, str]] = []

    async def hostile(b: Bench) -> None:
        async with b.caller() as c:
            await c.send(c.peer.connected(), c.peer.start(),
                         *["garbage"] * (bridge.MAX_PROTOCOL_ERRORS + 1))
            codes.append(await c.closed())

    o = await beside_a_healthy_call(long_reply, hostile)
    limit = bridge.MAX_PROTOCOL_ERRORS + 1
    assert codes == [(1008, f"too many protocol errors ({limit})")]
    assert o.hostile.stats.protocol_errors == limit
    assert o.hostile.end_reason == f"too many protocol errors ({limit})"
    _check_warned(o, o.hostile.call_sid, limit)
    [rejected] = o.warnings("caller_rejected")
    assert rejected["code"] == 1008
    assert rejected["call_sid"] == o.hostile.call_sid


async def test_a_second_start_closes_the_stream_with_1008(long_reply: Path) -> None:
    codes: list[tuple[int, str]] = []

    async def hostile(b: Bench) -> None:
        async with b.caller() as c:
            await c.send(c.peer.connected(), c.peer.start(), c.peer.media(SILENCE))
            await b.hostile_session(lambda s: s.audio_chunks == 1)
            await c.send(c.peer.start())
            codes.append(await c.closed())

    o = await beside_a_healthy_call(long_reply, hostile)
    assert codes == [(1008, "second start on one stream")]
    assert o.hostile.stats.protocol_errors == 1
    assert o.hostile.end_reason == "second start on one stream"
    _check_warned(o, o.hostile.call_sid, 1)


@pytest.mark.parametrize("fmt", [
    {"encoding": "audio/l16", "sampleRate": 8000, "channels": 1},
    {"encoding": "audio/x-mulaw", "sampleRate": 16000, "channels": 1},
    {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 2},
], ids=["l16", "16kHz", "stereo"])
async def test_a_media_format_other_than_mulaw_8k_mono_closes_with_1003(
        long_reply: Path, fmt: dict[str, Any]) -> None:
    codes: list[tuple[int, str]] = []

    async def hostile(b: Bench) -> None:
        async with b.caller() as c:
            await c.send(c.peer.connected(), c.start_with(mediaFormat=fmt))
            codes.append(await c.closed())

    o = await beside_a_healthy_call(long_reply, hostile)
    described = f"{fmt['encoding']}/{fmt['sampleRate']}/{fmt['channels']}"
    reason = f"unsupported media format {described}; expected audio/x-mulaw/8000/1"
    assert codes == [(1003, reason)]
    assert o.hostile.end_reason == reason
    assert o.hostile.stats.protocol_errors == 1
    assert o.hostile.agent is None  # no call was set up ...
    assert o.hostile.call_sid is None
    assert not o.hostile.stats.frames_in
    _check_warned(o, None, 1)


async def test_a_malformed_start_closes_with_1008(long_reply: Path) -> None:
    codes: list[tuple[int, str]] = []

    async def hostile(b: Bench) -> None:
        async with b.caller() as c:
            await c.send(c.peer.connected(), c.start_with(callSid=None))
            codes.append(await c.closed())

    o = await beside_a_healthy_call(long_reply, hostile)
    assert codes == [(1008, "bad start: missing or not a string")]
    assert o.hostile.stats.protocol_errors == 1
    _check_warned(o, None, 1)


@pytest.mark.parametrize("payload", ["garbage", "json"])
async def test_a_binary_frame_closes_the_stream_with_1003(long_reply: Path, payload: str) -> None:
    codes: list[tuple[int, str]] = []

    async def hostile(b: Bench) -> None:
        async with b.caller() as c:
            await c.send(c.peer.connected(), c.peer.start(), c.peer.media(SILENCE))
            await b.hostile_session(lambda s: s.audio_chunks == 1)
            # Even a valid Twilio message is refused in a binary frame: Twilio sends text.
            await c.send_binary(b"\x00\xff\x13\x37" * 40 if payload == "garbage"
                                else c.peer.media(SILENCE).encode())
            codes.append(await c.closed())

    o = await beside_a_healthy_call(long_reply, hostile)
    assert codes == [(1003, "binary frames are not accepted")]
    assert o.hostile.end_reason == "binary frames are not accepted"
    assert o.hostile.stats.frames_forwarded == 1
    _check_warned(o, o.hostile.call_sid, 1)


async def test_a_frame_over_the_size_limit_closes_the_stream_with_1009(
        long_reply: Path) -> None:
    codes: list[tuple[int, str]] = []

    async def hostile(b: Bench) -> None:
        async with b.caller() as c:
            await c.send(c.peer.connected(), c.peer.start(),
                         c.media_with_payload("A" * (MAX_FRAME_BYTES + 4)))
            codes.append(await c.closed())

    o = await beside_a_healthy_call(long_reply, hostile)
    # aiohttp refuses it from the frame header (nothing of it is buffered) and closes 1009.
    assert codes[0][0] == 1009
    assert o.hostile.end_reason == f"frame larger than {MAX_FRAME_BYTES} bytes"
    assert o.hostile.stats.protocol_errors == 1
    _check_warned(o, o.hostile.call_sid, 1)


async def test_stop_without_start_ends_the_stream_at_once(long_reply: Path) -> None:
    codes: list[tuple[int, str]] = []

    async def hostile(b: Bench) -> None:
        async with b.caller() as c:
            await c.send(c.peer.connected(), c.peer.stop())
            codes.append(await c.closed())

    o = await beside_a_healthy_call(long_reply, hostile)
    assert codes == [(1000, "stop before start")]  # not held until the 10 s start timeout
    assert o.hostile.end_reason == "stop before start"
    assert o.hostile.stats.protocol_errors == 1
    _check_warned(o, None, 1)


# -- the connection itself -------------------------------------------------------------------


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
async def test_an_abrupt_tcp_close_ends_the_call_and_its_live_session(
        long_reply: Path, reset: bool) -> None:
    sessions: list[SessionRecord] = []

    async def hostile(b: Bench) -> None:
        async with b.caller() as c:
            await c.send(c.peer.connected(), c.peer.start(),
                         *[c.peer.media(SILENCE) for _ in range(3)])
            sessions.append(await b.hostile_session(lambda s: s.audio_chunks == 3))
            c.abort(reset=reset)  # no stop, no close frame
        # The gateway notices at once and closes the call's Live session.
        await b.hostile_session(lambda s: s.closed is not None)

    o = await beside_a_healthy_call(long_reply, hostile)
    assert o.hostile.end_reason == "caller disconnected"
    assert o.hostile.stats.frames_forwarded == 3
    assert sessions[0].closed is not None and sessions[0].closed[0] == 1000
    assert not o.warnings("protocol_error")
    assert not [e for e in o.logs if e["log_level"] == "error"]


async def test_a_flood_is_forwarded_with_backpressure_in_bounded_memory(
        long_reply: Path) -> None:
    """10,000 frames (200 s of audio) as fast as the socket takes them.

    Policy: faster-than-real-time audio is forwarded, not dropped (Live takes it, and a
    burst after a network stall is real audio), but never buffered: the gateway reads the
    next frame only once the last is on its way to Live, so a flood is held back by TCP
    flow control at the sender, and the read loop yields after every frame so other calls
    keep their turn on the event loop.
    """
    figures: dict[str, int] = {}

    async def hostile(b: Bench) -> None:
        async with b.caller() as c:
            await c.send(c.peer.connected(), c.peer.start())
            await b.hostile_session(lambda s: s.setup is not None)
            tracemalloc.start()
            try:
                base = tracemalloc.get_traced_memory()[0]
                await c.send_batched(c.peer.media(SILENCE) for _ in range(1_000))
                await b.hostile_session(lambda s: s.audio_chunks == 1_000, timeout=30)
                figures["after_1000"] = tracemalloc.get_traced_memory()[0] - base
                await c.send_batched(c.peer.media(SILENCE) for _ in range(FLOOD_FRAMES - 1_000))
                await b.hostile_session(lambda s: s.audio_chunks == FLOOD_FRAMES, timeout=60)
                current, peak = tracemalloc.get_traced_memory()
                figures["after_10000"] = current - base
                figures["peak"] = peak - base
            finally:
                tracemalloc.stop()
            await c.send(c.peer.stop())
            assert await c.closed() == (1000, "caller hung up")

    o = await beside_a_healthy_call(long_reply, hostile)
    print(f"\nflood of {FLOOD_FRAMES} frames: retained after 1,000 frames "
          f"{figures['after_1000'] / 1024:.0f} KiB, after 10,000 "
          f"{figures['after_10000'] / 1024:.0f} KiB, peak {figures['peak'] / 1024:.0f} KiB "
          f"(whole process, both calls and simulators, tracemalloc)")
    assert o.hostile.stats.frames_in == FLOOD_FRAMES
    assert o.hostile.stats.frames_forwarded == FLOOD_FRAMES
    assert o.hostile.stats.protocol_errors == 0
    assert figures["peak"] < FLOOD_MEMORY_BOUND
    # Nothing accumulates per frame: 9,000 more frames retain (almost) nothing more.
    assert figures["after_10000"] - figures["after_1000"] < 256 * 1024


async def test_a_caller_that_stops_reading_is_cut_off(
        long_reply: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The caller talks, then never reads the reply (a receive buffer of 2 KiB).

    aiohttp's sends succeed until the socket's buffers are full (the kernel's send buffer,
    capped by the gateway at 64 KiB, then ~200 KB in the transport's), then wait for drain with
    no limit of their own; reply audio meanwhile fills the bounded outbound queue and the rest
    is dropped and counted. A send blocked past CALLER_SEND_TIMEOUT_S ends the call, and the
    connection is reset rather than closed politely behind bytes the peer will never read.
    """
    monkeypatch.setattr(playout, "CALLER_SEND_TIMEOUT_S", 1.0)
    left: list[int] = []

    async def hostile(b: Bench) -> None:
        async with b.caller(rcvbuf=1024) as c:
            speech = load_utterance(speech_dir() / "caller_book_table.wav").data + SILENCE * 50
            frames = [speech[i:i + FRAME_BYTES].ljust(FRAME_BYTES, bytes([ULAW_SILENCE]))
                      for i in range(0, len(speech), FRAME_BYTES)]
            await c.send(c.peer.connected(), c.peer.start(),
                         *[c.peer.media(f) for f in frames])
            # The reply streams; the caller never reads. The gateway gives up on it ...
            await b.hostile_session(lambda s: s.closed is not None, timeout=30)
            # ... and reset the connection: only what sat in our own receive buffer is left,
            # nothing of what the gateway had queued for us (its buffers and its kernel's).
            left.append(await c.drain())

    o = await beside_a_healthy_call(long_reply, hostile, outbound_queue_items=50)
    assert o.hostile.end_reason == "caller socket not reading: a send blocked 1 s"
    assert o.hostile.stats.media_out > 0  # it was written to until the buffers filled
    assert o.hostile.stats.media_dropped_full > 0  # then the queue filled, and drops counted
    [warned] = o.warnings("caller_not_reading")
    assert warned["call_sid"] == o.hostile.call_sid
    assert left[0] < 8 * 1024
