"""Checks a campaign's calls as the far side saw them: the calls a fake ``/v1/calls`` placed.

Independent of the runner's own bookkeeping: a duplicate is a call to a number placed while
an earlier call to it was still going, or after an earlier one that ended in a way that is
never retried (answered, canceled), counted from the calls the far side placed. The rate
(over every 60 s) and the window (in each contact's zones) are checked at each attempt's
start as the runner wrote it down: under a clock running many times faster than real time,
the far side's own timestamps carry the network's jitter multiplied by that speed.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.campaign.model import RETRYABLE, Contact
from gateway.campaign.plan import MINUTE
from gateway.campaign.window import Window
from gateway.rig.calls_api import PlacedCall


@dataclass(frozen=True, slots=True)
class Audit:
    calls: int  # placed by the far side
    attempts: int  # written down by the runner (each posted once, or again with its key)
    known: int  # calls the runner holds an id for: equal to ``calls`` when none is orphaned
    numbers: int
    duplicates: int
    max_concurrent: int
    max_per_minute: int
    outside_window: int


def audit(placed: Sequence[PlacedCall], contacts: Sequence[Contact], window: Window) -> Audit:
    by_number: dict[str, list[PlacedCall]] = {}
    for call in sorted(placed, key=lambda c: c.real_at):
        by_number.setdefault(call.to, []).append(call)
    duplicates = 0
    for calls in by_number.values():
        for before, after in itertools.pairwise(calls):
            if after.real_at < before.real_end or before.outcome.status not in RETRYABLE:
                duplicates += 1
    edges = sorted([(c.real_at, 1) for c in placed] + [(c.real_end, -1) for c in placed])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    starts = sorted(t for c in contacts for t in c.dial_times)
    most = first = 0
    for last, at in enumerate(starts):
        while starts[first] <= at - MINUTE:
            first += 1
        most = max(most, last - first + 1)
    outside = sum(1 for c in contacts for t in c.dial_times if not window.inside(t, c.zones))
    known = sum(len(c.dial_ids) for c in contacts)
    return Audit(len(placed), len(starts), known, len(by_number), duplicates, peak, most,
                 outside)
