"""The bounded queue of messages waiting to be written to the caller's socket.

Audio is the only thing that may be dropped (when the caller's socket stops reading and the
queue is full); control messages (marks, ``clear``) are never dropped, because losing a
``clear`` would let an interrupted reply keep playing. On barge-in, :meth:`OutboundQueue.drop_audio`
removes every queued reply frame and mark of the interrupted turn in one step, so nothing of it
can be written after the ``clear`` that follows.
"""

from __future__ import annotations

import asyncio
import enum
from collections import deque
from dataclasses import dataclass

from gateway.carriers.core import Outgoing


class Kind(enum.Enum):
    MEDIA = "media"
    MARK = "mark"
    CLEAR = "clear"


@dataclass(frozen=True, slots=True)
class Queued:
    kind: Kind
    wire: Outgoing | None  # the carrier's frame; None for a mark the gateway confirms itself
    since: float  # perf_counter() of what caused it (for a clear: when `interrupted` arrived)
    audio: bytes = b""  # the encoded audio inside a media message, for the call's recording
    name: str = ""  # a mark's name
    turn_end: bool = False  # the mark after a turn's last audio


class OutboundQueue:
    def __init__(self, max_media: int) -> None:
        self._items: deque[Queued] = deque()
        self._ready = asyncio.Event()
        self._media = 0
        self.max_media = max_media
        self.dropped_full = 0  # media refused because the caller was not reading
        self.dropped_barge_in = 0  # media discarded by a barge-in before it was written

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: Queued) -> bool:
        """Queue ``item``; False (and counted) if it is media and the queue is full."""
        if item.kind is Kind.MEDIA:
            if self._media >= self.max_media:
                self.dropped_full += 1
                return False
            self._media += 1
        self._items.append(item)
        self._ready.set()
        return True

    def drop_audio(self) -> int:
        """Remove all queued media and marks (the interrupted turn's); returns media dropped."""
        kept = deque(i for i in self._items if i.kind is Kind.CLEAR)
        dropped = self._media
        self._items = kept
        self._media = 0
        self.dropped_barge_in += dropped
        if not kept:
            self._ready.clear()
        return dropped

    async def get(self) -> Queued:
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        item = self._items.popleft()
        if item.kind is Kind.MEDIA:
            self._media -= 1
        return item
