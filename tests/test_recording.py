"""Call recordings: placement on the caller's clock, barge-in truncation, bounded memory, and
both channels at the call's own rate (narrow- or wideband)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from gateway.audio import AudioFormat, Codec, pcm16_to_ulaw
from gateway.recording import CallRecording, Feed, StereoWavWriter

RATE = 8000
FRAME = 160  # samples in 20 ms at 8 kHz
TONE = (8000 * np.sin(np.arange(800) / 3)).astype("<i2").tobytes()  # 100 ms at 8 kHz


def caller_frames(rec: CallRecording, n: int, start: int = 0, samples: int = FRAME) -> None:
    for i in range(start, start + n):
        rec.caller(np.full(samples, i % 200 + 1, "<i2").tobytes(), at=i * 0.02)


def silent(pcm: bytes) -> bool:
    return not np.frombuffer(pcm, "<i2").any()


def test_agent_audio_lands_where_it_was_written_and_plays_back_to_back() -> None:
    rec = CallRecording(RATE)
    caller_frames(rec, 10)  # newest frame starts at 0.18 s
    rec.agent(TONE, at=0.19)  # written 10 ms into the newest frame
    rec.agent(TONE, at=0.19)  # queued behind the first, as a carrier plays it
    caller_frames(rec, 60, start=10)
    caller, agent = rec.take_all()
    assert len(caller) == len(agent) == 70 * FRAME * 2
    start = round(0.19 * RATE) * 2
    assert silent(agent[:start])
    assert agent[start:start + 2 * len(TONE)] == TONE + TONE
    assert silent(agent[start + 2 * len(TONE):])
    assert caller[:4] == np.full(2, 1, "<i2").tobytes()
    assert caller[-4:] == np.full(2, 70, "<i2").tobytes()


def test_clear_cuts_what_was_queued_but_not_yet_played() -> None:
    rec = CallRecording(RATE)
    caller_frames(rec, 5)
    for _ in range(10):
        rec.agent(TONE, at=0.08)  # one second queued at 0.08 s
    caller_frames(rec, 20, start=5)  # newest frame at 0.48 s
    rec.clear(at=0.50)  # the caller talked over it: cut at 0.50 s
    rec.agent(TONE, at=0.60)  # the next reply
    caller_frames(rec, 50, start=25)
    _, agent = rec.take_all()
    cut, nxt = round(0.50 * RATE) * 2, round(0.60 * RATE) * 2
    assert not silent(agent[cut - 320:cut])  # heard up to the clear
    assert silent(agent[cut:nxt])  # nothing of the cut reply after it
    assert agent[nxt:nxt + len(TONE)] == TONE


def test_settled_audio_is_handed_out_and_only_the_queued_tail_is_kept() -> None:
    rec = CallRecording(RATE)
    taken = 0
    for minute in range(3):
        for i in range(3000):  # one minute of frames, a reply every second
            n = minute * 3000 + i
            rec.caller(b"\x7f\x00" * FRAME, at=n * 0.02)
            if i % 50 == 0:
                rec.agent(TONE, at=n * 0.02)
        caller, agent = rec.take_settled()
        assert len(caller) == len(agent)
        taken += len(caller)
        assert len(rec._caller) <= 2 * FRAME and len(rec._agent) <= 2 * len(TONE)
    caller, agent = rec.take_all()
    assert taken + len(caller) == 9000 * FRAME * 2


def test_caller_audio_of_any_length_keeps_the_clock() -> None:
    # A carrier that batches 100 ms (Exotel) or a wideband one: samples, not frames, count.
    rec = CallRecording(16000)
    for i in range(10):
        rec.caller(np.full(1600, i + 1, "<i2").tobytes(), at=i * 0.1)
    rec.agent(b"\x01\x00" * 160, at=0.95)  # 50 ms into the newest 100 ms
    _, agent = rec.take_all()
    start = round(0.95 * 16000) * 2
    assert silent(agent[:start]) and not silent(agent[start:start + 320])


@pytest.mark.parametrize(("fmt", "rate"), [(AudioFormat(Codec.PCMU, 8000), 8000),
                                           (AudioFormat(Codec.L16, 16000), 8000),
                                           (AudioFormat(Codec.L16_BE, 16000), 16000)])
def test_a_feed_turns_carrier_audio_into_the_recordings_pcm(fmt: AudioFormat,
                                                            rate: int) -> None:
    t = np.arange(fmt.rate) / fmt.rate
    pcm = (8000 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes()
    encoded = {Codec.PCMU: pcm16_to_ulaw(pcm), Codec.L16: pcm,
               Codec.L16_BE: np.frombuffer(pcm, "<i2").astype(">i2").tobytes()}[fmt.codec]
    feed = Feed(fmt, rate)
    out = np.frombuffer(b"".join(feed(encoded[i:i + 640]) for i in range(0, len(encoded), 640)),
                        "<i2").astype(float)
    assert abs(len(out) - rate) <= rate // 100  # a second in, a second out (less the delay)
    half = out[: rate // 2]  # half a second: 2 Hz a bin
    assert abs(np.argmax(np.abs(np.fft.rfft(half))) * 2 - 440) <= 2  # the tone, at its rate


def test_wav_is_stereo_caller_left_agent_right(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    w = StereoWavWriter(path, 16000)
    w.write(TONE, b"\x00" * len(TONE))
    w.write(b"\x00" * len(TONE), TONE)
    w.close()
    with wave.open(str(path)) as f:
        assert (f.getnchannels(), f.getsampwidth(), f.getframerate()) == (2, 2, 16000)
        data = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2").reshape(-1, 2)
    tone = np.frombuffer(TONE, dtype="<i2")
    assert np.array_equal(data[:800, 0], tone) and not data[:800, 1].any()
    assert np.array_equal(data[800:, 1], tone) and not data[800:, 0].any()
