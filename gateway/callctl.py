"""Ending and transferring a call for a tool, after the agent's last words have been heard.

A tool asks (``end_call``/``transfer_call`` on its :class:`~gateway.agent.CallContext`); the
request is recorded and the tool returns at once, so its answer reaches the model. The call's
own control task then waits for the model's turn to finish, queues a ``mark`` behind the last
reply audio, and waits for Twilio to echo it (the caller has heard the goodbye to the end).
Only then does it hang up: through Twilio's REST API when credentials are configured, else by
closing the stream, after which Twilio runs the TwiML after ``</Connect>`` (a ``<Hangup/>``).
A transfer needs the REST API: it redirects the call to ``<Dial>``.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any, Final, Protocol

from gateway.agent import ToolError
from gateway.errors import GatewayError
from gateway.log import mask_number
from gateway.twilio_rest import TwilioRest, TwilioRestError

TURN_WAIT_S: Final = 15.0  # the model finishing its goodbye
MARK_WAIT_S: Final = 30.0  # the goodbye playing out at the phone


class Playout(Protocol):
    """What the controller needs from the bridge."""

    async def wait_turn_done(self) -> None: ...
    async def play_out(self, name: str) -> None:
        """Queue a mark behind all queued audio and return when Twilio echoes it."""


@dataclass(frozen=True, slots=True)
class Request:
    action: str  # "end" | "transfer"
    detail: str  # the reason, or the destination


class CallEnding(GatewayError):
    """The call should end now; ``reason`` goes into the log and the call record."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class CallController:
    """Implements :class:`gateway.agent.CallControl` for one call."""

    def __init__(self, rest: TwilioRest | None, log: Any) -> None:
        self.rest = rest
        self.log = log
        self.call_sid: str | None = None
        self._request: Request | None = None
        self._requested = asyncio.Event()

    async def end_call(self, reason: str) -> None:
        self._ask(Request("end", reason or "agent ended the call"))

    async def transfer_call(self, to: str) -> None:
        if self.rest is None:
            raise ToolError("transfers are not configured on this line (no Twilio account)")
        self._ask(Request("transfer", to))

    def _ask(self, request: Request) -> None:
        if self._request is not None:
            raise ToolError(f"the call is already being ended ({self._request.action})")
        self._request = request
        self._requested.set()

    async def run(self, playout: Playout) -> None:
        """Waits for a request, carries it out, then raises :class:`CallEnding`."""
        await self._requested.wait()
        request = self._request
        assert request is not None
        self.log.info("call_control_requested", action=request.action,
                      detail=request.detail if request.action == "end"
                      else mask_number(request.detail))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(TURN_WAIT_S):
                await playout.wait_turn_done()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(MARK_WAIT_S):
                await playout.play_out("call-control")
        if request.action == "transfer":
            await self._transfer(request.detail)
        await self._hang_up()
        raise CallEnding(f"agent ended the call: {request.detail}")

    async def _transfer(self, to: str) -> None:
        found = await self.redirect(to, why="agent")
        if found is None:
            raise CallEnding("transfer failed; call ended")
        raise CallEnding(f"transferred to {mask_number(to)}" if found
                         else "call was already over when transferring")

    async def redirect(self, to: str, *, why: str) -> bool | None:
        """Redirect the call to ``<Dial>to</Dial>`` now, through the REST API.

        True when done, False if the call was already over, None if it could not be done
        (no REST client or call yet, or Twilio refused: logged).
        """
        if self.rest is None or self.call_sid is None:
            return None
        try:
            return await self.rest.transfer(self.call_sid, to)
        except TwilioRestError as exc:
            self.log.error("transfer_failed", why=why, error=str(exc), status=exc.status)
            return None

    async def _hang_up(self) -> None:
        if self.rest is None or self.call_sid is None:
            return  # closing the stream ends the call (TwiML: <Hangup/> after </Connect>)
        try:
            await self.rest.hang_up(self.call_sid)
        except TwilioRestError as exc:
            self.log.warning("hang_up_failed", error=str(exc), status=exc.status)


def first_reason(group: BaseExceptionGroup[Any]) -> str:
    for exc in group.exceptions:
        if isinstance(exc, CallEnding):
            return exc.reason
        if isinstance(exc, BaseExceptionGroup):
            return first_reason(exc)
    return "ended"
