"""PostgreSQL through asyncpg, for gateways that share one database (or run several replicas).

asyncpg is asynchronous, so nothing here needs a thread. A small pool reconnects by itself after
the server restarts. Migrations take an advisory lock, so replicas starting together migrate
once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from gateway.store import sql
from gateway.store.base import CallStore, StoreError, check_version
from gateway.store.model import CallListing, CallPage, CallQuery, CallRecord
from gateway.store.schema import MIGRATIONS, SCHEMA_VERSION_TABLE

# Any fixed number; every voicegw uses the same one for its migrations.
MIGRATION_LOCK: Final = 0x766F6963  # "voic"
CONNECT_TIMEOUT_S: Final = 10.0

_UPSERT_CALL: Final = sql.numbered(sql.UPSERT_CALL)
_DELETE_TURNS_FROM: Final = sql.numbered(sql.DELETE_TURNS_FROM)
_NEXT_TURN_SEQ: Final = sql.numbered(sql.NEXT_TURN_SEQ)
_INSERT_TURN: Final = sql.numbered(sql.INSERT_TURN)
_TOOL_SEQ_OF: Final = sql.numbered(sql.TOOL_SEQ_OF)
_DELETE_TOOLS_FROM: Final = sql.numbered(sql.DELETE_TOOLS_FROM)
_NEXT_TOOL_SEQ: Final = sql.numbered(sql.NEXT_TOOL_SEQ)
_INSERT_TOOL: Final = sql.numbered(sql.INSERT_TOOL)


def safe_url(dsn: str) -> str:
    """``dsn`` without its password, for logs and messages."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


class PostgresStore(CallStore):
    dialect = "postgres"

    def __init__(self, dsn: str, *, search_path: str | None = None) -> None:
        self._dsn = dsn
        self.where = safe_url(dsn)
        # Tests give each run a schema of its own; operators can say it in the DSN instead.
        self._settings = {"search_path": search_path} if search_path else None
        self._pool: asyncpg.Pool | None = None

    def _require(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreError(f"{self.where} is not open")
        return self._pool

    async def open(self) -> None:
        await self.aclose()  # opening again (a retry) starts from a fresh pool
        try:
            self._pool = await asyncpg.create_pool(
                self._dsn, min_size=1, max_size=2, timeout=CONNECT_TIMEOUT_S,
                server_settings=self._settings)
            async with self._pool.acquire() as db, db.transaction():
                await db.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
                await db.execute(SCHEMA_VERSION_TABLE.format(ts="TIMESTAMPTZ"))
                found = await _current(db)
                check_version(found, self.where)
                for migration in MIGRATIONS:
                    if migration.version <= found:
                        continue
                    for statement in migration.sql("postgres"):
                        await db.execute(statement)
                    await db.execute(
                        "INSERT INTO schema_version (version, description, applied_at) "
                        "VALUES ($1, $2, $3)", migration.version, migration.description,
                        datetime.now(UTC))
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            await self.aclose()
            raise StoreError(f"cannot use {self.where}: {exc}") from exc
        except BaseException:
            await self.aclose()
            raise

    async def version(self) -> int:
        async with self._require().acquire() as db:
            return await _current(db)

    async def write(self, records: Sequence[CallRecord]) -> None:
        async with self._require().acquire() as db:
            for record in records:
                async with db.transaction():
                    await _write(db, record)

    async def list_calls(self, limit: int) -> list[CallListing]:
        rows = await self._require().fetch(sql.numbered(sql.LIST_CALLS), limit)
        return [sql.listing_from_row(r) for r in rows]

    async def search_calls(self, query: CallQuery) -> CallPage:
        found = sql.search(query, "postgres")
        async with self._require().acquire() as db:
            total = int(await db.fetchval(sql.numbered(found.count), *found.count_params))
            rows = await db.fetch(sql.numbered(found.page), *found.page_params)
        return CallPage(tuple(sql.listing_from_row(r) for r in rows), total)

    async def get_call(self, call_sid: str) -> CallRecord | None:
        async with self._require().acquire() as db:
            row = await db.fetchrow(sql.numbered(sql.GET_CALL), call_sid)
            if row is None:
                return None
            turns = await db.fetch(sql.numbered(sql.GET_TURNS), call_sid)
            tools = await db.fetch(sql.numbered(sql.GET_TOOLS), call_sid)
        return sql.record_from_rows(row, turns, tools)

    async def fetch(self, statement: str, params: Sequence[Any] = ()) -> list[sql.Row]:
        return list(await self._require().fetch(sql.numbered(statement), *params))

    async def execute(self, statement: str, params: Sequence[Any] = ()) -> int:
        status = await self._require().execute(sql.numbered(statement), *params)
        # asyncpg answers the command tag: "INSERT 0 1", "UPDATE 3", "DELETE 0".
        last = str(status).rsplit(" ", 1)[-1]
        return int(last) if last.isdigit() else 0

    async def aclose(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()


async def _current(db: asyncpg.pool.PoolConnectionProxy) -> int:
    return int(await db.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version"))


async def _write(db: asyncpg.pool.PoolConnectionProxy, record: CallRecord) -> None:
    sid = record.call_sid
    await db.execute(_UPSERT_CALL, *sql.call_params(record, "postgres"))
    first_at = record.turns[0].at if record.turns else -1.0
    await db.execute(_DELETE_TURNS_FROM, sid, first_at)
    base = int(await db.fetchval(_NEXT_TURN_SEQ, sid))
    if record.turns:
        await db.executemany(_INSERT_TURN, sql.turn_params(sid, base, record.turns))
    if record.tool_calls:
        found = await db.fetchval(_TOOL_SEQ_OF, sid, record.tool_calls[0].id)
        if found is not None:
            await db.execute(_DELETE_TOOLS_FROM, sid, found)
        base = int(await db.fetchval(_NEXT_TOOL_SEQ, sid))
        await db.executemany(_INSERT_TOOL, sql.tool_params(sid, base, record.tool_calls))
