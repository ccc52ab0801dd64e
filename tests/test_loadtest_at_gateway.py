"""Added latency timed at the gateway's own writes, on synthetic traces.

One made-up call through a gateway with known write delays, beside a rig whose reads run
late: the at-gateway figures must be the gateway's delays to the µs, while the end-to-end
figures (phones and simulator reading) carry the rig's lateness too.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from gateway.rig.loadtest.added import analyse
from gateway.rig.loadtest.at_gateway import analyse_at_gateway, as_phones, as_simulator, table_rows
from gateway.rig.loadtest.report import print_table
from gateway.rig.loadtest.timelines import read_phone, read_sim
from gateway.rig.loadtest.trace import read_jsonl
from gateway.timing_trace import GatewayTrace

Rec = dict[str, Any]

INBOUND_S, REPLY_S, CLEAR_S = 0.002, 0.003, 0.0015  # the gateway's, phone/sim write -> its write
SIM_READ_LATE_S, PHONE_READ_LATE_S = 0.030, 0.040  # the rig's, gateway write -> its read
HELD = 5  # frames the gateway held while its Live session opened, then sent in one burst


def one_call(frames: int = 200) -> tuple[list[Rec], list[Rec], list[Rec]]:
    """(phone, simulator, gateway) records of one call: a reply heard whole, then a reply
    cut by a barge-in."""
    phone: list[Rec] = [{"ev": "call", "t": 10.0, "call": 0},
                        {"ev": "connected", "t": 10.004, "call": 0}]
    sim: list[Rec] = [{"ev": "open", "t": 10.1, "s": 1, "handle": False, "setup_t": 10.101}]
    gw: list[Rec] = [{"ev": "call", "t": 10.005, "c": 1}]
    ready = 10.102
    for i in range(frames):
        sent = 10.01 + 0.02 * i
        ms = 20.0 * (i + 1)
        phone.append({"ev": "sent", "t": sent, "call": 0, "ms": ms})
        if i < HELD:  # replayed once the session is ready; stamped after the whole burst
            wrote, stamped = ready + 0.0001 * i, ready + 0.0001 * HELD
        else:
            wrote = stamped = sent + INBOUND_S
        gw.append({"ev": "fwd", "t": stamped, "c": 1, "ms": ms})
        sim.append({"ev": "in", "t": wrote + SIM_READ_LATE_S, "s": 1, "ms": ms})
    for turn, (start, chunks, heard) in enumerate(((10.5, 5, 5), (11.5, 6, 3)), start=1):
        if turn == 2:  # the first turn's end mark, in order after its audio
            gw.append({"ev": "turn_end", "t": 10.5 + 0.08 * 5, "c": 1})
        for k in range(chunks):
            t = start + 0.08 * k
            sim.append({"ev": "out", "t": t, "s": 1, "turn": turn, "ms": 80.0 * (k + 1),
                        "late": 0.1})
            if k < heard:
                gw.append({"ev": "media", "t": t + REPLY_S, "c": 1, "ms": 80.0})
                phone.append({"ev": "recv", "t": t + REPLY_S + PHONE_READ_LATE_S, "call": 0,
                              "turn": turn, "ms": 80.0 * (k + 1)})
        if heard < chunks:
            ti = start + 0.08 * heard + 0.01
            sim.append({"ev": "interrupted", "t": ti, "s": 1, "turn": turn})
            gw.append({"ev": "clear", "t": ti + CLEAR_S, "c": 1})
            phone.append({"ev": "clear", "t": ti + CLEAR_S + PHONE_READ_LATE_S, "call": 0})
        else:
            sim.append({"ev": "turn_complete", "t": start + 0.08 * chunks, "s": 1,
                        "turn": turn})
    end = 10.01 + 0.02 * frames
    phone.append({"ev": "end", "t": end, "call": 0, "error": None})
    gw.append({"ev": "end", "t": end + 0.001, "c": 1})
    sim.append({"ev": "close", "t": end + 0.002, "s": 1, "code": 1000})
    return phone, sim, gw


def test_the_gateway_delays_are_measured_exactly_and_the_rig_delays_are_not() -> None:
    phone, sim, gw = one_call()
    section = analyse_at_gateway(read_phone(phone), read_sim(sim), gw)
    assert section["calls_matched_to_phones"] == "1 of 1"
    assert section["calls_matched_to_sessions"] == "1 of 1"
    assert section["warnings"] == [] and section["interrupted_without_clear"] == 0
    inbound = section["inbound_ms"]
    assert inbound["count"] == 200
    # The burst of held frames is charged from when the phone sent them to the stamp.
    assert inbound["max"] == pytest.approx((10.102 + 0.0001 * HELD - 10.01) * 1000)
    assert inbound["p50"] == pytest.approx(INBOUND_S * 1000)
    reply = section["reply_ms"]
    assert reply["count"] == 5 + 3  # what the barge-in cut never reached the caller
    assert reply["p50"] == reply["max"] == pytest.approx(REPLY_S * 1000)
    barge = section["barge_in_ms"]
    assert barge["count"] == 1 and barge["max"] == pytest.approx(CLEAR_S * 1000)

    # Timed to the rig's reads instead, each figure carries the rig's lateness too.
    added = analyse(phone, sim)
    assert added.inbound.p50 == pytest.approx((INBOUND_S + SIM_READ_LATE_S) * 1000)
    assert added.reply.max == pytest.approx((REPLY_S + PHONE_READ_LATE_S) * 1000)
    assert added.barge_in.max == pytest.approx((CLEAR_S + PHONE_READ_LATE_S) * 1000)


def test_reply_turns_start_after_a_turn_end_or_a_clear() -> None:
    _, _, gw = one_call()
    recv = [r for r in as_phones(gw) if r["ev"] == "recv"]
    assert [(r["turn"], r["ms"]) for r in recv] == [
        (1, 80.0), (1, 160.0), (1, 240.0), (1, 320.0), (1, 400.0),
        (2, 80.0), (2, 160.0), (2, 240.0)]
    # Audio after the clear would start a third turn.
    more = [*gw, {"ev": "media", "t": 13.0, "c": 1, "ms": 20.0}]
    assert [r["turn"] for r in as_phones(more) if r["ev"] == "recv"][-1] == 3


def test_as_simulator_gives_one_session_per_gateway_call() -> None:
    _, _, gw = one_call(frames=3)
    recs = list(as_simulator(gw))
    assert [r["ev"] for r in recs] == ["open", "in", "in", "in", "close"]
    assert recs[0]["handle"] is False and recs[-1]["s"] == 1


def test_a_gateway_call_no_phone_made_is_a_warning() -> None:
    phone, sim, gw = one_call()
    stray = [{"ev": "call", "t": 30.0, "c": 2}, {"ev": "fwd", "t": 30.1, "c": 2, "ms": 20.0}]
    section = analyse_at_gateway(read_phone(phone), read_sim(sim), [*gw, *stray])
    assert section["calls_matched_to_phones"] == "1 of 1"
    assert section["calls_matched_to_sessions"] == "1 of 1"
    # The simulator's one session still finds its call; the stray one has no session.
    assert section["inbound_ms"]["count"] == 200
    assert section["warnings"] == [
        "added at the gateway: 1 of the gateway's calls matched no phone call"]


async def test_the_writer_round_trips_through_the_analyser(tmp_path: Path) -> None:
    phone, sim, _ = one_call(frames=20)
    path = tmp_path / "gateway.jsonl"
    trace = GatewayTrace(path)
    call = trace.call(10.005)
    for i in range(20):
        call.forwarded(10.01 + 0.02 * i + INBOUND_S if i >= HELD else 10.102 + 0.0001 * HELD,
                       20.0)
    for k in range(5):
        call.media(10.5 + 0.08 * k + REPLY_S, 80.0)
    call.turn_end(10.9)
    for k in range(3):
        call.media(11.5 + 0.08 * k + REPLY_S, 80.0)
    call.clear(11.5 + 0.08 * 3 + 0.01 + CLEAR_S)
    call.end(10.5)
    await trace.aclose()
    records = list(read_jsonl(path))
    assert [r["c"] for r in records] == [1] * len(records)
    section = analyse_at_gateway(read_phone(phone), read_sim(sim), records)
    assert section["barge_in_ms"]["max"] == pytest.approx(CLEAR_S * 1000, abs=1e-3)
    assert section["reply_ms"]["count"] == 8


def test_the_table_has_the_three_figures() -> None:
    phone, sim, gw = one_call()
    rows = dict(table_rows(analyse_at_gateway(read_phone(phone), read_sim(sim), gw)))
    assert rows["at gateway inbound ms p50/p95/p99/max"].endswith("(n=200)")
    assert rows["at gateway barge-in ms p50/p95/p99/max"].startswith("1.5 / 1.5 / 1.5 / 1.5")
    assert rows["at gateway: matched"] == "1 of 1 phone calls, 1 of 1 sessions"
    out = io.StringIO()
    report = _minimal_report()
    report["added_at_gateway"] = analyse_at_gateway(read_phone(phone), read_sim(sim), gw)
    print_table(report, out)
    assert "at gateway reply ms" in out.getvalue()


def _minimal_report() -> dict[str, Any]:
    summary = {"count": 0}
    return {"target": "t", "config": {"url": "u", "calls": 1, "ramp_s": 0, "speed": 1},
            "wall_s": 1.0, "calls": {"completed": 1, "ok": 1, "failed": 0, "error_rate": 0,
                                     "peak_concurrency": 1},
            "errors": {}, "latency_ms": {"connect": summary, "response": summary,
                                         "barge_in": summary},
            "playback": {"underruns_total": 0, "calls_with_underruns": 0},
            "frames": {"sent": 1, "attempted": 1, "gateway_received": None},
            "resources": {}, "warnings": []}
