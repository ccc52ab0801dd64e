"""A campaign's contacts from a CSV file. Pure: text in, rows out.

The header names the columns. The number is in ``number`` (or ``phone``, ``to``), in E.164;
``timezone`` (optional) is an IANA zone such as ``Europe/Paris``; every other column is a
custom parameter handed to the agent with the call (``name``, ``appointment``...). A row that
cannot be used (a bad number, an unknown zone, an over-long value) is kept as an invalid
contact with the reason, so the results CSV still has every row; a number that appears twice
is called once, at its first row.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from gateway.campaign.model import Contact, ContactState, Result
from gateway.campaign.window import WindowError, check_zone, zones_for
from gateway.dialing.model import DialInputError, e164, parse_parameters
from gateway.errors import GatewayError

NUMBER_COLUMNS: Final = ("number", "phone", "to")
ZONE_COLUMN: Final = "timezone"
MAX_ROWS: Final = 1_000_000


class ContactsError(GatewayError):
    """The file as a whole cannot be used (no number column, a bad header...)."""


@dataclass(frozen=True, slots=True)
class BadRow:
    seq: int
    number: str
    reason: str


@dataclass(frozen=True, slots=True)
class ContactList:
    contacts: tuple[Contact, ...]  # every row, the bad ones skipped with their reason
    digest: str
    bad: tuple[BadRow, ...] = field(default=())


def digest_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_contacts(data: bytes, campaign_id: str) -> ContactList:
    """The contacts in a CSV file's bytes (UTF-8, a BOM allowed)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ContactsError(f"the contacts file is not UTF-8 text ({exc.reason} at byte "
                            f"{exc.start})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        raise ContactsError("the contacts file is empty")
    names = [h.strip() for h in header]
    lowered = [n.lower() for n in names]
    number_col = next((lowered.index(c) for c in NUMBER_COLUMNS if c in lowered), None)
    if number_col is None:
        raise ContactsError("no number column: name one of " + ", ".join(NUMBER_COLUMNS))
    zone_col = lowered.index(ZONE_COLUMN) if ZONE_COLUMN in lowered else None
    extra = [(i, n) for i, n in enumerate(names) if i not in (number_col, zone_col) and n]
    _check_names(n for _, n in extra)
    contacts: list[Contact] = []
    bad: list[BadRow] = []
    seen: dict[str, int] = {}
    for seq, row in enumerate(reader, start=1):
        if seq > MAX_ROWS:
            raise ContactsError(f"more than {MAX_ROWS} contacts: split the file")
        if not any(cell.strip() for cell in row):
            continue  # a blank line
        cells = row + [""] * (len(names) - len(row))
        raw = cells[number_col].strip()
        contact = _contact(campaign_id, seq, raw, cells, zone_col=zone_col, extra=extra)
        if contact.state is ContactState.SKIPPED:
            bad.append(BadRow(seq, raw, contact.error or ""))
        elif contact.number in seen:
            contact = Contact(campaign_id, seq, contact.number, contact.zones,
                              contact.parameters, ContactState.SKIPPED, result=Result.DUPLICATE,
                              error=f"same number as row {seen[contact.number]}")
        else:
            seen[contact.number] = seq
        contacts.append(contact)
    return ContactList(tuple(contacts), digest_of(data), tuple(bad))


def _contact(campaign_id: str, seq: int, raw: str, cells: list[str], *,
             zone_col: int | None, extra: list[tuple[int, str]]) -> Contact:
    def invalid(reason: str) -> Contact:
        return Contact(campaign_id, seq, raw[:64], (), {}, ContactState.SKIPPED,
                       result=Result.INVALID, error=reason)

    try:
        number = e164(raw, "number")
        parameters = parse_parameters({n: cells[i].strip() for i, n in extra
                                       if i < len(cells) and cells[i].strip()})
    except DialInputError as exc:
        return invalid(str(exc))
    zone = cells[zone_col].strip() if zone_col is not None else ""
    if zone:
        try:
            zones: tuple[str, ...] = (check_zone(zone),)
        except WindowError as exc:
            return invalid(str(exc))
    else:
        zones = zones_for(number)
        if not zones:
            return invalid("no time zone is known for this number: give a timezone column")
    return Contact(campaign_id, seq, number, zones, parameters)


def _check_names(names: Iterable[str]) -> None:
    try:
        parse_parameters(dict.fromkeys(names, ""))
    except DialInputError as exc:
        raise ContactsError(f"column {exc}: columns other than the number and timezone "
                            "are passed to the agent as parameters") from None
