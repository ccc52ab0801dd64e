"""Where the dial service keeps calls: the call-record database (:class:`StoredDials`), or
memory when records are switched off (:class:`MemoryDials`: idempotency then lasts as long
as the process)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace
from typing import Final

from gateway.carriers.core import Carrier
from gateway.dialing.model import AmdResult, DialRecord, DialStatus
from gateway.store import dials
from gateway.store.base import CallStore

_PLACING: Final = frozenset({DialStatus.QUEUED, DialStatus.RINGING})
MEMORY_KEPT: Final = 10_000  # dials a store-less gateway remembers (oldest forgotten first)


class StoredDials:
    def __init__(self, store: CallStore) -> None:
        self.store = store

    async def insert(self, record: DialRecord) -> DialRecord:
        return await dials.insert(self.store, record)

    async def save(self, record: DialRecord) -> None:
        await dials.save(self.store, record)

    async def save_amd(self, dial_id: str, amd: AmdResult, now: float) -> None:
        await dials.save_amd(self.store, dial_id, amd, now)

    async def get(self, dial_id: str) -> DialRecord | None:
        return await dials.get(self.store, dial_id)

    async def by_key(self, key: str) -> DialRecord | None:
        return await dials.by_key(self.store, key)

    async def by_carrier_call(self, carrier: Carrier, call: str) -> DialRecord | None:
        return await dials.by_carrier_call(self.store, carrier, call)

    async def unsettled(self, before: float, limit: int) -> list[DialRecord]:
        return await dials.unsettled(self.store, before, limit)


class MemoryDials:
    def __init__(self, kept: int = MEMORY_KEPT) -> None:
        self.kept = kept
        self._by_id: OrderedDict[str, DialRecord] = OrderedDict()
        self._by_key: dict[str, str] = {}

    async def insert(self, record: DialRecord) -> DialRecord:
        if record.key is not None and record.key in self._by_key:
            return self._by_id[self._by_key[record.key]]
        self._by_id[record.id] = record
        if record.key is not None:
            self._by_key[record.key] = record.id
        while len(self._by_id) > self.kept:
            _, old = self._by_id.popitem(last=False)
            if old.key is not None:
                self._by_key.pop(old.key, None)
        return record

    async def save(self, record: DialRecord) -> None:
        old = self._by_id.get(record.id)
        if old is not None:
            self._by_id[record.id] = replace(record, amd=old.amd)

    async def save_amd(self, dial_id: str, amd: AmdResult, now: float) -> None:
        old = self._by_id.get(dial_id)
        if old is not None:
            self._by_id[dial_id] = replace(old, amd=amd, updated_at=now)

    async def get(self, dial_id: str) -> DialRecord | None:
        return self._by_id.get(dial_id)

    async def by_key(self, key: str) -> DialRecord | None:
        found = self._by_key.get(key)
        return self._by_id.get(found) if found is not None else None

    async def unsettled(self, before: float, limit: int) -> list[DialRecord]:
        return [r for r in self._by_id.values() if r.status in _PLACING
                and r.updated_at < before][:limit]

    async def by_carrier_call(self, carrier: Carrier, call: str) -> DialRecord | None:
        # The newest first: a placed call's answer comes soon after it is placed.
        return next((r for r in reversed(self._by_id.values())
                     if r.request.carrier is carrier and r.carrier_call_id == call), None)
