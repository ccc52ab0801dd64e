"""Calls over a simulated line (:mod:`gateway.rig.line`), over real loopback sockets: the phone
-> the gateway -> the simulated Live server.

The caller says one thing, then stays silent through the agent's 4.8 s reply. On an echoing
line the reply's echo reaches the simulated server, whose activity detection hears energy
only, as the real one does: it takes the echo for the caller talking over the agent and cuts
its own reply. That false barge-in is what the gateway has yet to prevent; the second test
documents today's behaviour, and is the one to turn round once the gateway cancels echo.
"""

from __future__ import annotations

from gateway.audio import rms
from gateway.config import Settings, custom_endpoint
from gateway.rig.line import level_dbov
from gateway.rig.line_spec import SPEECH_LEVEL_DBOV, LineSpec, parse_line
from gateway.rig.phone import CallResult, Utterance, When, load_utterance, place_call
from gateway.rig.simulator import Scenario, SessionRecord, SimulatorServer
from gateway.rig.simulator.speech import speech_dir
from gateway.server import Gateway, running

SPEED = 4.0
START_MS = 300
INPUT_RATE = 16000  # what the gateway sends the Live server


async def _call(line: LineSpec | None) -> tuple[CallResult, SessionRecord]:
    utterance = Utterance(load_utterance(speech_dir() / "caller_book_table.wav"), When.START,
                          START_MS)
    scenario = Scenario(speed=SPEED, keep_audio_s=60)
    async with SimulatorServer(scenario) as sim:
        gateway = Gateway(Settings(endpoint=custom_endpoint(sim.url, "test-model")))
        async with running(gateway) as port:
            result = await place_call(f"ws://127.0.0.1:{port}/media", [utterance],
                                      speed=SPEED, reply_wait_s=3.0, max_s=30.0, line=line)
            await sim.wait_until(lambda: sim.sessions[-1].closed is not None)
    return result, sim.sessions[0]


def _loud_frames_after(pcm: bytes, rate: int, from_s: float, threshold: float) -> int:
    step = 2 * rate // 50
    start = int(from_s * rate) * 2
    return sum(rms(pcm[at:at + step]) > threshold
               for at in range(start - start % step, len(pcm) - step + 1, step))


async def test_the_server_hears_the_echo_and_said_stays_clean() -> None:
    result, session = await _call(parse_line("echo=6dB@120ms,noise=pink@35dB"))
    audio = load_utterance(speech_dir() / "caller_book_table.wav").data
    # ``said`` is the script exactly: silence, the recording, silence (the WER reference).
    at = START_MS * 8
    assert bytes(result.said[at:at + len(audio)]) == audio
    rest = bytes(result.said[:at] + result.said[at + len(audio):])
    assert rest.strip(b"\xff") == b"" or len(rest.strip(b"\xff")) < 160  # last frame's pad
    # ``sent`` is what the line delivered: the same length, the echo and noise in it.
    assert len(result.sent) == len(result.said) and result.sent != result.said
    # The caller's words ended here; anything loud at the server after it is the echo: at
    # least the onset its activity detection needs (it then cut the reply, ending the echo).
    words_end_s = (START_MS + 3228 + 200) / 1000
    scenario = Scenario()
    assert _loud_frames_after(bytes(session.audio), INPUT_RATE, words_end_s,
                              scenario.vad_threshold) >= scenario.onset_ms // 20
    # The phone heard the reply begin, and the noise was there all along.
    assert result.response_ms and result.media_received > 0
    # Before the caller speaks: the noise alone, 35 dB under the reference speech level
    # (give or take what 300 ms of pink noise wanders).
    noise = level_dbov(result.sent_pcm()[:2 * at])
    assert abs(noise - (SPEECH_LEVEL_DBOV - 35)) < 3


async def test_an_echoing_line_makes_todays_gateway_cut_its_own_reply() -> None:
    """Documents the problem: a silent caller, a 6 dB echo, and the agent interrupts itself
    (the server's ``interrupted``, the gateway's clear to the phone); on a clean line, not."""
    clean, clean_session = await _call(None)
    assert clean_session.interruptions == 0 and clean.clears == 0
    assert clean.sent == bytearray()  # no line: nothing but ``said`` went
    echoing, session = await _call(parse_line("echo=6dB@120ms"))
    assert session.interruptions >= 1
    assert echoing.clears >= 1
    # Cut short: the phone heard less of the reply than on the clean line.
    assert echoing.audio_received_ms < clean.audio_received_ms
