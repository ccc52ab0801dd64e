"""What an Asterisk AudioSocket call carries, scored, as ``test_carrier_audio.py`` scores the
WebSocket carriers: real speech said over TCP in 8 kHz signed linear against what the
simulated Live server received at 16 kHz, and the simulator's reply against what reached the
phone at 8 kHz. No codec: only the gateway's resamplers stand between them.

The reply is sent as fast as the gateway has it (its pacing lead made endless, as
``_SendsAhead`` does for the other paths): the bytes are the same, and the call takes its
sped-up time.
"""

from __future__ import annotations

from typing import cast

from gateway.audio import AudioFormat, Codec, Resampler, decoder, frame_bytes
from gateway.audiosocket_server import AudioSocketConfig
from gateway.config import Settings, custom_endpoint
from gateway.live import INPUT_RATE
from gateway.rig.peers import PhonePeer
from gateway.rig.peers.audiosocket import AudioSocketPeer
from gateway.rig.phone import Speech, Utterance, When, place_call
from gateway.rig.simulator import SimulatorServer, scenario_from_dict
from gateway.server import running
from tests.audio_measure import agent_speech, pesq_of, stream
from tests.integration.test_carrier_audio import (
    REPLY,
    SAID,
    SPEED,
    START_MS,
    Heard,
    Listening,
    _SendsAhead,
    check_session,
    in_16k,
    scores_out,
)

LINE = AudioFormat(Codec.L16, 8000)


async def test_an_audiosocket_line_scores_as_its_resamplers_alone() -> None:
    source = agent_speech(SAID, LINE.rate)
    scenario = scenario_from_dict({"speed": SPEED, "silence_ms": 1200, "keep_audio_s": 60,
                                   "turns": [{"reply": REPLY}]})
    async with SimulatorServer(scenario) as sim:
        gateway = _SendsAhead(Settings(endpoint=custom_endpoint(sim.url, "test-model")),
                              carriers={}, audiosocket=AudioSocketConfig("127.0.0.1", 0))
        async with running(gateway):
            phone = Listening(AudioSocketPeer())
            peer = cast(PhonePeer, phone)
            result = await place_call(f"tcp://127.0.0.1:{gateway.audiosocket_port}",
                                      [Utterance(Speech(source, LINE), When.START, START_MS)],
                                      speed=SPEED, peer=peer, max_s=60.0)
            await sim.wait_until(lambda: all(s.closed is not None for s in sim.sessions))
    [session] = sim.sessions
    check_session(session, result)
    heard = Heard(result, source, bytes(session.audio), decoder(LINE.codec)(bytes(phone.replies)))
    # What the model heard is exactly the 8 -> 16 kHz resampler's output of what was said.
    want = stream(Resampler(8000, INPUT_RATE), bytes(result.said), frame_bytes(8000))
    assert len(heard.model) >= len(want) - 5 * frame_bytes(16000)
    assert heard.model == want[: len(heard.model)]
    ref, model = in_16k(heard, LINE)
    inbound = pesq_of(ref, model, INPUT_RATE)
    outbound, ideal = scores_out(heard, LINE)
    print(f"audiosocket-l16-8k: caller PESQ-WB {inbound:.2f}; reply PESQ-NB {outbound:.2f} "
          f"(ideal gateway {ideal:.2f})")
    assert inbound >= 3.7  # wide-band: the 3.4-4 kHz the 8 -> 16 kHz filter rolls off
    assert outbound >= ideal - 0.1
    assert outbound >= 4.0
