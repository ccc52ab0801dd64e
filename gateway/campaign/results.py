"""The results CSV (one row per contact, bad rows included) and starting or resuming a
campaign by name."""

from __future__ import annotations

import csv
import io
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from gateway.campaign.contacts import ContactList, digest_of, read_contacts
from gateway.campaign.model import CallSettings, Campaign, Contact
from gateway.errors import GatewayError
from gateway.store.campaigns import CampaignStore

COLUMNS: Final = ("row", "number", "result", "state", "attempts", "last_status", "answered_by",
                  "dial_ids", "first_dial_at", "last_dial_at", "ended_at", "error")


class CampaignMismatch(GatewayError):
    """A campaign of that name exists, made from another file or with other call settings."""


@dataclass(frozen=True, slots=True)
class Opened:
    campaign: Campaign
    resumed: bool
    imported: ContactList | None  # the contacts read now (None: resumed from the store)


async def open_campaign(store: CampaignStore, *, name: str, source: str, data: bytes,
                        call: CallSettings | None, now: float) -> Opened:
    """The campaign ``name``: resumed if the store has it, else created from ``data``.

    ``call`` None on resume keeps the settings it was created with; given, it must match
    them, because a resumed attempt must send the same body its key was first sent with."""
    found = await store.find(name)
    if found is not None:
        digest = digest_of(data) if data else found.digest
        if digest != found.digest:
            raise CampaignMismatch(f"campaign {name!r} was started from another file "
                                   f"({found.source}); give it another --name")
        if call is not None and call != found.call:
            raise CampaignMismatch(f"campaign {name!r} was started with other call settings "
                                   f"({_differences(found.call, call)}); they cannot change "
                                   "mid-campaign")
        return Opened(found, True, None)
    if call is None:
        raise CampaignMismatch(f"no campaign named {name!r} yet: --agent is required to "
                               "start one")
    campaign = Campaign(uuid.uuid4().hex[:12], name, source, "", call, now)
    contacts = read_contacts(data, campaign.id)
    campaign = Campaign(campaign.id, name, source, contacts.digest, call, now)
    await store.create(campaign, contacts.contacts)
    return Opened(campaign, False, contacts)


def _differences(old: CallSettings, new: CallSettings) -> str:
    a, b = old.as_json(), new.as_json()
    return ", ".join(f"{k} was {a[k]!r}" for k in a if a[k] != b[k])


def results_csv(contacts: Sequence[Contact]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for c in contacts:
        writer.writerow([
            c.seq, c.number, c.result.value if c.result else "", c.state.value, c.attempts,
            c.last_status.value if c.last_status else "",
            c.answered_by.value if c.answered_by else "", " ".join(c.dial_ids),
            _iso(c.first_dial_at), _iso(c.last_dial_at), _iso(c.ended_at), c.error or ""])
    return out.getvalue()


def write_results(path: Path, contacts: Sequence[Contact]) -> None:
    """Written whole, then renamed into place: a reader never sees half a file."""
    part = path.with_name(path.name + ".part")
    part.write_text(results_csv(contacts), encoding="utf-8")
    os.replace(part, path)


def _iso(at: float | None) -> str:
    return "" if at is None else datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")
