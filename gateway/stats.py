"""Fixed-memory latency histograms.

A call can last hours, so per-frame timings are folded into log-spaced buckets instead of being
kept in a list: memory stays constant and percentiles stay within one bucket (about 6 %).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

# 40 buckets per decade from 1 µs to 100 s: ratio 10**(1/40) ~ 1.059 between bucket edges.
_PER_DECADE: Final = 40
_MIN_S: Final = 1e-6
_DECADES: Final = 8
_N: Final = _PER_DECADE * _DECADES + 2  # plus underflow and overflow
_log10 = math.log10


def _upper_edge(idx: int) -> float:
    return float(_MIN_S * 10 ** (idx / _PER_DECADE))


def edge_index(seconds: float) -> int:
    """The bucket edge nearest ``seconds``: bucket ``i`` holds samples below edge ``i``, so
    buckets ``0..i`` are exactly the samples under :func:`edge_seconds` ``(i)``."""
    idx = round(math.log10(seconds / _MIN_S) * _PER_DECADE)
    return min(max(idx, 0), _N - 2)  # the overflow bucket has no upper edge


def edge_seconds(idx: int) -> float:
    return _upper_edge(idx)


@dataclass(frozen=True, slots=True)
class Summary:
    count: int
    mean_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    def format(self) -> str:
        if not self.count:
            return "no samples"
        return (f"n={self.count} mean={self.mean_ms:.2f} ms p50={self.p50_ms:.2f} "
                f"p95={self.p95_ms:.2f} p99={self.p99_ms:.2f} max={self.max_ms:.2f} ms")


class Histogram:
    """Seconds in, milliseconds out; percentiles report a bucket's upper edge (capped at max)."""

    __slots__ = ("_counts", "count", "max", "total")

    def __init__(self) -> None:
        self._counts = [0] * _N
        self.count = 0
        self.total = 0.0
        self.max = 0.0

    def observe(self, seconds: float) -> None:
        # Written out, with no helper or max() call: this runs for every caller frame and
        # every reply chunk, where those calls were 3 % of the gateway's CPU (py-spy).
        if seconds <= _MIN_S:
            idx = 0
        else:
            idx = int(_log10(seconds / _MIN_S) * _PER_DECADE) + 1
            if idx >= _N:
                idx = _N - 1
        self._counts[idx] += 1
        self.count += 1
        self.total += seconds
        if seconds > self.max:  # noqa: PLR1730 - a builtin call per frame costs more
            self.max = seconds

    def merge(self, other: Histogram) -> None:
        for i, c in enumerate(other._counts):
            self._counts[i] += c
        self.count += other.count
        self.total += other.total
        self.max = max(self.max, other.max)

    def folded(self, cuts: Sequence[int]) -> list[int]:
        """Sample counts between consecutive bucket indexes in ``cuts`` (ascending): buckets
        ``[0, cuts[0])``, ``[cuts[0], cuts[1])``, ..., and ``[cuts[-1], end)`` last. Lets a
        coarser histogram (Prometheus') be fed from this one without a per-bucket loop."""
        counts = self._counts
        out = []
        lo = 0
        for hi in cuts:
            out.append(sum(counts[lo:hi]))
            lo = hi
        out.append(sum(counts[lo:]))
        return out

    def percentile(self, q: float) -> float:
        """The ``q`` quantile (0..1) in seconds; 0.0 when empty."""
        if not self.count:
            return 0.0
        rank = max(1, math.ceil(q * self.count))
        seen = 0
        for idx, c in enumerate(self._counts):
            seen += c
            if seen >= rank:
                return min(_upper_edge(idx), self.max)
        return self.max

    def summary(self) -> Summary:
        ms = 1000.0
        return Summary(
            count=self.count,
            mean_ms=(self.total / self.count * ms) if self.count else 0.0,
            p50_ms=self.percentile(0.50) * ms,
            p95_ms=self.percentile(0.95) * ms,
            p99_ms=self.percentile(0.99) * ms,
            max_ms=self.max * ms,
        )
