"""Finding the echo's delay, and the comfort-noise gate that stands in front of the canceller
until it has learnt there: on real speech, with the echo a handset gives."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.audio import rms
from gateway.caller_processing import LineCleaner
from gateway.echo_gate import EchoGate
from gateway.echo_path import EchoPath
from gateway.rig.simulator import speech
from gateway.rig.simulator.vad import EnergyVad, SpeechStarted
from gateway.voice_dsp import SpeexEcho
from tests.test_caller_processing import FRAME, RATE, agent_speech, as_i16, call

NOISE_RMS = 150.0  # a quiet line's background: about -47 dBFS


def line(far: np.ndarray, loss_db: float, delay_s: float, seed: int = 3) -> np.ndarray:
    """What the caller's side sends: the reply's echo, ``delay_s`` late and ``loss_db`` down
    through a handset's short response, over the line's own noise."""
    rng = np.random.default_rng(seed)
    h = rng.normal(0, 1, 48) * np.exp(-np.arange(48) / 12)
    h *= 10 ** (-loss_db / 20) / np.sqrt(np.sum(h ** 2))
    echo = np.convolve(far.astype(np.float64), h)[:len(far)]
    echo = np.concatenate([np.zeros(int(delay_s * RATE)), echo])[:len(far)]
    return echo + rng.normal(0, NOISE_RMS, len(far))


@pytest.mark.parametrize("delay_s", [0.04, 0.12, 0.25])
def test_the_echo_delay_is_found_within_a_second_of_reply(delay_s: float) -> None:
    far = agent_speech()
    mic = as_i16(line(far, 6, delay_s))
    path = EchoPath(RATE, FRAME)
    first = int(np.argmax(np.abs(far) > 300))
    found_at = None
    for k in range(len(far) // FRAME):
        s = slice(k * FRAME, (k + 1) * FRAME)
        path.push(mic[s].tobytes(), far[s].tobytes(), rms(far[s].tobytes()))
        if path.delay is not None and found_at is None:
            found_at = (k + 1) * FRAME
    assert found_at is not None
    assert (found_at - first) / RATE < delay_s + 1.0
    # The handset's response peaks within its first few taps.
    assert delay_s * RATE <= path.delay <= delay_s * RATE + 8


def test_no_delay_is_found_where_there_is_no_echo() -> None:
    far = agent_speech()
    mic = as_i16(np.random.default_rng(1).normal(0, 2000, len(far)))  # loud, but not echo
    path = EchoPath(RATE, FRAME)
    for k in range(len(far) // FRAME):
        s = slice(k * FRAME, (k + 1) * FRAME)
        path.push(mic[s].tobytes(), far[s].tobytes(), rms(far[s].tobytes()))
    assert path.estimates > 10
    assert path.delay is None


@pytest.mark.parametrize("delay_s", [0.04, 0.25])
def test_a_first_reply_at_6_db_never_reaches_a_detector_as_speech(delay_s: float) -> None:
    """The failure this exists for: before any canceller knows the echo path, the reply's
    echo at 6 dB down was a barge-in to a detector that tracks the noise floor."""
    far = agent_speech()
    silent = np.zeros(RATE, np.int16)  # a second of line before the agent speaks
    far = np.concatenate([silent, far])
    mic = as_i16(line(far, 6, delay_s))
    processed = call(LineCleaner(RATE, RATE, SpeexEcho(RATE), None), far, mic)
    unprocessed = mic[:len(processed)]

    def speech_starts(pcm: np.ndarray) -> int:
        vad = EnergyVad(noise_margin_db=10)
        return sum(isinstance(e, SpeechStarted) for e in vad.feed(pcm.tobytes(), RATE))

    assert speech_starts(unprocessed) > 0  # the line would interrupt the agent
    assert speech_starts(processed) == 0


def test_comfort_noise_keeps_the_line_s_own_level() -> None:
    rng = np.random.default_rng(2)
    gate = EchoGate(FRAME, window_frames=18)
    background = as_i16(rng.normal(0, NOISE_RMS, 50 * FRAME))
    for k in range(50):  # nothing playing: the gate learns the background
        gate.reference(0)
        gate.listen(background[k * FRAME:(k + 1) * FRAME].tobytes())
    loud_reply = (rng.normal(0, 4000, FRAME)).astype(np.int16).tobytes()
    echo = as_i16(rng.normal(0, 1500, FRAME)).tobytes()  # 8.5 dB under the reply
    gate.reference(rms(loud_reply))
    out = np.frombuffer(gate.apply(echo), np.int16).astype(np.float64)
    assert gate.gated == 1
    assert 0.5 * NOISE_RMS < np.sqrt(np.mean(out ** 2)) < 2 * NOISE_RMS
    caller = as_i16(rng.normal(0, 5000, FRAME)).tobytes()  # louder than the reply
    gate.reference(rms(loud_reply))
    assert gate.apply(caller) == caller
    assert gate.gated == 1


@pytest.mark.parametrize("delay_s", [0.04, 0.25])
def test_a_caller_talking_over_the_first_reply_is_still_heard(delay_s: float) -> None:
    """The gate's price is soft double-talk early in the first reply; a caller talking over
    the agent 1.5 s into it, at the bundled callers' level, must still start a turn."""
    far = np.concatenate([np.zeros(RATE, np.int16), agent_speech()])
    caller = np.frombuffer(speech.caller_pcm16("caller_book_table"), np.int16)
    at = int(2.5 * RATE)  # the reply starts at 1 s
    near = np.zeros(len(far))
    near[at:at + len(caller)] = caller
    mic = as_i16(line(far, 6, delay_s) + near)
    processed = call(LineCleaner(RATE, RATE, SpeexEcho(RATE), None), far, mic)
    starts = [e.audio_s for e in EnergyVad(noise_margin_db=10).feed(processed.tobytes(), RATE)
              if isinstance(e, SpeechStarted)]
    assert starts and abs(starts[0] - at / RATE) < 0.2
