"""A database written before carriers were recorded migrates, its calls kept as Twilio's."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gateway.store.schema import LATEST, MIGRATIONS, SCHEMA_VERSION_TABLE
from gateway.store.sql import CALL_COLUMNS, call_params
from gateway.store.sqlite import SqliteStore
from tests.store_data import record


async def test_a_database_from_before_carriers_keeps_its_calls_as_twilios(
        tmp_path: Path) -> None:
    # The migration's SQL is shared by both dialects; SQLite shows it without a server.
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.execute(SCHEMA_VERSION_TABLE.format(ts="TEXT"))
    for migration in MIGRATIONS[:2]:  # the schema as it was before this one
        for statement in migration.sql("sqlite"):
            db.execute(statement)
        db.execute("INSERT INTO schema_version VALUES (?, ?, '2026-01-01')",
                   (migration.version, migration.description))
    old = record("CAold")
    columns = [c for c in CALL_COLUMNS if c not in ("carrier", "end_kind", "stalls")]
    values = dict(zip(CALL_COLUMNS, call_params(old, "sqlite"), strict=True))
    db.execute(f"INSERT INTO calls ({', '.join(columns)}) "
               f"VALUES ({', '.join('?' for _ in columns)})", [values[c] for c in columns])
    db.commit()
    db.close()
    store = SqliteStore(path)
    await store.open()
    try:
        assert await store.version() == LATEST
        got = await store.get_call("CAold")
    finally:
        await store.aclose()
    assert got is not None
    assert (got.carrier, got.end_kind) == ("twilio", None)
    assert got.stalls == ()  # schema 4: NULL before it, read as none
    assert got.end_reason == old.end_reason
