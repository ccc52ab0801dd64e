"""The caller path on the rig's simulated phone lines, frame by frame at audio time: the
caller says a line, then stays silent through the agent's long reply, turn after turn. The
simulated Live server's activity detector (energy, tracking the noise floor) must never hear
the agent's own echo as the caller, from the first reply on; with the processing off it does.
``benchmarks/real_lines.py`` runs the same lines as whole calls at real time."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.audio import Resampler
from gateway.caller_processing import LineCleaner
from gateway.rig.line import LineModel
from gateway.rig.line_spec import parse_line
from gateway.rig.simulator import speech
from gateway.rig.simulator.vad import EnergyVad, SpeechStarted
from gateway.voice_dsp import SpeexEcho

RATE = 8000
FRAME = 160
TURNS = 2


def pcm(name: str) -> np.ndarray:
    raw, rate = speech.load_pcm_wav(speech.fixture(name).path)
    return np.frombuffer(Resampler(rate, RATE).process(raw), np.int16)


def false_starts(spec: str, processing: bool) -> int:
    """Speech the detector hears while the agent replies and the caller is silent."""
    reply, said = pcm("agent_options"), pcm("caller_goodbye")
    caller, far, replying = [np.zeros(int(0.3 * RATE), np.int16)], [np.zeros(int(0.3 * RATE))], []
    replying += [False] * (int(0.3 * RATE) // FRAME)
    for _ in range(TURNS):  # the caller's line, the detector's end and the model's latency, reply
        gap = np.zeros(len(said) + int(0.9 * RATE), np.int16)
        caller += [np.concatenate([said, np.zeros(int(0.9 * RATE), np.int16)]),
                   np.zeros(len(reply), np.int16)]
        far += [gap, reply]
        replying += [False] * (len(gap) // FRAME) + [True] * (len(reply) // FRAME)
    said_all, far_all = np.concatenate(caller), np.concatenate(far).astype(np.int16)
    line = LineModel(parse_line(spec), RATE)
    cleaner = LineCleaner(RATE, RATE, SpeexEcho(RATE), None) if processing else None
    out = []
    for k in range(len(said_all) // FRAME):
        at = 1000.0 + k * 0.02
        played = far_all[k * FRAME:(k + 1) * FRAME].tobytes()
        sent = line.send(said_all[k * FRAME:(k + 1) * FRAME].tobytes())
        line.hear(played)
        if cleaner is not None:
            cleaner.far_end(played, at)
            sent = cleaner.near_end(sent, at + 0.02)
        out.append(sent)
    vad = EnergyVad(noise_margin_db=10)  # as the benchmark's scenario sets it
    events = vad.feed(Resampler(RATE, 16000).process(b"".join(out)), 16000)
    return sum(1 for e in events if isinstance(e, SpeechStarted)
               and replying[min(int(e.audio_s / 0.02), len(replying) - 1)])


@pytest.mark.parametrize("spec", [
    "echo=6dB@40ms,noise=pink@20dB,seed=1",
    "echo=6dB@250ms,noise=pink@20dB,seed=1",
    "echo=12dB@250ms,noise=pink@20dB,seed=2",
    "echo=20dB@120ms,seed=4",
    "echo=6dB@120ms,codec=ulaw,seed=3",
])
def test_the_agent_s_echo_never_sounds_like_the_caller(spec: str) -> None:
    assert false_starts(spec, processing=False) > 0  # the line would interrupt the agent
    assert false_starts(spec, processing=True) == 0
