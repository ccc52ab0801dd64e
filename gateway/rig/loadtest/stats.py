"""Percentiles and summaries of per-call figures: pure functions, no I/O."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

QUANTILES = (50.0, 95.0, 99.0)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, linearly interpolated between ranks.

    The same definition as numpy's default (``method="linear"``), so figures here agree with
    whatever a reader recomputes from the JSON report. NaN for no values: "no data" must not
    read as "0 ms".
    """
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile wants 0 <= q <= 100, got {q}")
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True, slots=True)
class Summary:
    count: int
    mean: float
    p50: float
    p95: float
    p99: float
    max: float

    def as_dict(self) -> dict[str, Any]:
        # JSON has no NaN: an empty summary is nulls, not a figure.
        return {k: (None if isinstance(v, float) and math.isnan(v) else _round(v))
                for k, v in asdict(self).items()}

    def format(self, unit: str = "ms") -> str:
        if not self.count:
            return "-"
        return (f"p50 {self.p50:.0f} / p95 {self.p95:.0f} / p99 {self.p99:.0f} / "
                f"max {self.max:.0f} {unit}")


def summarize(values: Iterable[float]) -> Summary:
    data = [float(v) for v in values]
    if not data:
        return Summary(0, math.nan, math.nan, math.nan, math.nan, math.nan)
    p50, p95, p99 = (percentile(data, q) for q in QUANTILES)
    return Summary(len(data), sum(data) / len(data), p50, p95, p99, max(data))


def _round(v: Any) -> Any:
    return round(v, 2) if isinstance(v, float) else v
