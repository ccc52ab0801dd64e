"""Progress while the load runs: a tqdm bar on a terminal, a plain line every few seconds
otherwise.

The bar fills with calls done out of ``--count``, or with seconds out of ``--duration``, and
carries the figures worth watching live: calls up, errors, the response p95 so far, and CPU.
A log file (CI, ``nohup``) gets whole lines instead of a bar's carriage returns. Without
tqdm (the ``loadtest`` extra not installed), a terminal gets the line redrawn in place.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from .runner import LoadRun
from .stats import percentile

PLAIN_EVERY_S = 5.0


def figures(run: LoadRun) -> str:
    """What a load test shows while it runs, besides how far it has got."""
    errors = sum(1 for r in run.records if not r.ok)
    firsts = [r.response_ms[0] for r in run.records if r.response_ms]
    p95 = f"{percentile(firsts, 95):.0f} ms" if firsts else "-"
    cpu = ""
    if run.samples and run.samples[-1].cpu:
        cpu = "  cpu " + " ".join(f"{k} {v:.0f}%" for k, v in run.samples[-1].cpu.items())
    return f"active {run.active:3d}  errors {errors}  response p95 {p95}{cpu}"


class ProgressLine:
    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out if out is not None else sys.stderr
        self.tty = self.out.isatty()
        self._last_plain = 0.0
        self._drawn = False
        self._bar: Any = None  # tqdm.tqdm, made on the first update (the total is known then)
        self._last: tuple[LoadRun, float] | None = None

    def __call__(self, run: LoadRun, now: float) -> None:
        if not self.tty:
            if now - self._last_plain >= PLAIN_EVERY_S:
                self._last_plain = now
                self.out.write(self.line(run, now) + "\n")
                self.out.flush()
            return
        self._last = (run, now)
        bar = self._bar if self._bar is not None else self._make_bar(run)
        if bar is None:
            self.out.write("\r\x1b[K" + self.line(run, now))
            self.out.flush()
            self._drawn = True
            return
        cfg = run.config
        done = len(run.records) if cfg.count is not None else min(now, bar.total)
        bar.update(done - bar.n)
        bar.set_postfix_str(figures(run), refresh=True)

    def _make_bar(self, run: LoadRun) -> Any:
        try:
            from tqdm import tqdm  # noqa: PLC0415 - the loadtest extra, optional
        except ImportError:
            return None
        cfg = run.config
        by_count = cfg.count is not None
        self._bar = tqdm(total=cfg.count if by_count else cfg.duration_s, file=self.out,
                         unit=" calls" if by_count else " s", desc="calls done" if by_count
                         else "started for", dynamic_ncols=True, leave=True,
                         bar_format="{desc} {n:.0f}/{total:.0f}{unit} |{bar}| {elapsed}"
                         "{postfix}")
        return self._bar

    @staticmethod
    def line(run: LoadRun, now: float) -> str:
        done = len(run.records)
        total = run.config.count if run.config.count is not None else "?"
        return f"[{now:6.1f}s] done {done}/{total}  {figures(run)}"

    def finish(self) -> None:
        if self._bar is not None:
            if self._last is not None and self._last[0].config.count is not None:
                self(*self._last)  # the calls that ended since the last tick: 8/8, not 7/8
            self._bar.close()
        elif self._drawn:
            self.out.write("\n")
            self.out.flush()
