"""``voicegw calls list`` and ``voicegw calls show``: records as text or JSON.

Numbers are masked here as in the logs (last three digits) unless asked for in full: a
terminal or a pasted transcript is not the database, which keeps them whole.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from gateway.log import mask_number
from gateway.store.model import CallListing, CallRecord


def _when(at: datetime | None) -> str:
    return "-" if at is None else at.strftime("%Y-%m-%d %H:%M:%SZ")


def _number(number: str | None, full: bool) -> str:
    return (number if full else mask_number(number)) or "-"


def _reason(reason: str | None, ended: bool) -> str:
    # No end: still running, or the gateway stopped without seeing the end.
    return reason if ended and reason else "(no end recorded)"


def list_text(calls: Sequence[CallListing], *, full_numbers: bool = False) -> str:
    if not calls:
        return "no calls recorded\n"
    header = ("CALL SID", "CARRIER", "STARTED (UTC)", "DURATION", "AGENT", "CALLER", "TURNS",
              "INTERR", "END REASON")
    rows = [(c.call_sid, c.carrier, _when(c.started_at), f"{c.duration_s:.1f}s", c.agent or "-",
             _number(c.caller, full_numbers), str(c.turns), str(c.interruptions),
             _reason(c.end_reason, c.ended)) for c in calls]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    return "".join("  ".join(v.ljust(w) for v, w in zip(r[:-1], widths, strict=True))
                   + "  " + r[-1] + "\n" for r in [header, *rows])


Mask = Callable[[str | None], str | None]


def _whole(number: str | None) -> str | None:
    return number


def listing_data(c: CallListing, number: Mask = mask_number) -> dict[str, Any]:
    """One listed call as JSON-ready data; ``number`` shows (or masks) the caller's number."""
    return {
        "call_sid": c.call_sid, "carrier": c.carrier, "started_at": c.started_at.isoformat(),
        "duration_s": round(c.duration_s, 3), "agent": c.agent, "caller": number(c.caller),
        "end_reason": c.end_reason, "end_kind": c.end_kind, "ended": c.ended,
        "turns": c.turns, "interruptions": c.interruptions}


def list_json(calls: Sequence[CallListing], *, full_numbers: bool = False) -> str:
    number = _whole if full_numbers else mask_number
    return json.dumps([listing_data(c, number) for c in calls], indent=2) + "\n"


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(", ", ": "), ensure_ascii=False, default=str)


def show_text(r: CallRecord, *, full_numbers: bool = False) -> str:
    out = [f"call {r.call_sid}  ({r.carrier}; stream {r.stream_sid or '-'})",
           f"  agent {r.agent or '-'}; caller {_number(r.caller, full_numbers)}; "
           f"dialled {_number(r.dialled, full_numbers)}",
           f"  started {_when(r.started_at)}; ended {_when(r.ended_at)}; "
           f"{r.duration_s:.1f} s; {_reason(r.end_reason, r.ended_at is not None)}",
           f"  audio frames in {r.frames_in}, out {r.frames_out}, dropped {r.frames_dropped}; "
           f"longest gap in a reply {_ms(r.longest_reply_gap_ms)}; "
           f"interruptions {r.interruptions}",
           f"  live reconnects {r.live_reconnects}"
           + (f" (longest gap {r.longest_gap_ms:.0f} ms; gaps {_compact(r.reconnect_gaps)})"
              if r.longest_gap_ms is not None else ""),
           f"  tokens prompt {r.tokens_prompt}, response {r.tokens_response}, "
           f"total {r.tokens_total}",
           "  response latency per turn (ms): "
           + (", ".join(f"{ms:.0f}" for ms in r.response_latency_ms) or "-"),
           "  model stalls: "
           + (", ".join(f"{s.at_s:.1f}s {s.outcome.value} after {s.quiet_ms:.0f} ms "
                        f"({s.trigger.value})" for s in r.stalls) or "-"),
           "", "transcript:"]
    out += [f"  {t.at:7.2f}s  {t.role:<6} {t.text}"
            + (f"  [interrupted; heard: {t.heard!r}]" if t.interrupted and t.heard is not None
               else "  [interrupted]" if t.interrupted else "")
            for t in r.turns] or ["  (nothing said)"]
    if r.tool_calls:
        out += ["", "tool calls:"]
        for t in r.tool_calls:
            if t.outcome == "cancelled":
                what = "cancelled"
            elif t.error is not None:
                what = f"error: {t.error}"
            else:
                what = f"-> {_compact(t.result)}"
            out.append(f"  {t.name}({_compact(t.args)}) {what}  [{t.latency_ms:.0f} ms]")
    return "\n".join(out) + "\n"


def record_data(r: CallRecord, number: Mask = mask_number) -> dict[str, Any]:
    """A call's whole record as JSON-ready data; ``number`` shows (or masks) phone numbers."""
    return {
        "call_sid": r.call_sid, "carrier": r.carrier, "stream_sid": r.stream_sid,
        "agent": r.agent, "caller": number(r.caller), "dialled": number(r.dialled),
        "started_at": r.started_at.isoformat(),
        "ended_at": r.ended_at.isoformat() if r.ended_at else None,
        "end_reason": r.end_reason, "end_kind": r.end_kind, "duration_s": r.duration_s,
        "frames_in": r.frames_in,
        "frames_out": r.frames_out, "frames_dropped": r.frames_dropped,
        "longest_gap_ms": r.longest_gap_ms, "longest_reply_gap_ms": r.longest_reply_gap_ms,
        "interruptions": r.interruptions,
        "live_reconnects": r.live_reconnects, "reconnect_gaps": dict(r.reconnect_gaps),
        "tokens": {"prompt": r.tokens_prompt, "response": r.tokens_response,
                   "total": r.tokens_total},
        "response_latency_ms": list(r.response_latency_ms),
        "stalls": [{"at_s": s.at_s, "trigger": s.trigger.value, "outcome": s.outcome.value,
                    "quiet_ms": s.quiet_ms} for s in r.stalls],
        "updated_at": r.updated_at.isoformat(),
        "turns": [{"at_s": t.at, "role": t.role, "text": t.text,
                   "interrupted": t.interrupted, "heard": t.heard} for t in r.turns],
        "tool_calls": [{"id": t.id, "name": t.name, "args": t.args, "result": t.result,
                        "error": t.error, "latency_ms": t.latency_ms, "outcome": t.outcome}
                       for t in r.tool_calls],
    }


def show_json(r: CallRecord, *, full_numbers: bool = False) -> str:
    data = record_data(r, _whole if full_numbers else mask_number)
    return json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"
