"""Call recordings: placement on the caller's clock, barge-in truncation, bounded memory."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from gateway.audio import pcm16_to_ulaw, ulaw_to_pcm16
from gateway.recording import FRAME, ULAW_SILENCE, CallRecording, StereoWavWriter

TONE = pcm16_to_ulaw((8000 * np.sin(np.arange(800) / 3)).astype("<i2").tobytes())  # 100 ms


def caller_frames(rec: CallRecording, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        rec.caller(bytes([i % 200]) * FRAME, at=i * 0.02)


def silent(ulaw: bytes) -> bool:
    return set(ulaw) <= {ULAW_SILENCE}


def test_agent_audio_lands_where_it_was_written_and_plays_back_to_back() -> None:
    rec = CallRecording()
    caller_frames(rec, 10)  # newest frame starts at 0.18 s
    rec.agent(TONE, at=0.19)  # written 10 ms into the newest frame
    rec.agent(TONE, at=0.19)  # queued behind the first, as Twilio plays it
    caller_frames(rec, 60, start=10)
    caller, agent = rec.take_all()
    assert len(caller) == len(agent) == 70 * FRAME
    start = round(0.19 * 8000)
    assert silent(agent[:start])
    assert agent[start:start + 2 * len(TONE)] == TONE + TONE
    assert silent(agent[start + 2 * len(TONE):])
    assert caller[:FRAME] == bytes([0]) * FRAME and caller[-FRAME:] == bytes([69]) * FRAME


def test_clear_cuts_what_was_queued_but_not_yet_played() -> None:
    rec = CallRecording()
    caller_frames(rec, 5)
    for _ in range(10):
        rec.agent(TONE, at=0.08)  # one second queued at 0.08 s
    caller_frames(rec, 20, start=5)  # newest frame at 0.48 s
    rec.clear(at=0.50)  # the caller talked over it: cut at 0.50 s
    rec.agent(TONE, at=0.60)  # the next reply
    caller_frames(rec, 50, start=25)
    _, agent = rec.take_all()
    cut, nxt = round(0.50 * 8000), round(0.60 * 8000)
    assert not silent(agent[cut - 160:cut])  # heard up to the clear
    assert silent(agent[cut:nxt])  # nothing of the cut reply after it
    assert agent[nxt:nxt + len(TONE)] == TONE


def test_settled_audio_is_handed_out_and_only_the_queued_tail_is_kept() -> None:
    rec = CallRecording()
    taken = 0
    for minute in range(3):
        for i in range(3000):  # one minute of frames, a reply every second
            n = minute * 3000 + i
            rec.caller(b"\x7f" * FRAME, at=n * 0.02)
            if i % 50 == 0:
                rec.agent(TONE, at=n * 0.02)
        caller, agent = rec.take_settled()
        assert len(caller) == len(agent)
        taken += len(caller)
        assert len(rec._caller) <= FRAME and len(rec._agent) <= 2 * len(TONE)
    caller, agent = rec.take_all()
    assert taken + len(caller) == 9000 * FRAME


def test_wav_is_stereo_caller_left_agent_right(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    w = StereoWavWriter(path)
    w.write(TONE, bytes([ULAW_SILENCE]) * len(TONE))
    w.write(bytes([ULAW_SILENCE]) * len(TONE), TONE)
    w.close()
    with wave.open(str(path)) as f:
        assert (f.getnchannels(), f.getsampwidth(), f.getframerate()) == (2, 2, 8000)
        data = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2").reshape(-1, 2)
    tone = np.frombuffer(ulaw_to_pcm16(TONE), dtype="<i2")
    assert np.array_equal(data[:800, 0], tone) and not data[:800, 1].any()
    assert np.array_equal(data[800:, 1], tone) and not data[800:, 0].any()
