"""The added-latency analyser on synthetic traces: matching, the three figures, rendering.

Traces are built as the two writers would write them (the same record shapes), with a
made-up gateway whose behaviour is known exactly, so every figure can be checked to the µs.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from gateway.rig.loadtest.added import AddedLatency, analyse, match, position_lags, table_rows
from gateway.rig.loadtest.timelines import Stream, read_phone, read_sim
from gateway.rig.loadtest.trace import PhoneTrace, read_jsonl, trace_beside
from gateway.rig.simulator.trace import SimTrace, TraceWriter

Rec = dict[str, Any]


class Gateway:
    """Builds both traces for calls through an imaginary gateway with fixed delays."""

    def __init__(self, *, inbound_s: float = 0.002, reply_s: float = 0.003,
                 clear_s: float = 0.0015, open_s: float = 0.015, batch: int = 1) -> None:
        self.inbound_s, self.reply_s, self.clear_s = inbound_s, reply_s, clear_s
        self.open_s, self.batch = open_s, batch
        self.phone: list[Rec] = []
        self.sim: list[Rec] = []
        self.sessions = 0

    def call(self, index: int, start: float, *, frames: int = 100, session: bool = True,
             replies: tuple[tuple[float, int, int | None], ...] = (),
             handle: bool = False, drop_ms: float = 0.0) -> int:
        """A call of ``frames`` 20 ms frames from ``start``; each reply is (start offset s,
        chunks of 80 ms sent, chunks that reach the phone or None for all); a reply cut
        short is an interruption followed by a ``clear``. Returns the session number."""
        p = self.phone
        p.append({"ev": "call", "t": start, "call": index})
        p.append({"ev": "connected", "t": start + 0.005, "call": index})
        s = 0
        if session:
            self.sessions += 1
            s = self.sessions
            self.sim.append({"ev": "open", "t": start + self.open_s, "s": s, "handle": handle,
                             "setup_t": start + self.open_s + 0.001})
        t0 = start + 0.01
        sent_at = [t0 + 0.02 * i for i in range(frames)]
        for i, t in enumerate(sent_at):
            p.append({"ev": "sent", "t": t, "call": index, "ms": 20.0 * (i + 1)})
        if session:
            # Frames before the session was set up wait for it; then one message per batch.
            ready = start + self.open_s + 0.001
            got = 0.0
            for i in range(self.batch - 1, frames, self.batch):
                got = 20.0 * (i + 1) - drop_ms
                if got <= 0:
                    continue
                self.sim.append({"ev": "in", "t": max(sent_at[i], ready) + self.inbound_s,
                                 "s": s, "ms": got})
        for turn, (offset, chunks, reached) in enumerate(replies if session else (), start=1):
            heard = chunks if reached is None else reached
            for k in range(chunks):
                t = t0 + offset + 0.08 * k
                self.sim.append({"ev": "out", "t": t, "s": s, "turn": turn,
                                 "ms": 80.0 * (k + 1), "late": 0.1})
                if k < heard:
                    # the gateway splits each 80 ms chunk into four 20 ms media
                    for q in range(4):
                        p.append({"ev": "recv", "t": t + self.reply_s + q * 1e-5,
                                  "call": index, "turn": turn, "ms": 80.0 * k + 20.0 * (q + 1)})
            if heard < chunks:
                ti = t0 + offset + 0.08 * heard + 0.01
                self.sim.append({"ev": "interrupted", "t": ti, "s": s, "turn": turn})
                self.sim.append({"ev": "turn_complete", "t": ti, "s": s, "turn": turn})
                p.append({"ev": "clear", "t": ti + self.clear_s, "call": index})
            else:
                self.sim.append({"ev": "turn_complete", "t": t0 + offset + 0.08 * chunks,
                                 "s": s, "turn": turn})
        end = t0 + 0.02 * frames + 0.01
        p.append({"ev": "end", "t": end, "call": index, "error": None})
        if session:
            self.sim.append({"ev": "close", "t": end + 0.002, "s": s, "code": 1000})
        return s

    def analyse(self) -> AddedLatency:
        return analyse(self.phone, self.sim)


def test_fixed_delays_are_measured_exactly() -> None:
    gw = Gateway()
    gw.call(0, 100.0, replies=((0.5, 5, None),))
    gw.call(1, 100.06, replies=((0.5, 5, None),))
    added = gw.analyse()
    assert added.matched == 2
    assert not added.unmatched_calls and not added.unmatched_sessions
    c0 = added.calls[0]
    assert (c0.call, c0.session) == (0, 1)
    # Frame 0 was sent before the session was ready (t0 + 0 < start + 16 ms): it waited.
    assert c0.inbound_ms[0] == pytest.approx(8.0)
    assert all(v == pytest.approx(2.0) for v in c0.inbound_ms[1:])
    assert len(c0.inbound_ms) == 100
    # The last 20 ms of each 80 ms chunk reaches the phone 3 ms + 3 * 10 µs later.
    assert len(c0.reply_ms) == 5
    assert all(v == pytest.approx(3.03) for v in c0.reply_ms)
    assert added.inbound.p50 == pytest.approx(2.0)
    assert added.reply.max == pytest.approx(3.03)
    assert added.barge_in.count == 0
    assert added.simulator_late.p50 == pytest.approx(0.1)


def test_batched_frames_are_charged_for_the_wait() -> None:
    gw = Gateway(batch=2, open_s=0.0)
    gw.call(0, 10.0, frames=10)
    lags = gw.analyse().calls[0].inbound_ms
    # Odd frames wait for the next one (20 ms) before the pair goes out.
    assert lags == pytest.approx([22.0, 2.0] * 5)


def test_barge_in_cut_reply_and_next_turn() -> None:
    gw = Gateway()
    # Turn 1: 10 chunks sent, 3 reached the phone, then interrupted -> clear 1.5 ms later.
    gw.call(0, 5.0, frames=200, replies=((0.5, 10, 3), (2.0, 4, None)))
    added = gw.analyse()
    call = added.calls[0]
    assert call.barge_in_ms == pytest.approx((1.5,))
    # Only audio that reached the phone is a sample: 3 chunks of turn 1, 4 of turn 2.
    assert len(call.reply_ms) == 7
    assert not call.notes
    assert added.interrupted_without_clear == 0


def test_a_failed_call_and_a_stray_session_are_reported_not_guessed() -> None:
    gw = Gateway()
    reply = ((0.5, 5, None),)
    gw.call(0, 1.0, replies=reply)
    # Connected and talked, but no Live session (and so no reply): the gateway failed it.
    gw.call(1, 1.06, session=False)
    gw.call(2, 1.12, replies=reply)
    # A session the gateway opened and never fed, 30 ms after call 2.
    gw.sessions += 1
    gw.sim.append({"ev": "open", "t": 1.15, "s": gw.sessions, "handle": False,
                   "setup_t": 1.151})
    added = gw.analyse()
    assert [(c.call, c.session) for c in added.calls] == [(0, 1), (2, 2)]
    assert [u.id for u in added.unmatched_calls] == [1]
    assert [u.id for u in added.unmatched_sessions] == [3]
    assert "no audio" in added.unmatched_sessions[0].reason
    assert added.unmatched_calls[0].reason == "no consistent session"
    assert any("matched no" in w for w in added.warnings())


def test_out_of_order_session_opening_is_matched_by_causality() -> None:
    gw = Gateway()
    reply = ((0.5, 5, None),)
    gw.call(0, 1.0, replies=reply)
    gw.call(1, 1.06, replies=reply)
    # Call 0's Live session opens after call 1's (a slow Live connect for call 0).
    for r in gw.sim:
        if r["ev"] == "open" and r["s"] == 1:
            r["t"] = 1.09
    added = gw.analyse()
    # Session 2 opened first and is offered call 0 first: call 0's audio reached it late
    # enough, but call 0's reply reached call 0's phone 57 ms before session 2 sent it.
    assert [(c.call, c.session) for c in added.calls] == [(0, 1), (1, 2)]
    assert added.ambiguous == 0


def test_audio_totals_must_agree() -> None:
    gw = Gateway()
    gw.call(0, 1.0, drop_ms=400.0)  # the gateway lost the first 400 ms
    added = gw.analyse()
    assert added.matched == 0
    assert "received 1600 ms of audio, the call sent 2000 ms" in \
        added.unmatched_sessions[0].reason


def test_a_session_from_before_the_call_would_be_acausal() -> None:
    calls = read_phone([{"ev": "call", "t": 1.0, "call": 0},
                        {"ev": "sent", "t": 1.02, "call": 0, "ms": 20.0},
                        {"ev": "sent", "t": 1.04, "call": 0, "ms": 40.0}])
    sessions = read_sim([{"ev": "open", "t": 1.01, "s": 1, "handle": False, "setup_t": 1.01},
                         {"ev": "in", "t": 1.015, "s": 1, "ms": 20.0},
                         {"ev": "in", "t": 1.035, "s": 1, "ms": 40.0}])
    m = match(calls, sessions)
    assert not m.pairs
    assert "before the phone sent it" in m.unmatched_sessions[0].reason


def test_calls_started_closer_than_the_lag_are_flagged_ambiguous() -> None:
    gw = Gateway(inbound_s=0.005)
    gw.call(0, 1.0)
    gw.call(1, 1.001)  # 1 ms apart, but the gateway takes 5 ms: either fits
    added = gw.analyse()
    assert added.matched == 2
    assert added.ambiguous == 1


def test_resumed_sessions_are_skipped() -> None:
    gw = Gateway()
    gw.call(0, 1.0)
    gw.sessions += 1
    gw.sim.append({"ev": "open", "t": 1.5, "s": gw.sessions, "handle": True, "setup_t": 1.5})
    gw.sim.append({"ev": "in", "t": 1.6, "s": gw.sessions, "ms": 20.0})
    added = gw.analyse()
    assert added.matched == 1
    assert added.resumed_sessions == 1
    assert not added.unmatched_sessions


def test_reply_turns_that_do_not_line_up_are_noted_and_skipped() -> None:
    gw = Gateway()
    gw.call(0, 1.0, frames=200, replies=((0.5, 4, None), (2.0, 4, None)))
    # The phone saw one long reply instead of two (the gateway joined them, say).
    for r in gw.phone:
        if r["ev"] == "recv" and r["turn"] == 2:
            r["turn"], r["ms"] = 1, r["ms"] + 320.0
    call = gw.analyse().calls[0]
    assert call.reply_ms == ()
    assert "reply turns differ" in call.notes[0]


def test_position_lags_with_tolerance_and_loss() -> None:
    src = Stream([0.0, 0.02, 0.04], [20.0, 40.0, 60.0])
    # A resampler holding back 1 ms: positions still land on their own message.
    dst = Stream([0.001, 0.021], [19.0, 39.0])
    assert position_lags(src, dst) == pytest.approx([1.0, 1.0])  # 60 ms never arrived
    assert position_lags(src, dst, tol_ms=0.5) == pytest.approx([21.0])


def test_json_and_table_rendering() -> None:
    gw = Gateway()
    gw.call(0, 1.0, frames=200, replies=((0.5, 10, 3), (2.0, 4, None)))
    section = gw.analyse().as_dict()
    again = json.loads(json.dumps(section))  # plain JSON: no NaN, no tuples
    assert again["matched"] == 1
    assert again["inbound_ms"]["count"] == 200
    assert again["per_call"][0]["barge_in_ms"] == [1.5]
    rows = dict(table_rows(again))
    assert rows["added: matched"].startswith("1 of 1 calls to 1 sessions")
    assert rows["added barge-in ms p50/p95/p99/max"] == "1.5 / 1.5 / 1.5 / 1.5  (n=1)"
    empty = analyse([], []).as_dict()
    assert dict(table_rows(empty))["added inbound ms p50/p95/p99/max"] == "-"


def test_the_writers_round_trip(tmp_path: Path) -> None:
    phone_path, sim_path = tmp_path / "p.jsonl", tmp_path / "s.jsonl"
    phone = PhoneTrace(phone_path)
    call = phone.call(3, 10.0)
    call.connected(10.001)
    call.sent(10.02, 20.0)
    call.spoke(10.02)
    call.received(10.5, 10.0)
    call.received(10.52, 20.0)
    call.cleared(10.6)
    call.received(11.0, 20.0)  # after a clear: turn 2
    call.spoke(11.5)
    call.received(12.0, 20.0)  # after the caller spoke: turn 3
    phone.end(3, 12.5, "no_reply")
    phone.close()
    phone.add("ignored after close")
    recs = list(read_jsonl(phone_path))
    assert [(r["turn"], r["ms"]) for r in recs if r["ev"] == "recv"] == \
        [(1, 10.0), (1, 30.0), (2, 20.0), (3, 20.0)]
    (c,) = read_phone(recs)
    assert (c.index, c.start, c.connected, c.error) == (3, 10.0, 10.001, "no_reply")
    assert c.clears == [10.6] and c.spoke == [10.02, 11.5]

    sim = SimTrace(sim_path)
    sim.opened(10.005, 1, False, 10.006)
    sim.received(10.03, 1, 20.0)
    sim.reply(10.49, 1, 1, 80.0, 0.25)
    sim.interrupted(10.59, 1, 1)
    sim.turn_complete(10.59, 1, 1)
    sim.opened(20.0, 2, None, None)
    sim.closed_session(12.6, 1, 1000)
    sim.close()
    s1, s2 = read_sim(read_jsonl(sim_path))
    assert (s1.number, s1.handle, s1.setup_t, s1.code) == (1, False, 10.006, 1000)
    assert s1.turns[1].out.ms == [80.0] and s1.turns[1].late_ms == [0.25]
    assert s1.turns[1].interrupted == 10.59 and s1.interrupted == [10.59]
    assert s2.handle is None


def test_the_writer_is_bounded_and_a_cut_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    w = TraceWriter(path, max_buffered=3)
    for i in range(7):
        w.add(json.dumps({"i": i}))
    # Two full buffers went out as they filled; one line waits.
    assert len(path.read_text().splitlines()) == 6
    w.close()
    assert w.closed and w.lines == 7
    with path.open("a") as f:
        f.write('{"i": 7, "cut sh')  # a writer killed mid-line
    assert [r["i"] for r in read_jsonl(path)] == list(range(7))


def test_trace_beside_sits_next_to_the_phone_trace() -> None:
    assert trace_beside(Path("/tmp/p.jsonl")) == Path("/tmp/p.sim.jsonl")
    assert trace_beside(Path("run")) == Path("run.sim.jsonl")


def test_report_includes_the_section() -> None:
    from gateway.rig.loadtest.calls import CallRecord, build_plan
    from gateway.rig.loadtest.report import build_report, print_table
    from gateway.rig.loadtest.runner import LoadConfig, LoadRun

    gw = Gateway()
    gw.call(0, 1.0, replies=((0.5, 5, None),))
    plan = build_plan()
    run = LoadRun(LoadConfig(url="ws://x/media", plan=plan, count=1),
                  records=[CallRecord(0, 0.0, 1.0, connected=True)])
    report = build_report(run, source="s", target="t", added=gw.analyse().as_dict())
    assert report["added_latency"]["matched"] == 1
    out = io.StringIO()
    print_table(report, out)
    assert "added inbound ms" in out.getvalue()
    assert "added reply ms" in out.getvalue()
