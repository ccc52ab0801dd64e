"""Restaurant front desk: checks availability and takes, changes and cancels bookings.

A working example to copy. Bookings live in SQLite (``VOICEGW_FRONT_DESK_DB``, default
``<tmp>/voicegw/front_desk.sqlite3``); the schema is created on first use. Availability is
real: the dining room has a fixed set of tables, a party gets the smallest table that seats
it, and a table is taken for ``SITTING_MIN`` minutes from the booked time. Checking and
booking happen in one write transaction, so two callers cannot both get the last table.

The tools are plain sync functions: the gateway runs them in a worker thread, so the
database never stalls a call's audio.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

from gateway.agent import Agent, CallContext, Field, ToolError, tool

RESTAURANT = "Trattoria Luna"
OPENS, LAST_SEATING = dt.time(17, 0), dt.time(21, 30)
CLOSED_WEEKDAYS = frozenset({0})  # Monday
SLOT_MIN = 15  # bookings start on the quarter hour
SITTING_MIN = 120
TABLES: dict[int, int] = {2: 6, 4: 5, 6: 2, 8: 1}  # seats per table -> how many tables
MAX_PARTY = max(TABLES)
_CODE_ALPHABET = "ACDEFHJKMNPRTUVWXY34679"  # no look-alikes (0/O, 1/I, 5/S, 8/B)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS bookings (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    phone       TEXT,
    day         TEXT NOT NULL,      -- ISO date
    start_min   INTEGER NOT NULL,   -- minutes after midnight
    party_size  INTEGER NOT NULL,
    table_seats INTEGER NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS bookings_day ON bookings(day);
"""

Date = Annotated[dt.date, Field(description="Date of the visit, YYYY-MM-DD.")]
Time = Annotated[str, Field(description="Time of arrival, 24-hour HH:MM, e.g. 19:30.")]
PartySize = Annotated[int, Field(ge=1, le=50, description="Number of guests.")]
BookingId = Annotated[str, Field(description="The booking code given when booking, "
                                             "e.g. FD-K7MX.")]


def db_path() -> Path:
    configured = os.environ.get("VOICEGW_FRONT_DESK_DB", "").strip()
    if configured:
        return Path(configured)
    return Path(tempfile.gettempdir()) / "voicegw" / "front_desk.sqlite3"


@contextmanager
def _db() -> Iterator[sqlite3.Connection]:
    path = db_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=5.0, isolation_level=None)
    conn.row_factory = sqlite3.Row
    try:
        conn.executescript(_SCHEMA)
        # IMMEDIATE takes the write lock before reading, so check-then-book is atomic.
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    finally:
        conn.close()


def _parse_time(text: str) -> int:
    try:
        t = dt.time.fromisoformat(text.strip())
    except ValueError:
        raise ToolError(f"{text!r} is not a time; use 24-hour HH:MM such as 19:30") from None
    if t.minute % SLOT_MIN or t.second:
        raise ToolError(f"we book on the quarter hour; {text} is not one")
    return t.hour * 60 + t.minute


def _check_open(day: dt.date, start: int) -> None:
    if day < dt.date.today():
        raise ToolError(f"{day.isoformat()} is in the past")
    if day.weekday() in CLOSED_WEEKDAYS:
        raise ToolError(f"we are closed on {day.strftime('%A')}s")
    first, last = OPENS.hour * 60 + OPENS.minute, LAST_SEATING.hour * 60 + LAST_SEATING.minute
    if not first <= start <= last:
        raise ToolError(f"we seat guests from {OPENS:%H:%M} to {LAST_SEATING:%H:%M}")


def _free_table(conn: sqlite3.Connection, day: dt.date, start: int, party: int,
                ignore: str | None = None) -> int | None:
    """Seats of the smallest free table for ``party`` at ``start``, or None if full."""
    if party > MAX_PARTY:
        raise ToolError(f"our largest table seats {MAX_PARTY}; for bigger groups please "
                        f"ask about private dining")
    rows = conn.execute(
        "SELECT table_seats, COUNT(*) AS n FROM bookings WHERE day = ? AND id != ? "
        "AND start_min < ? AND start_min + ? > ? GROUP BY table_seats",
        (day.isoformat(), ignore or "", start + SITTING_MIN, SITTING_MIN, start)).fetchall()
    taken = {row["table_seats"]: row["n"] for row in rows}
    for seats in sorted(TABLES):
        if seats >= party and taken.get(seats, 0) < TABLES[seats]:
            return seats
    return None


def _clock(start: int) -> str:
    return f"{start // 60:02d}:{start % 60:02d}"


def _alternatives(conn: sqlite3.Connection, day: dt.date, start: int, party: int) -> list[str]:
    first, last = OPENS.hour * 60 + OPENS.minute, LAST_SEATING.hour * 60 + LAST_SEATING.minute
    near = sorted(range(first, last + 1, SLOT_MIN), key=lambda m: abs(m - start))
    return [_clock(m) for m in near if m != start
            and _free_table(conn, day, m, party) is not None][:3]


@tool
def current_date() -> dict[str, str]:
    """Today's date and weekday at the restaurant. Use it to work out "tomorrow" or "Friday"."""
    today = dt.date.today()
    return {"date": today.isoformat(), "weekday": today.strftime("%A")}


@tool
def check_availability(date: Date, time: Time, party_size: PartySize) -> dict[str, Any]:
    """Check whether a table is free for a party at a date and time.

    Returns whether it is available and, if not, up to three nearby times that are.
    """
    start = _parse_time(time)
    _check_open(date, start)
    with _db() as conn:
        if _free_table(conn, date, start, party_size) is not None:
            return {"available": True}
        return {"available": False, "alternatives": _alternatives(conn, date, start, party_size)}


@tool
def book_table(name: str, date: Date, time: Time, party_size: PartySize, *,
               phone: str | None = None, ctx: CallContext) -> dict[str, Any]:
    """Book a table. Confirm the name, date, time and party size with the caller first.

    Args:
        name: Name the booking is under.
        phone: Contact number, if the caller gives one; defaults to the number calling.
    """
    start = _parse_time(time)
    _check_open(date, start)
    with _db() as conn:
        seats = _free_table(conn, date, start, party_size)
        if seats is None:
            nearby = ", ".join(_alternatives(conn, date, start, party_size)) or "none"
            raise ToolError(f"no table for {party_size} at {time} on {date.isoformat()}; "
                            f"free nearby: {nearby}")
        code = "FD-" + "".join(secrets.choice(_CODE_ALPHABET) for _ in range(4))
        conn.execute("INSERT INTO bookings VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     (code, name.strip(), phone or ctx.caller, date.isoformat(), start,
                      party_size, seats, dt.datetime.now(dt.UTC).isoformat()))
    return {"booking_id": code, "name": name, "date": date.isoformat(), "time": _clock(start),
            "party_size": party_size}


def _booking(conn: sqlite3.Connection, booking_id: str) -> sqlite3.Row:
    row: sqlite3.Row | None = conn.execute("SELECT * FROM bookings WHERE id = ?",
                                           (booking_id.strip().upper(),)).fetchone()
    if row is None:
        raise ToolError(f"there is no booking {booking_id!r}; ask the caller to repeat the code")
    return row


@tool
def change_booking(booking_id: BookingId, date: Date | None = None, time: Time | None = None,
                   party_size: PartySize | None = None) -> dict[str, Any]:
    """Move a booking to another date or time, or change the party size; pass only changes."""
    with _db() as conn:
        row = _booking(conn, booking_id)
        day = date or dt.date.fromisoformat(row["day"])
        start = _parse_time(time) if time else row["start_min"]
        party = party_size or row["party_size"]
        _check_open(day, start)
        seats = _free_table(conn, day, start, party, ignore=row["id"])
        if seats is None:
            raise ToolError(f"no table for {party} at {_clock(start)} on {day.isoformat()}; "
                            f"the booking is unchanged")
        conn.execute("UPDATE bookings SET day = ?, start_min = ?, party_size = ?, "
                     "table_seats = ? WHERE id = ?",
                     (day.isoformat(), start, party, seats, row["id"]))
    return {"booking_id": row["id"], "date": day.isoformat(), "time": _clock(start),
            "party_size": party}


@tool
def cancel_booking(booking_id: BookingId) -> dict[str, Any]:
    """Cancel a booking. Confirm with the caller before cancelling."""
    with _db() as conn:
        row = _booking(conn, booking_id)
        conn.execute("DELETE FROM bookings WHERE id = ?", (row["id"],))
    return {"cancelled": row["id"], "date": row["day"], "time": _clock(row["start_min"])}


agent = Agent(
    name="front_desk",
    instructions=f"""You answer the phone at {RESTAURANT}, an Italian restaurant.
You help callers check availability, book a table, change a booking or cancel one.
Keep answers short: this is a phone call. Ask for one detail at a time.
Call current_date before working out dates such as "tomorrow" or "next Friday".
Before booking, repeat the name, date, time and party size and wait for a yes.
After booking, read the booking code slowly, letter by letter.
We are open Tuesday to Sunday; the last seating is at {LAST_SEATING:%H:%M}.
When the caller has nothing else, say goodbye and then call end_call.""",
    greeting=f"Good evening, {RESTAURANT}. How can I help you?",
    tools=[current_date, check_availability, book_table, change_booking, cancel_booking],
    call_control=["end_call"],
)
