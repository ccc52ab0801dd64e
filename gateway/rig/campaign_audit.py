"""Checks a campaign's calls as the far side saw them: the calls a fake ``/v1/calls`` placed.

Independent of the runner's own bookkeeping: a duplicate is a call to a number placed while
an earlier call to it was still going, or after an earlier one that ended in a way that is
never retried (answered, canceled); the rate is counted over every 60 s of the campaign's
clock; the window is checked at each call's start in its contact's zones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gateway.campaign.model import RETRYABLE
from gateway.campaign.plan import MINUTE
from gateway.campaign.window import Window
from gateway.rig.calls_api import PlacedCall


@dataclass(frozen=True, slots=True)
class Audit:
    calls: int
    numbers: int
    duplicates: int
    max_concurrent: int
    max_per_minute: int
    outside_window: int


def audit(placed: Sequence[PlacedCall], window: Window,
          zones: Mapping[str, tuple[str, ...]]) -> Audit:
    by_number: dict[str, list[PlacedCall]] = {}
    for call in sorted(placed, key=lambda c: c.real_at):
        by_number.setdefault(call.to, []).append(call)
    duplicates = 0
    for calls in by_number.values():
        for before, after in zip(calls, calls[1:], strict=False):
            if after.real_at < before.real_end or before.outcome.status not in RETRYABLE:
                duplicates += 1
    edges = sorted([(c.real_at, 1) for c in placed] + [(c.real_end, -1) for c in placed])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    starts = sorted(c.at for c in placed)
    most = first = 0
    for last, at in enumerate(starts):
        while starts[first] <= at - MINUTE:
            first += 1
        most = max(most, last - first + 1)
    outside = sum(1 for c in placed if not window.inside(c.at, zones.get(c.to, ())))
    return Audit(len(placed), len(by_number), duplicates, peak, most, outside)
