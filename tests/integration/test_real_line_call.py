"""A whole call on the hardest echoing line the gateway is held to, at real time: the agent's
own voice comes back only 6 dB down after 250 ms under pink noise 20 dB below the caller, and
the gateway cancels it (echo cancellation is on by default), so the simulated Live server,
whose activity detection hears echo as the caller, never interrupts a reply the caller stayed
silent through, the call's first included; when the caller really talks over the agent, it
does. Real time, because the canceller's reference is timed by the gateway's own clock, as the
carrier plays it.

With the processing off (``PROCESSING``), the same call is interrupted by its own echo
(measured: it fails here every time). ``benchmarks/real_lines.py`` runs the whole grid.
"""

from __future__ import annotations

from gateway.caller_processing import LineProcessing
from gateway.config import Settings, custom_endpoint
from gateway.rig.line_spec import parse_line
from gateway.rig.peers.twilio import TwilioPeer
from gateway.rig.phone import Utterance, When, load_utterance, place_call
from gateway.rig.simulator import SimulatorServer, scenario_from_dict
from gateway.rig.simulator.speech import speech_dir
from gateway.server import Gateway, running

LINE = "echo=6dB@250ms,noise=pink@20dB,seed=3"
PROCESSING = LineProcessing()  # the default: echo cancellation on (off: this test fails)


def say(name: str, when: When, delay_ms: int) -> Utterance:
    return Utterance(load_utterance(speech_dir() / f"{name}.wav"), when, delay_ms)


async def test_an_echoing_noisy_line_has_no_false_interruption_and_one_true_barge_in() -> None:
    scenario = scenario_from_dict({"speed": 1.0, "vad_noise_margin_db": 10, "turns": [
        {"reply": "agent_greeting"}, {"reply": "agent_options"}, {"reply": "agent_goodbye"}]})
    async with SimulatorServer(scenario) as sim:
        gateway = Gateway(Settings(endpoint=custom_endpoint(sim.url, "test-model"),
                                   stall_timeout_s=0.0, line_processing=PROCESSING))
        async with running(gateway) as port:
            result = await place_call(
                f"ws://127.0.0.1:{port}/twilio/media",
                [say("caller_goodbye", When.START, 300),  # then silent through the reply
                 say("caller_seven_thirty", When.AFTER_REPLY, 600),
                 say("caller_barge_in", When.BARGE_IN, 1500)],  # talks over the second
                peer=TwilioPeer(), line=parse_line(LINE), max_s=60.0, tail_ms=600)
            await sim.wait_until(lambda: all(s.closed is not None for s in sim.sessions))
    [session] = sim.sessions
    # Three replies; only the one the caller talked over was cut, and the phone heard it stop.
    assert session.turns_completed == 3
    assert session.interruptions == 1
    assert result.clears == 1 and len(result.barge_in_ms) == 1
    [summary] = gateway.finished
    assert summary.stats.interruptions == 1
