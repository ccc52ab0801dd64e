"""SQLite: the zero-set-up default, one file.

The stdlib driver is blocking, so every statement runs on one dedicated thread of our own
(rather than ``asyncio.to_thread``'s shared pool, which aiohttp also uses for DNS lookups; and
rather than aiosqlite, which does the same with one more dependency). One thread also means the
connection is never used by two threads at once.

WAL lets ``voicegw calls`` read while the gateway writes; ``synchronous=NORMAL`` keeps every
committed call across a killed process (only a power cut can lose the last few commits).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TypeVar

from gateway.store import sql
from gateway.store.base import CallStore, StoreError, check_version
from gateway.store.model import CallListing, CallPage, CallQuery, CallRecord
from gateway.store.schema import MIGRATIONS, SCHEMA_VERSION_TABLE

T = TypeVar("T")
BUSY_TIMEOUT_MS: Final = 5000


class SqliteStore(CallStore):
    dialect = "sqlite"

    def __init__(self, path: Path, *, create: bool = True) -> None:
        self.path = path
        self.where = str(path)
        self._create = create
        self._db: sqlite3.Connection | None = None
        self._thread: ThreadPoolExecutor | None = None  # made by open(), ended by aclose()

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            if self._db is None:
                raise StoreError(f"{self.where} is not open")
            return fn(self._db)

        if self._thread is None:
            raise StoreError(f"{self.where} is not open")
        return await asyncio.get_running_loop().run_in_executor(self._thread, call)

    async def open(self) -> None:
        if not self._create and not self.path.exists():
            raise StoreError(f"no call records at {self.where}")
        if self._thread is None:
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="voicegw-sqlite")
        await asyncio.get_running_loop().run_in_executor(self._thread, self._open)

    def _open(self) -> None:
        if self._db is not None:  # opening again (a retry) starts from a fresh connection
            self._db.close()
            self._db = None
        if self._create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # isolation_level=None: we say BEGIN/COMMIT ourselves, so a migration's DDL and its
            # schema_version row commit together.
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot use {self.where}: {exc}") from exc
        try:
            db.row_factory = sqlite3.Row
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            db.execute("PRAGMA foreign_keys = ON")
            self._migrate(db)
        except BaseException as exc:
            db.close()
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"cannot use {self.where}: {exc}") from exc
            raise
        self._db = db

    def _migrate(self, db: sqlite3.Connection) -> None:
        db.execute("BEGIN IMMEDIATE")  # one process migrates; another waits on busy_timeout
        try:
            db.execute(SCHEMA_VERSION_TABLE.format(ts="TEXT"))
            found = _current(db)
            check_version(found, self.where)
            for migration in MIGRATIONS:
                if migration.version <= found:
                    continue
                for statement in migration.sql("sqlite"):
                    db.execute(statement)
                db.execute("INSERT INTO schema_version (version, description, applied_at) "
                           "VALUES (?, ?, ?)", (migration.version, migration.description,
                                                datetime.now(UTC).isoformat()))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    async def version(self) -> int:
        return await self._run(_current)

    async def write(self, records: Sequence[CallRecord]) -> None:
        def write_all(db: sqlite3.Connection) -> None:
            for record in records:
                db.execute("BEGIN")
                try:
                    _write(db, record)
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise

        await self._run(write_all)

    async def list_calls(self, limit: int) -> list[CallListing]:
        rows = await self._run(lambda db: db.execute(sql.LIST_CALLS, (limit,)).fetchall())
        return [sql.listing_from_row(r) for r in rows]

    async def search_calls(self, query: CallQuery) -> CallPage:
        found = sql.search(query, "sqlite")

        def read(db: sqlite3.Connection) -> CallPage:
            total = int(db.execute(found.count, found.count_params).fetchone()[0])
            rows = db.execute(found.page, found.page_params).fetchall()
            return CallPage(tuple(sql.listing_from_row(r) for r in rows), total)

        return await self._run(read)

    async def get_call(self, call_sid: str) -> CallRecord | None:
        def read(db: sqlite3.Connection) -> CallRecord | None:
            row = db.execute(sql.GET_CALL, (call_sid,)).fetchone()
            if row is None:
                return None
            return sql.record_from_rows(row, db.execute(sql.GET_TURNS, (call_sid,)).fetchall(),
                                        db.execute(sql.GET_TOOLS, (call_sid,)).fetchall())

        return await self._run(read)

    async def fetch(self, statement: str, params: Sequence[Any] = ()) -> list[sql.Row]:
        return await self._run(lambda db: list(db.execute(statement, tuple(params))
                                               .fetchall()))

    async def execute(self, statement: str, params: Sequence[Any] = ()) -> int:
        return await self._run(lambda db: db.execute(statement, tuple(params)).rowcount)

    async def aclose(self) -> None:
        def close(db: sqlite3.Connection) -> None:
            db.close()

        if self._db is not None:
            await self._run(close)
            self._db = None
        if self._thread is not None:
            self._thread.shutdown(wait=False)
            self._thread = None


def _current(db: sqlite3.Connection) -> int:
    row = db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
    return int(row[0])


def _write(db: sqlite3.Connection, record: CallRecord) -> None:
    sid = record.call_sid
    db.execute(sql.UPSERT_CALL, sql.call_params(record, "sqlite"))
    first_at = record.turns[0].at if record.turns else -1.0
    db.execute(sql.DELETE_TURNS_FROM, (sid, first_at))
    base = int(db.execute(sql.NEXT_TURN_SEQ, (sid,)).fetchone()[0])
    db.executemany(sql.INSERT_TURN, sql.turn_params(sid, base, record.turns))
    if record.tool_calls:
        found = db.execute(sql.TOOL_SEQ_OF, (sid, record.tool_calls[0].id)).fetchone()[0]
        if found is not None:
            db.execute(sql.DELETE_TOOLS_FROM, (sid, found))
        base = int(db.execute(sql.NEXT_TOOL_SEQ, (sid,)).fetchone()[0])
        db.executemany(sql.INSERT_TOOL, sql.tool_params(sid, base, record.tool_calls))
