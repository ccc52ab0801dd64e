"""Who answered a call the gateway placed, and what the call does about it (per-call layer).

Until the screen decides, the callee's audio goes to the answering-machine detector
(:mod:`gateway.amd`) and not to the model, and the agent does not speak: it must not talk over
a person's "hello?" nor greet a voicemail greeting. The carrier's own detection, where it was
asked for, is heard too; whichever is sure first decides.

* **A person** (or nobody could tell): the model hears the line from then on and is asked to
  greet at once.
* **A machine**, by the request's ``machine_detection``: ``continue`` talks anyway; ``hangup``
  ends the call; ``leave_message`` asks the model for the message *now*, while the greeting
  plays, and holds its audio back until the beep ends (or the greeting is over without one),
  so the message starts the moment the machine records, then hangs up once it has played.

Decisions, their timing and the beep go on the call's record through the dial service.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Final, Protocol

from gateway import live
from gateway.amd import Beep, GreetingOver, MachineDetector, Verdict
from gateway.dialing.model import (
    DIAL_PARAMETER,
    AmdResult,
    AmdSource,
    AnsweredBy,
    DialRecord,
    MachineDetection,
)
from gateway.ending import EndKind
from gateway.errors import StoreError
from gateway.handover import HANDOVER_PARAMETER, SUMMARY_PARAMETER, WHISPER_TEXT, Transfers

GREETING_TEXT: Final = ("The person you called has just answered the phone. Greet them now "
                        "and say why you are calling.")
VOICEMAIL_TEXT: Final = ("The call reached an answering machine. Leave this voicemail message, "
                         "word for word, and say nothing else: {message}")
# A greeting that never ends in a beep or a silence: leave the message anyway.
MAX_BEEP_WAIT_MS: Final = 30_000
MESSAGE_START_WAIT_S: Final = 15.0  # the model starting the message it was asked for
WHISPER_WAIT_S: Final = 45.0  # a warm transfer's word to the person, said and heard
_RATE: Final = live.INPUT_RATE


class OutboundCalls(Transfers, Protocol):
    """What a call needs from the dial service (:class:`gateway.dialing.service.DialService`):
    its screen's and, for warm transfers, its handover's."""

    async def answered(self, dial_id: str, amd: AmdResult) -> None: ...
    def watch(self, dial_id: str, screen: Callable[[AnsweredBy, bool], None]
              ) -> Callable[[], None]: ...
    def handover_ready(self, handover: str) -> bool: ...


async def placed_call(parameters: Mapping[str, str], calls: OutboundCalls | None,
                      log: Any) -> tuple[dict[str, str], DialRecord | None]:
    """The call's parameters, and its dial when the gateway placed it. A placed call's stream
    names its dial and nothing more (a carrier may carry only a few parameters: Exotel three):
    the request's own parameters come from the dial's record, under those the stream
    carries. An unknown dial (forged, or forgotten by a store switched off) or a store that
    cannot be read leaves a call like any other: unscreened, its agent greeting at once."""
    params = dict(parameters)
    dial = params.get(DIAL_PARAMETER)
    if not dial or calls is None:
        return params, None
    try:
        record = await calls.get(dial)
    except StoreError as exc:
        log.error("dial_unavailable", dial=dial[:64], error=str(exc))
        return params, None
    if record is None:
        log.warning("dial_unknown", dial=dial[:64])
        return params, None
    return {**record.request.parameters, **params}, record


class Playout(Protocol):
    turn_began: asyncio.Event

    def hold(self) -> None: ...
    def release(self) -> None: ...
    async def wait_turn_done(self) -> None: ...
    async def play_out(self, name: str) -> None: ...


class Control(Protocol):
    async def end_call(self, reason: str, kind: EndKind = ...) -> None: ...


class Stage(enum.Enum):
    SCREENING = "screening"  # listening: person or machine?
    TALKING = "talking"  # the model hears the line and talks
    AWAITING_BEEP = "awaiting_beep"  # a machine: message being made, held for the beep
    LEAVING_MESSAGE = "leaving_message"  # the message plays; then the call ends
    ENDING = "ending"


_MOVES: Final[Mapping[Stage, frozenset[Stage]]] = {
    Stage.SCREENING: frozenset({Stage.TALKING, Stage.AWAITING_BEEP, Stage.ENDING}),
    Stage.AWAITING_BEEP: frozenset({Stage.LEAVING_MESSAGE, Stage.ENDING}),
    Stage.LEAVING_MESSAGE: frozenset({Stage.ENDING}),
    Stage.TALKING: frozenset(),
    Stage.ENDING: frozenset(),
}
_HOLDING: Final = frozenset({Stage.SCREENING, Stage.AWAITING_BEEP, Stage.LEAVING_MESSAGE})

Spawn = Callable[[Coroutine[Any, Any, None], str], object]
SendText = Callable[[str], Coroutine[Any, Any, None]]


class AnswerScreen:
    """One placed call's screen; ``heard`` takes the callee's audio at the Live API's rate
    (as the model would hear it) while :attr:`holding`."""

    def __init__(self, record: DialRecord, calls: OutboundCalls, *, playout: Playout,
                 control: Control, send_text: SendText, spawn: Spawn, log: Any,
                 greeting: str | None = None, detector: MachineDetector | None = None,
                 handover: tuple[str, str] | None = None) -> None:
        """``handover``: this call fetches a person for a warm transfer (its id and what to
        tell them); once they have heard it, the waiting call joins them."""
        self.record = record
        self.dial_id = record.id
        self.calls = calls
        self.playout = playout
        self.control = control
        self.send_text = send_text
        self.spawn = spawn
        self.log = log.bind(dial=record.id)
        self.handover = handover
        self.greeting = WHISPER_TEXT.format(summary=handover[1]) if handover \
            else greeting or GREETING_TEXT
        self.detector = detector or MachineDetector(_RATE)
        self.stage = Stage.SCREENING
        self.result: AmdResult | None = None
        self._heard_ms = 0.0
        self._beep_wait_from = 0.0
        # The carrier's detection, where asked for, reaches the screen while the call runs.
        self._forget = calls.watch(record.id, self.carrier_says)
        self._message_made = asyncio.Event()  # the model has begun the voicemail message

    @classmethod
    def for_call(cls, placed: DialRecord | None, parameters: Mapping[str, str],
                 calls: OutboundCalls | None, *, playout: Playout, control: Control,
                 send_text: SendText, spawn: Spawn, log: Any,
                 greeting: str | None) -> AnswerScreen | None:
        """The screen of a call the gateway placed (:func:`placed_call`); None for any other
        call."""
        if placed is None or calls is None:
            return None
        handover = parameters.get(HANDOVER_PARAMETER)
        return cls(placed, calls, playout=playout, control=control, send_text=send_text,
                   spawn=spawn, log=log, greeting=greeting,
                   handover=(handover, parameters.get(SUMMARY_PARAMETER, ""))
                   if handover else None)

    @property
    def holding(self) -> bool:
        """The model does not hear the line yet."""
        return self.stage in _HOLDING

    def _move(self, new: Stage) -> None:
        if new not in _MOVES[self.stage]:
            raise ValueError(f"illegal screen move {self.stage.value} -> {new.value}")
        self.log.info("answer_screen", stage=new.value, at_ms=round(self._heard_ms))
        self.stage = new

    def close(self) -> None:
        self._forget()

    # -- what was heard ------------------------------------------------------------------

    def heard(self, pcm: bytes) -> None:
        self._heard_ms += len(pcm) / 2 / _RATE * 1000
        for event in self.detector.feed(pcm) if self.holding else ():
            match event:
                case Verdict():
                    self._verdict(event.answered_by, AmdSource.GATEWAY, event.at_ms,
                                  event.why.value)
                case Beep():
                    self._beep(event.end_ms, f"beep {event.hz:.0f} Hz")
                case GreetingOver():
                    self._beep(None, "greeting over")
        if self.stage is Stage.AWAITING_BEEP and \
                self._heard_ms - self._beep_wait_from > MAX_BEEP_WAIT_MS:
            self._beep(None, "no beep heard")

    def carrier_says(self, by: AnsweredBy, beep: bool) -> None:
        """The carrier's own detection (its callback, through the dial service)."""
        self._verdict(by, AmdSource.CARRIER, self._heard_ms, f"carrier: {by.value}")
        if beep:
            self._beep(self._heard_ms, "carrier: beep")

    def _verdict(self, by: AnsweredBy, source: AmdSource, at_ms: float, why: str) -> None:
        if self.stage is not Stage.SCREENING:
            return  # decided already (ours or the carrier's, whichever was sure first)
        self.result = AmdResult(by, source, round(at_ms, 1), detail=why)
        self.log.info("answered_by", answered_by=by.value, source=source.value,
                      at_ms=round(at_ms), why=why)
        self._save()
        choice = self.record.request.machine_detection
        if by is not AnsweredBy.MACHINE or choice is MachineDetection.CONTINUE:
            self._move(Stage.TALKING)
            self.playout.turn_began.clear()
            self.spawn(self.send_text(live.text_message(self.greeting)), "greet")
            if self.handover is not None:
                self.spawn(self._whisper_heard(self.handover[0]), "handover-whisper")
        elif choice is MachineDetection.HANGUP:
            self._move(Stage.ENDING)
            self.spawn(self.control.end_call("an answering machine answered",
                                             EndKind.MACHINE_ANSWERED), "machine-hang-up")
        else:
            self._move(Stage.AWAITING_BEEP)
            self._beep_wait_from = self._heard_ms
            self.playout.hold()  # the message is made now and waits for the beep
            message = self.record.request.voicemail_message or ""
            self.playout.turn_began.clear()
            self.spawn(self.send_text(live.text_message(VOICEMAIL_TEXT.format(
                message=message))), "voicemail-request")
            # The message's turn may open and close while held (made faster than it plays):
            # noticed here, whenever the beep comes.
            self.spawn(self._notice_message(), "voicemail-made")

    def _beep(self, end_ms: float | None, why: str) -> None:
        if self.stage is not Stage.AWAITING_BEEP:
            if end_ms is not None and self.result is not None and self.result.beep_ms is None:
                self.result = dataclasses.replace(self.result, beep_ms=round(end_ms, 1))
                self._save()
            return
        self._move(Stage.LEAVING_MESSAGE)
        self.playout.release()
        assert self.result is not None
        self.result = dataclasses.replace(
            self.result, beep_ms=None if end_ms is None else round(end_ms, 1),
            message_ms=round(self._heard_ms, 1), detail=f"{self.result.detail}; {why}")
        self.log.info("voicemail_message_released", why=why, at_ms=round(self._heard_ms))
        self._save()
        self.spawn(self._leave_message(), "voicemail-message")

    async def _notice_message(self) -> None:
        await self.playout.turn_began.wait()
        self._message_made.set()

    async def _leave_message(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(MESSAGE_START_WAIT_S):
                await self._message_made.wait()
        self._move(Stage.ENDING)
        await self.control.end_call("voicemail message left", EndKind.VOICEMAIL_LEFT)

    async def _whisper_heard(self, handover: str) -> None:
        """The person has heard who is calling: the waiting call joins them."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(WHISPER_WAIT_S):
                await self.playout.turn_began.wait()
                await self.playout.wait_turn_done()
                await self.playout.play_out("handover-whisper")
        if not self.calls.handover_ready(handover):
            self.log.warning("handover_gone", handover=handover)  # the caller hung up

    def _save(self) -> None:
        if self.result is not None:
            self.spawn(self.calls.answered(self.dial_id, self.result), "amd-record")
