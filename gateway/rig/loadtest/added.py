"""A gateway's added latency, measured from outside: the phones' trace against the simulator's.

Sans-I/O: records in (the parsed JSON lines of ``voicegw loadtest --trace`` and ``voicegw
simulate-live --trace``), figures out. Both traces stamp events with CLOCK_MONOTONIC, which
every process on one machine shares, so the difference of two stamps is the time between the
two events. Nothing here knows how the gateway works, so any gateway (ours, Pipecat...) put
between the same phones and the same simulator is measured the same way.

1. **Matching.** Each simulator session that was not resumed from a handle is given to a
   call, first come first served: sessions in the order they opened, each to the earliest
   call not yet taken that started before the session opened (at most ``open_window_s``
   before: a gateway may open its Live session at WebSocket connect or at ``start``) and
   is *consistent* with it: the session received as much caller audio as the phone sent
   (within ``totals_tol_ms``; only a lower bound if the session closed before the call
   ended, e.g. a reconnect), none of it before the phone had sent it (which rules out calls
   started later), and its first reply reached the phone no sooner than it was sent (which
   rules out calls started earlier, whose own replies came sooner). A
   session no call is consistent with, and a call no session is, are reported with the
   reason, never guessed. A match where a later call would also have been consistent is
   counted as ``ambiguous`` (calls started closer together than the gateway's lag).
   Sessions opened with a resumption handle (reconnects) are counted and skipped.
2. **Inbound forwarding**, per 20 ms of caller audio: when the simulator had received the
   caller's audio up to that position, minus when the phone sent the frame that ends there.
   Audio arrives in whole messages, so a position is "received" with the message containing
   it (a step, not a line: a gateway that batches frames is charged for the wait).
3. **Reply forwarding**, per reply chunk the simulator sent: when the phone had received that
   turn's reply audio up to the chunk's end, minus when the simulator sent it. Turns are
   paired in order (the simulator's turns that had audio, the phone's turns, see
   :mod:`.trace`); a pair whose audio totals disagree is skipped and noted. Audio cut by a
   barge-in never reaches the phone and is not a sample.
4. **Barge-in**: the simulator's ``interrupted`` sent to the phone's ``clear`` received, each
   ``interrupted`` paired with the first unused ``clear`` from ``barge_before_s`` before it
   (a gateway with its own VAD may clear first: negative) to ``barge_after_s`` after.

The simulator stamps audio it received when its event loop reads it, so a busy simulator
(or machine) shows up in the inbound figure; ``simulator_late`` (how late it sent its paced
reply chunks) tells when that happened, and a warning is raised above 10 ms at p99.

Positions are compared with a tolerance of ``tol_ms`` (default 2.5 ms), so a resampler that
holds back a few samples does not shift a position into the next message.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .stats import Summary, summarize
from .timelines import PhoneCall, SimSession, Stream, read_phone, read_sim

TOL_MS = 2.5
TOTALS_TOL_MS = 100.0
OPEN_WINDOW_S = 5.0
BARGE_BEFORE_S = 0.5
BARGE_AFTER_S = 2.0
PROBE_FRAMES = 100  # frames checked for causality when choosing between candidate calls
REPLY_PROBE_MS = 200.0  # a session that sent this much reply audio must have reached its call
SIM_LATE_WARN_MS = 10.0
LIST_MAX = 50  # unmatched calls/sessions listed in the JSON (all are counted)


def position_lags(src: Stream, dst: Stream, *, tol_ms: float = TOL_MS,
                  limit: int | None = None) -> list[float]:
    """For each position ``src`` reached, ms from then until ``dst`` reached it too.

    Positions ``dst`` never reached (audio lost, or cut by a barge-in) give no sample.
    """
    out: list[float] = []
    j, n = 0, len(dst.ms)
    for t, ms in zip(src.t, src.ms, strict=True):
        target = ms - tol_ms
        while j < n and dst.ms[j] < target:
            j += 1
        if j == n or (limit is not None and len(out) >= limit):
            break
        out.append((dst.t[j] - t) * 1000.0)
    return out


# -- matching ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Unmatched:
    id: int  # call index or session number
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Matching:
    pairs: tuple[tuple[PhoneCall, SimSession], ...]
    unmatched_calls: tuple[Unmatched, ...]
    unmatched_sessions: tuple[Unmatched, ...]
    resumed_sessions: int  # opened with a handle: reconnects, not measured
    ambiguous: frozenset[int]  # call indexes whose session another call could have had


def inconsistency(call: PhoneCall, session: SimSession, *, tol_ms: float = TOL_MS,
                  totals_tol_ms: float = TOTALS_TOL_MS) -> str | None:
    """Why ``session`` cannot be ``call``'s first Live session, or ``None`` if it can."""
    got = session.received.total_ms
    if not got:
        return "the session received no audio"
    sent = call.sent.total_ms
    if got > sent + tol_ms:
        return f"the session received {got:.0f} ms of audio, the call sent {sent:.0f} ms"
    # A session that closed before the call's last frame (a reconnect) only had part of it.
    ended_early = (session.closed is not None and bool(call.sent.t)
                   and session.closed < call.sent.t[-1])
    if not ended_early and got < sent - totals_tol_ms:
        return f"the session received {got:.0f} ms of audio, the call sent {sent:.0f} ms"
    lags = position_lags(call.sent, session.received, tol_ms=tol_ms, limit=PROBE_FRAMES)
    if not lags:
        return "no audio position in common"
    if min(lags) < 0:
        return f"audio reached the simulator {-min(lags):.1f} ms before the phone sent it"
    # The other direction rules out calls that started earlier: their replies came sooner.
    sim_turns = [session.turns[n].out for n in sorted(session.turns) if session.turns[n].out.t]
    if sim_turns:
        if not call.turns:
            if sim_turns[0].total_ms >= REPLY_PROBE_MS:
                return "the session sent reply audio, the call received none"
            return None
        first = call.turns[min(call.turns)]
        lags = position_lags(sim_turns[0], first, tol_ms=tol_ms, limit=PROBE_FRAMES)
        if lags and min(lags) < 0:
            return (f"reply audio reached the phone {-min(lags):.1f} ms before the simulator "
                    "sent it")
    return None


def match(calls: list[PhoneCall], sessions: list[SimSession], *,
          open_window_s: float = OPEN_WINDOW_S, tol_ms: float = TOL_MS,
          totals_tol_ms: float = TOTALS_TOL_MS) -> Matching:
    """Give each first (non-resumed) session to a call; see the module docstring."""
    free = sorted(calls, key=lambda c: (c.start, c.index))
    pairs: list[tuple[PhoneCall, SimSession]] = []
    lost_sessions: list[Unmatched] = []
    ambiguous: set[int] = set()
    resumed = 0
    for s in sorted(sessions, key=lambda s: (s.opened, s.number)):
        if s.handle:
            resumed += 1
            continue
        candidates = [c for c in free if c.start <= s.opened <= c.start + open_window_s
                      and (c.end is None or s.opened <= c.end)]
        if not candidates:
            lost_sessions.append(Unmatched(s.number, "no call was being placed when it opened"))
            continue
        reasons: list[str] = []
        chosen: PhoneCall | None = None
        for c in candidates:
            why = inconsistency(c, s, tol_ms=tol_ms, totals_tol_ms=totals_tol_ms)
            if why is None and chosen is None:
                chosen = c
            elif why is None:
                assert chosen is not None
                ambiguous.add(chosen.index)
                break
            elif chosen is None:
                reasons.append(f"call {c.index}: {why}")
        if chosen is None:
            lost_sessions.append(Unmatched(s.number, "; ".join(reasons[:3])))
            continue
        free.remove(chosen)
        pairs.append((chosen, s))
    lost_calls = [Unmatched(c.index, _why_no_session(c)) for c in free]
    pairs.sort(key=lambda p: p[0].index)
    return Matching(tuple(pairs), tuple(sorted(lost_calls, key=lambda u: u.id)),
                    tuple(lost_sessions), resumed, frozenset(ambiguous))


def _why_no_session(call: PhoneCall) -> str:
    if call.error:
        return f"no consistent session (the call failed: {call.error})"
    if call.connected is None:
        return "never connected"
    return "no consistent session"


# -- figures -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallAdded:
    """One matched call's samples (ms)."""

    call: int
    session: int
    inbound_ms: tuple[float, ...]
    reply_ms: tuple[float, ...]
    barge_in_ms: tuple[float, ...]
    notes: tuple[str, ...] = ()
    ambiguous: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"call": self.call, "session": self.session, "ambiguous": self.ambiguous,
                "inbound": summarize(self.inbound_ms).as_dict(),
                "reply": summarize(self.reply_ms).as_dict(),
                "barge_in_ms": [round(v, 2) for v in self.barge_in_ms],
                "notes": list(self.notes)}


def reply_lags(call: PhoneCall, session: SimSession, *, tol_ms: float = TOL_MS,
               totals_tol_ms: float = TOTALS_TOL_MS) -> tuple[list[float], list[str]]:
    """Reply forwarding samples of one matched pair, and notes on turns left out."""
    sim_turns = [(n, session.turns[n]) for n in sorted(session.turns) if session.turns[n].out.t]
    phone_turns = [call.turns[n] for n in sorted(call.turns)]
    if len(sim_turns) != len(phone_turns):
        return [], [f"reply turns differ: the simulator sent audio in {len(sim_turns)}, "
                    f"the phone received {len(phone_turns)}; reply not measured"]
    out: list[float] = []
    notes: list[str] = []
    for (n, sim), phone in zip(sim_turns, phone_turns, strict=True):
        sent, got = sim.out.total_ms, phone.total_ms
        cut = sim.interrupted is not None
        if got > sent + totals_tol_ms or (not cut and got < sent - totals_tol_ms):
            notes.append(f"turn {n}: the simulator sent {sent:.0f} ms, the phone received "
                         f"{got:.0f} ms; not measured")
            continue
        lags = position_lags(sim.out, phone, tol_ms=tol_ms)
        if lags and min(lags) < 0:
            notes.append(f"turn {n}: reply audio reached the phone before the simulator sent "
                         "it (turns misaligned); not measured")
            continue
        out += lags
    return out, notes


def barge_in_lags(call: PhoneCall, session: SimSession, *,
                  before_s: float = BARGE_BEFORE_S, after_s: float = BARGE_AFTER_S
                  ) -> tuple[list[float], int, int]:
    """``interrupted`` -> ``clear`` samples, and how many of each were left unpaired."""
    clears = sorted(call.clears)
    used = [False] * len(clears)
    out: list[float] = []
    lone = 0
    for ti in sorted(session.interrupted):
        for k, tc in enumerate(clears):
            if not used[k] and ti - before_s <= tc <= ti + after_s:
                used[k] = True
                out.append((tc - ti) * 1000.0)
                break
        else:
            lone += 1
    return out, lone, used.count(False)


@dataclass(frozen=True, slots=True)
class AddedLatency:
    """What the gateway added, per call and pooled; :meth:`as_dict` is the JSON section."""

    inbound: Summary
    reply: Summary
    barge_in: Summary
    simulator_late: Summary  # the simulator's reply chunks after their due time (its load)
    calls: tuple[CallAdded, ...]
    phone_calls: int
    sessions: int
    unmatched_calls: tuple[Unmatched, ...]
    unmatched_sessions: tuple[Unmatched, ...]
    resumed_sessions: int
    ambiguous: int
    interrupted_without_clear: int
    clears_without_interrupted: int

    @property
    def matched(self) -> int:
        return len(self.calls)

    def warnings(self) -> list[str]:
        out = []
        if self.unmatched_calls:
            out.append(f"added latency: {len(self.unmatched_calls)} of {self.phone_calls} calls "
                       "matched no simulator session (not measured)")
        if self.unmatched_sessions:
            out.append(f"added latency: {len(self.unmatched_sessions)} simulator sessions "
                       "matched no call")
        if self.ambiguous:
            out.append(f"added latency: {self.ambiguous} calls could have been matched to "
                       "another call's session (calls started closer together than the "
                       "gateway's lag)")
        if self.simulator_late.count and self.simulator_late.p99 > SIM_LATE_WARN_MS:
            out.append(f"added latency: the simulator sent reply audio up to "
                       f"{self.simulator_late.p99:.0f} ms late (p99): it or the machine was "
                       "busy, and its receive stamps (inbound) are late by as much")
        skipped = sum(1 for c in self.calls if c.notes)
        if skipped:
            out.append(f"added latency: {skipped} calls have turns left out (see notes)")
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": "phone trace vs simulator trace on one CLOCK_MONOTONIC",
            "matched": self.matched, "phone_calls": self.phone_calls,
            "sessions": self.sessions, "resumed_sessions_skipped": self.resumed_sessions,
            "ambiguous": self.ambiguous,
            "unmatched_calls_count": len(self.unmatched_calls),
            "unmatched_sessions_count": len(self.unmatched_sessions),
            "unmatched_calls": [u.as_dict() for u in self.unmatched_calls[:LIST_MAX]],
            "unmatched_sessions": [u.as_dict() for u in self.unmatched_sessions[:LIST_MAX]],
            "inbound_ms": self.inbound.as_dict(), "reply_ms": self.reply.as_dict(),
            "barge_in_ms": self.barge_in.as_dict(),
            "simulator_late_ms": self.simulator_late.as_dict(),
            "interrupted_without_clear": self.interrupted_without_clear,
            "clears_without_interrupted": self.clears_without_interrupted,
            "warnings": self.warnings(),
            "per_call": [c.as_dict() for c in self.calls],
        }


def analyse(phone_records: Iterable[Mapping[str, Any]],
            sim_records: Iterable[Mapping[str, Any]], *, tol_ms: float = TOL_MS,
            totals_tol_ms: float = TOTALS_TOL_MS, open_window_s: float = OPEN_WINDOW_S
            ) -> AddedLatency:
    return measure(read_phone(phone_records), read_sim(sim_records), tol_ms=tol_ms,
                   totals_tol_ms=totals_tol_ms, open_window_s=open_window_s)


def measure(calls: list[PhoneCall], sessions: list[SimSession], *, tol_ms: float = TOL_MS,
            totals_tol_ms: float = TOTALS_TOL_MS, open_window_s: float = OPEN_WINDOW_S
            ) -> AddedLatency:
    """:func:`analyse` on traces already read (nothing here changes them)."""
    m = match(calls, sessions, open_window_s=open_window_s, tol_ms=tol_ms,
              totals_tol_ms=totals_tol_ms)
    per_call: list[CallAdded] = []
    lone_interrupts = lone_clears = 0
    for call, session in m.pairs:
        inbound = position_lags(call.sent, session.received, tol_ms=tol_ms)
        reply, notes = reply_lags(call, session, tol_ms=tol_ms, totals_tol_ms=totals_tol_ms)
        barge, lone_i, lone_c = barge_in_lags(call, session)
        lone_interrupts += lone_i
        lone_clears += lone_c
        per_call.append(CallAdded(call.index, session.number, tuple(inbound), tuple(reply),
                                  tuple(barge), tuple(notes), call.index in m.ambiguous))
    return AddedLatency(
        inbound=summarize(v for c in per_call for v in c.inbound_ms),
        reply=summarize(v for c in per_call for v in c.reply_ms),
        barge_in=summarize(v for c in per_call for v in c.barge_in_ms),
        simulator_late=summarize(v for _c, s in m.pairs for turn in s.turns.values()
                                 for v in turn.late_ms),
        calls=tuple(per_call), phone_calls=len(calls), sessions=len(sessions),
        unmatched_calls=m.unmatched_calls, unmatched_sessions=m.unmatched_sessions,
        resumed_sessions=m.resumed_sessions, ambiguous=len(m.ambiguous),
        interrupted_without_clear=lone_interrupts, clears_without_interrupted=lone_clears)


def format_ms(summary: Mapping[str, Any]) -> str:
    if not summary["count"]:
        return "-"
    return (f"{summary['p50']:.1f} / {summary['p95']:.1f} / {summary['p99']:.1f} / "
            f"{summary['max']:.1f}  (n={summary['count']})")


def barge_in_cell(section: Mapping[str, Any]) -> str:
    """A section's barge-in figures, and the ``interrupted`` no ``clear`` followed, if any."""
    barge = format_ms(section["barge_in_ms"])
    lone = section["interrupted_without_clear"]
    if lone:
        barge += f"; {lone} interrupted without a clear"
    return barge


def table_rows(section: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The report table's rows for the JSON section :meth:`AddedLatency.as_dict` made."""
    lost = []
    if section["unmatched_calls_count"]:
        ids = ", ".join(str(u["id"]) for u in section["unmatched_calls"][:5])
        lost.append(f"unmatched calls {section['unmatched_calls_count']} ({ids}"
                    f"{', ...' if section['unmatched_calls_count'] > 5 else ''})")
    if section["unmatched_sessions_count"]:
        lost.append(f"unmatched sessions {section['unmatched_sessions_count']}")
    if section["resumed_sessions_skipped"]:
        lost.append(f"{section['resumed_sessions_skipped']} resumed sessions skipped")
    if section["ambiguous"]:
        lost.append(f"{section['ambiguous']} ambiguous")
    barge = barge_in_cell(section)
    return [
        ("added: matched", f"{section['matched']} of {section['phone_calls']} calls to "
                           f"{section['sessions']} sessions" +
                           ("; " + "; ".join(lost) if lost else "")),
        ("added inbound ms p50/p95/p99/max", format_ms(section["inbound_ms"])),
        ("added reply ms p50/p95/p99/max", format_ms(section["reply_ms"])),
        ("added barge-in ms p50/p95/p99/max", barge),
        ("simulator late ms p50/p95/p99/max", format_ms(section["simulator_late_ms"])),
    ]
