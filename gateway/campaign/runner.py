"""Runs a campaign: the planner's decisions carried out against the gateway's API and the store.

For each call: the do-not-call list is read (right then, so a number added mid-campaign is
never dialled), the attempt is written down with its idempotency key, *then* the gateway is
asked to place it, and the call is followed (``GET /v1/calls/{id}``) until its status is
final. A call the gateway cannot take now (503, unreachable) keeps its slot and is asked
again, with the same key, after ``Retry-After``.

Stopping: :meth:`CampaignRunner.stop` starts nothing new and follows the calls in flight to
their end. Cancelling the run (a second Ctrl-C, a crash) leaves those calls ``dialing`` in the
store: a resumed run follows the ones the gateway had answered (their id is stored) and asks
again, with the same key, for the ones it had not, so nobody is called twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Final

import structlog

from gateway.campaign.api import CallsApi, CallState, Refused, Unavailable
from gateway.campaign.clock import Clock
from gateway.campaign.model import Campaign, Contact, ContactState, Result, RetryPolicy, ended
from gateway.campaign.plan import Dial, Finished, Limits, Planner, Skip, Wait
from gateway.dialing.model import DialStatus
from gateway.errors import GatewayError
from gateway.log import mask_number
from gateway.store.campaigns import CampaignStore

log = structlog.get_logger("gateway.campaign")
# While nothing is due, look again this often (real seconds) in case of a stop.
_IDLE_S: Final = 5.0


class CampaignError(GatewayError):
    """The campaign cannot go on: the gateway refuses it as a whole (token, agent...)."""


@dataclass(frozen=True, slots=True)
class RunSettings:
    limits: Limits
    retry: RetryPolicy
    poll_s: float = 1.0  # real seconds between two looks at a call's status


@dataclass(frozen=True, slots=True)
class RunReport:
    finished: bool  # every contact done or skipped
    started: int  # attempts started by this run (resumed ones included)


OnChange = Callable[[Contact], None]


class CampaignRunner:
    def __init__(self, store: CampaignStore, api: CallsApi, campaign: Campaign,
                 settings: RunSettings, clock: Clock, *,
                 on_change: OnChange | None = None) -> None:
        self.store = store
        self.api = api
        self.campaign = campaign
        self.settings = settings
        self.clock = clock
        self._on_change = on_change or (lambda _c: None)
        self._contacts: dict[int, Contact] = {}
        self._planner = Planner(settings.limits)
        self._wake = asyncio.Event()
        self._stopping = False
        self._fatal: CampaignError | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._started = 0

    def stop(self) -> None:
        """Start no new call; the run returns once the calls in flight have ended."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> RunReport:
        await self._load()
        try:
            while True:
                if self._fatal is not None:
                    raise self._fatal
                if self._stopping:
                    if self._planner.in_flight == 0:
                        return RunReport(False, self._started)
                    await self._sleep(None)
                    continue
                now = self.clock.now()
                decision = self._planner.next(now)
                if isinstance(decision, Finished):
                    if self.campaign.finished_at is None:
                        await self.store.finish(self.campaign.id, now)
                    return RunReport(True, self._started)
                if isinstance(decision, Wait):
                    await self._sleep(decision.until)
                elif isinstance(decision, Skip):
                    await self._save(self._contacts[decision.seq].skip(
                        Result.NO_WINDOW, "its time zones share no moment inside the window",
                        now))
                elif isinstance(decision, Dial):
                    await self._dial(self._contacts[decision.seq], now)
        finally:
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _load(self) -> None:
        contacts = await self.store.contacts(self.campaign.id)
        last = max((c.last_dial_at for c in contacts if c.last_dial_at), default=None)
        self._planner = Planner(self.settings.limits, last_start=last)
        for c in contacts:
            if c.state.final:
                continue
            self._contacts[c.seq] = c
            if c.state is ContactState.DIALING and c.dial_id is not None:
                # Placed before a stop or crash: follow it, it holds a slot.
                self._planner.following()
                self._spawn(self._follow(c))
            else:
                # Pending, or written down but never answered: its turn comes in order (a
                # dialing one is asked again with its key, first).
                not_before = 0.0 if c.state is ContactState.DIALING else c.next_at
                self._planner.add(c.seq, c.zones, not_before)

    async def _sleep(self, until: float | None) -> None:
        delay = _IDLE_S if until is None else min(self.clock.real_s(until), _IDLE_S)
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._wake.wait()

    async def _dial(self, contact: Contact, now: float) -> None:
        if await self.store.dnc_has(contact.number):
            await self._save(contact.skip(Result.DO_NOT_CALL, "on the do-not-call list", now))
            return
        if contact.state is ContactState.PENDING:
            pending, contact = contact, contact.attempt(now)
            if not await self._save(contact, pending):
                return
        self._planner.started(now)
        self._started += 1
        self._spawn(self._place(contact))

    def _spawn(self, work: Coroutine[object, object, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _place(self, contact: Contact) -> None:
        body = self.campaign.call.body(contact.number, contact.parameters)
        try:
            while True:
                try:
                    answer = await self.api.place(body, contact.key())
                    break
                except Unavailable as exc:
                    log.warning("campaign_gateway_busy", campaign=self.campaign.name,
                                row=contact.seq, problem=str(exc),
                                retry_in_s=exc.retry_after_s)
                    await asyncio.sleep(exc.retry_after_s)
        except Refused as exc:
            try:
                await self._refused(contact, exc)
            except Exception as problem:
                self._fail(problem)
                raise
            self._ended()
            return
        except Exception as exc:
            self._fail(exc)
            raise
        contact = contact.placed(answer.id, answer.status)
        await self._follow(contact, answer, save=True)

    async def _follow(self, contact: Contact, state: CallState | None = None, *,
                      save: bool = False) -> None:
        assert contact.dial_id is not None
        try:
            if save:
                await self._save(contact)
            first = state is None
            while state is None or not state.status.final:
                if not first:
                    await asyncio.sleep(self.settings.poll_s)
                first = False
                try:
                    state = await self.api.get(contact.dial_id)
                except Unavailable:
                    continue
                except Refused as exc:
                    if exc.status != 404:
                        raise
                    state = CallState(contact.dial_id, DialStatus.FAILED,
                                      error="the gateway has no record of this call")
            now = self.clock.now()
            await self._save(ended(contact.placed(state.id, state.status), state.status,
                                   state.answered_by, self.settings.retry, now, error=state.error))
            self._ended()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._fail(exc)
            raise

    def _ended(self) -> None:
        self._planner.ended()
        self._wake.set()

    async def _refused(self, contact: Contact, exc: Refused) -> None:
        now = self.clock.now()
        if exc.do_not_call:
            await self._save(contact.skip(Result.DO_NOT_CALL, "the gateway's do-not-call "
                                                              "list", now))
        elif exc.contact_only:
            log.warning("campaign_call_refused", campaign=self.campaign.name, row=contact.seq,
                        to=mask_number(contact.number), problem=str(exc))
            await self._save(contact.skip(Result.REJECTED, str(exc), now))
        else:
            raise CampaignError(f"the gateway refuses this campaign's calls: {exc}")

    def _fail(self, exc: Exception) -> None:
        if self._fatal is None:
            self._fatal = exc if isinstance(exc, CampaignError) else CampaignError(
                f"{type(exc).__name__}: {exc}")
        self._wake.set()

    async def _save(self, contact: Contact, was: Contact | None = None) -> bool:
        before = self._contacts.get(contact.seq)
        if not await self.store.save(contact, was or before or contact):
            log.warning("campaign_contact_moved_elsewhere", campaign=self.campaign.name,
                        row=contact.seq)
            return False
        self._contacts[contact.seq] = contact
        if contact.state is ContactState.PENDING and before is not None \
                and before.state is ContactState.DIALING:
            self._planner.add(contact.seq, contact.zones, contact.next_at)
        if contact.state.final:
            self._contacts.pop(contact.seq, None)
        self._on_change(contact)
        return True
