"""A campaign's progress on the terminal: a tqdm bar where stderr is a terminal and tqdm is
installed (the ``loadtest`` extra), a plain line every tenth of the way otherwise."""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any, TextIO

from gateway.campaign.model import Contact, Result


class Progress:
    def __init__(self, name: str, total: int, done: int, *, bar: bool,
                 stream: TextIO | None = None) -> None:
        self.name = name
        self.total = total
        self.done = done
        self.results: Counter[Result] = Counter()
        self._stream = stream or sys.stderr
        self._bar: Any = None
        self._step = max(total // 10, 1)
        if bar and self._stream.isatty():
            try:
                from tqdm import tqdm  # noqa: PLC0415  (an optional extra)
            except ImportError:
                pass
            else:
                self._bar = tqdm(total=total, initial=done, desc=name, unit="contact",
                                 file=self._stream, dynamic_ncols=True)

    def changed(self, contact: Contact) -> None:
        if not contact.state.final:
            return
        self.done += 1
        if contact.result is not None:
            self.results[contact.result] += 1
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix_str(self._summary(), refresh=False)
        elif self.done % self._step == 0 or self.done == self.total:
            print(f"campaign {self.name}: {self.done}/{self.total} contacts ended "
                  f"({self._summary()})", file=self._stream, flush=True)

    def _summary(self) -> str:
        return ", ".join(f"{r.value} {n}" for r, n in self.results.most_common())

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
