"""Hostile and broken AudioSocket input, each row beside a healthy AudioSocket call on the
same gateway: the README's "Hostile input" table for Asterisk AudioSocket over TCP.

The healthy call runs eight times faster than real time, the gateway sending its reply as
soon as it has it (pacing is the subject of ``test_audiosocket_call.py`` and the benchmark, not
of this table). AudioSocket has no close codes: whatever ends a stream, the gateway sends its
hang-up message (Asterisk then goes on with the dialplan) and closes. So each row checks what
the hostile connection received (the hang-up, or nothing yet), what the gateway counted and
logged, and the hostile call's end on its record; and that the healthy call did not notice:
every message it sent reached its Live session, its reply was heard in full, and its call
ended as it should.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from gateway import playout
from gateway.carriers.audiosocket import HANGUP_FRAME, Kind, frame, uuid_frame
from gateway.ending import EndKind
from gateway.record import CallSummary
from gateway.rig.peers.audiosocket import AudioSocketPeer
from gateway.rig.phone import CallResult, Utterance, When, load_utterance
from gateway.rig.simulator.speech import fixture, speech_dir
from tests.integration.hostile_bench import tone_wav
from tests.integration.test_audiosocket_call import Pbx, pbx

SILENCE = b"\x00\x00" * 160
HEALTHY = [{"caller_text": "Thanks, goodbye.", "reply": "agent_goodbye"}]
REPLY_MS = fixture("agent_goodbye").duration_s * 1000
FAST = 8.0


class Raw:
    """A hand-made AudioSocket connection that can break every rule."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.call = uuid.uuid4()

    @property
    def call_id(self) -> str:
        return str(self.call)

    async def send(self, *messages: bytes) -> None:
        for message in messages:
            self.writer.write(message)
        await self.writer.drain()

    async def start(self) -> None:
        await self.send(uuid_frame(self.call), frame(Kind.AUDIO, SILENCE))

    async def received(self, timeout: float = 15.0) -> bytes:  # noqa: ASYNC109
        """Everything the gateway sends until it closes."""
        async with asyncio.timeout(timeout):
            return await self.reader.read()


async def both_heard(p: Pbx, chunks: int) -> None:
    """Both calls' Live sessions have had ``chunks`` audio messages (the hostile line sends
    only those it is told to; the healthy one streams on)."""
    await p.sim.wait_until(lambda: len(p.sim.sessions) == 2
                           and min(s.audio_chunks for s in p.sim.sessions) >= chunks)


@contextlib.asynccontextmanager
async def raw(p: Pbx, **sock: int) -> AsyncIterator[Raw]:
    reader, writer = await asyncio.open_connection("127.0.0.1", p.tcp, **sock)
    try:
        yield Raw(reader, writer)
    finally:
        writer.transport.abort()


@dataclass
class Outcome:
    healthy: CallResult
    healthy_summary: CallSummary
    hostile: CallSummary | None
    logs: list[dict[str, Any]]

    def warnings(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.logs if e["event"] == event and e["log_level"] == "warning"]


Hostile = Callable[[Pbx], Awaitable[str]]  # returns the hostile call's id


async def beside_a_healthy_call(tmp_path: Path, hostile: Hostile, **gateway: Any) -> Outcome:
    async with pbx(tmp_path, HEALTHY, paced=False, speed=FAST) as p:
        for name, value in gateway.items():
            setattr(p.gateway.settings, name, value)
        with capture_logs() as logs:
            healthy = asyncio.create_task(p.call(
                [Utterance(load_utterance(speech_dir() / "caller_goodbye.wav"), When.START,
                           300)], tail_ms=400, speed=FAST))
            call_id = await hostile(p)
            result, _ = await healthy
            await p.gateway.wait_idle()
        finished = {s.call_sid: s for s in p.gateway.finished}
    summary = finished[result.call_sid]
    # The healthy call did not notice.
    stats = summary.stats
    assert stats.protocol_errors == 0 and stats.unknown_events == 0
    assert stats.frames_forwarded == stats.frames_in > 0
    assert result.audio_received_ms >= REPLY_MS - 40
    assert summary.end.kind is EndKind.CALLER_HUNG_UP
    return Outcome(result, summary, finished.get(call_id), logs)


async def test_a_broken_message_is_dropped_counted_and_logged(tmp_path: Path) -> None:
    async def hostile(p: Pbx) -> str:
        async with raw(p) as c:
            await c.start()
            await c.send(frame(Kind.AUDIO, b"\x00" * 3), frame(Kind.DTMF, b"x"),
                         frame(Kind.AUDIO, SILENCE))
            await both_heard(p, 2)
            await c.send(HANGUP_FRAME)
            assert await c.received() in (b"", HANGUP_FRAME)  # its hang-up, at most, echoed
            return c.call_id

    o = await beside_a_healthy_call(tmp_path, hostile)
    assert o.hostile is not None
    assert o.hostile.stats.protocol_errors == 2
    assert o.hostile.stats.frames_forwarded == 2  # the valid audio before and after
    assert o.hostile.end.kind is EndKind.CALLER_HUNG_UP
    warned = o.warnings("protocol_error")
    assert len(warned) == 2 and all(w["call_sid"] == o.hostile.call_sid for w in warned)


async def test_an_unknown_kind_is_ignored_and_counted_apart(tmp_path: Path) -> None:
    async def hostile(p: Pbx) -> str:
        async with raw(p) as c:
            await c.start()
            await c.send(bytes([0x42, 0, 1, 7]), frame(Kind.AUDIO, SILENCE))
            await both_heard(p, 2)
            await c.send(HANGUP_FRAME)
            await c.received()
            return c.call_id

    o = await beside_a_healthy_call(tmp_path, hostile)
    assert o.hostile is not None
    assert o.hostile.stats.unknown_events == 1 and o.hostile.stats.protocol_errors == 0
    assert o.hostile.stats.frames_forwarded == 2


async def test_too_many_broken_messages_hang_the_call_up(tmp_path: Path) -> None:
    async def hostile(p: Pbx) -> str:
        async with raw(p) as c:
            await c.start()
            await c.send(*[frame(Kind.DTMF, b"x")] * 51)  # one past the bridge's limit
            assert await c.received() == HANGUP_FRAME
            return c.call_id

    o = await beside_a_healthy_call(tmp_path, hostile)
    assert o.hostile is not None
    assert o.hostile.end.kind is EndKind.PROTOCOL_ERROR
    assert "too many protocol errors" in o.hostile.end.detail


@pytest.mark.parametrize(("row", "messages", "reason"), [
    ("second-uuid", [uuid_frame(uuid.uuid4())], "second start"),
    ("unsupported-rate", None, "0x16"),  # 48 kHz: refused, not heard as noise
    ("oversized", [bytes([Kind.AUDIO, 0x40, 0x00])], "larger than"),
], ids=lambda v: v if isinstance(v, str) else "")
async def test_what_no_call_can_survive_hangs_up_at_once(
        tmp_path: Path, row: str, messages: list[bytes] | None, reason: str) -> None:
    async def hostile(p: Pbx) -> str:
        async with raw(p) as c:
            if messages is None:  # the call's first audio is in a rate the gateway refuses
                await c.send(uuid_frame(c.call), bytes([0x16, 0, 2, 0, 0]))
            else:
                await c.start()
                await c.send(*messages)
            assert await c.received() == HANGUP_FRAME
            return c.call_id

    o = await beside_a_healthy_call(tmp_path, hostile)
    [rejected] = o.warnings("caller_rejected")
    assert reason in rejected["reason"]
    if o.hostile is not None:
        assert o.hostile.end.kind is EndKind.PROTOCOL_ERROR


async def test_a_hang_up_before_any_audio_ends_at_once(tmp_path: Path) -> None:
    async def hostile(p: Pbx) -> str:
        async with raw(p) as c:
            await c.send(uuid_frame(c.call), HANGUP_FRAME)
            assert await c.received() in (b"", HANGUP_FRAME)
            return c.call_id

    o = await beside_a_healthy_call(tmp_path, hostile)
    assert o.hostile is None or o.hostile.end.kind is EndKind.CALLER_HUNG_UP
    assert not o.warnings("protocol_error")


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
async def test_an_abrupt_close_ends_the_call_and_its_live_session(
        tmp_path: Path, reset: bool) -> None:
    async def hostile(p: Pbx) -> str:
        async with raw(p) as c:
            await c.start()
            await p.sim.wait_until(lambda: len(p.sim.sessions) >= 2
                                   and all(s.setup is not None for s in p.sim.sessions))
            if reset:
                c.writer.transport.abort()
            else:
                c.writer.close()
            return c.call_id

    o = await beside_a_healthy_call(tmp_path, hostile)
    assert o.hostile is not None
    assert o.hostile.end.kind is EndKind.CALLER_DISCONNECTED
    assert not [e for e in o.logs if e["log_level"] == "error"]


async def test_a_flood_is_forwarded_with_backpressure_in_bounded_memory(tmp_path: Path) -> None:
    """10,000 messages (200 s of audio) as fast as TCP takes them: all forwarded, none held."""
    figures: dict[str, int] = {}

    async def hostile(p: Pbx) -> str:
        async with raw(p) as c:
            await c.start()
            await p.sim.wait_until(lambda: len(p.sim.sessions) >= 2)
            tracemalloc.start()
            try:
                base = tracemalloc.get_traced_memory()[0]
                await c.send(*[frame(Kind.AUDIO, SILENCE)] * 10_000)
                await p.sim.wait_until(lambda: any(s.audio_chunks >= 10_001
                                                   for s in p.sim.sessions), timeout=60)
                current, peak = tracemalloc.get_traced_memory()
                figures["retained"], figures["peak"] = current - base, peak - base
            finally:
                tracemalloc.stop()
            await c.send(HANGUP_FRAME)
            await c.received()
            return c.call_id

    o = await beside_a_healthy_call(tmp_path, hostile)
    print(f"\naudiosocket: flood of 10,000 messages: retained {figures['retained'] / 1024:.0f} "
          f"KiB, peak {figures['peak'] / 1024:.0f} KiB (whole process, tracemalloc)")
    assert o.hostile is not None
    assert o.hostile.stats.frames_forwarded == o.hostile.stats.frames_in == 10_001
    assert figures["peak"] < 2 * 1024 * 1024


async def test_a_peer_that_stops_reading_is_cut_off(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """It talks, then never reads a long reply: the pacer sends at real time, the small
    buffers fill within seconds, a send blocks past the timeout, and the call ends."""
    monkeypatch.setattr(playout, "CALLER_SEND_TIMEOUT_S", 1.0)
    long_reply = tone_wav(tmp_path / "long.wav", 30.0)
    async with pbx(tmp_path, [{"caller_text": "Thanks, goodbye.", "reply": str(long_reply)}]
                   ) as p, raw(p) as c:
        sock = c.writer.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
        c.writer.transport.pause_reading()  # never reads (type: an asyncio transport)
        speech = load_utterance(speech_dir() / "caller_goodbye.wav").to(AudioSocketPeer().inbound)
        await c.send(uuid_frame(c.call), *[frame(Kind.AUDIO, speech[i:i + 320].ljust(320, b"\0"))
                                           for i in range(0, len(speech), 320)],
                     *[frame(Kind.AUDIO, SILENCE)] * 50)
        await p.sim.wait_until(lambda: bool(p.sim.sessions) and p.sim.sessions[0].closed
                               is not None, timeout=60)
        await p.gateway.wait_idle()
        [summary] = p.gateway.finished
    assert summary.end.kind is EndKind.CALLER_DISCONNECTED
    assert "not reading" in summary.end.detail
    assert summary.stats.media_out > 0  # it was written to until the buffers filled
