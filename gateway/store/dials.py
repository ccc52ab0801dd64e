"""Outbound calls in the call-record database (table ``dials``, migration 5): SQL written once
for both stores, run through :meth:`CallStore.fetch` / :meth:`CallStore.execute`.

A dial is inserted once, with its ``Idempotency-Key`` unique: two requests racing with one key
(two gateway processes, a client retrying on a timeout) both insert with ``ON CONFLICT DO
NOTHING`` and then read the one row that won, so the same key never places two calls.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

from gateway.carriers.core import Carrier
from gateway.dialing.model import (
    AmdResult,
    DialRecord,
    DialRequest,
    DialStatus,
    MachineDetection,
    StatusChange,
)
from gateway.store.base import CallStore
from gateway.store.sql import Row, dumps, json_value

_COLUMNS: Final = ("id", "idempotency_key", "fingerprint", "carrier", "agent", "to_number",
                   "request", "status", "carrier_call_id", "control_id", "history", "amd",
                   "error", "created_at", "updated_at")
_INSERT: Final = (f"INSERT INTO dials ({', '.join(_COLUMNS)}) "  # noqa: S608 - constants only
                  f"VALUES ({', '.join('?' for _ in _COLUMNS)}) ON CONFLICT DO NOTHING")
# The status and what answered are written apart: the carrier's callbacks and the call's
# screen each change their own columns, so neither can undo the other's write.
_SAVE: Final = ("UPDATE dials SET status = ?, carrier_call_id = ?, control_id = ?, "
                "history = ?, error = ?, updated_at = ? WHERE id = ?")
_SAVE_AMD: Final = "UPDATE dials SET amd = ?, updated_at = ? WHERE id = ?"
_SELECT: Final = f"SELECT {', '.join(_COLUMNS)} FROM dials"  # noqa: S608
_BY_ID: Final = _SELECT + " WHERE id = ?"
_BY_KEY: Final = _SELECT + " WHERE idempotency_key = ?"
_BY_CARRIER_CALL: Final = _SELECT + " WHERE carrier = ? AND carrier_call_id = ?"
# Calls still placing (queued or ringing) last changed before a moment: their carrier's final
# callback may have been lost.
_UNSETTLED: Final = (_SELECT + " WHERE status IN ('queued', 'ringing') AND updated_at < ? "
                     "ORDER BY updated_at LIMIT ?")


def fingerprint(request: DialRequest) -> str:
    """The request's identity, to tell a retried request from a different one with the same
    key."""
    return hashlib.sha256(dumps(request.as_json()).encode()).hexdigest()


async def insert(store: CallStore, record: DialRecord) -> DialRecord:
    """Store a new dial; if its key is taken, the dial that holds it (the caller compares
    fingerprints)."""
    await store.execute(_INSERT, _params(record))
    if record.key is None:
        return record
    found = await by_key(store, record.key)
    assert found is not None  # the insert or the row it lost to
    return found


async def save(store: CallStore, record: DialRecord) -> None:
    """The call's status, history, carrier id and error (not ``amd``: :func:`save_amd`)."""
    await store.execute(_SAVE, (
        record.status.value, record.carrier_call_id, record.control_id,
        dumps(_history(record)), record.error, record.updated_at, record.id))


async def save_amd(store: CallStore, dial_id: str, amd: AmdResult, now: float) -> None:
    await store.execute(_SAVE_AMD, (dumps(amd.as_json()), now, dial_id))


async def get(store: CallStore, dial_id: str) -> DialRecord | None:
    rows = await store.fetch(_BY_ID, (dial_id,))
    return _record(rows[0]) if rows else None


async def by_key(store: CallStore, key: str) -> DialRecord | None:
    rows = await store.fetch(_BY_KEY, (key,))
    return _record(rows[0]) if rows else None


async def by_carrier_call(store: CallStore, carrier: Carrier, call: str) -> DialRecord | None:
    rows = await store.fetch(_BY_CARRIER_CALL, (carrier.value, call))
    return _record(rows[0]) if rows else None


async def unsettled(store: CallStore, before: float, limit: int) -> list[DialRecord]:
    return [_record(r) for r in await store.fetch(_UNSETTLED, (before, limit))]


def _history(record: DialRecord) -> list[dict[str, Any]]:
    return [{"status": c.status.value, "at": c.at, "detail": c.detail} for c in record.history]


def _params(record: DialRecord) -> tuple[Any, ...]:
    req = record.request
    return (record.id, record.key, fingerprint(req), req.carrier.value, req.agent, req.to,
            dumps(req.as_json()), record.status.value, record.carrier_call_id,
            record.control_id, dumps(_history(record)),
            dumps(record.amd.as_json()) if record.amd else None, record.error,
            record.created_at, record.updated_at)


def _record(row: Row) -> DialRecord:
    req = json_value(row["request"])
    request = DialRequest(
        to=req["to"], from_=req["from"], agent=req["agent"], carrier=Carrier(req["carrier"]),
        parameters=dict(req.get("parameters") or {}),
        machine_detection=MachineDetection(req["machine_detection"]),
        voicemail_message=req.get("voicemail_message"), timeout_s=int(req["timeout_s"]))
    amd = json_value(row["amd"])
    return DialRecord(
        id=row["id"], request=request, status=DialStatus(row["status"]),
        created_at=float(row["created_at"]), updated_at=float(row["updated_at"]),
        key=row["idempotency_key"], carrier_call_id=row["carrier_call_id"],
        control_id=row["control_id"],
        history=tuple(StatusChange(DialStatus(c["status"]), float(c["at"]), c.get("detail", ""))
                      for c in json_value(row["history"])),
        amd=AmdResult.from_json(amd) if amd else None, error=row["error"])
