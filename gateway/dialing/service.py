"""Placing calls and following them: the one place that knows every outbound call.

``POST /v1/calls``, ``voicegw dial`` (through the API) and campaigns all come here. A call is
stored as ``queued`` *before* the carrier is asked, under its ``Idempotency-Key`` when given,
so a retried request (a client's timeout, a campaign resumed after a crash) finds the call it
already placed instead of placing another. The carrier's status callbacks then move it through
:class:`~gateway.dialing.model.DialStatus` by the table in :mod:`gateway.dialing.model`; a
callback that arrives late or twice is ignored and counted. Once the call's media stream
starts, the call's own screen (:mod:`gateway.answering`) reports what answered.

Carrier-neutral: each carrier is a :class:`~gateway.dialing.carrier.Dialer`; no aiohttp here.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final, Protocol
from urllib.parse import quote

import structlog

from gateway.carriers.core import Carrier
from gateway.dialing.carrier import Dialer
from gateway.dialing.model import (
    DIAL_PARAMETER,
    AmdResult,
    AnsweredBy,
    CallProgress,
    DialInputError,
    DialRecord,
    DialRequest,
    DialStatus,
    MachineDetection,
    PlaceCall,
    StatusChange,
    can_move,
)
from gateway.errors import CallControlError, StoreError
from gateway.log import mask_number

MAX_KEY_CHARS: Final = 200
MAX_HISTORY: Final = 32
# A call still queued or ringing this long past its ring timeout has lost its carrier's final
# callback (a carrier outage, a callback refused): it is failed, so nothing waits on it forever
# (a campaign's slot, a warm transfer's caller on hold).
SETTLE_GRACE_S: Final = 120.0
SWEEP_EVERY_S: Final = 30.0  # status changes kept per call (a misbehaving carrier cannot grow it)


class DialBook(Protocol):
    """Where dials are kept: the call-record database, or memory when records are off."""

    async def insert(self, record: DialRecord) -> DialRecord:
        """Store a new dial; if its key is taken, the dial holding it."""
    async def save(self, record: DialRecord) -> None:
        """Its status, history, carrier id and error."""
    async def save_amd(self, dial_id: str, amd: AmdResult, now: float) -> None: ...
    async def get(self, dial_id: str) -> DialRecord | None: ...
    async def by_key(self, key: str) -> DialRecord | None: ...
    async def by_carrier_call(self, carrier: Carrier, call: str) -> DialRecord | None: ...
    async def unsettled(self, before: float, limit: int) -> list[DialRecord]:
        """Calls still queued or ringing, unchanged since before ``before``, oldest first."""


# Whether a number may not be called (the do-not-call list); None: no list.
Blocked = Callable[[str], Awaitable[bool]]
# Told what the carrier's detection said about a call whose stream is up: (by, beep).
CarrierVerdict = Callable[[AnsweredBy, bool], None]


@dataclass(slots=True)
class DialCounts:
    placed: int = 0
    refused: int = 0  # the carrier would not place it
    replayed: int = 0  # an Idempotency-Key answered with the call it already placed
    stale_callbacks: int = 0  # a status that cannot follow the current one


class DialService:
    """``dialers``: the carriers that can place calls; ``public_url``: where carriers reach the
    gateway (its answer and status webhooks)."""

    def __init__(self, book: DialBook, dialers: Mapping[Carrier, Dialer], public_url: str, *,
                 blocked: Blocked | None = None, default_from: Mapping[Carrier, str] | None = None,
                 fingerprint: Callable[[DialRequest], str], log: Any = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.book = book
        self.dialers = dict(dialers)
        self.public_url = public_url.rstrip("/")
        self.blocked = blocked
        self.default_from = dict(default_from or {})
        self._fingerprint = fingerprint
        self.log = log if log is not None else structlog.get_logger("gateway.dialing")
        self.clock = clock
        self.counts = DialCounts()
        self._screens: dict[str, CarrierVerdict] = {}  # dial id -> its call's screen
        # Calls waiting on another: a warm transfer follows the person's call's status, and
        # waits for that call to say the person has heard who is calling.
        self._status: dict[str, Callable[[DialRecord], None]] = {}
        self._ready: dict[str, Callable[[], None]] = {}
        # Every read-change-write of a dial's status, one at a time: a status callback and the
        # carrier's REST answer arrive together, and each writes the status columns, so
        # without it one would undo the other. (The screen's verdict has columns of its own.)
        self._writing = asyncio.Lock()

    @property
    def carriers(self) -> frozenset[Carrier]:
        return frozenset(self.dialers)

    @property
    def default_carrier(self) -> Carrier | None:
        return next(iter(self.dialers)) if len(self.dialers) == 1 else None

    # -- placing -------------------------------------------------------------------------

    async def place(self, request: DialRequest, key: str | None = None
                    ) -> tuple[DialRecord, bool]:
        """Place ``request``; the call's record and whether it was already placed under
        ``key`` (then nothing is placed again)."""
        if key is not None:
            key = check_key(key)
            found = await self._replay(request, key)
            if found is not None:
                return found, True
        if self.blocked is not None and await self.blocked(request.to):
            raise DialInputError("to", "the number is on the do-not-call list", 403)
        now = self.clock()
        record = DialRecord(id="dl_" + uuid.uuid4().hex, request=request,
                            status=DialStatus.QUEUED, created_at=now, updated_at=now, key=key,
                            history=(StatusChange(DialStatus.QUEUED, now),))
        stored = await self.book.insert(record)
        if stored.id != record.id:  # a request with the same key got there first
            return await self._replayed(request, stored), True
        return await self._dial(stored), False

    async def _replay(self, request: DialRequest, key: str) -> DialRecord | None:
        found = await self.book.by_key(key)
        return None if found is None else await self._replayed(request, found)

    async def _replayed(self, request: DialRequest, stored: DialRecord) -> DialRecord:
        if self._fingerprint(stored.request) != self._fingerprint(request):
            raise DialInputError("Idempotency-Key", "already used for a different call")
        self.counts.replayed += 1
        return stored

    async def _dial(self, record: DialRecord) -> DialRecord:
        request = record.request
        dialer = self.dialers[request.carrier]
        carrier = request.carrier.value
        query = f"?{DIAL_PARAMETER}={quote(record.id)}"
        call = PlaceCall(
            dial_id=record.id, to=request.to, from_=request.from_,
            answer_url=f"{self.public_url}/{carrier}/answer/{quote(request.agent)}{query}",
            status_url=f"{self.public_url}/{carrier}/status{query}",
            timeout_s=request.timeout_s,
            carrier_amd=request.machine_detection is not MachineDetection.CONTINUE)
        log = self.log.bind(dial=record.id, carrier=carrier, agent=request.agent,
                            to=mask_number(request.to))
        try:
            sid = await dialer.place(call)
        except CallControlError as exc:
            self.counts.refused += 1
            log.warning("dial_refused", error=str(exc), status=exc.status)
            return await self._move(record, DialStatus.FAILED, str(exc)[:300], error=str(exc))
        self.counts.placed += 1
        log.info("dial_placed", carrier_call=sid)
        async with self._writing:  # its callbacks may have moved it while the API answered
            record = await self.book.get(record.id) or record
            record = replace(record, carrier_call_id=record.carrier_call_id or sid,
                             updated_at=self.clock())
            await self.book.save(record)
        return record

    # -- following -----------------------------------------------------------------------

    async def get(self, dial_id: str) -> DialRecord | None:
        return await self.book.get(dial_id)

    async def by_carrier_call(self, carrier: Carrier, call_id: str) -> DialRecord | None:
        """The dial the carrier knows as ``call_id``: for a carrier whose answer request
        cannot carry the dial's id (its own flow fetches the gateway's answer URL)."""
        return await self.book.by_carrier_call(carrier, call_id)

    async def answering(self, dial_id: str) -> None:
        """The carrier fetched the call's answer: the callee answered, whether or not its
        status callbacks say so (Plivo's say only ringing and the end)."""
        async with self._writing:
            record = await self.book.get(dial_id)
            if record is not None and can_move(record.status, DialStatus.ANSWERED):
                await self._move(record, DialStatus.ANSWERED, "answer fetched")

    async def progress(self, carrier: Carrier, dial_id: str, event: CallProgress
                       ) -> DialRecord | None:
        """A status callback for ``dial_id``; None if no such call of this carrier."""
        async with self._writing:
            return await self._progress(carrier, dial_id, event)

    async def _progress(self, carrier: Carrier, dial_id: str, event: CallProgress
                        ) -> DialRecord | None:
        record = await self.book.get(dial_id)
        if record is None or record.request.carrier is not carrier:
            self.log.warning("dial_callback_unknown", dial=dial_id[:64], carrier=carrier.value)
            return None
        if record.carrier_call_id not in (None, event.carrier_call_id):
            self.log.warning("dial_callback_mismatch", dial=dial_id, carrier=carrier.value)
            return None
        known = record
        if record.carrier_call_id is None:  # the callback beat the REST answer
            record = replace(record, carrier_call_id=event.carrier_call_id)
        if event.control_id and event.control_id != record.control_id:
            record = replace(record, control_id=event.control_id)
        if record is not known and (event.status is None
                                    or not can_move(record.status, event.status)):
            await self.book.save(record)  # no move below saves it
        if event.answered_by is not None:
            screen = self._screens.get(dial_id)
            if screen is not None:
                screen(event.answered_by, event.beep)
            self.log.info("dial_carrier_amd", dial=dial_id, answered_by=event.answered_by.value,
                          beep=event.beep, detail=event.detail)
        if event.status is None:
            return record
        if not can_move(record.status, event.status):
            if event.status is not record.status:
                self.counts.stale_callbacks += 1
                self.log.info("dial_callback_stale", dial=dial_id, status=record.status.value,
                              came=event.status.value, detail=event.detail)
            return record
        return await self._move(record, event.status, event.detail)

    async def _move(self, record: DialRecord, status: DialStatus, detail: str, *,
                    error: str | None = None) -> DialRecord:
        now = self.clock()
        history = (*record.history, StatusChange(status, now, detail))[-MAX_HISTORY:]
        record = replace(record, status=status, updated_at=now, history=history,
                         error=error if error is not None else record.error)
        await self.book.save(record)
        self.log.info("dial_status", dial=record.id, status=status.value, detail=detail)
        if (listener := self._status.get(record.id)) is not None:
            listener(record)
        return record

    async def answered(self, dial_id: str, amd: AmdResult) -> None:
        """The call's screen decided what answered (and, later, when the message began)."""
        await self.book.save_amd(dial_id, amd, self.clock())

    def watch(self, dial_id: str, screen: CarrierVerdict) -> Callable[[], None]:
        """Route the carrier's detection for ``dial_id`` to its call's screen while it runs."""
        self._screens[dial_id] = screen
        return lambda: _forget(self._screens, dial_id)

    async def settle_lost(self) -> int:
        """Fail the calls whose carrier never said how they ended; how many."""
        now = self.clock()
        settled = 0
        for record in await self.book.unsettled(now - SETTLE_GRACE_S, 500):
            if now - record.created_at < record.request.timeout_s + SETTLE_GRACE_S:
                continue
            async with self._writing:
                current = await self.book.get(record.id)
                if current is None or current.status.final:
                    continue
                self.log.warning("dial_unsettled", dial=record.id, status=current.status.value,
                                 carrier=current.request.carrier.value)
                await self._move(current, DialStatus.FAILED, "no final status from the carrier",
                                 error="the carrier never said how the call ended")
                settled += 1
        return settled

    async def sweep(self) -> None:
        """Run :meth:`settle_lost` every :data:`SWEEP_EVERY_S` (a task of the server's)."""
        while True:
            await asyncio.sleep(SWEEP_EVERY_S)
            try:
                await self.settle_lost()
            except StoreError as exc:  # the next sweep tries again
                self.log.warning("dial_sweep_failed", error=str(exc))

    def on_status(self, dial_id: str, listener: Callable[[DialRecord], None]
                  ) -> Callable[[], None]:
        """Tell ``listener`` each status ``dial_id`` moves to, until forgotten."""
        self._status[dial_id] = listener
        return lambda: _forget(self._status, dial_id)

    def expect_ready(self, handover: str, listener: Callable[[], None]) -> Callable[[], None]:
        """Tell ``listener`` once the call placed for ``handover`` says its person is ready."""
        self._ready[handover] = listener
        return lambda: _forget(self._ready, handover)

    def handover_ready(self, handover: str) -> bool:
        """The person's call: they have heard who is calling; False if nobody waits."""
        listener = self._ready.pop(handover, None)
        if listener is not None:
            listener()
        return listener is not None

    async def hang_up(self, dial_id: str) -> DialRecord | None:
        """``DELETE /v1/calls/{id}``: cancel it while it rings, end it once answered."""
        record = await self.book.get(dial_id)
        if record is None or record.status.final:
            return record
        if record.carrier_call_id is not None:
            try:
                await self.dialers[record.request.carrier].hang_up(
                    record.control_id or record.carrier_call_id)
            except CallControlError as exc:
                self.log.warning("dial_hang_up_failed", dial=dial_id, error=str(exc))
                raise
        async with self._writing:  # as it is now, after the carrier's answer
            record = await self.book.get(dial_id) or record
            if record.status.final:
                return record
            status = DialStatus.COMPLETED if record.status is DialStatus.ANSWERED \
                else DialStatus.CANCELED
            return await self._move(record, status, "hung up through the API")


def _forget(table: dict[str, Any], key: str) -> None:
    table.pop(key, None)


def check_key(key: str) -> str:
    key = key.strip()
    if not key or len(key) > MAX_KEY_CHARS or not key.isprintable():
        raise DialInputError("Idempotency-Key", f"1 to {MAX_KEY_CHARS} printable characters",
                             400)
    return key
