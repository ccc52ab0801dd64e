"""``voicegw loadtest`` end to end, CI-sized: a few calls, 4x compressed, on loopback.

In process (the gateway's own summaries are then the oracle for frames) and as
subprocesses (``--local``, with CPU sampled per process). The simulator ends a turn after
500 ms of caller silence and answers 300 ms later; the phone measures from the end of the
recording, whose last ~100 ms are near-silent, so a healthy response latency is ~700-900 ms.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from gateway.carrier_setup import all_setups
from gateway.carriers.core import Carrier
from gateway.cli import _parser, main
from gateway.config import Settings, custom_endpoint
from gateway.rig.loadtest.command import run
from gateway.rig.simulator import Scenario, SimulatorServer
from gateway.server import Gateway, running

SPEED = 4.0
TOKEN = "loadtest-token-0123456789"


def _signed(sim_url: str) -> Gateway:
    carriers = {Carrier.TWILIO: all_setups({"TWILIO_AUTH_TOKEN": TOKEN})[Carrier.TWILIO]}
    return Gateway(Settings(endpoint=custom_endpoint(sim_url, "test-model")),
                   carriers=carriers)


async def test_three_concurrent_signed_calls_with_barge_in(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    json_out, html_out = tmp_path / "report.json", tmp_path / "report.html"
    async with SimulatorServer(Scenario(speed=SPEED)) as sim:
        gateway = _signed(sim.url)
        async with running(gateway) as port:
            # The gateway's address: each call answers first, as Twilio does, and carries the
            # token its answer minted.
            args = _parser().parse_args([
                "loadtest", "--url", f"http://127.0.0.1:{port}", "--calls", "3",
                "--count", "3", "--speed", str(SPEED), "--barge-in-ms", "1500",
                "--dtmf", "1", "--secret", TOKEN, "--param", "tenant=acme",
                "--json-out", str(json_out),
                "--html-out", str(html_out), "--slo-response-p95-ms", "1200",
                "--slo-barge-in-p95-ms", "600", "--slo-error-rate", "0"])
            code = await run(args)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "GREEN" in out

    report = json.loads(json_out.read_text())
    assert report["calls"]["completed"] == report["calls"]["ok"] == 3
    assert report["calls"]["peak_concurrency"] == 3
    assert report["errors"] == {}
    assert report["config"]["signed"]
    # One reply to the first utterance and one to the barge-in, per call.
    response = report["latency_ms"]["response"]
    assert response["count"] == 6
    assert all(600 <= ms <= 1000 for c in report["calls_detail"] for ms in c["response_ms"])
    barge = report["latency_ms"]["barge_in"]
    assert barge["count"] == 3
    assert 0 < barge["max"] <= 600
    # Every frame the phones wrote reached the gateway: its /metrics and its own summaries.
    frames = report["frames"]
    assert frames["sent"] == frames["attempted"] > 3 * 300
    assert frames["gateway_received"] == frames["sent"]
    assert sum(s.stats.frames_forwarded for s in gateway.finished) == frames["sent"]
    assert frames["dtmf_sent"] == 3
    # Each stream's start carried the --param, as Twilio carries <Parameter>s.
    assert [s.custom_parameters.get("tenant") for s in gateway.finished] == ["acme"] * 3
    # The load generator watched itself (psutil): at least one sample over ~5 s.
    assert report["resources"]["loadgen"]["rss_max_mb"] > 0

    page = html_out.read_text()
    assert page.count('src="data:image/png;base64,') == 2
    assert "Latency distributions" in page
    assert "Concurrency, CPU and latency over time" in page


def test_local_subprocesses_and_an_impossible_slo(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    json_out = tmp_path / "report.json"
    code = main(["loadtest", "--local", "--calls", "2", "--count", "2", "--speed", str(SPEED),
                 "--json-out", str(json_out), "--slo-response-p95-ms", "1"])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "RED" in out
    assert "SLO FAIL response p95 ms" in out
    report = json.loads(json_out.read_text())
    assert report["calls"]["ok"] == 2
    assert report["frames"]["gateway_received"] == report["frames"]["sent"] > 0
    # The gateway and the simulator ran as their own processes, each measured.
    for name in ("gateway", "simulator"):
        assert report["resources"][name]["rss_max_mb"] > 10
        assert report["resources"][name]["cpu_mean_pct"] is not None


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_nothing_listening_is_connect_refused(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    json_out = tmp_path / "report.json"
    code = main(["loadtest", "--url", f"ws://127.0.0.1:{_closed_port()}/media", "--calls", "2",
                 "--json-out", str(json_out)])
    assert code == 1  # no call succeeded: red even without an SLO
    report = json.loads(json_out.read_text())
    assert report["errors"] == {"connect_refused": 2}
    assert report["frames"]["sent"] == 0
    assert report["latency_ms"]["connect"]["count"] == 0
    capsys.readouterr()


async def test_a_wrong_signature_is_refused_at_the_answer(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    json_out = tmp_path / "report.json"
    async with SimulatorServer(Scenario(speed=SPEED)) as sim:
        gateway = _signed(sim.url)
        async with running(gateway) as port:
            args = _parser().parse_args([
                "loadtest", "--url", f"http://127.0.0.1:{port}", "--count", "2",
                "--calls", "1", "--secret", "not-the-token", "--json-out", str(json_out),
                "--slo-error-rate", "0.5"])
            code = await run(args)
    assert code == 1
    report = json.loads(json_out.read_text())
    assert report["errors"] == {"answer_403": 2}  # refused at the webhook: no stream at all
    assert gateway.counters[("twilio", "signature")] == 2
    assert report["slo"]["checks"] == [{"name": "error rate", "limit": 0.5, "value": 1.0,
                                        "ok": False}]
    capsys.readouterr()


def test_local_added_latency_from_both_traces(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    trace, json_out = tmp_path / "phones.jsonl", tmp_path / "report.json"
    code = main(["loadtest", "--local", "--calls", "3", "--count", "3", "--ramp", "0.3",
                 "--speed", str(SPEED), "--barge-in-ms", "1500", "--trace", str(trace),
                 "--json-out", str(json_out)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "added inbound ms" in out
    assert (tmp_path / "phones.sim.jsonl").stat().st_size > 0  # the simulator's, by default
    report = json.loads(json_out.read_text())
    added = report["added_latency"]
    # Every call found its own Live session, and nothing was left over or in doubt.
    assert added["matched"] == added["phone_calls"] == added["sessions"] == 3
    assert added["unmatched_calls_count"] == added["unmatched_sessions_count"] == 0
    assert added["ambiguous"] == 0
    assert all(not c["notes"] for c in added["per_call"])
    # Each 20 ms the phones sent is one inbound sample: all of it reached the simulator.
    assert added["inbound_ms"]["count"] == report["frames"]["sent"]
    # Loopback through our gateway: positive (causal) and well under 50 ms for most of it.
    # (Loose bounds: a busy CI machine stalls processes for tens of ms now and then.)
    for key in ("inbound_ms", "reply_ms"):
        s = added[key]
        assert s["count"] > 0
        assert 0 < s["p50"] < 20, (key, s)
        assert s["p95"] < 50, (key, s)
        assert s["p99"] < 100, (key, s)
    barge = added["barge_in_ms"]
    assert barge["count"] == 3
    assert 0 < barge["p50"] < 50

    # --local traced the gateway as well: the same paths, timed to its own writes. Each of
    # those writes comes before the rig's read of it, sample for sample, give or take the
    # write itself: the gateway stamps once its write returns, and on loopback the peer on
    # the other core may read the bytes a few tens of µs before that.
    assert (tmp_path / "phones.gateway.jsonl").stat().st_size > 0
    assert "at gateway inbound ms" in out
    at_gw = report["added_at_gateway"]
    assert at_gw["calls_matched_to_phones"] == at_gw["calls_matched_to_sessions"] == "3 of 3"
    assert at_gw["warnings"] == []
    assert at_gw["inbound_ms"]["count"] == report["frames"]["sent"]
    assert at_gw["reply_ms"]["count"] == added["reply_ms"]["count"]
    assert at_gw["barge_in_ms"]["count"] == 3
    write_ms = 0.5
    for key in ("inbound_ms", "reply_ms", "barge_in_ms"):
        assert 0 < at_gw[key]["p50"] <= added[key]["p50"] + write_ms, key
