"""The playout for carriers unlike Twilio: messages cut to the carrier's size, marks the
gateway confirms itself where the carrier confirms none, and its own pacing where the carrier
cannot clear what it holds (so a barge-in still silences the caller within the lead)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pytest
import structlog

from gateway import live
from gateway.audio import AudioFormat, Codec
from gateway.carriers.core import (
    Capabilities,
    Carrier,
    CarrierEvent,
    Chunking,
    Outgoing,
    Played,
)
from gateway.playout import CallerPlayout
from gateway.record import CallStats, Transcript
from gateway.recording import CallRecording

L16_16K = AudioFormat(Codec.L16, 16000)
FRAME = L16_16K.frame_bytes  # 640


@dataclass
class FakeStream:
    """A carrier core with the capabilities a test gives it; its frames are easy to read."""

    caps: Capabilities
    carrier: Carrier = Carrier.VONAGE
    call_id: str | None = "call-1"

    def receive(self, frame: str | bytes) -> Sequence[CarrierEvent]:
        return ()

    def play(self, audio: bytes) -> Outgoing:
        return audio

    def mark(self, name: str) -> Outgoing:
        return json.dumps({"mark": name})

    def clear(self) -> Outgoing:
        return json.dumps({"clear": True})


@dataclass
class Socket:
    sent: list[tuple[float, Outgoing]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def send_nowait(self, frame: Outgoing) -> bool:
        self.sent.append((time.perf_counter(), frame))
        self.changed.set()
        return True

    async def send(self, frame: Outgoing) -> None:
        self.send_nowait(frame)

    async def wait_audio(self, count: int) -> None:
        while len(self.audio()) < count:
            self.changed.clear()
            await self.changed.wait()

    def audio(self) -> list[bytes]:
        return [f for _, f in self.sent if isinstance(f, bytes)]

    def control(self) -> list[str]:
        return [f for _, f in self.sent if isinstance(f, str)]


ONE_FRAME = Chunking(FRAME, FRAME, FRAME)


def caps(*, clear: bool = True, marks: bool = True,
         chunking: Chunking = ONE_FRAME) -> Capabilities:
    return Capabilities(clear=clear, marks=marks, dtmf=True, hang_up=False, transfer=False,
                        stop_event=False, binary_audio=True, chunking=chunking)


def playout(stream: FakeStream, socket: Socket, *, recording: CallRecording | None = None,
            mark_interval_ms: int = 0, lead_ms: float = 100.0) -> CallerPlayout:
    return CallerPlayout(socket, stream, L16_16K, CallStats(), Transcript(time.perf_counter()),
                         max_queued=1000, mark_interval_ms=mark_interval_ms,
                         log=structlog.get_logger("test"), recording=recording,
                         lead_ms=lead_ms)


def reply(ms: int) -> live.ModelAudio:
    t = np.arange(24 * ms) / 24000
    return live.ModelAudio(pcm=(8000 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes(),
                           rate=24000)


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


# -- cut to the carrier's size -----------------------------------------------------------


def test_audio_goes_in_exactly_the_carriers_frames_and_the_tail_is_padded() -> None:
    socket = Socket()
    p = playout(FakeStream(caps()), socket)
    p.audio(reply(100), 0.0)  # 100 ms at 16 kHz: five whole frames, nothing held
    assert [len(a) for a in socket.audio()] == [FRAME] * 5
    p.audio(reply(30), 0.0)  # 30 ms: one frame goes, 10 ms waits for more
    assert len(socket.audio()) == 6
    p.turn_complete(live.TurnComplete(), 0.0)  # the turn's end: the 10 ms, padded
    audio = socket.audio()
    assert [len(a) for a in audio] == [FRAME] * 7
    assert audio[-1][FRAME // 2 + 2:] == b"\x00" * (FRAME // 2 - 2)  # silence after it
    assert p.turn_sent_ms == 0 and p.turn == 1


def test_a_barge_in_forgets_the_part_frame() -> None:
    socket = Socket()
    p = playout(FakeStream(caps()), socket)
    p.audio(reply(30), 0.0)
    p.interrupted(0.0)
    p.turn_complete(live.TurnComplete(), 0.0)
    assert len(socket.audio()) == 1 and socket.control() == ['{"clear": true}']


# -- marks the gateway confirms itself ---------------------------------------------------


async def test_without_carrier_marks_a_mark_plays_when_the_audio_before_it_has() -> None:
    socket = Socket()
    p = playout(FakeStream(caps(marks=False)), socket)
    p.audio(reply(60), 0.0)
    started = time.perf_counter()
    await asyncio.wait_for(p.play_out("goodbye"), 5)
    # Nothing was sent for the mark; it was confirmed once 60 ms of audio had played.
    assert socket.control() == []
    assert time.perf_counter() - started >= 0.05


async def test_turn_marks_of_our_own_say_what_was_heard() -> None:
    socket = Socket()
    p = playout(FakeStream(caps(marks=False)), socket, mark_interval_ms=20)
    p.audio(reply(40), 0.0)
    await asyncio.wait_for(p.play_out("done"), 5)
    assert p.heard == (0, 40.0)
    assert p.stats.marks_heard == 2


async def test_a_clear_settles_waiting_marks_and_their_late_echo_is_ignored() -> None:
    socket = Socket()
    p = playout(FakeStream(caps()), socket)
    p.audio(reply(100), 0.0)
    waiting = asyncio.create_task(p.play_out("call-control"))
    await asyncio.sleep(0)
    p.interrupted(0.0)
    await asyncio.wait_for(waiting, 1)  # settled by the clear, not left hanging
    with structlog.testing.capture_logs() as logs:
        p.played(Played("call-control"))  # Twilio echoes pending marks on a clear
    assert not [e for e in logs if e["event"] == "unknown_mark"]


# -- a carrier without clear: the gateway's own pacing -----------------------------------


@pytest.mark.parametrize("lead_ms", [60.0, 100.0])
async def test_paced_audio_never_runs_more_than_the_lead_ahead(lead_ms: float) -> None:
    socket = Socket()
    p = playout(FakeStream(caps(clear=False, marks=False)), socket, lead_ms=lead_ms)
    assert p.pacer is not None
    held: list[float] = []
    real_send = socket.send

    async def send(frame: Outgoing) -> None:
        assert p.pacer is not None
        await real_send(frame)
        # What the carrier holds once this frame is with it (the pacer counts it on return).
        held.append(p.pacer.queued_s(time.perf_counter()) + 0.02)

    socket.send = send  # type: ignore[method-assign]
    writer = asyncio.create_task(p.writer())
    p.audio(reply(300), 0.0)
    p.turn_complete(live.TurnComplete(), 0.0)
    await asyncio.wait_for(p.play_out("end"), 5)
    await _stop(writer)
    assert len(socket.audio()) == 15  # 300 ms in 20 ms frames
    # With each frame, the carrier held at most the lead (plus the clock's slack).
    assert max(held) <= lead_ms / 1000 + 0.005, held


async def test_a_barge_in_without_clear_drops_the_rest_and_cuts_the_recording() -> None:
    socket, recording = Socket(), CallRecording(16000)
    recording.caller(b"\x00\x00" * 160, time.perf_counter())
    p = playout(FakeStream(caps(clear=False, marks=False)), socket, recording=recording,
                lead_ms=100.0)
    writer = asyncio.create_task(p.writer())
    p.audio(reply(1000), 0.0)
    await asyncio.wait_for(socket.wait_audio(5), 5)  # a few frames out, most still held
    cut = time.perf_counter()
    p.interrupted(cut)
    sent = len(socket.audio())
    # The next frame was due within 20 ms: had anything survived the barge-in, it would go.
    await asyncio.sleep(0.1)  # a wait for what must not happen, not synchronisation
    await _stop(writer)
    assert len(socket.audio()) == sent  # nothing more after the barge-in
    assert socket.control() == []  # there is no clear to send
    assert p.stats.media_dropped_barge_in > 30
    # The recording keeps only what the carrier still played: at most the lead past the cut.
    _, agent = recording.take_all()
    played_s = np.count_nonzero(np.frombuffer(agent, "<i2")) / 16000
    assert played_s <= sent * 0.02 + 0.001
