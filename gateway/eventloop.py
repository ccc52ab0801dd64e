"""Which event loop the long-running commands run on: uvloop where it builds, else asyncio's.

With a TLS write and a WebSocket read per 20 ms frame of every call, uvloop's compiled
transports cost measurably less than asyncio's Python ones (README, Performance). The
gateway, the simulated Live server and the load tester all run through :func:`run`, so the
simulator and the phones are never handicapped beside the gateway they measure.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from gateway.errors import ConfigError

T = TypeVar("T")
CHOICES = ("auto", "uvloop", "asyncio")


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when asked, or by default where it is installed; None for asyncio's own loop."""
    if choice == "asyncio":
        return None
    try:
        import uvloop  # noqa: PLC0415 - optional: absent on Windows, or --loop asyncio
    except ImportError:
        if choice == "uvloop":
            raise ConfigError("--loop uvloop: uvloop is not installed") from None
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], choice: str = "auto") -> T:
    """``asyncio.run(main)`` on the chosen loop."""
    with asyncio.Runner(loop_factory=loop_factory(choice)) as runner:
        return runner.run(main)
