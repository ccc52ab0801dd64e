"""What the recorder and the CLI need from a database of call records."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from gateway.errors import StoreError
from gateway.store.model import CallListing, CallPage, CallQuery, CallRecord
from gateway.store.schema import LATEST, Dialect
from gateway.store.sql import Row

__all__ = ["CallStore", "StoreError", "check_version"]


def check_version(found: int, where: str) -> None:
    # A newer schema was written by a newer voicegw: writing our rows into it could corrupt it.
    if found > LATEST:
        raise StoreError(f"{where} has call-record schema v{found}; this voicegw knows up to "
                         f"v{LATEST}: upgrade voicegw")


class CallStore(ABC):
    dialect: Dialect
    where: str  # for logs and messages: a path, or a URL without its password

    @abstractmethod
    async def open(self) -> None:
        """Connect and bring the schema up to date."""

    @abstractmethod
    async def write(self, records: Sequence[CallRecord]) -> None:
        """Store each record (each in its own transaction), replacing that call's older one."""

    @abstractmethod
    async def list_calls(self, limit: int) -> list[CallListing]:
        """The newest ``limit`` calls, newest first."""

    @abstractmethod
    async def search_calls(self, query: CallQuery) -> CallPage:
        """The page of calls ``query`` asks for, newest first, and the number matching."""

    @abstractmethod
    async def get_call(self, call_sid: str) -> CallRecord | None: ...

    @abstractmethod
    async def fetch(self, statement: str, params: Sequence[Any] = ()) -> list[Row]:
        """Rows of one statement written with ``?`` placeholders (for tables beside the
        calls': outbound calls, campaigns), so their SQL is written once for both stores."""

    @abstractmethod
    async def execute(self, statement: str, params: Sequence[Any] = ()) -> int:
        """Run one statement (its own transaction); the number of rows it changed."""

    @abstractmethod
    async def version(self) -> int:
        """The schema version the database is at."""

    @abstractmethod
    async def aclose(self) -> None: ...
