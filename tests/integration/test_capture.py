"""Captures over real sockets: a call's inbound stream is saved, and `voicegw call` replays it."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path

import pytest
import structlog

from gateway import cli
from gateway.bridge_config import CallServices
from gateway.carriers.core import Carrier
from gateway.config import Settings, custom_endpoint
from gateway.errors import ConfigError
from gateway.registry import DEFAULT_AGENT, AgentRegistry
from gateway.rig.capture import load_capture
from gateway.rig.phone import When, place_call
from gateway.rig.simulator import SimulatorServer, load_scenario
from gateway.server import Gateway, load_prompt, running
from tests.integration.test_call import SPEED, _say, _scenario


async def test_a_captured_call_replays_frame_for_frame(tmp_path: Path) -> None:
    script = [_say("caller_book_table", When.START, 300),
              _say("caller_goodbye", When.AFTER_REPLY, 600)]
    params = {"From": "+15550100", "agent": "assistant"}
    async with SimulatorServer(load_scenario(_scenario(tmp_path))) as sim:
        settings = Settings(endpoint=custom_endpoint(sim.url, "test-model"),
                            capture_dir=str(tmp_path / "cap"))
        gateway = Gateway(settings, services=CallServices(
            agents=AgentRegistry(agents={DEFAULT_AGENT.name: DEFAULT_AGENT}),
            unavailable_prompt=load_prompt()))
        async with running(gateway) as port:
            url = f"ws://127.0.0.1:{port}/media"
            result = await place_call(url, script, speed=SPEED, parameters=params)
            await gateway.wait_idle()
            path = tmp_path / "cap" / f"{result.call_sid}.jsonl"
            header, *lines = [json.loads(line) for line in path.read_text().splitlines()]
            assert header == {"capture": 2, "carrier": "twilio"}
            events = [json.loads(e["frame"])["event"] for e in lines]
            assert events[:2] == ["connected", "start"] and events[-1] == "stop"
            assert events.count("media") == result.frames_sent
            assert events.count("mark") == result.marks_echoed
            assert all(a["t"] <= b["t"] for a, b in itertools.pairwise(lines))

            capture = load_capture(path)
            assert bytes(capture.audio) == bytes(result.said)  # every frame, in order
            assert capture.carrier is Carrier.TWILIO
            assert capture.parameters == params

            # Replayed through the CLI, as Twilio would send it, against the same gateway.
            out = tmp_path / "replay.wav"
            with structlog.testing.capture_logs():
                code = await asyncio.to_thread(cli.main, [
                    "call", str(path), "--url", url, "--out", str(out),
                    "--speed", str(SPEED), "--wait", "3"])
            assert code == 0 and out.exists()
            await gateway.wait_idle()
    replay = gateway.finished[-1]
    assert replay.stats.frames_in >= capture.frames
    assert replay.custom_parameters == params
    assert sum(s.turns_completed for s in sim.sessions[1:]) >= 2  # both utterances answered


def test_a_broken_capture_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"capture": 2, "carrier": "twilio"}\n'
                    '{"t": 0, "frame": "{\\"event\\": \\"connected\\"}"}\nnot json\n')
    with pytest.raises(ConfigError, match=r"bad.jsonl:3"):
        load_capture(path)


def test_a_capture_from_before_carriers_is_read_as_twilios(tmp_path: Path) -> None:
    from gateway.rig.peers.twilio import TwilioPeer

    peer = TwilioPeer(custom_parameters={"From": "+15550100"})
    path = tmp_path / "old.jsonl"
    frames = [*peer.opening(), peer.media(b"\x01" * 160), peer.stop()]
    path.write_text("".join(json.dumps({"t": i / 50, "frame": f}) + "\n"
                            for i, f in enumerate(frames)))
    capture = load_capture(path)
    assert capture.carrier is Carrier.TWILIO and capture.frames == 1
    assert capture.parameters == {"From": "+15550100"}
