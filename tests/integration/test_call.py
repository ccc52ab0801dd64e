"""Whole calls over real loopback sockets: a Twilio peer -> the gateway -> the simulator -> back.

The phone plays bundled speech recordings as Twilio would (20 ms frames, marks echoed when
played, `clear` honoured). Calls run time-compressed (SPEED x real time) on both the phone and
the simulator, so the simulator's end-of-speech detection, which counts samples, is unaffected.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import trustme

from gateway.config import Settings, custom_endpoint
from gateway.live_client import open_session
from gateway.rig.phone import CallResult, Utterance, When, load_utterance, place_call
from gateway.rig.simulator import SimulatorServer, load_scenario
from gateway.rig.simulator.speech import speech_dir
from gateway.server import Gateway, running

SPEED = 4.0


def _scenario(tmp_path: Path, speed: float = SPEED) -> Path:
    path = tmp_path / "call.yaml"
    path.write_text(f"""
speed: {speed}
turns:
  - caller_text: "Hi, I'd like to book a table for two tomorrow evening."
    reply: agent_options
  - caller_text: "Actually, wait, can we make it eight?"
    reply: agent_moved
  - caller_text: "Thanks, goodbye."
    reply: agent_goodbye
""")
    return path


def _say(name: str, when: When, delay_ms: int) -> Utterance:
    return Utterance(load_utterance(speech_dir() / f"{name}.wav"), when, delay_ms)


def _media_after_clear(result: CallResult) -> int:
    kinds = [what for _, what in result.timeline]
    return kinds[kinds.index("clear"):].count("media")


async def test_two_turns_and_a_barge_in(tmp_path: Path) -> None:
    script = [
        _say("caller_book_table", When.START, 300),
        _say("caller_barge_in", When.BARGE_IN, 2000),  # over the 8.7 s reply
        _say("caller_goodbye", When.AFTER_REPLY, 600),
    ]
    async with SimulatorServer(load_scenario(_scenario(tmp_path))) as sim:
        gateway = Gateway(Settings(endpoint=custom_endpoint(sim.url, "test-model")))
        async with running(gateway) as port:
            result = await place_call(f"ws://127.0.0.1:{port}/media", script, speed=SPEED,
                                      parameters={"From": "+15550100"})
            await sim.wait_until(lambda: sim.sessions[-1].closed is not None)
    session = sim.sessions[0]
    summary = gateway.finished[-1]

    # Every caller frame reached the model, one audio message each, none lost or merged.
    assert result.frames_sent > 0
    assert summary.stats.frames_forwarded == result.frames_sent
    assert session.audio_chunks == result.frames_sent
    assert session.audio_rates == {16000}

    # Three replies were heard; the second was cut short by exactly one clear.
    assert session.turns_completed >= 3
    assert session.interruptions == 1
    assert result.clears == 1
    assert len(result.response_ms) == 3
    assert result.unanswered == 0

    # Nothing of the interrupted reply follows the clear: every media message the phone got
    # after it is one the simulator sent after its `interrupted` (one model chunk -> one media
    # message), and what came before plus what the gateway dropped is the rest.
    sent = session.sent
    cut = sent.index("interrupted")
    assert _media_after_clear(result) == sent[cut:].count("audio")
    kinds = [what for _, what in result.timeline]
    before = kinds[:kinds.index("clear")].count("media")
    assert before + summary.stats.media_dropped_barge_in == sent[:cut].count("audio")

    # The interrupted turn's marks were echoed by the phone on clear; the gateway knows what
    # the caller heard.
    assert result.marks_echoed == result.marks_received
    assert summary.stats.marks_heard == result.marks_received
    assert summary.stats.barge_in.count == 1
    assert summary.end_reason == "caller hung up"
    roles = [line.role for line in summary.transcript]
    assert roles[:2] == ["caller", "agent"]
    [cut_line] = [line for line in summary.transcript if line.interrupted]
    # What the caller heard of the interrupted reply: the start of it, cut at a word.
    assert cut_line.heard and len(cut_line.heard) < len(cut_line.text)
    assert cut_line.text.startswith(cut_line.heard)

    # The gateway's own response latency per turn (end of caller speech by its energy
    # detector -> first reply audio; wall clock at SPEED x) is the simulator's 500 ms of
    # silence to end a turn plus its 300 ms response delay, and a little transport. (The
    # phone measures from the end of each recording, whose last ~100 ms are near-silent.)
    gateway_ms = [ms * SPEED for ms in summary.stats.turn_latency_ms]
    assert len(gateway_ms) == len(result.response_ms) == 3
    assert all(790 <= ms <= 880 for ms in gateway_ms), gateway_ms


async def test_gateway_reaches_a_live_server_over_tls(tmp_path: Path) -> None:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    async with SimulatorServer(load_scenario(_scenario(tmp_path)), ssl_context=server_ctx) as sim:
        assert sim.url.startswith("wss://")
        endpoint = custom_endpoint(sim.url, "test-model", api_key="sim-key-123456")
        session = await open_session(endpoint, '{"setup":{"model":"models/test-model"}}',
                                     ssl_context=client_ctx)
        await session.close()
        await sim.wait_until(lambda: sim.sessions[-1].closed is not None)
    assert sim.sessions[0].api_key_seen
    assert sim.sessions[0].setup == {"model": "models/test-model"}
