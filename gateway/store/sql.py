"""SQL and row conversion shared by both stores; each store only executes it.

Statements use ``?`` placeholders (SQLite's); :func:`numbered` rewrites them as ``$1, $2...``
for PostgreSQL. No statement has a literal ``?``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from gateway.record import TranscriptLine
from gateway.stall import StallOutcome, StallRecord, StallTrigger
from gateway.store.model import CallListing, CallQuery, CallRecord, ToolRow
from gateway.store.schema import Dialect

CALL_COLUMNS: Final = (
    "call_sid", "stream_sid", "agent", "caller", "dialled", "started_at", "ended_at",
    "end_reason", "duration_s", "frames_in", "frames_out", "frames_dropped", "longest_gap_ms",
    "interruptions", "live_reconnects", "reconnect_gaps", "tokens_prompt", "tokens_response",
    "tokens_total", "response_latency_ms", "updated_at", "longest_reply_gap_ms", "carrier",
    "end_kind", "stalls",
)
_JSON: Final = frozenset({"reconnect_gaps", "response_latency_ms"})
_TIMES: Final = frozenset({"started_at", "ended_at", "updated_at"})

# The newest snapshot of a call replaces the older one (every snapshot is the whole call).
# Built from the constant column list only, never from input.
UPSERT_CALL: Final = (
    f"INSERT INTO calls ({', '.join(CALL_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' for _ in CALL_COLUMNS)}) "
    "ON CONFLICT (call_sid) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in CALL_COLUMNS[1:]))

# A transcript is capped (the newest lines are kept), so a long call's snapshot may lack its
# first lines: rows from the snapshot's first line on are replaced, older rows stay. A line is
# known by its start time, which never changes (its text grows, its flags change).
DELETE_TURNS_FROM: Final = "DELETE FROM turns WHERE call_sid = ? AND at_s >= ?"
NEXT_TURN_SEQ: Final = "SELECT COALESCE(MAX(seq) + 1, 0) FROM turns WHERE call_sid = ?"
INSERT_TURN: Final = ("INSERT INTO turns (call_sid, seq, at_s, role, text, interrupted, heard) "
                      "VALUES (?, ?, ?, ?, ?, ?, ?)")
# Tool records are capped the same way; they are immutable, known by id.
TOOL_SEQ_OF: Final = "SELECT MAX(seq) FROM tool_calls WHERE call_sid = ? AND id = ?"
NEXT_TOOL_SEQ: Final = "SELECT COALESCE(MAX(seq) + 1, 0) FROM tool_calls WHERE call_sid = ?"
DELETE_TOOLS_FROM: Final = "DELETE FROM tool_calls WHERE call_sid = ? AND seq >= ?"
INSERT_TOOL: Final = ("INSERT INTO tool_calls (call_sid, seq, id, name, args, result, error, "
                      "latency_ms, outcome) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")

_LISTING: Final = (
    "SELECT c.call_sid, c.started_at, c.duration_s, c.agent, c.caller, c.end_reason, "
    "c.ended_at, c.interruptions, c.carrier, c.end_kind, "
    "(SELECT COUNT(*) FROM turns t WHERE t.call_sid = c.call_sid) AS turn_count "
    "FROM calls c")
_NEWEST_FIRST: Final = " ORDER BY c.started_at DESC, c.call_sid"
LIST_CALLS: Final = _LISTING + _NEWEST_FIRST + " LIMIT ?"
# Each filter of a search, chosen from this fixed table (never built from input); the values
# go in as parameters. LIKE with an escape character, so a search for "100%" finds "100%".
_FILTERS: Final = {
    "since": "c.started_at >= ?",
    "until": "c.started_at < ?",
    "agent": "c.agent = ?",
    "carrier": "c.carrier = ?",
    "end_kind": "c.end_kind = ?",
    "text": "EXISTS (SELECT 1 FROM turns t WHERE t.call_sid = c.call_sid "
            "AND LOWER(t.text) LIKE ? ESCAPE '!')",
}
GET_CALL: Final = f"SELECT {', '.join(CALL_COLUMNS)} FROM calls WHERE call_sid = ?"  # noqa: S608
GET_TURNS: Final = ("SELECT at_s, role, text, interrupted, heard FROM turns "
                    "WHERE call_sid = ? ORDER BY seq")
GET_TOOLS: Final = ("SELECT id, name, args, result, error, latency_ms, outcome FROM tool_calls "
                    "WHERE call_sid = ? ORDER BY seq")


@dataclass(frozen=True, slots=True)
class Search:
    """A search's two statements and their parameters."""

    count: str
    count_params: list[Any]
    page: str
    page_params: list[Any]


def search(query: CallQuery, dialect: Dialect) -> Search:
    values: dict[str, Any] = {
        # SQLite compares times as text: both sides in UTC, written alike.
        "since": _time_param(query.since and query.since.astimezone(UTC), dialect),
        "until": _time_param(query.until and query.until.astimezone(UTC), dialect),
        "agent": query.agent, "carrier": query.carrier, "end_kind": query.end_kind,
        "text": _like(query.text) if query.text else None}
    chosen = [(name, value) for name, value in values.items() if value is not None]
    where = (" WHERE " + " AND ".join(_FILTERS[name] for name, _ in chosen)) if chosen else ""
    params = [value for _, value in chosen]
    page = max(query.page, 1)
    # The WHERE clause is made of _FILTERS only; every value is a parameter.
    return Search(count="SELECT COUNT(*) AS n FROM calls c" + where,  # noqa: S608
                  count_params=params,
                  page=_LISTING + where + _NEWEST_FIRST + " LIMIT ? OFFSET ?",
                  page_params=[*params, query.per_page, (page - 1) * query.per_page])


def _like(text: str) -> str:
    escaped = text.lower().replace("!", "!!").replace("%", "!%").replace("_", "!_")
    return f"%{escaped}%"


class Row(Protocol):
    """A result row by column name: ``sqlite3.Row`` and ``asyncpg.Record`` both are."""

    def __getitem__(self, key: str, /) -> Any: ...


def numbered(sql: str) -> str:
    """``?`` placeholders as PostgreSQL's ``$n``."""
    parts = sql.split("?")
    return "".join(p + (f"${i + 1}" if i < len(parts) - 1 else "") for i, p in enumerate(parts))


def _time_param(value: datetime | None, dialect: Dialect) -> Any:
    if value is None or dialect == "postgres":
        return value
    return value.isoformat(timespec="microseconds")


def _time_value(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def json_value(value: Any) -> Any:
    # asyncpg hands JSONB over as text unless told otherwise, as SQLite does TEXT.
    return json.loads(value) if isinstance(value, str) else value


def dumps(value: Any) -> str:
    # default=str: a tool's args or result holding a date must not lose the whole record.
    return json.dumps(value, default=str, separators=(",", ":"), ensure_ascii=False)


def call_params(record: CallRecord, dialect: Dialect) -> list[Any]:
    out: list[Any] = []
    for column in CALL_COLUMNS:
        value = getattr(record, column)
        if column in _JSON:
            value = dumps(list(value) if isinstance(value, tuple) else dict(value))
        elif column in _TIMES:
            value = _time_param(value, dialect)
        elif column == "stalls":
            value = dumps([{"at_s": s.at_s, "trigger": s.trigger.value,
                            "outcome": s.outcome.value, "quiet_ms": s.quiet_ms}
                           for s in value])
        out.append(value)
    return out


def turn_params(call_sid: str, base: int, turns: Sequence[TranscriptLine]) -> list[tuple[Any, ...]]:
    return [(call_sid, base + i, t.at, t.role, t.text, t.interrupted, t.heard)
            for i, t in enumerate(turns)]


def tool_params(call_sid: str, base: int, tools: Sequence[ToolRow]) -> list[tuple[Any, ...]]:
    return [(call_sid, base + i, t.id, t.name, dumps(dict(t.args)),
             None if t.result is None else dumps(dict(t.result)), t.error, t.latency_ms,
             t.outcome) for i, t in enumerate(tools)]


def record_from_rows(row: Row, turns: Sequence[Row], tools: Sequence[Row]) -> CallRecord:
    values: dict[str, Any] = {}
    for column in CALL_COLUMNS:
        value = row[column]
        if column in _JSON:
            value = json_value(value)
            if column == "response_latency_ms":
                value = tuple(float(v) for v in value)
        elif column in _TIMES:
            value = _time_value(value)
        elif column == "stalls":
            value = _stalls(json_value(value))
        values[column] = value
    return CallRecord(
        **values,
        turns=tuple(TranscriptLine(float(t["at_s"]), t["role"], t["text"],
                                   bool(t["interrupted"]), t["heard"]) for t in turns),
        tool_calls=tuple(ToolRow(t["id"], t["name"], json_value(t["args"]),
                                 json_value(t["result"]), t["error"], float(t["latency_ms"]),
                                 t["outcome"]) for t in tools))


def _stalls(value: Any) -> tuple[StallRecord, ...]:
    # NULL: a record written before schema 4.
    return tuple(StallRecord(float(s["at_s"]), StallTrigger(s["trigger"]),
                             StallOutcome(s["outcome"]), float(s["quiet_ms"]))
                 for s in value or ())


def listing_from_row(row: Row) -> CallListing:
    started = _time_value(row["started_at"])
    assert started is not None  # NOT NULL
    return CallListing(call_sid=row["call_sid"], started_at=started,
                       duration_s=float(row["duration_s"]), agent=row["agent"],
                       caller=row["caller"], end_reason=row["end_reason"],
                       ended=row["ended_at"] is not None, turns=int(row["turn_count"]),
                       interruptions=int(row["interruptions"]), carrier=row["carrier"],
                       end_kind=row["end_kind"])
