"""Stopping a helper task: cancel it, then wait until it has really finished."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` and wait for it to end; the CancelledError it ends with is not raised.

    Waiting matters: a task merely cancelled may still be running its ``finally`` blocks
    (flushing a file, closing a socket) when the caller goes on to close what it uses.
    """
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
