"""A stand-in for the gateway's ``/v1/calls`` API, for campaign tests and the benchmark.

It honours the API's contract as a campaign sees it: a bearer token, ``Idempotency-Key`` (the
same key and body answer the same call with ``Idempotent-Replayed: true``, another body 422),
403 for a number on its do-not-call list, 422 naming the field for bad input, and statuses
that move queued -> ringing -> completed (or busy, no answer, failed) as real time passes.
How each call ends is decided by ``outcome`` from the number and how many calls it has had,
so a run is reproducible. Every call placed is kept (:attr:`FakeCallsApi.placed`) with the
campaign clock's time, for the checks: duplicates, concurrency, rate, window.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from gateway.campaign.clock import Clock, SystemClock
from gateway.dialing.model import AnsweredBy, DialInputError, DialStatus, e164, parse_parameters


@dataclass(frozen=True, slots=True)
class Outcome:
    status: DialStatus  # final
    answered_by: AnsweredBy | None
    ring_s: float  # real seconds ringing
    talk_s: float = 0.0  # real seconds answered (completed calls)


Decide = Callable[[str, int], Outcome]  # (number, its how-manyth call from 1) -> outcome


def mixed_outcomes(scale_s: float = 0.05) -> Decide:
    """A plausible mix, the same for the same number and call: about 65 % people, 10 %
    machines, 12 % busy, 8 % no answer, 5 % failed; calls last a few ``scale_s``."""

    def decide(number: str, nth: int) -> Outcome:
        digest = hashlib.sha256(f"{number}/{nth}".encode()).digest()
        r = digest[0] / 256
        ring = scale_s * (0.5 + digest[1] / 256)
        talk = scale_s * (1 + 3 * digest[2] / 256)
        if r < 0.65:
            return Outcome(DialStatus.COMPLETED, AnsweredBy.HUMAN, ring, talk)
        if r < 0.75:
            return Outcome(DialStatus.COMPLETED, AnsweredBy.MACHINE, ring, talk / 2)
        if r < 0.87:
            return Outcome(DialStatus.BUSY, None, ring / 4)
        if r < 0.95:
            return Outcome(DialStatus.NO_ANSWER, None, ring * 2)
        return Outcome(DialStatus.FAILED, None, ring / 4)

    return decide


@dataclass(slots=True)
class PlacedCall:
    id: str
    key: str
    to: str
    body: Mapping[str, Any]
    at: float  # campaign clock
    real_at: float  # time.monotonic()
    outcome: Outcome

    @property
    def real_end(self) -> float:
        return self.real_at + self.outcome.ring_s + self.outcome.talk_s

    def status(self, now: float) -> DialStatus:
        elapsed = now - self.real_at
        if elapsed >= self.outcome.ring_s + self.outcome.talk_s:
            return self.outcome.status
        if elapsed >= self.outcome.ring_s and self.outcome.status is DialStatus.COMPLETED:
            return DialStatus.ANSWERED
        return DialStatus.RINGING if elapsed > 0.005 else DialStatus.QUEUED

    def as_json(self, now: float) -> dict[str, Any]:
        status = self.status(now)
        answered = status in (DialStatus.ANSWERED, DialStatus.COMPLETED)
        return {"id": self.id, "status": status.value, **self.body,
                "answered_by": (self.outcome.answered_by.value
                                if answered and self.outcome.answered_by else None),
                "error": "carrier refused" if status is DialStatus.FAILED else None}


@dataclass
class FakeCallsApi:
    token: str
    outcome: Decide = field(default_factory=mixed_outcomes)
    do_not_call: set[str] = field(default_factory=set)
    clock: Clock = field(default_factory=SystemClock)
    agents: frozenset[str] = frozenset({"concierge"})
    placed: list[PlacedCall] = field(default_factory=list)
    replays: int = 0
    unavailable: int = 0  # answer this many POSTs with 503 first (Retry-After 0)
    _keys: dict[str, PlacedCall] = field(default_factory=dict)
    _by_id: dict[str, PlacedCall] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/calls", self._post)
        app.router.add_get("/v1/calls/{id}", self._get)
        return app

    def _authorised(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.token}"

    async def _post(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"error": "unauthorised"}, status=401)
        key = request.headers.get("Idempotency-Key", "")
        try:
            body = await request.json()
            to = e164(body.get("to"), "to")
            if body.get("agent") not in self.agents:
                raise DialInputError("agent", "no such agent")
            parse_parameters(body.get("parameters"))
        except DialInputError as exc:
            return web.json_response(exc.as_json(), status=exc.status)
        except (ValueError, AttributeError):
            return web.json_response({"error": "expected JSON", "field": "body"}, status=400)
        if key in self._keys:
            call = self._keys[key]
            if call.body != body:
                return web.json_response({"error": "key used with another body",
                                          "field": "Idempotency-Key"}, status=422)
            self.replays += 1
            return web.json_response(call.as_json(time.monotonic()), status=200,
                                     headers={"Idempotent-Replayed": "true"})
        if to in self.do_not_call:
            return web.json_response({"error": "on the do-not-call list", "field": "to"},
                                     status=403)
        if self.unavailable > 0:
            self.unavailable -= 1
            return web.json_response({"error": "at capacity"}, status=503,
                                     headers={"Retry-After": "0"})
        nth = 1 + sum(1 for c in self.placed if c.to == to)
        call = PlacedCall(f"dl_{next(self._ids):06d}", key, to, body, self.clock.now(),
                          time.monotonic(), self.outcome(to, nth))
        self.placed.append(call)
        if key:
            self._keys[key] = call
        self._by_id[call.id] = call
        return web.json_response(call.as_json(time.monotonic()), status=201)

    async def _get(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"error": "unauthorised"}, status=401)
        call = self._by_id.get(request.match_info["id"])
        if call is None:
            return web.json_response({"error": "no such call", "field": "id"}, status=404)
        return web.json_response(call.as_json(time.monotonic()))

    @contextlib.asynccontextmanager
    async def serve(self, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
        """Serve on ``host:port`` (0: any free port); yields the base URL."""
        runner = web.AppRunner(self.app())
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        try:
            yield f"http://{host}:{runner.addresses[0][1]}"
        finally:
            await runner.cleanup()
