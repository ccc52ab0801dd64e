"""A recorded prompt played to the caller (the apology when a call cannot be served), and the
last message of a call on the caller's stream, where the carrier takes one: the
carrier's in-band hang-up (:class:`gateway.carriers.core.HangsUpInBand`, the gateway ending
the call), or the end and its reason (:class:`gateway.carriers.core.SaysWhyItEnded`, however
the call ended). Sent while the socket is still open, before its close; a peer that does not
read gets no wait. Per-call layer: no I/O library of its own."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Final

from gateway.audio import Resampler
from gateway.bridge_config import CallerSocket, Prompt
from gateway.carriers import core
from gateway.ending import EndReason
from gateway.playout import CallerPlayout

GOODBYE_SEND_S: Final = 1.0
PROMPT_SLACK_S: Final = 5.0  # past a prompt's own length: the carrier confirming it played


async def play_prompt(playout: CallerPlayout, prompt: Prompt, name: str) -> None:
    """Play ``prompt`` and return once the caller has heard it (or it cannot be told)."""
    if not prompt.pcm:
        return
    playout.prompt(Resampler(prompt.rate, playout.fmt.rate).process(prompt.pcm))
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(len(prompt.pcm) / 2 / prompt.rate + PROMPT_SLACK_S):
            await playout.play_out(name)


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
