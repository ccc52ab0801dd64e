"""The last message of a call on the caller's stream, where the carrier takes one: the
carrier's in-band hang-up (:class:`gateway.carriers.core.HangsUpInBand`, the gateway ending
the call), or the end and its reason (:class:`gateway.carriers.core.SaysWhyItEnded`, however
the call ended). Sent while the socket is still open, before its close; a peer that does not
read gets no wait. Per-call layer: no I/O library of its own."""

from __future__ import annotations

import asyncio
from typing import Any, Final

from gateway.bridge_config import CallerSocket
from gateway.carriers import core
from gateway.ending import EndReason

GOODBYE_SEND_S: Final = 1.0


async def say_goodbye(caller: CallerSocket, stream: core.CarrierStream, end: EndReason,
                      log: Any) -> None:
    if caller.close_code is not None:  # the peer has closed: nobody to tell
        return
    if isinstance(stream, core.SaysWhyItEnded):
        frame = stream.ended(end)
    elif isinstance(stream, core.HangsUpInBand):
        frame = stream.hang_up()
    else:
        return
    try:
        async with asyncio.timeout(GOODBYE_SEND_S):
            await caller.send(frame)
    except Exception as exc:  # the socket went away: the call is over anyway
        log.debug("goodbye_send_failed", error=repr(exc))
