"""A recorded call over real sockets: both channels line up with what the phone said and heard,
and the interrupted reply stops in the recording where the caller stopped hearing it."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from gateway.audio import ulaw_to_pcm16
from gateway.bridge_config import CallServices
from gateway.config import Settings, custom_endpoint
from gateway.registry import DEFAULT_AGENT, AgentRegistry
from gateway.rig.phone import When, place_call
from gateway.rig.simulator import SimulatorServer, load_scenario
from gateway.server import Gateway, load_prompt, running
from tests.integration.test_call import _say, _scenario

FRAME = 160
# Half the other call tests' 4x: at 4x a frame lasts 5 ms, and on a busy machine the phone's
# playback and the gateway's stamps drift by more than the frame or two allowed below (seen:
# 3 frames, 96 % agreement, with both cores loaded).
SPEED = 2.0


def active(pcm: np.ndarray) -> np.ndarray:
    """Per 20 ms frame: is there sound (peak above -40 dBFS)?"""
    n = len(pcm) // FRAME
    return np.abs(pcm[:n * FRAME].reshape(n, FRAME)).max(axis=1) > 330


async def test_recording_channels_match_what_was_said_and_heard(tmp_path: Path) -> None:
    script = [_say("caller_book_table", When.START, 300),
              _say("caller_barge_in", When.BARGE_IN, 2000),
              _say("caller_goodbye", When.AFTER_REPLY, 600)]
    async with SimulatorServer(load_scenario(_scenario(tmp_path, SPEED))) as sim:
        settings = Settings(endpoint=custom_endpoint(sim.url, "test-model"),
                            recordings_dir=str(tmp_path / "rec"), record_all=True)
        gateway = Gateway(settings, services=CallServices(
            agents=AgentRegistry(agents={DEFAULT_AGENT.name: DEFAULT_AGENT}),
            unavailable_prompt=load_prompt()))
        async with running(gateway) as port:
            result = await place_call(f"ws://127.0.0.1:{port}/media", script, speed=SPEED)
            await sim.wait_until(lambda: sim.sessions[-1].closed is not None)
    assert result.clears == 1
    with wave.open(str(tmp_path / "rec" / f"{result.call_sid}.wav")) as f:
        assert (f.getnchannels(), f.getframerate()) == (2, 8000)
        stereo = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2").reshape(-1, 2)
    said = np.frombuffer(ulaw_to_pcm16(bytes(result.said)), dtype="<i2")
    heard = np.frombuffer(ulaw_to_pcm16(bytes(result.heard)), dtype="<i2")

    # Left: exactly what the phone sent, frame for frame, from the first frame on.
    assert np.array_equal(stereo[:len(said), 0], said)

    # Right: what the phone played, on the same clock. The gateway writes a chunk a little
    # before the phone starts playing it, so allow a small lead; beyond that, the sound and
    # the silences (the cut after the barge-in above all) must agree frame by frame.
    rec, phone = active(stereo[:, 1]), active(heard)
    n = min(len(rec), len(phone))
    best = max(range(0, 4), key=lambda lag: int(np.sum(rec[:n - lag] == phone[lag:n])))
    agree = np.mean(rec[:n - best] == phone[best:n])
    assert best <= 2 and agree >= 0.97, (best, agree)

    # The interrupted reply stops in the recording where the clear was sent: after the
    # clear, the right channel is silent until the next reply, as the caller heard it.
    clear_ms = next(ms for ms, what in result.timeline if what == "clear")
    clear_frame = int(clear_ms // 20)
    assert rec[clear_frame - 5:clear_frame - best].all()  # talking up to the cut
    quiet = rec[clear_frame + 1:]
    assert not quiet[:10].any()  # then silence: nothing of the cut reply leaks
