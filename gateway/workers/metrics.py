"""``/metrics`` for the whole server from any worker: each worker's figures, summed.

prometheus-client's multiprocess mode cannot carry the gateway's metrics: they are a custom
collector (:class:`~gateway.metrics.GatewayMetrics` builds its families from per-call deltas
at scrape time) and a ``ProcessCollector``, neither of which it supports. So each worker writes
its own exposition to a file in a folder the supervisor owns (atomically: a temporary file
renamed over the last one) when a call starts or ends and at least every second, and a scrape
answered by any worker reads its own registry live and its siblings' latest files.

Samples with the same name and labels are summed: counters, histogram buckets, and
``voicegw_active_calls`` all add up across workers. Figures of one process that do not add
(event-loop lag, the ``process_*`` CPU, memory and file descriptors) get a ``worker`` label.

When a worker ends the supervisor renames its file to a ``gone-`` one: its counters stay in
the sums, so nothing the server counted goes backwards, while its gauges and per-process
figures are dropped. A worker that died rather than drained left its active calls lost:
they are counted in ``voicegw_worker_calls_lost_total`` (from its last file, so a call
started in the last moments before the death may be missed) and the death itself in
``voicegw_worker_restarts_total``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from gateway.metrics import PREFIX
from gateway.record import CallSummary

SNAPSHOT_EVERY_S: Final = 1.0
_PER_WORKER: Final = (PREFIX + "event_loop_lag_seconds", "process_")
_GAUGES_OF_THE_LIVING: Final = (PREFIX + "active_calls",)
LIVE_PREFIX: Final = "worker-"
GONE_PREFIX: Final = "gone-"
LOST: Final = "lost"
CLEAN: Final = "clean"


def live_name(slot: int, pid: int) -> str:
    return f"{LIVE_PREFIX}{slot}-{pid}.prom"


def retire(folder: Path, slot: int, pid: int, *, died: bool) -> None:
    """Keep an ended worker's counters in the sums (supervisor side)."""
    with contextlib.suppress(FileNotFoundError):  # died before its first snapshot
        os.replace(folder / live_name(slot, pid),
                   folder / f"{GONE_PREFIX}{slot}-{pid}-{LOST if died else CLEAN}.prom")


def _per_worker(name: str) -> bool:
    return name.startswith(_PER_WORKER)


@dataclass(frozen=True, slots=True)
class _Source:
    text: str
    worker: str | None  # None: a worker that has ended
    died: bool


class ServerMetrics:
    """The collector a worker's ``/metrics`` serves: itself plus every sibling's file."""

    def __init__(self, own: CollectorRegistry, folder: Path, slot: int) -> None:
        self.own, self.folder, self.slot = own, folder, slot
        self.name = live_name(slot, os.getpid())
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        self.dirty = asyncio.Event()

    # -- writing this worker's file -----------------------------------------------------

    def write(self) -> None:
        tmp = self.folder / (self.name + ".tmp")
        tmp.write_bytes(generate_latest(self.own))
        os.replace(tmp, self.folder / self.name)

    async def keep_written(self) -> None:
        """Rewrite the file when a call starts or ends, and at least every second."""
        while True:
            self.write()
            self.dirty.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SNAPSHOT_EVERY_S):
                    await self.dirty.wait()

    # CallObserver: a call's start and end change what siblings must see soon.
    def call_started(self, _summary: CallSummary) -> None:
        self.dirty.set()

    def call_updated(self, _summary: CallSummary) -> None:
        pass

    def call_ended(self, _summary: CallSummary) -> None:
        self.dirty.set()

    # -- reading everyone's -------------------------------------------------------------

    def _sources(self) -> Iterator[_Source]:
        yield _Source(generate_latest(self.own).decode(), str(self.slot), died=False)
        for path in sorted(self.folder.glob("*.prom")):
            if path.name == self.name:
                continue
            try:
                text = path.read_text()
            except FileNotFoundError:  # renamed between the listing and the read
                continue
            if path.name.startswith(LIVE_PREFIX):
                yield _Source(text, path.name.removeprefix(LIVE_PREFIX).split("-")[0], False)
            elif path.name.startswith(GONE_PREFIX):
                yield _Source(text, None, died=path.stem.endswith("-" + LOST))

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        sums: dict[tuple[str, str, tuple[tuple[str, str], ...]], float] = {}
        restarts = lost = 0
        for source in self._sources():
            restarts += source.died
            for family in text_string_to_metric_families(source.text):
                gone = source.worker is None
                if gone and (_per_worker(family.name) or family.name in _GAUGES_OF_THE_LIVING):
                    if source.died and family.name == PREFIX + "active_calls":
                        lost += int(sum(s.value for s in family.samples))
                    continue
                families.setdefault(family.name, Metric(family.name, family.documentation,
                                                        family.type))
                for sample in family.samples:
                    labels = dict(sample.labels)
                    if _per_worker(family.name) and source.worker is not None:
                        labels["worker"] = source.worker
                    key = (family.name, sample.name, tuple(sorted(labels.items())))
                    sums[key] = sums.get(key, 0.0) + sample.value
        for (family_name, sample_name, pairs), value in sums.items():
            families[family_name].add_sample(sample_name, dict(pairs), value)
        yield from families.values()
        yield CounterMetricFamily(PREFIX + "worker_restarts", "Worker processes that died "
                                  "and were replaced.", value=restarts)
        yield CounterMetricFamily(PREFIX + "worker_calls_lost", "Calls in progress on a "
                                  "worker when it died.", value=lost)
