"""What the gateway added, timed at its own writes (``voicegw serve --trace``). Sans-I/O.

:mod:`.added` times each path from a write at one end of the rig to a *read* at the other:
the phones reading reply audio and ``clear``, the simulator reading caller audio. When the
phones and the simulator share a busy core, those reads run late, and the figure is theirs
as much as the gateway's. Here each path ends when the gateway *wrote* what the message
caused, so the figures hold the gateway's socket wait, event-loop queueing and work, and
none of the rig's reading:

- **inbound**: the phone wrote a caller frame -> the gateway wrote it to the Live socket;
- **reply**: the simulator wrote a reply chunk -> the gateway wrote it to the caller's socket;
- **barge-in**: the simulator wrote ``interrupted`` -> the gateway wrote ``clear``.

The gateway's records are recast as the other end's (as the simulator's for the inbound
path, as the phones' for the other two) and measured by :func:`.added.measure`, matching
and all, so both methods count, pair and skip samples by the same rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from .added import AddedLatency, barge_in_cell, format_ms, measure
from .timelines import PhoneCall, SimSession, read_phone, read_sim


def as_simulator(records: Iterable[Mapping[str, Any]]) -> Iterator[dict[str, Any]]:
    """The gateway's call starts and forwarded caller audio, as simulator sessions."""
    for r in records:
        ev, t, c = r.get("ev"), float(r["t"]), int(r["c"])
        if ev == "call":
            yield {"ev": "open", "t": t, "s": c, "handle": False, "setup_t": t}
        elif ev == "fwd":
            yield {"ev": "in", "t": t, "s": c, "ms": float(r["ms"])}
        elif ev == "end":
            yield {"ev": "close", "t": t, "s": c, "code": 1000}


def as_phones(records: Iterable[Mapping[str, Any]]) -> Iterator[dict[str, Any]]:
    """The gateway's writes to the caller, as phones.

    Forwarded caller audio is given as sent when the call started: matching compares how
    much the simulator received with it, and this side reports no inbound figure. (The
    gateway stamps a frame once its write is done, the simulator may read it sooner, and
    frames held while the Live session opens are stamped after the whole replay.)
    """
    turns: dict[int, tuple[int, float, bool]] = {}  # call -> (turn, its ms, next starts one)
    started: dict[int, float] = {}
    for r in records:
        ev, t, c = r.get("ev"), float(r["t"]), int(r["c"])
        turn, ms, boundary = turns.get(c, (0, 0.0, True))
        if ev == "call":
            started[c] = t
            yield {"ev": "call", "t": t, "call": c}
            yield {"ev": "connected", "t": t, "call": c}
        elif ev == "fwd":
            yield {"ev": "sent", "t": started.get(c, t), "call": c, "ms": float(r["ms"])}
        elif ev == "media":
            if boundary:
                turn, ms, boundary = turn + 1, 0.0, False
            ms += float(r["ms"])
            yield {"ev": "recv", "t": t, "call": c, "turn": turn, "ms": ms}
        elif ev == "clear":
            boundary = True
            yield {"ev": "clear", "t": t, "call": c}
        elif ev == "turn_end":
            boundary = True
        elif ev == "end":
            yield {"ev": "end", "t": t, "call": c, "error": None}
        turns[c] = (turn, ms, boundary)


def analyse_at_gateway(calls: list[PhoneCall], sessions: list[SimSession],
                       gateway_records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The report's ``added_at_gateway`` section, from the phones' and the simulator's traces
    as :func:`.timelines.read_phone` and :func:`.timelines.read_sim` give them (the end-to-end
    figures were measured on the same, so neither trace is read twice)."""
    gateway = list(gateway_records)
    inbound = measure(calls, read_sim(as_simulator(gateway)))
    outbound = measure(read_phone(as_phones(gateway)), sessions)
    return {
        "method": "rig write stamps vs the gateway's own write stamps (voicegw serve --trace)",
        "inbound_ms": inbound.inbound.as_dict(),
        "reply_ms": outbound.reply.as_dict(),
        "barge_in_ms": outbound.barge_in.as_dict(),
        "calls_matched_to_phones": f"{inbound.matched} of {inbound.phone_calls}",
        "calls_matched_to_sessions": f"{outbound.matched} of {outbound.sessions}",
        "interrupted_without_clear": outbound.interrupted_without_clear,
        "warnings": _warnings(inbound, outbound),
    }


def table_rows(section: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The report table's rows for the section :func:`analyse_at_gateway` made."""
    barge = barge_in_cell(section)
    return [
        ("at gateway: matched", f"{section['calls_matched_to_phones']} phone calls, "
                                f"{section['calls_matched_to_sessions']} sessions"),
        ("at gateway inbound ms p50/p95/p99/max", format_ms(section["inbound_ms"])),
        ("at gateway reply ms p50/p95/p99/max", format_ms(section["reply_ms"])),
        ("at gateway barge-in ms p50/p95/p99/max", barge),
    ]


def _warnings(inbound: AddedLatency, outbound: AddedLatency) -> list[str]:
    out = []
    if inbound.unmatched_calls:
        out.append(f"added at the gateway: {len(inbound.unmatched_calls)} phone calls matched "
                   "none of the gateway's calls")
    if inbound.unmatched_sessions:
        out.append(f"added at the gateway: {len(inbound.unmatched_sessions)} of the gateway's "
                   "calls matched no phone call")
    if outbound.unmatched_sessions:
        out.append(f"added at the gateway: {len(outbound.unmatched_sessions)} simulator "
                   "sessions matched none of the gateway's calls")
    skipped = sum(1 for c in outbound.calls if c.notes)
    if skipped:
        out.append(f"added at the gateway: {skipped} calls have reply turns left out")
    return out
