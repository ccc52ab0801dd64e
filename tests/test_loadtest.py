"""The load tester's pure parts: percentiles, summaries, error kinds, SLO verdicts, parsing."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.carriers.core import Carrier
from gateway.errors import ConfigError
from gateway.rig.loadtest.calls import CallRecord, build_plan
from gateway.rig.loadtest.command import targets
from gateway.rig.loadtest.errors import (
    CLOSED_EARLY,
    CONNECT_ERROR,
    CONNECT_REFUSED,
    NO_REPLY,
    TIMEOUT,
    classify_exception,
    classify_result,
)
from gateway.rig.loadtest.monitor import Sample, usage
from gateway.rig.loadtest.report import Slo, build_report, check_slos, print_table
from gateway.rig.loadtest.runner import LoadConfig, LoadRun
from gateway.rig.loadtest.scrape import metrics_url, parse_metrics
from gateway.rig.loadtest.stats import percentile, summarize
from gateway.rig.phone import CallResult, When, load_utterance
from gateway.rig.simulator.speech import speech_dir


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=200), st.floats(0, 100))
def test_percentile_agrees_with_numpy(values: list[float], q: float) -> None:
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)),
                                                  rel=1e-9, abs=1e-6)


def test_percentile_edges() -> None:
    assert percentile([5.0], 99) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([4.0, 1.0, 3.0, 2.0], 100) == 4.0  # order of input does not matter
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError, match="0 <= q <= 100"):
        percentile([1.0], 101)


def test_summary_of_nothing_is_nulls_not_zeros() -> None:
    empty = summarize([])
    assert empty.count == 0
    assert empty.as_dict() == {"count": 0, "mean": None, "p50": None, "p95": None,
                               "p99": None, "max": None}
    assert empty.format() == "-"
    s = summarize(range(1, 101))
    assert (s.count, s.p50, s.max, s.mean) == (100, 50.5, 100.0, 50.5)
    assert s.p95 == pytest.approx(95.05)
    assert s.p99 == pytest.approx(99.01)


def _handshake(status: int) -> aiohttp.WSServerHandshakeError:
    return aiohttp.WSServerHandshakeError(None, (), status=status)  # type: ignore[arg-type]


def _connector(os_error: OSError) -> aiohttp.ClientConnectorError:
    return aiohttp.ClientConnectorError(None, os_error)  # type: ignore[arg-type]


@pytest.mark.parametrize(("exc", "kind"), [
    (_connector(ConnectionRefusedError(111, "refused")), CONNECT_REFUSED),
    (_connector(OSError(113, "no route to host")), CONNECT_ERROR),
    (ConnectionRefusedError(), CONNECT_REFUSED),
    (_handshake(403), "handshake_403"),
    (_handshake(503), "handshake_503"),
    (TimeoutError(), TIMEOUT),
    (aiohttp.ServerTimeoutError("read"), TIMEOUT),  # a timeout, though a connection error too
    (aiohttp.ServerDisconnectedError(), CLOSED_EARLY),
    (ConnectionResetError("Cannot write to closing transport"), CLOSED_EARLY),
    (aiohttp.ClientOSError(32, "broken pipe"), CLOSED_EARLY),
    (ValueError("bad"), "error:ValueError"),
])
def test_exceptions_are_classified(exc: BaseException, kind: str) -> None:
    assert classify_exception(exc) == kind


def test_results_are_classified() -> None:
    answered = CallResult(response_ms=[700.0])
    assert classify_result(answered) is None
    assert classify_result(CallResult()) == NO_REPLY
    assert classify_result(CallResult(response_ms=[700.0], unanswered=1)) == NO_REPLY
    assert classify_result(CallResult(), expect_reply=False) is None
    cut = CallResult(response_ms=[700.0], closed_by_gateway=True)
    assert classify_result(cut) == CLOSED_EARLY


def _run(records: list[CallRecord], samples: list[Sample] | None = None) -> LoadRun:
    plan = build_plan()
    run = LoadRun(LoadConfig(url="ws://127.0.0.1:1/media", plan=plan, calls=2, count=3))
    run.records, run.samples, run.started, run.wall_s = records, samples or [], 3, 9.0
    return run


def _record(i: int, error: str | None = None, response: float | None = 800.0) -> CallRecord:
    r = CallRecord(i, float(i), ended_s=float(i) + 5, error=error, connected=error is None,
                   connect_ms=3.0 if error is None else None, frames_sent=100,
                   frames_attempted=100)
    r.response_ms = [response] if response is not None else []
    return r


def test_report_aggregates_calls_and_errors() -> None:
    records = [_record(0), _record(1, response=900.0), _record(2, "handshake_503", None)]
    samples = [Sample(1.0, 2, {"gateway": 50.0, "loadgen": 10.0}, {"gateway": 80.0}),
               Sample(2.0, 2, {"gateway": 70.0, "loadgen": 10.0}, {"gateway": 90.0})]
    samples[1].rss_mb["loadgen"] = 40.0
    samples[0].rss_mb["loadgen"] = 41.0
    report = build_report(_run(records, samples), source="x.wav", target="remote",
                          gateway_frames=290)
    assert report["calls"] == {"started": 3, "completed": 3, "ok": 2, "failed": 1,
                               "error_rate": round(1 / 3, 4), "peak_concurrency": 2}
    assert report["errors"] == {"handshake_503": 1}
    assert report["latency_ms"]["response"]["p50"] == 850.0
    assert report["latency_ms"]["barge_in"]["count"] == 0
    assert report["frames"]["gateway_missing"] == 10
    assert report["resources"]["gateway"]["cpu_pct_per_call"] == 30.0  # 60% / 2 calls
    assert "simulator" not in report["resources"]
    assert any("10 fewer caller frames" in w for w in report["warnings"])
    out = _capture_table(report)
    assert "handshake_503 1" in out


def _capture_table(report: dict[str, Any]) -> str:
    import io

    buf = io.StringIO()
    print_table(report, buf)
    return buf.getvalue()


def test_slos_red_and_green() -> None:
    report = build_report(_run([_record(0), _record(1, response=1000.0)]), source="",
                          target="remote")
    green = check_slos(report, [Slo("response p95 ms", "latency_ms.response.p95", 1000),
                                Slo("error rate", "calls.error_rate", 0.0)])
    assert green["passed"]
    red = check_slos(report, [Slo("response p95 ms", "latency_ms.response.p95", 1)])
    assert not red["passed"]
    assert red["checks"][0]["value"] == pytest.approx(990.0)
    # Nothing measured is not "within the objective".
    unmeasured = check_slos(report, [Slo("barge-in p95 ms", "latency_ms.barge_in.p95", 1e9)])
    assert not unmeasured["passed"]
    report["slo"] = red
    assert "RED" in _capture_table(report)


def test_a_run_where_no_call_succeeded_is_red_without_slos() -> None:
    report = build_report(_run([_record(0, CONNECT_REFUSED, None)]), source="", target="x")
    assert not check_slos(report, [])["passed"]


def test_saturated_simulator_is_called_out() -> None:
    samples = [Sample(float(t), 5, {"simulator": 95.0}, {"simulator": 50.0}) for t in range(5)]
    assert usage(samples, "simulator").saturated
    report = build_report(_run([_record(0)], samples), source="", target="local")
    assert any("simulator is the bottleneck" in w for w in report["warnings"])


def test_plan_carries_the_carrier_its_secret_and_a_barge_in(tmp_path: Path) -> None:
    plan = build_plan(secret="tok", barge_in_ms=1500, dtmf="12", carrier=Carrier.TWILIO,
                      answer_url="http://gw.example.com/twilio/answer")
    assert (plan.secret, plan.carrier) == ("tok", Carrier.TWILIO)
    assert plan.answer_url == "http://gw.example.com/twilio/answer"
    assert "tok" not in repr(plan)
    assert plan.barge_in
    assert plan.utterances[0].dtmf == "12"
    assert build_plan().secret is None
    with pytest.raises(ConfigError):
        build_plan(capture=tmp_path / "missing.jsonl")


def test_a_bare_gateway_address_means_answer_first_a_media_url_connects_directly() -> None:
    assert targets("http://127.0.0.1:8080", "vonage") == (
        "ws://127.0.0.1:8080/vonage/media", "http://127.0.0.1:8080/vonage/answer")
    assert targets("https://gw.example.com/", "twilio") == (
        "wss://gw.example.com/twilio/media", "https://gw.example.com/twilio/answer")
    assert targets("ws://127.0.0.1:8080/media", "twilio") == (
        "ws://127.0.0.1:8080/media", None)


def test_a_param_without_a_name_or_value_is_refused_before_anything_starts() -> None:
    from gateway.rig.peers import parse_parameters

    assert parse_parameters(["a=1", "b=", "c=x=y"]) == {"a": "1", "b": "", "c": "x=y"}
    for bad in ("novalue", "=1"):
        with pytest.raises(ConfigError, match="NAME=VALUE"):
            parse_parameters([bad])


def test_metrics_parsing() -> None:
    assert metrics_url("ws://h:8080/media") == "http://h:8080/metrics"
    assert metrics_url("wss://gw.example.com/media?x=1") == "https://gw.example.com/metrics"
    text = ("# HELP voicegw_caller_frames_total x\n# TYPE voicegw_caller_frames_total counter\n"
            "voicegw_caller_frames_total 1234.0\nvoicegw_active_calls 0.0\n"
            'voicegw_calls_total{carrier="twilio",reason="x"} 3.0\n'
            'voicegw_calls_total{carrier="vonage",reason="y"} 4.0\n')
    # Labelled series are summed: every carrier's calls together.
    assert parse_metrics(text) == {"voicegw_caller_frames_total": 1234.0,
                                   "voicegw_active_calls": 0.0, "voicegw_calls_total": 7.0}


def test_plan_from_a_capture_replays_its_audio_parameters_and_keys(tmp_path: Path) -> None:
    import json

    from gateway.rig.peers.twilio import TwilioPeer

    peer = TwilioPeer("CA" + "1" * 32, "MZ" + "2" * 32, custom_parameters={"From": "+1555"})
    frames = [*peer.opening(), peer.media(b"\x7f" * 160), *peer.dtmf("5"),
              peer.media(b"\x7e" * 160)]
    path = tmp_path / "call.jsonl"
    path.write_text("".join(json.dumps({"t": i * 0.02, "frame": f}) + "\n"
                            for i, f in enumerate(frames)))
    plan = build_plan(capture=path)
    assert plan.parameters["From"] == "+1555"
    # --param goes over what was captured and over the defaults.
    plan = build_plan(capture=path,
                      parameters={"From": "+1666", "tenant": "acme"})
    assert plan.parameters == {"From": "+1666", "To": "+15550199", "tenant": "acme"}
    [utt] = plan.utterances
    assert utt.audio is not None
    assert utt.audio.data == b"\x7f" * 160 + b"\x7e" * 160
    assert utt.dtmf == "5"


def test_several_recordings_make_a_conversation() -> None:
    speech = speech_dir()
    names = ["caller_book_table.wav", "caller_seven_thirty.wav", "caller_goodbye.wav"]
    plan = build_plan(wav=[speech / n for n in names],
                      barge_in_ms=900)
    # The first when the call starts; each further one once the reply has been heard; the
    # barge-in last, over the final reply.
    assert [u.when for u in plan.utterances] == [When.START, When.AFTER_REPLY,
                                                 When.AFTER_REPLY, When.BARGE_IN]
    assert [u.audio for u in plan.utterances[:3]] == [load_utterance(speech / n) for n in names]
    assert all(n in plan.source for n in names)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_progress_is_a_bar_of_calls_done_with_the_live_figures() -> None:
    from gateway.rig.loadtest.progress import ProgressLine

    out = _Terminal()
    progress = ProgressLine(out)
    run = _run([_record(0)], [Sample(1.0, 2, {"gateway": 41.0}, {})])
    run.active = 2
    progress(run, 1.0)
    run.records.append(_record(1, "closed_early", None))
    progress(run, 2.0)
    progress.finish()
    screen = out.getvalue()
    assert "calls done 1/3 calls |" in screen
    last = screen.rsplit("\r", 1)[-1]
    assert "calls done 2/3 calls |" in last
    assert "active   2  errors 1  response p95 800 ms  cpu gateway 41%" in last


def test_for_a_duration_the_bar_fills_with_time_and_a_log_gets_whole_lines() -> None:
    from gateway.rig.loadtest.progress import PLAIN_EVERY_S, ProgressLine

    plan = build_plan()
    run = LoadRun(LoadConfig(url="ws://127.0.0.1:1/media", plan=plan, calls=2,
                             duration_s=60.0))
    out = _Terminal()
    progress = ProgressLine(out)
    progress(run, 30.0)
    progress.finish()
    assert "started for 30/60 s |" in out.getvalue()

    log = io.StringIO()  # not a terminal: no bar, no carriage returns
    progress = ProgressLine(log)
    for now in (1.0, 2.0, PLAIN_EVERY_S + 1.0, PLAIN_EVERY_S + 2.0, 2 * PLAIN_EVERY_S + 2.0):
        progress(run, now)
    progress.finish()
    lines = log.getvalue().splitlines()  # one every PLAIN_EVERY_S
    assert len(lines) == 2 and "\r" not in log.getvalue()
    assert lines[0].startswith("[   6.0s] done 0/?  active   0  errors 0")
