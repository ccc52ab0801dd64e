"""Timing traces as JSON lines, buffered and written in batches off the hot path.

Three writers share this: the gateway's own trace (``voicegw serve --trace``,
:mod:`gateway.timing_trace`), the simulated Live server's and the load tester's phones'.
Every record carries ``t``, a monotonic clock value: on one machine CLOCK_MONOTONIC is
shared by all processes, so the files can be compared record by record.

Cost: recording an event formats one short line (about 1 µs) and appends it to a list; the
list is written out in batches by a task :meth:`TraceWriter.start` runs (every 100 ms), or
at once when it reaches ``max_buffered`` lines, so memory stays bounded and the file never
lags far behind. :meth:`TraceWriter.aclose` stops that task and writes what is left.

Each batch goes out in one ``write`` on a file opened for appending, so several processes
can share one trace (``voicegw simulate-live --workers``): Linux appends each write whole,
never interleaving two.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Final

from gateway.tasks import cancel_and_wait

FLUSH_EVERY_S: Final = 0.1
MAX_BUFFERED: Final = 20_000  # lines (~1.2 MB); a full buffer is written at once


class TraceWriter:
    """Buffered JSON-lines output. Lines are appended already formatted, without newline."""

    def __init__(self, path: str | Path, *, max_buffered: int = MAX_BUFFERED,
                 append: bool = False) -> None:
        """``append``: add to the file (shared with other writers) instead of starting it."""
        self.path = Path(path)
        self.max_buffered = max_buffered
        self.lines = 0  # written or waiting, over the whole run
        self._buf: list[str] = []
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (0 if append else os.O_TRUNC)
        self._fd: int | None = os.open(self.path, flags, 0o644)
        self._flusher: asyncio.Task[None] | None = None

    def add(self, line: str) -> None:
        if self._fd is None:
            return  # closed: late events (a connection torn down at exit) are dropped
        self._buf.append(line)
        self.lines += 1
        if len(self._buf) >= self.max_buffered:
            self.flush()

    def flush(self) -> None:
        if self._fd is None or not self._buf:
            return
        buf, self._buf = self._buf, []
        buf.append("")  # a newline after the last line too
        data = "\n".join(buf).encode()
        while data:  # a regular file takes it whole; only a full disk would leave a rest
            data = data[os.write(self._fd, data):]

    async def flush_every(self, interval_s: float = FLUSH_EVERY_S) -> None:
        """Write the buffer every ``interval_s`` until cancelled (run it as a task)."""
        while True:
            await asyncio.sleep(interval_s)
            self.flush()

    def start(self) -> None:
        """Write the buffer out every ``FLUSH_EVERY_S`` from a task, until :meth:`aclose`."""
        if self._flusher is None and self._fd is not None:
            self._flusher = asyncio.create_task(self.flush_every())

    async def aclose(self) -> None:
        """Stop the flushing task, then :meth:`close`."""
        flusher, self._flusher = self._flusher, None
        if flusher is not None:
            await cancel_and_wait(flusher)
        self.close()

    def close(self) -> None:
        if self._fd is None:
            return
        self.flush()
        os.close(self._fd)
        self._fd = None

    @property
    def closed(self) -> bool:
        return self._fd is None
