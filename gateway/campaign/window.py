"""The calling window, in each contact's own time zone. Pure: no I/O.

``09:00-20:00`` means a call may *start* from 09:00 up to (not including) 20:00 local time; a
window that ends before it starts (``21:00-02:00``) runs past midnight, and ``00:00-24:00`` is
the whole day. Local time is read with :mod:`zoneinfo`, so daylight saving moves the window
with the clocks. A number whose country spans several zones (the United States, Russia,
Brazil...) without a ``timezone`` column is called only at moments inside the window in *all*
of them: the contact's own zone is unknown, so every zone it might be in must be awake.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as phone_zones

_DAY: Final = 24 * 3600
_SPEC: Final = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
_UNKNOWN_ZONE: Final = "Etc/Unknown"
# How far ahead to look for a shared moment before saying there is none.
_HORIZON: Final = timedelta(days=3)


class WindowError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Window:
    start_s: int  # seconds after local midnight
    end_s: int  # may be <= start_s: the window runs past midnight

    @classmethod
    def parse(cls, text: str) -> Window:
        match = _SPEC.match(text)
        if not match:
            raise WindowError(f"window {text[:40]!r}: expected HH:MM-HH:MM, e.g. 09:00-20:00")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2 != 0):
            raise WindowError(f"window {text[:40]!r}: not a time of day")
        start, end = h1 * 3600 + m1 * 60, h2 * 3600 + m2 * 60
        if start == end:
            raise WindowError(f"window {text[:40]!r} is empty (use 00:00-24:00 for all day)")
        return cls(start, end)

    @property
    def all_day(self) -> bool:
        return self.start_s == 0 and self.end_s == _DAY

    def __str__(self) -> str:
        return f"{_hhmm(self.start_s)}-{_hhmm(self.end_s)}"

    def inside(self, at: float, zones: tuple[str, ...]) -> bool:
        """Whether Unix time ``at`` is inside the window in every one of ``zones``."""
        return all(self._inside_one(at, zone) for zone in zones)

    def _inside_one(self, at: float, zone: str) -> bool:
        if self.all_day:
            return True
        local = datetime.fromtimestamp(at, _zone(zone))
        s = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
        if self.start_s < self.end_s:
            return self.start_s <= s < self.end_s
        return s >= self.start_s or s < self.end_s

    def next_open(self, at: float, zones: tuple[str, ...]) -> float | None:
        """The first moment from ``at`` on inside the window in all ``zones`` (``at`` itself
        when it is inside), or None when they share no moment in the next days."""
        t = at
        limit = at + _HORIZON.total_seconds()
        while t <= limit:
            if self.inside(t, zones):
                return t
            t = max(self._open_one(t, zone) for zone in zones
                    if not self._inside_one(t, zone))
        return None

    def _open_one(self, at: float, zone: str) -> float:
        """When the window next opens in ``zone`` after ``at`` (``at`` outside it there)."""
        tz = _zone(zone)
        local = datetime.fromtimestamp(at, tz)
        day = local.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
        for offset in range(3):
            opening = (day + timedelta(days=offset, seconds=self.start_s)).replace(tzinfo=tz)
            t = opening.astimezone(UTC).timestamp()
            if t > at:
                return t
        return at + _DAY  # unreachable: an opening falls within any three days


def _hhmm(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def check_zone(name: str) -> str:
    """``name`` if it is an IANA time zone; :class:`WindowError` otherwise."""
    try:
        _zone(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise WindowError(f"unknown time zone {name[:40]!r} (expected e.g. "
                          "America/New_York)") from None
    return name.strip()


def zones_for(number: str) -> tuple[str, ...]:
    """The time zones a number's country (or area) spans; empty when none is known."""
    parsed = phonenumbers.parse(number, None)
    zones = tuple(sorted(z for z in phone_zones.time_zones_for_number(parsed)
                         if z != _UNKNOWN_ZONE))
    out = []
    for zone in zones:
        try:
            _zone(zone)
        except (ZoneInfoNotFoundError, ValueError):
            continue
        out.append(zone)
    return tuple(out)
