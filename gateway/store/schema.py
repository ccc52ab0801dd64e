"""The call-record schema: numbered migrations, written once for SQLite and PostgreSQL.

Each migration is applied in its own transaction together with its row in ``schema_version``,
so a database is always at exactly one version. Migrations are only ever appended: a released
one is never edited, because databases already past it would never see the change.

The SQL is shared; the few types that differ are written as placeholders (``{json}``...) and
filled in per dialect: JSON is TEXT in SQLite (queried with its json functions) and JSONB in
PostgreSQL; times are ISO-8601 UTC text in SQLite (sortable, and what its date functions read)
and TIMESTAMPTZ in PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from gateway.store import campaign_schema

Dialect = Literal["sqlite", "postgres"]

_TYPES: Final[dict[Dialect, dict[str, str]]] = {
    "sqlite": {"json": "TEXT", "ts": "TEXT", "real": "REAL", "bigint": "INTEGER",
               "bool": "INTEGER"},
    "postgres": {"json": "JSONB", "ts": "TIMESTAMPTZ", "real": "DOUBLE PRECISION",
                 "bigint": "BIGINT", "bool": "BOOLEAN"},
}


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]

    def sql(self, dialect: Dialect) -> list[str]:
        return [s.format(**_TYPES[dialect]) for s in self.statements]


SCHEMA_VERSION_TABLE: Final = """
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at {ts} NOT NULL
)"""

MIGRATIONS: Final[tuple[Migration, ...]] = (
    Migration(1, "calls, turns and tool calls", (
        """
        CREATE TABLE calls (
            call_sid TEXT PRIMARY KEY,
            stream_sid TEXT,
            agent TEXT,
            caller TEXT,              -- full number: the record is the place for it; logs mask it
            dialled TEXT,
            started_at {ts} NOT NULL,
            ended_at {ts},            -- NULL: still running, or the gateway died mid-call
            end_reason TEXT,
            duration_s {real} NOT NULL,
            frames_in {bigint} NOT NULL,
            frames_out {bigint} NOT NULL,
            frames_dropped {bigint} NOT NULL,
            longest_gap_ms {real},    -- longest time without a Live session; NULL: none
            interruptions INTEGER NOT NULL,
            live_reconnects INTEGER NOT NULL,
            reconnect_gaps {json} NOT NULL,
            tokens_prompt {bigint} NOT NULL,
            tokens_response {bigint} NOT NULL,
            tokens_total {bigint} NOT NULL,
            response_latency_ms {json} NOT NULL,  -- one figure per answered caller turn
            updated_at {ts} NOT NULL
        )""",
        "CREATE INDEX calls_started_at ON calls (started_at)",
        """
        CREATE TABLE turns (
            call_sid TEXT NOT NULL REFERENCES calls (call_sid) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            at_s {real} NOT NULL,     -- seconds since the call started
            role TEXT NOT NULL,
            text TEXT NOT NULL,
            interrupted {bool} NOT NULL,
            heard TEXT,               -- what the caller heard of an interrupted reply
            PRIMARY KEY (call_sid, seq)
        )""",
        """
        CREATE TABLE tool_calls (
            call_sid TEXT NOT NULL REFERENCES calls (call_sid) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            id TEXT NOT NULL,
            name TEXT NOT NULL,
            args {json} NOT NULL,
            result {json},
            error TEXT,
            latency_ms {real} NOT NULL,
            outcome TEXT NOT NULL,    -- ok | error | cancelled
            PRIMARY KEY (call_sid, seq)
        )""",
    )),
    Migration(2, "the longest silence inside a reply, as the caller heard it", (
        "ALTER TABLE calls ADD COLUMN longest_reply_gap_ms {real}",
    )),
    Migration(3, "each call's carrier, and the kind of ending as a fixed word", (
        # Every call before this migration came through Twilio, the only carrier then.
        "ALTER TABLE calls ADD COLUMN carrier TEXT NOT NULL DEFAULT 'twilio'",
        "ALTER TABLE calls ADD COLUMN end_kind TEXT",  # gateway.ending.EndKind's value
        "CREATE INDEX calls_carrier_started_at ON calls (carrier, started_at)",
    )),
    Migration(4, "each time the model went quiet, and how it ended", (
        # A JSON list of {at_s, trigger, outcome, quiet_ms} (gateway.stall.StallRecord);
        # NULL in records written before.
        "ALTER TABLE calls ADD COLUMN stalls {json}",
    )),
    Migration(5, "outbound calls: each request, its statuses and what answered", (
        # Times are Unix seconds: a dial's history is read back as numbers, in both stores.
        """
        CREATE TABLE dials (
            id TEXT PRIMARY KEY,
            idempotency_key TEXT UNIQUE,
            fingerprint TEXT NOT NULL,      -- of the request, to refuse a key reused
            carrier TEXT NOT NULL,
            agent TEXT NOT NULL,
            to_number TEXT NOT NULL,
            request {json} NOT NULL,        -- gateway.dialing.model.DialRequest.as_json()
            status TEXT NOT NULL,           -- gateway.dialing.model.DialStatus's value
            carrier_call_id TEXT,
            control_id TEXT,                -- where the carrier controls it by another id
            history {json} NOT NULL,        -- a list of status, at, detail
            amd {json},                     -- gateway.dialing.model.AmdResult.as_json()
            error TEXT,
            created_at {real} NOT NULL,
            updated_at {real} NOT NULL
        )""",
        "CREATE INDEX dials_created_at ON dials (created_at)",
        "CREATE INDEX dials_carrier_call ON dials (carrier, carrier_call_id)",
    )),
    Migration(6, campaign_schema.DESCRIPTION, campaign_schema.STATEMENTS),
)

LATEST: Final = MIGRATIONS[-1].version
