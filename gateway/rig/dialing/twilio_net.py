"""Twilio's side of calls the gateway places (test and demo tooling): its Calls API on
loopback, checked as Twilio checks it, then for each call what Twilio does: status callbacks
(signed with ``X-Twilio-Signature``, only the events asked for), the answer webhook, and the
callee's media stream, played by :func:`gateway.rig.phone.place_call`. SignalWire's LaML API is
the same under ``/api/laml``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Final

import aiohttp
from aiohttp import web

from gateway.carriers.twilio_hooks import compute_signature
from gateway.listen import listen
from gateway.rig.dialing.callees import Book, Callee, CalleeKind, by_last_digit
from gateway.rig.peers.twilio import TwilioPeer
from gateway.rig.phone import CallResult, place_call
from gateway.tasks import cancel_and_wait

_REQUIRED: Final = ("To", "From", "Url")
_FINAL: Final = ("busy", "no-answer", "failed", "canceled", "completed")


@dataclass
class PlacedCall:
    sid: str
    to: str
    from_: str
    form: dict[str, list[str]]
    callee: Callee
    statuses: list[str] = field(default_factory=list)  # posted, in order
    result: CallResult | None = None
    hung_up_by_api: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)
    at: float = 0.0  # the network's clock when the call was asked for
    real_at: float = field(default_factory=time.monotonic)
    real_end: float | None = None  # time.monotonic() once it ended

    def first(self, name: str) -> str:
        return self.form.get(name, [""])[0]

    @property
    def final_status(self) -> str | None:
        """How the call ended, in Twilio's words, once it has."""
        return next((s for s in reversed(self.statuses) if s in _FINAL), None)


class FakeTwilioNetwork:
    """``callees`` says who answers each number; ``ring_speed`` scales ringing, and
    ``speed`` the callee's audio (4: four times real time, as the simulator's ``speed``);
    ``clock`` stamps each call asked for (a campaign's fast clock, for its audit)."""

    def __init__(self, account: str, token: str, callees: Book | None = None, *,
                 prefix: str = "", ring_speed: float = 1.0, speed: float = 1.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.account = account
        self.token = token
        self.callees = callees or by_last_digit()
        self.prefix = prefix
        self.ring_speed = ring_speed
        self.speed = speed
        self.clock = clock
        self.calls: dict[str, PlacedCall] = {}
        self.refused: list[str] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._http: aiohttp.ClientSession | None = None

    def app(self) -> web.Application:
        app = web.Application()
        base = self.prefix + "/2010-04-01/Accounts/{account}/Calls"
        app.router.add_post(base + ".json", self.create)
        app.router.add_post(base + "/{call}.json", self.update)
        return app

    def _authorised(self, request: web.Request) -> bool:
        expected = "Basic " + base64.b64encode(f"{self.account}:{self.token}".encode()).decode()
        return request.match_info["account"] == self.account and \
            request.headers.get("Authorization", "") == expected

    async def create(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"code": 20003, "message": "Authenticate"}, status=401)
        form: dict[str, list[str]] = {}
        for key, value in (await request.post()).items():
            form.setdefault(key, []).append(str(value))
        missing = [name for name in _REQUIRED if not form.get(name)]
        if missing:
            self.refused.append(missing[0])
            return web.json_response({"code": 21205 if missing[0] == "Url" else 21201,
                                      "message": f"Missing required parameter {missing[0]}"},
                                     status=400)
        sid = "CA" + uuid.uuid4().hex
        to = form["To"][0]
        call = self.calls[sid] = PlacedCall(sid, to, form["From"][0], form, self.callees(to),
                                            at=self.clock())
        task = asyncio.create_task(self._run(call), name=f"fake-twilio-{sid}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return web.json_response({"sid": sid, "status": "queued", "to": to,
                                  "from": call.from_}, status=201)

    async def update(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"code": 20003, "message": "Authenticate"}, status=401)
        call = self.calls.get(request.match_info["call"])
        if call is None or call.done.is_set():
            return web.json_response({"code": 20404, "message": "not found"}, status=404)
        form = await request.post()
        if form.get("Status") in ("completed", "canceled"):
            call.hung_up_by_api = True
            for task in list(self._tasks):
                if task.get_name() == f"fake-twilio-{call.sid}":
                    task.cancel()
        return web.json_response({"sid": call.sid, "status": "completed"})

    # -- one call, as Twilio runs it -------------------------------------------------------

    async def _run(self, call: PlacedCall) -> None:
        answered = False
        try:
            await self._post(call, "initiated")
            await self._post(call, "ringing")
            callee = call.callee
            if callee.kind is CalleeKind.NO_ANSWER:
                await asyncio.sleep(int(call.first("Timeout") or 60) / self.ring_speed)
                await self._post(call, "no-answer")
                return
            await asyncio.sleep(callee.ring_s / self.ring_speed)
            if callee.kind is CalleeKind.BUSY:
                await self._post(call, "busy")
                return
            if callee.kind is CalleeKind.FAIL:
                await self._post(call, "failed", SipResponseCode="404")
                return
            answered = True
            await self._post(call, "in-progress")
            peer = TwilioPeer(call_sid=call.sid,
                              custom_parameters={"From": call.from_, "To": call.to})
            call.result = CallResult()
            await place_call("", list(callee.utterances), peer=peer,
                             answer_url=call.first("Url"), secret=self.token, speed=self.speed,
                             tail_ms=callee.tail_ms, max_s=callee.max_s, result=call.result)
            await self._post(call, "completed")
        except asyncio.CancelledError:  # hung up through the API
            with contextlib.suppress(Exception):
                await asyncio.shield(self._post(call, "completed" if answered else "canceled"))
            raise
        except (aiohttp.ClientError, OSError) as exc:
            call.statuses.append(f"error: {exc}")
            await self._post(call, "completed" if answered else "failed")
        finally:
            call.real_end = time.monotonic()
            call.done.set()

    async def _post(self, call: PlacedCall, status: str, **extra: str) -> None:
        events = call.form.get("StatusCallbackEvent", [])
        word = {"in-progress": "answered"}.get(status, status)
        final = status in _FINAL
        url = call.first("StatusCallback")
        if not url or (not final and word not in events):
            return
        form = {"CallSid": call.sid, "AccountSid": self.account, "CallStatus": status,
                "From": call.from_, "To": call.to, "Direction": "outbound-api", **extra}
        call.statuses.append(status)
        await self._send(url, form)

    async def _send(self, url: str, form: dict[str, str]) -> None:
        if self._http is None:
            self._http = aiohttp.ClientSession()
        headers = {"X-Twilio-Signature": compute_signature(self.token, url, form.items())}
        async with self._http.post(url, data=urllib.parse.urlencode(form), headers={
                **headers, "Content-Type": "application/x-www-form-urlencoded"}) as resp:
            await resp.read()

    async def carrier_amd(self, sid: str, answered_by: str) -> None:
        """Post Twilio's AsyncAmd result for ``sid`` (as its detection would)."""
        call = self.calls[sid]
        url = call.first("AsyncAmdStatusCallback")
        await self._send(url, {"CallSid": sid, "AccountSid": self.account,
                               "AnsweredBy": answered_by, "CallStatus": "in-progress"})

    async def wait_all(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            await cancel_and_wait(task)
        if self._http is not None:
            await self._http.close()


@contextlib.asynccontextmanager
async def fake_twilio_network(account: str, token: str, callees: Book | None = None, *,
                              prefix: str = "", ring_speed: float = 1.0, speed: float = 1.0,
                              clock: Callable[[], float] = time.time
                              ) -> AsyncIterator[tuple[FakeTwilioNetwork, str]]:
    """The network and its API's base URL (for ``VOICEGW_TWILIO_API_URL``)."""
    net = FakeTwilioNetwork(account, token, callees, prefix=prefix, ring_speed=ring_speed,
                            speed=speed, clock=clock)
    runner = await listen(net.app(), "127.0.0.1", 0)
    try:
        yield net, f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await net.aclose()
        await runner.cleanup()
