"""A carrier's network for calls the gateway places (test and demo tooling), carrier-neutral.

The carrier's REST fake (:mod:`gateway.rig.rest_fakes`) checks each create-call request as that
carrier does and hands the call here; :class:`FakeNetwork` then does what the carrier would:
status callbacks as the call rings and ends (busy, no answer, a failure), and once answered the
answer fetched from the gateway and the callee's media stream, played by
:func:`gateway.rig.phone.place_call` through the carrier's own rig peer. A hang-up through the
carrier's API cancels a ringing call or ends an answered one, and a join (a warm transfer)
moves an answered call into a conference room, ending its stream; where the carrier's join
is a redirect to a URL, the network fetches it as the carrier would (:meth:`FakeNetwork.fetch`,
signed as the call's answer was). :meth:`FakeNetwork.ring_in` is a call from a phone to the
gateway, on any carrier. Where the request asked for the
carrier's own machine detection and the network is given ``carrier_amd_ms``, its verdict
follows that long (callee's audio time) after the stream opens.

What differs by carrier (the request's fields, the callbacks' shapes and signatures, the
peer's ids) is a :class:`CarrierPart`, one small module each (``gateway.rig.dialing.NAME_net``).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp
from aiohttp import web

from gateway.carriers.core import Carrier
from gateway.dialing.model import AnsweredBy, DialStatus
from gateway.listen import listen
from gateway.rig.dialing.callees import Book, Callee, CalleeKind, by_last_digit
from gateway.rig.peers import HttpRequest, PhonePeer
from gateway.rig.phone import CallResult, place_call
from gateway.rig.rest_fakes import Recorded
from gateway.tasks import cancel_and_wait


class Progress(enum.Enum):
    """What happens to a placed call, in the network's own words (each carrier names them)."""

    INITIATED = "initiated"
    RINGING = "ringing"
    ANSWERED = "answered"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    FAILED = "failed"
    CANCELED = "canceled"
    COMPLETED = "completed"


_FINAL = frozenset({Progress.BUSY.value, Progress.NO_ANSWER.value, Progress.FAILED.value,
                    Progress.CANCELED.value, Progress.COMPLETED.value})


@dataclass(frozen=True, slots=True)
class Plan:
    """What a create-call request asked of the carrier."""

    to: str
    from_: str
    status_url: str  # "" when it asked for no callbacks
    timeout_s: int = 60
    amd_url: str | None = None  # where the carrier's own detection reports; None: not asked


@dataclass
class PlacedCall:
    sid: str  # the id the carrier's API answered with (its callbacks name it)
    request: Recorded
    plan: Plan
    callee: Callee
    statuses: list[str] = field(default_factory=list)  # the carrier's words, as posted
    result: CallResult | None = None
    answered: bool = False
    hung_up_by_api: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)
    at: float = 0.0  # the network's clock when the call was asked for (a campaign's audit)
    real_at: float = field(default_factory=time.monotonic)
    real_end: float | None = None  # time.monotonic() once it ended
    room: str | None = None  # the conference it was moved into (a warm transfer)
    moved: asyncio.Event = field(default_factory=asyncio.Event)  # its stream ends: moved
    # The carrier's side of its stream and the secret its requests are signed with, once
    # answered: what the carrier's later fetches for the call (a redirect's URL) use.
    peer: PhonePeer | None = None
    secret: str | None = None

    @property
    def to(self) -> str:
        return self.plan.to

    @property
    def final_status(self) -> DialStatus | None:
        """How the call ended, once it has (the network's words are the dial statuses')."""
        return next((DialStatus(s) for s in reversed(self.statuses) if s in _FINAL), None)

    @property
    def from_(self) -> str:
        return self.plan.from_

    @property
    def form(self) -> dict[str, list[str]]:
        """A form-encoded request's fields, every value of each."""
        if self.request.content_type != "application/x-www-form-urlencoded":
            return {}
        return urllib.parse.parse_qs(self.request.body.decode(), keep_blank_values=True)

    def first(self, name: str) -> str:
        return self.form.get(name, [""])[0]


class CarrierPart(Protocol):
    """One carrier's ways (``gateway.rig.dialing.NAME_net``)."""

    @property
    def carrier(self) -> Carrier: ...

    def app(self, network: FakeNetwork) -> web.Application:
        """The carrier's REST fake, handing accepted calls and hang-ups to ``network``."""
    def plan(self, sid: str, request: Recorded) -> Plan: ...
    def inbound(self, to: str, from_: str, answer_url: str) -> tuple[str, Recorded]:
        """A call from ``from_`` to the gateway's number ``to``: the id the carrier names it
        by, and a create-call request in this carrier's shape asking for no callbacks (so
        :meth:`plan` and :meth:`answering` read it as any other)."""
    def status(self, call: PlacedCall, progress: Progress) -> HttpRequest | None:
        """The callback the carrier posts for ``progress`` (None: not one it posts)."""
    def detection(self, call: PlacedCall, by: AnsweredBy, beep: bool) -> HttpRequest | None:
        """The carrier's machine-detection verdict (None where it has none)."""
    def answering(self, call: PlacedCall) -> tuple[PhonePeer, str, str | None]:
        """The callee's stream: its peer, the answer URL the carrier fetches, and the secret
        that request is signed (or authenticated) with."""
    def environment(self, api_url: str) -> dict[str, str]:
        """The gateway's environment for this carrier, its API at ``api_url``."""


class FakeNetwork:
    """``callees`` says who answers each number; ``ring_speed`` scales ringing, and ``speed``
    the callee's audio (4: four times real time, as the simulator's ``speed``)."""

    def __init__(self, part: CarrierPart, callees: Book | None = None, *,
                 ring_speed: float = 1.0, speed: float = 1.0,
                 carrier_amd_ms: float | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.part = part
        self.clock = clock  # stamps each call asked for (a campaign's fast clock)
        self.callees = callees or by_last_digit()
        self.ring_speed = ring_speed
        self.speed = speed
        self.carrier_amd_ms = carrier_amd_ms
        self.calls: dict[str, PlacedCall] = {}
        self.rooms: dict[str, list[str]] = {}  # conference -> the calls moved into it
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._http: aiohttp.ClientSession | None = None

    # -- what the REST fake hands over (gateway.rig.rest_fakes.Network) ---------------------

    def placed(self, call_id: str, request: Recorded) -> None:
        plan = self.part.plan(call_id, request)
        call = self.calls[call_id] = PlacedCall(call_id, request, plan, self.callees(plan.to),
                                                at=self.clock())
        self._tasks[call_id] = asyncio.create_task(self._run(call), name=f"fake-call-{call_id}")

    def join(self, call_id: str, room: str) -> bool:
        """Move an answered call into conference ``room``: its media stream ends (the
        carrier's ``stop``) and the call stays up in the room. False if it is not up."""
        call = self.calls.get(call_id)
        if call is None or call.done.is_set() or not call.answered or call.room is not None:
            return False
        call.room = room
        self.rooms.setdefault(room, []).append(call_id)
        call.moved.set()
        return True

    def ring_in(self, to: str, from_: str, answer_url: str, callee: Callee) -> PlacedCall:
        """A call from a phone to the gateway's number (an inbound call): the carrier fetches
        ``answer_url`` and ``callee`` is the caller's side of the stream."""
        sid, request = self.part.inbound(to, from_, answer_url)
        call = self.calls[sid] = PlacedCall(sid, request, self.part.plan(sid, request), callee)
        self._tasks[sid] = asyncio.create_task(self._run(call), name=f"fake-call-{sid}")
        return call

    async def fetch(self, call_id: str, url: str) -> str | None:
        """The carrier fetches new instructions for an answered call from ``url`` (a
        redirect), as it fetched the call's answer and signed the same way: the document, or
        None where the call is not up or the gateway refused it."""
        call = self.calls.get(call_id)
        if call is None or call.done.is_set() or call.peer is None:
            return None
        request = call.peer.webhook(url, call.secret)
        if self._http is None:
            self._http = aiohttp.ClientSession()
        async with self._http.request(request.method, request.url, data=request.body or None,
                                      headers=dict(request.headers)) as resp:
            text = await resp.text()
            call.statuses.append(f"fetched: {resp.status}")
            return text if resp.status == 200 else None

    def hang_up(self, call_id: str) -> bool:
        call, task = self.calls.get(call_id), self._tasks.get(call_id)
        if call is None or task is None or task.done():
            return False
        call.hung_up_by_api = True
        task.cancel()
        return True

    # -- one call ----------------------------------------------------------------------------

    async def _run(self, call: PlacedCall) -> None:
        try:
            await self.post(call, Progress.INITIATED)
            await self.post(call, Progress.RINGING)
            kind = call.callee.kind
            if kind is CalleeKind.NO_ANSWER:
                await asyncio.sleep(call.plan.timeout_s / self.ring_speed)
                await self.post(call, Progress.NO_ANSWER)
                return
            await asyncio.sleep(call.callee.ring_s / self.ring_speed)
            if kind is CalleeKind.BUSY:
                await self.post(call, Progress.BUSY)
                return
            if kind is CalleeKind.FAIL:
                await self.post(call, Progress.FAILED)
                return
            call.answered = True
            await self.post(call, Progress.ANSWERED)
            await self._talk(call)
            await self.post(call, Progress.COMPLETED)
        except asyncio.CancelledError:  # hung up through the API
            with contextlib.suppress(Exception):
                await asyncio.shield(self.post(
                    call, Progress.COMPLETED if call.answered else Progress.CANCELED))
            raise
        except (aiohttp.ClientError, OSError) as exc:
            call.statuses.append(f"error: {exc}")
            await self.post(call, Progress.COMPLETED if call.answered else Progress.FAILED)
        finally:
            call.real_end = time.monotonic()
            call.done.set()

    async def _talk(self, call: PlacedCall) -> None:
        peer, answer_url, secret = self.part.answering(call)
        call.peer, call.secret = peer, secret
        callee = call.callee
        call.result = CallResult()
        verdict = _Verdict(self, call) if self.carrier_amd_ms is not None and \
            call.plan.amd_url else None
        try:
            await place_call("", list(callee.utterances), peer=peer, answer_url=answer_url,
                             secret=secret, speed=self.speed, tail_ms=callee.tail_ms,
                             max_s=callee.max_s, result=call.result, observer=verdict,
                             stop=call.moved)
        finally:
            if verdict is not None:
                await verdict.aclose()

    async def post(self, call: PlacedCall, progress: Progress) -> None:
        request = self.part.status(call, progress)
        if request is not None:
            call.statuses.append(progress.value)
            await self.send(request)

    async def detect(self, call: PlacedCall, by: AnsweredBy, beep: bool = False) -> None:
        """Post the carrier's own detection verdict for ``call`` now."""
        request = self.part.detection(call, by, beep)
        if request is not None:
            call.statuses.append(f"amd:{by.value}")
            await self.send(request)

    async def send(self, request: HttpRequest) -> None:
        if self._http is None:
            self._http = aiohttp.ClientSession()
        async with self._http.request(request.method, request.url, data=request.body or None,
                                      headers=dict(request.headers)) as resp:
            await resp.read()

    async def wait_all(self) -> None:
        while tasks := [t for t in self._tasks.values() if not t.done()]:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def aclose(self) -> None:
        for task in list(self._tasks.values()):
            await cancel_and_wait(task)
        if self._http is not None:
            await self._http.close()


class _Verdict:
    """The carrier's detector: its verdict ``carrier_amd_ms`` of the callee's audio after the
    stream opens (a :class:`gateway.rig.phone.CallObserver` that sees the socket connect)."""

    def __init__(self, network: FakeNetwork, call: PlacedCall) -> None:
        self.network, self.call = network, call
        self.task: asyncio.Task[None] | None = None

    def connected(self, t: float) -> None:
        self.task = asyncio.create_task(self._say())

    async def _say(self) -> None:
        assert self.network.carrier_amd_ms is not None
        await asyncio.sleep(self.network.carrier_amd_ms / 1000 / self.network.speed)
        callee = self.call.callee
        by = AnsweredBy.MACHINE if callee.kind is CalleeKind.MACHINE else AnsweredBy.HUMAN
        await self.network.detect(self.call, by, beep=callee.beep_end_ms is not None)

    def sent(self, t: float, audio_ms: float) -> None: ...
    def spoke(self, t: float) -> None: ...
    def received(self, t: float, audio_ms: float) -> None: ...
    def cleared(self, t: float) -> None: ...

    async def aclose(self) -> None:
        if self.task is not None:
            await cancel_and_wait(self.task)


def inbound_request(fields: Mapping[str, str] | None = None, data: object = None
                    ) -> Recorded:
    """The stand-in create-call request of an inbound call: a form, or a JSON body."""
    if data is not None:
        return Recorded("POST", "(inbound)", {"Content-Type": "application/json"}, {}, data,
                        json.dumps(data).encode())
    form = dict(fields or {})
    return Recorded("POST", "(inbound)", {"Content-Type": "application/x-www-form-urlencoded"},
                    form, None, urllib.parse.urlencode(form).encode())


def form_request(url: str, fields: Mapping[str, str], headers: Mapping[str, str]
                 ) -> HttpRequest:
    return HttpRequest("POST", url, {**headers,
                                     "Content-Type": "application/x-www-form-urlencoded"},
                       urllib.parse.urlencode(fields).encode())


@contextlib.asynccontextmanager
async def fake_network(part: CarrierPart, callees: Book | None = None, *,
                       ring_speed: float = 1.0, speed: float = 1.0,
                       carrier_amd_ms: float | None = None, network: FakeNetwork | None = None
                       ) -> AsyncIterator[tuple[FakeNetwork, str]]:
    """The network (``network``, or a new one) and its API's base URL (for the carrier's
    ``VOICEGW_..._API_URL``)."""
    net = network or FakeNetwork(part, callees, ring_speed=ring_speed, speed=speed,
                                 carrier_amd_ms=carrier_amd_ms)
    runner = await listen(part.app(net), "127.0.0.1", 0)
    try:
        yield net, f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await net.aclose()
        await runner.cleanup()
