"""Campaigns, their contacts and the do-not-call list, in the call-record database.

One class for both databases: the SQL is written once (``?`` placeholders) and runs through
the store's plain statements (:meth:`CallStore.fetch`, :meth:`CallStore.execute`).

Creating a campaign is several statements (its contacts go in by the hundred), so it is made
safe without a transaction: the campaign's ``contacts`` count is set only once every contact
is in; until then it is invisible, and a campaign left half made by a crash is replaced when
the same name is started again.

A contact is saved with compare and set: the update applies only if the row is still in the
state and at the attempt the runner read, so a move is never applied twice or over another
runner's.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import asyncpg

from gateway.campaign.model import CallSettings, Campaign, Contact, ContactState, Result
from gateway.dialing.model import AnsweredBy, DialStatus
from gateway.store import sql
from gateway.store.base import CallStore, StoreError
from gateway.store.schema import Dialect

_CONTACT_COLUMNS: Final = (
    "campaign_id", "seq", "number", "zones", "parameters", "state", "attempts", "next_at",
    "dial_id", "last_status", "answered_by", "dial_ids", "dial_times", "result", "error",
    "first_dial_at", "last_dial_at", "ended_at")
_CAMPAIGN_COLUMNS: Final = ("id", "name", "source", "digest", "call", "created_at",
                            "finished_at")
# Built from the constant column lists only, never from input.
# Contacts go in this many to a statement: 18 columns each stays under SQLite's oldest
# limit of 999 parameters.
_BATCH: Final = 50
_INSERT_CAMPAIGN: Final = (f"INSERT INTO campaigns ({', '.join(_CAMPAIGN_COLUMNS)}) "  # noqa: S608
                           f"VALUES ({', '.join('?' for _ in _CAMPAIGN_COLUMNS)})")
_SAVE_CONTACT: Final = ("UPDATE campaign_contacts SET "  # noqa: S608
                        + ", ".join(f"{c} = ?" for c in _CONTACT_COLUMNS[5:])
                        + " WHERE campaign_id = ? AND seq = ? AND state = ? AND attempts = ?")
_CAMPAIGN: Final = (f"SELECT {', '.join(_CAMPAIGN_COLUMNS)} FROM campaigns "  # noqa: S608
                    "WHERE contacts IS NOT NULL")
_CONTACTS: Final = (f"SELECT {', '.join(_CONTACT_COLUMNS)} FROM campaign_contacts "  # noqa: S608
                    "WHERE campaign_id = ?")


@dataclass(frozen=True, slots=True)
class DncEntry:
    number: str
    added_at: float
    reason: str


@dataclass(frozen=True, slots=True)
class Tally:
    """How many contacts of a campaign stand where."""

    states: dict[ContactState, int]
    results: dict[Result, int]
    attempts: int
    last_dial_at: float | None


class CampaignStore:
    """The campaign tables of an opened :class:`CallStore`."""

    def __init__(self, store: CallStore) -> None:
        self._store = store
        self._dialect: Dialect = store.dialect
        self.where = store.where

    # -- campaigns --------------------------------------------------------------------------

    async def create(self, campaign: Campaign, contacts: Sequence[Contact]) -> None:
        """The campaign and all its contacts; visible once all are in."""
        d = self._dialect
        # A campaign of this name left half made (a crash while importing) goes first.
        await self._store.execute("DELETE FROM campaigns WHERE name = ? AND contacts IS NULL",
                                  [campaign.name])
        try:
            await self._store.execute(_INSERT_CAMPAIGN, [
                campaign.id, campaign.name, campaign.source, campaign.digest,
                sql.dumps(campaign.call.as_json()), _ts(campaign.created_at, d),
                _ts(campaign.finished_at, d)])
        except (sqlite3.IntegrityError, asyncpg.UniqueViolationError):
            raise StoreError(f"a campaign named {campaign.name!r} already exists") from None
        for first in range(0, len(contacts), _BATCH):
            batch = contacts[first:first + _BATCH]
            await self._store.execute(_insert_contacts(len(batch)),
                                      [v for c in batch for v in _contact_row(c, d)])
        await self._store.execute("UPDATE campaigns SET contacts = ? WHERE id = ?",
                                  [len(contacts), campaign.id])

    async def find(self, name: str) -> Campaign | None:
        rows = await self._store.fetch(_CAMPAIGN + " AND name = ?", [name])
        return _campaign(rows[0]) if rows else None

    async def campaigns(self) -> list[Campaign]:
        return [_campaign(r) for r in
                await self._store.fetch(_CAMPAIGN + " ORDER BY created_at")]

    async def finish(self, campaign_id: str, at: float | None) -> None:
        await self._store.execute("UPDATE campaigns SET finished_at = ? WHERE id = ?",
                           [_ts(at, self._dialect), campaign_id])

    # -- contacts ---------------------------------------------------------------------------

    async def contacts(self, campaign_id: str,
                       states: Collection[ContactState] | None = None) -> list[Contact]:
        rows = await self._store.fetch(_CONTACTS + " ORDER BY seq", [campaign_id])
        found = [_contact(r) for r in rows]
        return found if states is None else [c for c in found if c.state in states]

    async def save(self, contact: Contact, was: Contact) -> bool:
        """Store ``contact`` if its row still stands where ``was`` did (state and attempt);
        whether it did."""
        values = _contact_row(contact, self._dialect)[5:]
        return await self._store.execute(_SAVE_CONTACT, [*values, contact.campaign_id, contact.seq,
                                                  was.state.value, was.attempts]) == 1

    async def tally(self, campaign_id: str) -> Tally:
        rows = await self._store.fetch(
            "SELECT state, result, COUNT(*) AS n, SUM(attempts) AS a, "
            "MAX(last_dial_at) AS last FROM campaign_contacts WHERE campaign_id = ? "
            "GROUP BY state, result", [campaign_id])
        states: dict[ContactState, int] = {}
        results: dict[Result, int] = {}
        attempts = 0
        last: float | None = None
        for r in rows:
            state = ContactState(r["state"])
            states[state] = states.get(state, 0) + int(r["n"])
            if r["result"] is not None:
                results[Result(r["result"])] = int(r["n"])
            attempts += int(r["a"] or 0)
            at = _unix(r["last"])
            last = at if last is None or (at is not None and at > last) else last
        return Tally(states, results, attempts, last)

    # -- do not call ------------------------------------------------------------------------

    async def dnc_add(self, number: str, reason: str, at: float) -> bool:
        """Put ``number`` on the list; False if it already was."""
        return await self._store.execute(
            "INSERT INTO do_not_call (number, added_at, reason) VALUES (?, ?, ?) "
            "ON CONFLICT (number) DO NOTHING", [number, _ts(at, self._dialect), reason]) == 1

    async def dnc_remove(self, number: str) -> bool:
        return await self._store.execute("DELETE FROM do_not_call WHERE number = ?", [number]) == 1

    async def dnc_has(self, number: str) -> bool:
        return bool(await self._store.fetch("SELECT 1 FROM do_not_call WHERE number = ?",
                                        [number]))

    async def dnc_list(self) -> list[DncEntry]:
        rows = await self._store.fetch("SELECT number, added_at, reason FROM do_not_call "
                                   "ORDER BY number", [])
        return [DncEntry(r["number"], _unix(r["added_at"]) or 0.0, r["reason"]) for r in rows]


def _insert_contacts(rows: int) -> str:
    one = f"({', '.join('?' for _ in _CONTACT_COLUMNS)})"
    return (f"INSERT INTO campaign_contacts ({', '.join(_CONTACT_COLUMNS)}) "  # noqa: S608
            f"VALUES {', '.join(one for _ in range(rows))}")


def _ts(at: float | None, dialect: Dialect) -> Any:
    return sql._time_param(None if at is None else datetime.fromtimestamp(at, UTC), dialect)


def _unix(value: Any) -> float | None:
    at = sql._time_value(value)
    return None if at is None else at.timestamp()


def _contact_row(c: Contact, dialect: Dialect) -> tuple[Any, ...]:
    return (c.campaign_id, c.seq, c.number, " ".join(c.zones), sql.dumps(dict(c.parameters)),
            c.state.value, c.attempts, _ts(c.next_at, dialect), c.dial_id,
            c.last_status.value if c.last_status else None,
            c.answered_by.value if c.answered_by else None, sql.dumps(list(c.dial_ids)),
            sql.dumps(list(c.dial_times)),
            c.result.value if c.result else None, c.error, _ts(c.first_dial_at, dialect),
            _ts(c.last_dial_at, dialect), _ts(c.ended_at, dialect))


def _contact(r: sql.Row) -> Contact:
    return Contact(
        campaign_id=r["campaign_id"], seq=int(r["seq"]), number=r["number"],
        zones=tuple(r["zones"].split()), parameters=sql.json_value(r["parameters"]),
        state=ContactState(r["state"]), attempts=int(r["attempts"]),
        next_at=_unix(r["next_at"]), dial_id=r["dial_id"],
        last_status=DialStatus(r["last_status"]) if r["last_status"] else None,
        answered_by=AnsweredBy(r["answered_by"]) if r["answered_by"] else None,
        dial_ids=tuple(sql.json_value(r["dial_ids"])),
        dial_times=tuple(float(t) for t in sql.json_value(r["dial_times"])),
        result=Result(r["result"]) if r["result"] else None, error=r["error"],
        first_dial_at=_unix(r["first_dial_at"]), last_dial_at=_unix(r["last_dial_at"]),
        ended_at=_unix(r["ended_at"]))


def _campaign(r: sql.Row) -> Campaign:
    created = _unix(r["created_at"])
    return Campaign(r["id"], r["name"], r["source"], r["digest"],
                    CallSettings.from_json(sql.json_value(r["call"])), created or 0.0,
                    _unix(r["finished_at"]))
