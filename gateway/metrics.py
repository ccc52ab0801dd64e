"""Prometheus metrics for every call the gateway carries, served at ``GET /metrics``.

:class:`GatewayMetrics` is a call observer. A call's figures live in its own
:class:`~gateway.record.CallStats` and grow for as long as it lasts, so each hook adds only what
changed since the call's previous snapshot (``call_started``, every ``call_updated``,
``call_ended``): however many updates a call has, each frame and sample is counted once, and
the last hook brings the call's totals up to its final numbers. The hooks touch plain ints
(no locks, no label lookups); the Prometheus families are only built when scraped.

Every call's figures are labelled by its carrier. Labels are fixed small sets (carriers, end
kinds, refusal reasons), never raw text, sids or phone numbers: a label value per call would
make a new time series per call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final

from aiohttp import web
from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from gateway.ending import EndKind
from gateway.record import CallStats, CallSummary
from gateway.stall import StallOutcome
from gateway.stats import Histogram, edge_index, edge_seconds
from gateway.tools import ToolStats

PREFIX: Final = "voicegw_"

# -- end reasons and refusals -------------------------------------------------------------

# Every label value `voicegw_calls_total{reason=...}` can take, exported from the start at 0 so
# that rate() and alerts see a series before the first such call.
END_REASONS: Final = tuple(kind.value for kind in EndKind)
# `voicegw_requests_refused_total{reason}`: webhooks and streams turned away before a call.
REFUSAL_REASONS: Final = ("signature", "token", "capacity", "draining", "overloaded")

# -- what is read from a call's snapshot ---------------------------------------------------

Read = Callable[[CallSummary], int]


def _tools(s: CallSummary) -> ToolStats:
    return s.tool_stats if isinstance(s.tool_stats, ToolStats) else _NO_TOOLS


_NO_TOOLS: Final = ToolStats()


def _stalls(outcome: StallOutcome) -> Read:
    return lambda s: s.stats.stalls.counts[outcome]


@dataclass(frozen=True, slots=True)
class _CounterSpec:
    name: str  # without `_total`, which the exposition adds
    doc: str
    label: str | None
    series: tuple[tuple[str, Read], ...]  # label value ("" without a label) -> reader


COUNTERS: Final = (
    _CounterSpec("caller_frames", "Caller audio frames received from the carrier.", None,
                 (("", lambda s: s.stats.frames_in),)),
    _CounterSpec("reply_frames", "Reply audio messages written to callers.", None,
                 (("", lambda s: s.stats.media_out),)),
    _CounterSpec("frames_dropped", "Audio frames dropped, by why.", "kind", (
        # Reply chunks queued but cut by a barge-in: expected, the caller talked over them.
        ("reply_barge_in", lambda s: s.stats.media_dropped_barge_in),
        # Reply chunks refused because the caller's socket was not reading.
        ("reply_queue_full", lambda s: s.stats.media_dropped_full),
        # Caller audio lost because no Live session was open for longer than the buffer.
        ("caller_no_session", lambda s: s.stats.live.frames_lost),
    )),
    _CounterSpec("live_reconnects", "Live sessions replaced mid-call: swap after a goAway, "
                 "drop when the connection was lost, restart when the model had gone quiet.",
                 "kind", (
                     ("swap", lambda s: s.stats.live.swaps),
                     ("drop", lambda s: s.stats.live.drops),
                     ("restart", lambda s: s.stats.live.restarts),
                 )),
    _CounterSpec("stalls", "Times the model went quiet when a reply was owed, by how each "
                 "ended: nudged (a text input), resumed (a new session), apologised (the call "
                 "ended), abandoned (the caller hung up first).", "outcome",
                 tuple((o.value, _stalls(o)) for o in StallOutcome)),
    # A timeout is also counted as an error in ToolStats; here each call has one outcome.
    _CounterSpec("tool_calls", "Finished tool calls by outcome.", "outcome", (
        ("ok", lambda s: _tools(s).run_time.count - _tools(s).errors - _tools(s).cancelled),
        ("error", lambda s: _tools(s).errors - _tools(s).timeouts),
        ("timeout", lambda s: _tools(s).timeouts),
        ("cancelled", lambda s: _tools(s).cancelled),
    )),
    _CounterSpec("protocol_errors", "Malformed or out-of-order messages from the carrier or Live.",
                 None, (("", lambda s: s.stats.protocol_errors),)),
    _CounterSpec("live_tokens", "Tokens the Live API reported using.", "kind", (
        ("prompt", lambda s: s.stats.tokens_prompt),
        ("response", lambda s: s.stats.tokens_response),
    )),
)
_READS: Final = tuple(read for spec in COUNTERS for _, read in spec.series)

# -- histograms ----------------------------------------------------------------------------

# Bucket bounds, seconds. Gateway-internal steps take micro- to milliseconds; the caller's
# wait for an answer is tenths of a second to seconds; tools run from ms (a lookup) to their
# timeout (seconds).
_INTERNAL: Final = (2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 0.01, 0.02, 0.05, 0.1,
                    0.5, 1.0, 5.0)
_RESPONSE: Final = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0)
_TOOL: Final = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True, slots=True)
class _HistogramSpec:
    name: str
    doc: str
    bounds: tuple[float, ...]
    read: Callable[[CallSummary], Histogram]
    # Each bound is moved to the nearest edge of the call's own log buckets (at most ~3 %
    # away), so every one of those buckets falls wholly inside one Prometheus bucket.
    cuts: tuple[int, ...] = field(init=False)
    les: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        edges = sorted({edge_index(b) for b in self.bounds})
        object.__setattr__(self, "cuts", tuple(i + 1 for i in edges))
        # Four significant digits: 0.0005012 for the edge at 0.000501187...; the rounding is
        # far inside the source buckets' 6 % width.
        object.__setattr__(self, "les", tuple(
            repr(float(f"{edge_seconds(i):.4g}")) for i in edges))


HISTOGRAMS: Final = (
    _HistogramSpec("response_latency_seconds", "End of the caller's speech (the gateway's "
                   "energy detector) to the first reply audio, per turn.", _RESPONSE,
                   lambda s: s.stats.response_latency),
    _HistogramSpec("barge_in_reaction_seconds", "Live `interrupted` received to `clear` "
                   "written to the caller.", _INTERNAL, lambda s: s.stats.barge_in),
    _HistogramSpec("tool_latency_seconds", "Tool run time, start to return or cancellation.",
                   _TOOL, lambda s: _tools(s).run_time),
    _HistogramSpec("inbound_forward_latency_seconds", "Caller frame received to sent to the "
                   "Live session (replayed frames included: seconds after a reconnect).",
                   _INTERNAL, lambda s: s.stats.forward_latency),
)


@dataclass(slots=True)
class _HistogramTotals:
    bins: list[int]  # per Prometheus bucket, not cumulative; the last is above every bound
    count: int = 0
    total: float = 0.0


@dataclass(slots=True)
class _Seen:
    """What of one call has already been counted."""

    stats: CallStats  # held so that id(stats), this record's key, cannot be reused meanwhile
    carrier: str
    counters: list[int]
    histograms: list[tuple[int, float, list[int]]]  # count, total, bins


@dataclass(slots=True)
class _Totals:
    """One carrier's figures, all its calls together."""

    counters: list[int] = field(default_factory=lambda: [0] * len(_READS))
    histograms: list[_HistogramTotals] = field(default_factory=lambda: [
        _HistogramTotals([0] * (len(h.cuts) + 1)) for h in HISTOGRAMS])


# -- the observer --------------------------------------------------------------------------


class GatewayMetrics:
    """Call observer and Prometheus collector; one per :class:`~gateway.server.Gateway`.

    ``active_calls`` reads the gateway's registry of calls at scrape time (a call cancelled
    at shutdown never reaches ``call_ended``); ``refusals`` is the gateway's counter of
    refused requests by (carrier, reason). ``carriers`` are exported at 0 from the start.
    """

    def __init__(self, *, active_calls: Callable[[], int] | None = None,
                 refusals: Mapping[tuple[str, str], int] | None = None,
                 loop_lag: Callable[[], float] | None = None,
                 carriers: Iterable[str] = ()) -> None:
        self._active_calls = active_calls
        self._loop_lag = loop_lag
        self._refusals = refusals if refusals is not None else {}
        self._seen: dict[int, _Seen] = {}
        self._carriers = list(dict.fromkeys(carriers))
        self._totals = {c: _Totals() for c in self._carriers}
        self._ended = {(c, r): 0 for c in self._carriers for r in END_REASONS}
        self._tokens_refused: dict[str, int] = {}
        # Per gateway rather than prometheus_client's global registry, so that several
        # gateways in one process (tests) never clash over names.
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        ProcessCollector(registry=self.registry)  # CPU, memory, open fds of this process
        # What GET /metrics serves: this registry, or under ``serve --workers`` the whole
        # server's (gateway.workers.metrics).
        self.exposed = self.registry

    async def handle(self, request: web.Request) -> web.Response:
        """``GET /metrics``: Prometheus text, or OpenMetrics when the scraper asks for it."""
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        return web.Response(body=encoder(self.exposed), headers={"Content-Type": content_type})

    # -- CallObserver: cheap, never blocking (they run on the call's own task) ---------

    def call_started(self, summary: CallSummary) -> None:
        self._advance(summary)

    def call_updated(self, summary: CallSummary) -> None:
        self._advance(summary)

    def call_ended(self, summary: CallSummary) -> None:
        self._advance(summary)
        del self._seen[id(summary.stats)]
        key = (summary.carrier, summary.end.kind.value)
        self._ended[key] = self._ended.get(key, 0) + 1
        if summary.end.kind is EndKind.REFUSED:
            count = self._tokens_refused.get(summary.carrier, 0)
            self._tokens_refused[summary.carrier] = count + 1

    def _advance(self, summary: CallSummary) -> None:
        """Add what changed since this call's last snapshot."""
        seen = self._seen.get(id(summary.stats))
        if seen is None:  # a call's first hook; may be call_ended (e.g. an unknown agent)
            seen = _Seen(summary.stats, summary.carrier, [0] * len(_READS),
                         [(0, 0.0, [0] * (len(h.cuts) + 1)) for h in HISTOGRAMS])
            self._seen[id(summary.stats)] = seen
        carrier = self._totals.get(seen.carrier)
        if carrier is None:
            carrier = self._totals[seen.carrier] = _Totals()
        totals, last = carrier.counters, seen.counters
        for i, read in enumerate(_READS):
            delta = read(summary) - last[i]
            if delta > 0:  # the figures only grow; never let a counter go back
                totals[i] += delta
                last[i] += delta
        for k, spec in enumerate(HISTOGRAMS):
            hist = spec.read(summary)
            count, total, bins = seen.histograms[k]
            if hist.count == count:
                continue  # most updates leave barge-in and tool histograms untouched
            now = hist.folded(spec.cuts)
            agg = carrier.histograms[k]
            for j, n in enumerate(now):
                agg.bins[j] += n - bins[j]
            agg.count += hist.count - count
            agg.total += hist.total - total
            seen.histograms[k] = (hist.count, hist.total, now)

    @property
    def tracked_calls(self) -> int:
        """Calls seen but not yet ended (the fallback for ``active_calls``)."""
        return len(self._seen)

    # -- Collector: built at scrape time -------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        active = self._active_calls() if self._active_calls else len(self._seen)
        yield GaugeMetricFamily(PREFIX + "active_calls", "Calls in progress, including "
                                "streams being set up.", value=active)
        if self._loop_lag is not None:
            yield GaugeMetricFamily(PREFIX + "event_loop_lag_seconds", "How late the event "
                                    "loop runs a timer: the median over about a second.",
                                    value=self._loop_lag())
        calls = CounterMetricFamily(PREFIX + "calls", "Calls ended, by carrier and why.",
                                    labels=["carrier", "reason"])
        for (carrier, reason), n in self._ended.items():
            calls.add_metric([carrier, reason], n)
        yield calls
        refused = {(c, r): 0 for c in self._carriers for r in REFUSAL_REASONS}
        for (carrier, reason), n in self._refusals.items():
            refused[(carrier, reason)] = refused.get((carrier, reason), 0) + n
        for carrier, n in self._tokens_refused.items():
            refused[(carrier, "token")] = refused.get((carrier, "token"), 0) + n
        family = CounterMetricFamily(PREFIX + "requests_refused", "Webhooks and streams "
                                     "refused: bad signature or stream token, at capacity, "
                                     "draining, event loop overloaded.",
                                     labels=["carrier", "reason"])
        for (carrier, reason), n in refused.items():
            family.add_metric([carrier, reason], n)
        yield family
        yield from self._counters()
        yield from self._histogram_families()

    def _counters(self) -> Iterator[Metric]:
        i = 0
        for spec in COUNTERS:
            labels = ["carrier", *([spec.label] if spec.label else [])]
            family = CounterMetricFamily(PREFIX + spec.name, spec.doc, labels=labels)
            for value, _ in spec.series:
                for carrier, totals in self._totals.items():
                    family.add_metric([carrier, *([value] if spec.label else [])],
                                      totals.counters[i])
                i += 1
            yield family

    def _histogram_families(self) -> Iterator[Metric]:
        for k, spec in enumerate(HISTOGRAMS):
            family = HistogramMetricFamily(PREFIX + spec.name, spec.doc, labels=["carrier"])
            for carrier, totals in self._totals.items():
                agg = totals.histograms[k]
                cumulative, buckets = 0, []
                for le, n in zip(spec.les, agg.bins, strict=False):  # the last bin is +Inf's
                    cumulative += n
                    buckets.append((le, float(cumulative)))
                buckets.append(("+Inf", float(agg.count)))
                family.add_metric([carrier], buckets=buckets, sum_value=agg.total)
            yield family
