"""A warm transfer: the agent hands the caller to a person, with a word first (per-call layer).

1. The agent tells the caller it is fetching someone; once that has been heard, the caller is
   on hold: the model stops hearing the line and the caller hears :mod:`gateway.hold_music`.
2. The gateway places a second call to the person (through the dial service, on the same
   carrier), screened like any call it places: a voicemail counts as "not answered".
3. When the person answers, the agent tells them who is calling and why (the summary the model
   gave), and once that has been heard the carrier joins the two calls in a conference; the
   agent leaves both (their media streams end) and the call's record says ``transferred``.
4. If the person does not answer (busy, no answer, a machine, a failure), the music stops, the
   model hears the caller again and is told, and the agent carries on.

Offered only where the carrier can join two calls (:class:`JoinsCalls`) and place calls:
Twilio and Telnyx (inline ``<Dial><Conference>``), Vonage (an inline NCCO ``conversation``),
and SignalWire, Plivo and jambonz, whose APIs take only a URL to fetch the conference from (a
signed link to ``/CARRIER/join``, so only with ``VOICEGW_PUBLIC_URL``). Not on Exotel (its API
places calls but cannot move a live one), Asterisk, AudioSocket or the browser (no API to
place a call or join two).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import uuid
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Final, Protocol, runtime_checkable

from gateway import live
from gateway.agent import Agent
from gateway.audio import AudioFormat
from gateway.carriers.core import Carrier, Started
from gateway.dialing.model import (
    DIAL_PARAMETER,
    AnsweredBy,
    DialInputError,
    DialRecord,
    DialRequest,
    DialStatus,
    MachineDetection,
)
from gateway.ending import CallEnding, EndKind, EndReason
from gateway.errors import CallControlError
from gateway.hold_music import hold_music
from gateway.log import mask_number

#: Stream parameters of the person's call: which handover it serves, and what to tell them.
HANDOVER_PARAMETER: Final = "voicegw_handover"
SUMMARY_PARAMETER: Final = "voicegw_summary"
MAX_SUMMARY_CHARS: Final = 400
RING_S: Final = 25
ANNOUNCE_WAIT_S: Final = 20.0  # the agent's "please hold" being said and heard
WHISPER_TEXT: Final = ("You are calling a colleague to hand a caller over to them. Tell them, "
                       "in one or two sentences: {summary} Then say you are connecting the "
                       "caller now, and say nothing else.")
FAILED_TEXT: Final = ("The transfer did not go through: {why}. The caller is back with you "
                      "and did not hear any of it. Tell them, and carry on helping them.")


@runtime_checkable
class JoinsCalls(Protocol):
    """A carrier REST client that can put two calls in one conference."""

    @property
    def joins(self) -> bool: ...
    async def join(self, call: str, room: str) -> bool:
        """Move ``call`` into conference ``room``; False if the call was already over."""


class Transfers(Protocol):
    """What a handover needs from the dial service."""

    async def place(self, request: DialRequest, key: str | None = None
                    ) -> tuple[DialRecord, bool]: ...
    async def get(self, dial_id: str) -> DialRecord | None: ...
    def on_status(self, dial_id: str, listener: Callable[[DialRecord], None]
                  ) -> Callable[[], None]: ...
    def expect_ready(self, handover: str, listener: Callable[[], None]
                     ) -> Callable[[], None]: ...


class Playout(Protocol):
    fmt: AudioFormat

    def prompt(self, audio: bytes) -> None: ...
    async def wait_turn_done(self) -> None: ...
    async def play_out(self, name: str) -> None: ...
    def stop_prompts(self) -> None:
        """Drop queued audio at once and clear the carrier's (the hold music)."""


class LineGate:
    """Whether the caller's audio reaches the model (not while the caller is on hold)."""

    def __init__(self) -> None:
        self.muted = False


class Stage(enum.Enum):
    IDLE = "idle"
    ANNOUNCING = "announcing"  # the agent's "please hold" plays
    CALLING = "calling"  # the caller on hold; the person's phone rings, or they hear who
    JOINING = "joining"
    FAILED = "failed"  # the person did not answer; the agent has the caller again


_MOVES: Final[Mapping[Stage, frozenset[Stage]]] = {
    Stage.IDLE: frozenset({Stage.ANNOUNCING}),
    Stage.ANNOUNCING: frozenset({Stage.CALLING, Stage.FAILED}),
    Stage.CALLING: frozenset({Stage.JOINING, Stage.FAILED}),
    Stage.JOINING: frozenset({Stage.FAILED}),
    Stage.FAILED: frozenset({Stage.ANNOUNCING}),
}

Spawn = Callable[[Coroutine[Any, Any, None], str], object]
SendText = Callable[[str], Coroutine[Any, Any, None]]


class Handover:
    """One call's warm transfers (one at a time). ``call`` is the carrier's control id of the
    caller's call; ``from_`` the number the person's phone shows."""

    def __init__(self, call: str, carrier: Carrier, agent: str, from_: str | None, *,
                 calls: Transfers, api: JoinsCalls, playout: Playout, gate: LineGate,
                 send_text: SendText, spawn: Spawn, log: Any) -> None:
        self.call = call
        self.carrier = carrier
        self.agent = agent
        self.from_ = from_
        self.calls = calls
        self.api = api
        self.playout = playout
        self.gate = gate
        self.send_text = send_text
        self.spawn = spawn
        self.log = log
        self.stage = Stage.IDLE
        self.id = ""
        # Set just before the caller's call is moved: its stream's end is then the transfer.
        self.moving: EndReason | None = None

    @classmethod
    def for_call(cls, call: Started, carrier: Carrier, agent: Agent, calls: Transfers | None,
                 api: object, *,
                 playout: Playout, gate: LineGate, send_text: SendText, spawn: Spawn,
                 log: Any) -> Handover | None:
        """The call's handover where the agent offers warm transfers and the carrier can
        join two calls and place one; else None (the tool is not offered)."""
        if "warm_transfer" not in agent.call_control or calls is None \
                or not isinstance(api, JoinsCalls) or not api.joins \
                or HANDOVER_PARAMETER in call.parameters:  # the person's own call: never
            return None
        # The person's phone shows this line's own number: the one the caller rang, or for a
        # call the gateway placed, the one it called from.
        ours = call.caller if DIAL_PARAMETER in call.parameters else call.callee
        if not ours:
            return None
        return cls(call.control, carrier, agent.name, ours, calls=calls, api=api,
                   playout=playout, gate=gate, send_text=send_text, spawn=spawn, log=log)

    def _move(self, new: Stage) -> None:
        if new not in _MOVES[self.stage]:
            raise ValueError(f"illegal handover move {self.stage.value} -> {new.value}")
        self.log.info("handover", stage=new.value, handover=self.id)
        self.stage = new

    def start(self, to: str, summary: str) -> None:
        """The tool's request: returns at once (the model then tells the caller to hold)."""
        if self.stage not in (Stage.IDLE, Stage.FAILED):
            raise ValueError("a transfer is already under way")
        self.id = "ho_" + uuid.uuid4().hex[:16]
        self._move(Stage.ANNOUNCING)
        self.spawn(self._run(to, " ".join(summary.split())[:MAX_SUMMARY_CHARS]), "handover")

    async def _run(self, to: str, summary: str) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(ANNOUNCE_WAIT_S):
                await self.playout.wait_turn_done()
                await self.playout.play_out("handover-hold")
        self._move(Stage.CALLING)
        self.gate.muted = True
        self.spawn(self._music(), "hold-music")
        why = await self._fetch(to, summary)
        if why is None and self.moving is not None:
            raise CallEnding.of(self.moving)
        why = why or "the call could not be moved"
        self.log.warning("handover_failed", handover=self.id, why=why, to=mask_number(to))
        self._move(Stage.FAILED)
        self.playout.stop_prompts()  # the clear also settles the music's mark: it stops
        self.gate.muted = False
        await self.send_text(live.text_message(FAILED_TEXT.format(why=why)))

    async def _fetch(self, to: str, summary: str) -> str | None:
        """Call the person and join them; None when joined, else why not."""
        assert self.from_ is not None
        request = DialRequest(to=to, from_=self.from_, agent=self.agent, carrier=self.carrier,
                              parameters={HANDOVER_PARAMETER: self.id,
                                          SUMMARY_PARAMETER: summary},
                              machine_detection=MachineDetection.HANGUP, timeout_s=RING_S)
        outcome: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()

        def ready() -> None:
            if not outcome.done():
                outcome.set_result(None)

        def status(record: DialRecord) -> None:
            if record.status.final and not outcome.done():
                outcome.set_result(_why(record))

        forget_ready = self.calls.expect_ready(self.id, ready)
        try:
            try:
                record, _ = await self.calls.place(request)
            except DialInputError as exc:
                return f"the number could not be called ({exc})"
            forget_status = self.calls.on_status(record.id, status)
            try:
                if record.status.final:
                    return _why(record)
                why = await outcome
            finally:
                forget_status()
        finally:
            forget_ready()
        if why is not None:
            return why
        self._move(Stage.JOINING)
        # As it is now: once up, the carrier may know the call by another id (its control id).
        return await self._join(await self.calls.get(record.id) or record, to)

    async def _join(self, record: DialRecord, to: str) -> str | None:
        room = f"voicegw-{self.id}"
        # Once up, the call is known by its control id where that differs (Plivo's CallUUID).
        call = record.control_id or record.carrier_call_id
        try:
            if call is None or not await self.api.join(call, room):
                return "the person hung up before they could be connected"
            self.moving = EndReason(EndKind.TRANSFERRED, f"warm transfer to {mask_number(to)}")
            if not await self.api.join(self.call, room):
                raise CallEnding(EndKind.CALLER_HUNG_UP, "caller hung up during the transfer")
        except CallControlError as exc:
            self.log.error("handover_join_failed", handover=self.id, error=str(exc))
            return "the carrier would not connect the calls"
        return None

    async def _music(self) -> None:
        """Loop the chime while the caller holds. A phrase ends in a rest, so queuing the next
        once its mark is heard is seamless; the clear that ends the hold settles that mark."""
        phrase = hold_music(self.playout.fmt.rate)
        n = 0
        while self.stage in (Stage.CALLING, Stage.JOINING):
            self.playout.prompt(phrase)
            await self.playout.play_out(f"hold-{n}")
            n += 1


def _why(record: DialRecord) -> str:
    if record.amd is not None and record.amd.answered_by is AnsweredBy.MACHINE:
        return "voicemail answered"
    return {DialStatus.BUSY: "the line was busy", DialStatus.NO_ANSWER: "nobody answered",
            DialStatus.FAILED: "the call could not be placed",
            DialStatus.CANCELED: "the call was cancelled"}.get(record.status,
                                                                "the person hung up")
