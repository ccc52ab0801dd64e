"""The databases the store tests run against: SQLite in tmp_path, and a real PostgreSQL.

PostgreSQL comes from ``VOICEGW_TEST_POSTGRES_DSN`` (.ci/run starts one and sets it). Without
it the PostgreSQL cases fail under CI (``CI`` set), so a CI that lost its database cannot pass
by skipping them; on a developer machine without PostgreSQL they are skipped.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest

from gateway.store.base import CallStore
from gateway.store.postgres import PostgresStore
from gateway.store.sqlite import SqliteStore

KINDS = ["sqlite", "postgres"]


def postgres_dsn() -> str:
    dsn = os.environ.get("VOICEGW_TEST_POSTGRES_DSN")
    if dsn:
        return dsn
    if os.environ.get("CI"):
        pytest.fail("VOICEGW_TEST_POSTGRES_DSN is not set: CI must run the PostgreSQL tests")
    pytest.skip("no PostgreSQL: set VOICEGW_TEST_POSTGRES_DSN (CI sets it)")


@asynccontextmanager
async def postgres_schema() -> AsyncIterator[tuple[str, str]]:
    """A schema of its own for one test, dropped afterwards: (dsn, schema)."""
    dsn = postgres_dsn()
    schema = "voicegw_test_" + uuid.uuid4().hex[:12]
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f"CREATE SCHEMA {schema}")
        yield dsn, schema
    finally:
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.close()


@asynccontextmanager
async def new_store(kind: str, tmp_path: Path, *, opened: bool = True) -> AsyncIterator[CallStore]:
    async with contextlib.AsyncExitStack() as stack:
        store: CallStore
        if kind == "sqlite":
            store = SqliteStore(tmp_path / "calls.db")
        else:
            dsn, schema = await stack.enter_async_context(postgres_schema())
            store = PostgresStore(dsn, search_path=schema)
        stack.push_async_callback(store.aclose)  # closed before its schema is dropped
        if opened:
            await store.open()
        yield store
