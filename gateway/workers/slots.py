"""A worker slot's life, as a pure state machine, and each worker's share of the server.

The supervisor keeps one slot per worker. A slot's process is started (``STARTING``), says it
is listening (``RUNNING``), and ends one of two ways: unexpectedly, and the slot is restarted
with a new process (``RESTARTING`` then ``STARTING``), or after being told to drain
(``DRAINING`` then ``EXITED``). Any move not in :data:`MOVES` is a bug in the supervisor and
raises rather than leaving a slot in a state nobody planned for.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final


class SlotState(enum.Enum):
    STARTING = "starting"
    RUNNING = "running"
    DRAINING = "draining"
    EXITED = "exited"
    RESTARTING = "restarting"


class SlotEvent(enum.Enum):
    READY = "ready"  # the process is listening
    EXIT = "exit"  # the process ended (by itself, killed, or after a drain)
    DRAIN = "drain"  # the server is shutting down: refuse new calls, finish active ones
    SPAWN = "spawn"  # a new process was started for the slot


S, E = SlotState, SlotEvent
MOVES: Final[dict[tuple[SlotState, SlotEvent], SlotState]] = {
    (S.STARTING, E.READY): S.RUNNING,
    # Died before listening: a configuration or start-up fault that a restart would repeat.
    (S.STARTING, E.EXIT): S.EXITED,
    (S.STARTING, E.DRAIN): S.DRAINING,
    (S.RUNNING, E.EXIT): S.RESTARTING,
    (S.RUNNING, E.DRAIN): S.DRAINING,
    (S.DRAINING, E.EXIT): S.EXITED,
    (S.DRAINING, E.READY): S.DRAINING,  # told to drain while starting, then came up
    (S.DRAINING, E.DRAIN): S.DRAINING,  # a second signal: the worker cuts its grace short
    (S.RESTARTING, E.SPAWN): S.STARTING,
    (S.RESTARTING, E.DRAIN): S.EXITED,  # shutting down: nothing to restart
}


class IllegalMove(RuntimeError):
    pass


@dataclass(slots=True)
class Slot:
    index: int
    state: SlotState = SlotState.STARTING
    restarts: int = 0

    def move(self, event: SlotEvent) -> SlotState:
        new = MOVES.get((self.state, event))
        if new is None:
            raise IllegalMove(f"slot {self.index}: {event.value} while {self.state.value}")
        if new is SlotState.RESTARTING:
            self.restarts += 1
        self.state = new
        return new


def share(total: int, workers: int, index: int) -> int:
    """Worker ``index``'s part of ``total`` concurrent calls: the shares add up to ``total``,
    the remainder going one each to the first workers."""
    base, extra = divmod(total, workers)
    return base + (1 if index < extra else 0)
