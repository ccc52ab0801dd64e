"""The load: N call slots, started over the ramp, each placing calls back to back.

A slot starts its next call as soon as its previous one ends, so concurrency stays at N
during the steady state. ``duration_s`` stops starting calls after that long (calls in flight
finish: cutting them would count as failures of the gateway); ``count`` stops after that
many calls in total. Once a second the monitor (if any) samples CPU and memory, along with
how many calls were up, and the progress line is redrawn.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.tasks import cancel_and_wait

from .calls import CallPlan, CallRecord, run_call
from .monitor import ProcessMonitor, Sample
from .trace import PhoneTrace

SAMPLE_S = 1.0


@dataclass(frozen=True, slots=True)
class LoadConfig:
    url: str
    plan: CallPlan
    calls: int = 1  # concurrency
    ramp_s: float = 0.0
    duration_s: float | None = None
    count: int | None = None
    speed: float = 1.0
    timeout_s: float = 120.0  # wall clock, per call
    reply_wait_s: float = 10.0  # call time: no reply after this long is "no_reply"
    trace: PhoneTrace | None = field(default=None, compare=False)  # --trace

    def __post_init__(self) -> None:
        if self.calls < 1:
            raise ValueError("--calls must be at least 1")
        if self.duration_s is None and self.count is None:
            raise ValueError("give --duration or --count")


@dataclass(slots=True)
class LoadRun:
    config: LoadConfig
    records: list[CallRecord] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    wall_s: float = 0.0
    active: int = 0
    started: int = 0


Progress = Callable[[LoadRun, float], None]


async def run_load(config: LoadConfig, *, monitor: ProcessMonitor | None = None,
                   progress: Progress | None = None) -> LoadRun:
    run = LoadRun(config)
    t0 = time.monotonic()

    def may_start() -> bool:
        if config.count is not None and run.started >= config.count:
            return False
        return config.duration_s is None or time.monotonic() - t0 < config.duration_s

    async def slot(i: int) -> None:
        # Slots start evenly over the ramp: slot i at i/N of it.
        await asyncio.sleep(config.ramp_s * i / config.calls)
        while may_start():
            run.started += 1
            run.active += 1
            try:
                run.records.append(await run_call(
                    run.started - 1, config.url, config.plan, speed=config.speed,
                    timeout_s=config.timeout_s, reply_wait_s=config.reply_wait_s, t0=t0,
                    trace=config.trace))
            finally:
                run.active -= 1

    async def tick() -> None:
        n = 0
        while True:
            n += 1
            # Absolute due times: the samples stay one second apart however long each takes.
            await asyncio.sleep(max(0.0, t0 + n * SAMPLE_S - time.monotonic()))
            now = time.monotonic() - t0
            if monitor is not None:
                run.samples.append(monitor.sample(now, run.active))
            else:
                run.samples.append(Sample(now, run.active, {}, {}))
            if progress is not None:
                progress(run, now)

    ticker = asyncio.create_task(tick())
    try:
        await asyncio.gather(*(slot(i) for i in range(config.calls)))
    finally:
        await cancel_and_wait(ticker)
    run.wall_s = time.monotonic() - t0
    run.records.sort(key=lambda r: r.index)
    return run
