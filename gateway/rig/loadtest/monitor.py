"""CPU and memory of the processes under test, sampled once a second with psutil.

psutil is an optional dependency (the ``loadtest`` extra): imported only when a process is
to be watched. CPU% is per core, like ``top``: 100 means one core busy for the whole period,
so "the simulator used > 80%" means it was close to saturating the one core its event loop
can use, and the latencies measured through it would be its, not the gateway's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import ConfigError

from .stats import summarize

SATURATED_CPU = 80.0  # % of one core: above this a single-threaded process is the bottleneck


@dataclass(frozen=True, slots=True)
class Sample:
    t: float  # seconds since the run began
    active_calls: int
    cpu: dict[str, float]  # process name -> CPU% (of one core) since the previous sample
    rss_mb: dict[str, float]


class ProcessMonitor:
    """Samples named processes (``gateway``, ``simulator``, ``loadgen``...) on demand."""

    def __init__(self, pids: Mapping[str, int]) -> None:
        try:
            import psutil  # noqa: PLC0415 - optional extra, only when something is watched
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ConfigError("CPU/RSS sampling needs psutil: pip install "
                              "'voice-gateway[loadtest]'") from exc
        self._psutil = psutil
        self._procs: dict[str, Any] = {}
        for name, pid in pids.items():
            try:
                proc = psutil.Process(pid)
                proc.cpu_percent(None)  # the first call only starts the measuring period
            except psutil.Error as exc:
                raise ConfigError(f"cannot watch {name} (pid {pid}): {exc}") from exc
            self._procs[name] = proc
        self.pids = dict(pids)
        self.samples: list[Sample] = []
        self.lost: set[str] = set()  # processes that exited while watched

    def sample(self, t: float, active_calls: int) -> Sample:
        cpu: dict[str, float] = {}
        rss: dict[str, float] = {}
        for name, proc in self._procs.items():
            if name in self.lost:
                continue
            try:
                with proc.oneshot():
                    cpu[name] = proc.cpu_percent(None)
                    rss[name] = proc.memory_info().rss / 1e6
            except self._psutil.Error:
                self.lost.add(name)
        sample = Sample(t, active_calls, cpu, rss)
        self.samples.append(sample)
        return sample


@dataclass(slots=True)
class Usage:
    cpu_mean: float | None = None
    cpu_max: float | None = None
    rss_max_mb: float | None = None
    cpu_per_call: float | None = None  # mean CPU% / mean concurrent calls, while busy
    saturated: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        def r(v: float | None) -> float | None:
            return None if v is None else round(v, 2)

        return {"cpu_mean_pct": r(self.cpu_mean), "cpu_max_pct": r(self.cpu_max),
                "rss_max_mb": r(self.rss_max_mb), "cpu_pct_per_call": r(self.cpu_per_call),
                "saturated": self.saturated, **self.extra}


def usage(samples: list[Sample], name: str) -> Usage:
    """One process's figures; means over the samples taken while calls were up."""
    mine = [s for s in samples if name in s.cpu]
    if not mine:
        return Usage()
    busy = [s for s in mine if s.active_calls > 0] or mine
    cpu = summarize(s.cpu[name] for s in busy)
    mean_calls = sum(s.active_calls for s in busy) / len(busy)
    # "Saturated" on the busy-period p95, not one spike: a GC pause or startup is not a
    # bottleneck, sustained use near a full core is.
    return Usage(cpu_mean=cpu.mean, cpu_max=max(s.cpu[name] for s in mine),
                 rss_max_mb=max(s.rss_mb[name] for s in mine),
                 cpu_per_call=cpu.mean / mean_calls if mean_calls else None,
                 saturated=cpu.p95 > SATURATED_CPU)
