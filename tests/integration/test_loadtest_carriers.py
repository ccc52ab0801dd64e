"""``voicegw loadtest --carrier NAME`` against a gateway signed for that carrier: each call
answers through the carrier's own webhook, streams in its format, and plays back as its phone
would (its marks or checkpoints confirmed, its clear honoured), over real loopback sockets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.cli import _parser
from gateway.config import Settings, custom_endpoint
from gateway.rig.loadtest.command import run
from gateway.rig.simulator import Scenario, SimulatorServer
from gateway.server import Gateway, running
from tests.cases import CASES, CarrierCase

SPEED = 4.0


@pytest.mark.parametrize("case", [c for c in CASES if c.carrier.value != "twilio"], ids=str)
async def test_two_signed_calls_with_a_barge_in_and_a_digit(
        case: CarrierCase, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env, secret = case.credentials("http://127.0.0.1:9")  # no call control is asked for
    json_out = tmp_path / "report.json"
    async with SimulatorServer(Scenario(speed=SPEED)) as sim:
        gateway = Gateway(Settings(endpoint=custom_endpoint(sim.url, "test-model")),
                          **case.gateway_options(env))
        async with running(gateway) as port:
            args = _parser().parse_args([
                "loadtest", "--url", f"http://127.0.0.1:{port}", "--carrier", str(case),
                "--calls", "2", "--count", "2", "--speed", str(SPEED),
                "--barge-in-ms", "1500", "--dtmf", "1", "--secret", secret,
                "--json-out", str(json_out), "--slo-barge-in-p95-ms", "600",
                "--slo-error-rate", "0"])
            code = await run(args)
    out = capsys.readouterr().out
    assert code == 0, out
    report = json.loads(json_out.read_text())
    assert report["calls"]["ok"] == 2 and report["errors"] == {}
    assert report["config"]["signed"]
    assert report["latency_ms"]["response"]["count"] == 4  # the first reply and the barge-in's
    assert 0 < report["latency_ms"]["barge_in"]["max"] <= 600
    frames = report["frames"]
    # Over 6 s of the caller's audio a call, in the carrier's message length (Exotel: 100 ms).
    send_ms = case.peer({}).send_ms
    assert frames["gateway_received"] == frames["sent"] > 2 * 6000 // send_ms
    assert frames["dtmf_sent"] == 2
    # The gateway saw each call through this carrier, with its digit and its barge-in.
    assert [s.carrier for s in gateway.finished] == [case.carrier.value] * 2
    assert all(s.stats.frames_forwarded == s.stats.frames_in for s in gateway.finished)
    assert all(s.stats.interruptions == 1 for s in gateway.finished)
