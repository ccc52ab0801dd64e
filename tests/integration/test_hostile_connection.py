"""Hostile connections, for every carrier, each beside a healthy call of the same carrier: a
connection dropped without a word, a flood of audio faster than real time, a caller that stops
reading. The rest of the README's "Hostile input" table (broken frames) is in
``test_hostile_input.py``, on the same bench (:mod:`tests.integration.hostile_bench`).
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from gateway import playout
from gateway.carriers.core import Carrier
from gateway.rig.phone import load_utterance
from gateway.rig.simulator.record import SessionRecord
from gateway.rig.simulator.speech import speech_dir
from tests.integration.hostile_bench import (
    FLOOD_FRAMES,
    FLOOD_MEMORY_BOUND,
    HUNG_UP,
    Bench,
    beside_a_healthy_call,
    tone_wav,
)
from tests.integration.hostile_wires import WIRES

ALL = [pytest.param(c, id=c.value) for c in WIRES]


@pytest.fixture(scope="module")
def long_reply(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tone_wav(tmp_path_factory.mktemp("hostile") / "long_reply.wav", 60.0)


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
@pytest.mark.parametrize("carrier", ALL)
async def test_an_abrupt_tcp_close_ends_the_call_and_its_live_session(
        long_reply: Path, carrier: Carrier, reset: bool) -> None:
    sessions: list[SessionRecord] = []

    async def hostile(b: Bench) -> None:
        async with b.caller() as c:
            await c.send(*c.wire.opening(), *[c.wire.media() for _ in range(3)])
            sessions.append(await b.hostile_session(lambda s: s.audio_chunks == 3))
            c.abort(reset=reset)  # no stop, no close frame
        # The gateway notices at once and closes the call's Live session.
        await b.hostile_session(lambda s: s.closed is not None)

    o = await beside_a_healthy_call(long_reply, carrier, hostile)
    # Not a hang-up, even where a normal close is one (Plivo, Vonage): no close frame came.
    assert o.hostile.end_reason == "caller disconnected"
    assert o.hostile.stats.frames_forwarded == 3
    assert sessions[0].closed is not None and sessions[0].closed[0] == 1000
    assert not o.warnings("protocol_error")
    assert not [e for e in o.logs if e["log_level"] == "error"]


@pytest.mark.parametrize("carrier", ALL)
async def test_a_flood_is_forwarded_with_backpressure_in_bounded_memory(
        long_reply: Path, carrier: Carrier) -> None:
    """10,000 frames (200 s of audio) as fast as the socket takes them.

    Policy: faster-than-real-time audio is forwarded, not dropped (Live takes it, and a
    burst after a network stall is real audio), but never buffered: the gateway reads the
    next frame only once the last is on its way to Live, so a flood is held back by TCP
    flow control at the sender, and the read loop yields after every few frames so other
    calls keep their turn on the event loop.
    """
    figures: dict[str, int] = {}

    async def hostile(b: Bench) -> None:
        async with b.caller() as c:
            await c.send(*c.wire.opening())
            await b.hostile_session(lambda s: s.setup is not None)
            tracemalloc.start()
            try:
                base = tracemalloc.get_traced_memory()[0]
                await c.send_batched(c.wire.media() for _ in range(1_000))
                await b.hostile_session(lambda s: s.audio_chunks == 1_000, timeout=30)
                figures["after_1000"] = tracemalloc.get_traced_memory()[0] - base
                await c.send_batched(c.wire.media() for _ in range(FLOOD_FRAMES - 1_000))
                await b.hostile_session(lambda s: s.audio_chunks == FLOOD_FRAMES, timeout=60)
                current, peak = tracemalloc.get_traced_memory()
                figures["after_10000"] = current - base
                figures["peak"] = peak - base
            finally:
                tracemalloc.stop()
            assert await c.hang_up() == HUNG_UP[c.wire.stop_event]

    o = await beside_a_healthy_call(long_reply, carrier, hostile)
    print(f"\n{carrier.value}: flood of {FLOOD_FRAMES} frames: retained after 1,000 frames "
          f"{figures['after_1000'] / 1024:.0f} KiB, after 10,000 "
          f"{figures['after_10000'] / 1024:.0f} KiB, peak {figures['peak'] / 1024:.0f} KiB "
          f"(whole process, both calls and simulators, tracemalloc)")
    assert o.hostile.stats.frames_in == FLOOD_FRAMES
    assert o.hostile.stats.frames_forwarded == FLOOD_FRAMES
    assert o.hostile.stats.protocol_errors == 0
    assert figures["peak"] < FLOOD_MEMORY_BOUND[WIRES[carrier].fmt.frame_bytes]
    # Nothing accumulates per frame: 9,000 more frames retain (almost) nothing more.
    assert figures["after_10000"] - figures["after_1000"] < 256 * 1024


@pytest.mark.parametrize("carrier", ALL)
async def test_a_caller_that_stops_reading_is_cut_off(
        long_reply: Path, carrier: Carrier, monkeypatch: pytest.MonkeyPatch) -> None:
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
            fmt, size = c.wire.fmt, c.wire.fmt.frame_bytes
            speech = load_utterance(speech_dir() / "caller_book_table.wav").to(fmt) \
                + c.wire.silence * 50
            frames = [speech[i:i + size].ljust(size, c.wire.silence[:1])
                      for i in range(0, len(speech), size)]
            await c.send(*c.wire.opening(), *[c.wire.media(f) for f in frames])
            # The reply streams; the caller never reads. The gateway gives up on it ...
            await b.hostile_session(lambda s: s.closed is not None, timeout=30)
            # ... and, once the call has ended (the Live session closes first, so waiting for
            # that alone would race the reset), has reset the connection: only what sat in our
            # own receive buffer is left, nothing of what the gateway had queued for us (its
            # buffers and its kernel's).
            await b.hostile_ended()
            left.append(await c.drain())

    o = await beside_a_healthy_call(long_reply, carrier, hostile, outbound_queue_items=50)
    assert o.hostile.end_reason == "caller socket not reading: a send blocked 1 s"
    assert o.hostile.stats.media_out > 0  # it was written to until the buffers filled
    assert o.hostile.stats.media_dropped_full > 0  # then the queue filled, and drops counted
    [warned] = o.warnings("caller_not_reading")
    assert warned["call_sid"] == o.hostile.call_sid
    assert warned["carrier"] == carrier.value
    assert left[0] < 8 * 1024
