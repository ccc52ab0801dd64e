"""Ending and transferring a call for a tool, after the agent's last words have been heard;
pressing keys for it.

A tool asks (``end_call``/``transfer_call`` on its :class:`~gateway.agent.CallContext`); the
request is recorded and the tool returns at once, so its answer reaches the model. The call's
own control task then waits for the model's turn to finish, queues a mark behind the last
reply audio, and waits until the caller has heard it (the carrier confirms the mark, or the
gateway's own pacing says it has played). Only then does it hang up: through the carrier's
REST API when one is configured, else by closing the stream, after which the carrier ends the
call (the answer document holds nothing after the stream). A transfer needs the REST API.

Keys (``send_dtmf``) are played in-band, as Q.23 tones (:mod:`gateway.dtmf`) queued in the
caller's audio behind what the agent has said so far, so they work on every carrier; the tool
returns once the carrier confirms they have played (or the gateway's own clock says so).

Carrier-neutral: the REST client is any :class:`CallControlApi`.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any, Final, Protocol

from gateway import dtmf
from gateway.agent import ToolError
from gateway.audio import AudioFormat
from gateway.ending import CallEnding, EndKind, EndReason
from gateway.errors import CallControlError
from gateway.handover import Handover
from gateway.log import mask_number

TURN_WAIT_S: Final = 15.0  # the model finishing its goodbye
MARK_WAIT_S: Final = 30.0  # the goodbye playing out at the phone


class CallControlApi(Protocol):
    """A carrier's REST API for its calls (``gateway.rest``). ``call`` is the id the carrier
    knows the call by for control (:attr:`gateway.carriers.core.Started.control`)."""

    @property
    def transfers(self) -> bool:
        """Whether this client can transfer as configured (some carriers need the gateway's
        public URL to fetch the transfer's instructions from)."""

    async def hang_up(self, call: str) -> bool:
        """End the call; False if it was already over."""
    async def transfer(self, call: str, to: str) -> bool:
        """Connect the caller to ``to`` (E.164 or ``sip:``); False if the call was over."""
    async def aclose(self) -> None: ...


class Playout(Protocol):
    """What the controller needs from the call's playout."""

    @property
    def fmt(self) -> AudioFormat:
        """The caller's audio format (tones are made at its rate)."""

    async def wait_turn_done(self) -> None: ...
    async def play_out(self, name: str) -> None:
        """Queue a mark behind all queued audio and return once the caller has heard it."""
    async def mark_heard(self, name: str) -> bool:
        """:meth:`play_out`, saying whether it was heard (True) or a clear dropped it."""
    def prompt(self, audio: bytes) -> None:
        """Queue PCM16 at the carrier's rate behind all queued audio."""


@dataclass(frozen=True, slots=True)
class Request:
    action: str  # "end" | "transfer"
    detail: str  # the reason, or the destination
    kind: EndKind = EndKind.AGENT_ENDED  # how an "end" goes on the record


class CallController:
    """Implements :class:`gateway.agent.CallControl` for one call.

    ``api`` is the carrier's REST client, when its credentials are configured; ``can_transfer``
    says whether this carrier can transfer at all (without it the tool is not offered, and a
    request is refused all the same).
    """

    def __init__(self, api: CallControlApi | None, call: str, log: Any, *,
                 can_transfer: bool, handover: Handover | None = None) -> None:
        self.api = api
        self.handover = handover  # warm transfers, where this call can be handed over
        self._moved: EndReason | None = None
        self.call = call
        self.log = log
        self.can_transfer = can_transfer and api is not None and api.transfers
        self._request: Request | None = None
        self._requested = asyncio.Event()
        self._playout: Playout | None = None  # from run(): the call's audio is ready
        self._presses = 0

    async def end_call(self, reason: str, kind: EndKind = EndKind.AGENT_ENDED) -> None:
        """End the call once what is being said has been heard; ``kind`` goes on the record
        (an outbound call's screen ends it as a machine's)."""
        self._ask(Request("end", reason or "agent ended the call", kind))

    async def transfer_call(self, to: str) -> None:
        if not self.can_transfer:
            raise ToolError("transfers are not available on this line")
        self._ask(Request("transfer", to))

    async def warm_transfer(self, to: str, summary: str) -> None:
        if self.handover is None:
            raise ToolError("warm transfers are not available on this line")
        if self._request is not None:
            raise ToolError(f"the call is already being ended ({self._request.action})")
        try:
            self.handover.start(to, summary)
        except ValueError as exc:
            raise ToolError(str(exc)) from None

    async def send_dtmf(self, keys: str) -> None:
        """Play ``keys`` to the caller, behind what the agent has said so far; return once
        they have been heard. :class:`ToolError` if they cannot be, or were cut off."""
        if self._request is not None:
            raise ToolError(f"the call is being ended ({self._request.action}); "
                            f"no keys were pressed")
        if self._playout is None:
            raise ToolError("the call's audio is not connected yet; try again in a moment")
        try:
            keys = dtmf.parse(keys)
            pcm = dtmf.tones(keys, self._playout.fmt.rate)
        except dtmf.DtmfError as exc:
            raise ToolError(str(exc)) from None
        self._presses += 1
        seconds = dtmf.duration_ms(keys) / 1000
        self.log.info("dtmf_sent", keys=dtmf.mask(keys), tones_ms=round(seconds * 1000))
        self._playout.prompt(pcm)
        try:
            async with asyncio.timeout(seconds + dtmf.KEYS_WAIT_S):
                played = await self._playout.mark_heard(f"dtmf-{self._presses}")
        except TimeoutError:
            raise ToolError("the keys were sent but the line did not confirm they played; "
                            "listen for whether the menu moved on") from None
        if not played:
            raise ToolError("the keys were cut off before they all played (the line was "
                            "interrupted); press them again if the menu still asks")

    def _ask(self, request: Request) -> None:
        if self._request is not None:
            raise ToolError(f"the call is already being ended ({self._request.action})")
        self._request = request
        self._requested.set()

    async def run(self, playout: Playout) -> None:
        """Waits for a request, carries it out, then raises :class:`CallEnding`."""
        self._playout = playout
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
        if request.kind is not EndKind.AGENT_ENDED:
            raise CallEnding(request.kind, request.detail)
        raise CallEnding(EndKind.AGENT_ENDED, f"agent ended the call: {request.detail}")

    @property
    def moved(self) -> EndReason | None:
        """Why the call is leaving the gateway, once the carrier has been asked to move it
        elsewhere (a transfer): the carrier then ends the stream, and that is no hang-up."""
        return self._moved or (self.handover.moving if self.handover else None)

    async def _transfer(self, to: str) -> None:
        self._moved = EndReason(EndKind.TRANSFERRED, f"transferred to {mask_number(to)}")
        found = await self.redirect(to, why="agent")
        if found is None:
            raise CallEnding(EndKind.AGENT_ENDED, "transfer failed; call ended")
        if found:
            raise CallEnding(EndKind.TRANSFERRED, f"transferred to {mask_number(to)}")
        raise CallEnding(EndKind.CALLER_HUNG_UP, "call was already over when transferring")

    async def redirect(self, to: str, *, why: str) -> bool | None:
        """Transfer the call to ``to`` now, through the carrier's REST API.

        True when done, False if the call was already over, None if it could not be done
        (no REST client, a carrier that cannot transfer, or a refusal: logged).
        """
        if self.api is None or not self.can_transfer:
            return None
        try:
            return await self.api.transfer(self.call, to)
        except CallControlError as exc:
            self.log.error("transfer_failed", why=why, error=str(exc), status=exc.status)
            return None

    async def _hang_up(self) -> None:
        if self.api is None:
            return  # closing the stream ends the call: nothing follows it in the answer
        try:
            await self.api.hang_up(self.call)
        except CallControlError as exc:
            self.log.warning("hang_up_failed", error=str(exc), status=exc.status)
