"""The progress line: redrawn in place on a terminal, a plain line every few seconds otherwise.

No progress-bar dependency: one line of counts is all a load test needs, and a log file
(CI, ``nohup``) must not fill with carriage returns.
"""

from __future__ import annotations

import sys
from typing import TextIO

from .runner import LoadRun
from .stats import percentile

PLAIN_EVERY_S = 5.0


class ProgressLine:
    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out if out is not None else sys.stderr
        self.tty = self.out.isatty()
        self._last_plain = 0.0
        self._drawn = False

    def __call__(self, run: LoadRun, now: float) -> None:
        if not self.tty and now - self._last_plain < PLAIN_EVERY_S:
            return
        self._last_plain = now
        line = self.line(run, now)
        if self.tty:
            self.out.write("\r\x1b[K" + line)
            self._drawn = True
        else:
            self.out.write(line + "\n")
        self.out.flush()

    @staticmethod
    def line(run: LoadRun, now: float) -> str:
        done = len(run.records)
        errors = sum(1 for r in run.records if not r.ok)
        firsts = [r.response_ms[0] for r in run.records if r.response_ms]
        p95 = f"{percentile(firsts, 95):.0f} ms" if firsts else "-"
        total = run.config.count if run.config.count is not None else "?"
        cpu = ""
        if run.samples and run.samples[-1].cpu:
            cpu = "  cpu " + " ".join(f"{k} {v:.0f}%" for k, v in run.samples[-1].cpu.items())
        return (f"[{now:6.1f}s] active {run.active:3d}  done {done}/{total}  errors {errors}"
                f"  response p95 {p95}{cpu}")

    def finish(self) -> None:
        if self._drawn:
            self.out.write("\n")
            self.out.flush()
