"""A fake of Twilio's Call-update API (``POST .../Accounts/{sid}/Calls/{sid}.json``) on loopback,
and of SignalWire's compatibility API, which takes the same requests under ``/api/laml``.

It checks Basic auth as Twilio does, answers each request with the next status in ``script``
(then 200), and records every request, so a test can check the path, the credentials and the
form body the gateway sent. A new call (``POST .../Calls.json``) needs ``To``, ``From`` and a
``Url`` and is answered 201 with its ``sid``. Given a network, an update whose ``Twiml`` holds
a ``<Conference>`` joins the call to it; one with a ``Url`` (SignalWire's only way) has the
network fetch that URL as the carrier would, and joins the call to the conference the cXML
names.
"""

from __future__ import annotations

import base64
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web

from gateway.faults import RetryPolicy
from gateway.rest.twilio import TwilioCredentials, TwilioRest
from gateway.rig.rest_fakes import (
    Network,
    Recorded,
    Script,
    record,
    serving,
    xml_conference,
)

NO_WAIT = RetryPolicy(attempts=4, base_s=0.0, cap_s=0.0)


def _unauthorised() -> web.Response:
    return web.json_response({"code": 20003, "message": "Authenticate", "status": 401},
                             status=401)


@dataclass
class FakeTwilio:
    account: str
    user: str  # the API user: the account sid, or an API key sid
    password: str
    prefix: str = ""  # "/api/laml" for SignalWire
    script: Script = field(default_factory=Script)
    requests: list[Recorded] = field(default_factory=list)
    placed: list[Recorded] = field(default_factory=list)
    network: Network | None = None

    async def _authorised(self, request: web.Request) -> Recorded | None:
        """The request, recorded; None if its account or Basic credentials are wrong."""
        header = request.headers.get("Authorization", "")
        expected = "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        self.requests.append(recorded := await record(request))
        if request.match_info["account"] != self.account or header != expected:
            return None
        return recorded

    async def create_call(self, request: web.Request) -> web.Response:
        if (recorded := await self._authorised(request)) is None:
            return _unauthorised()
        if not all(recorded.form.get(k) for k in ("To", "From", "Url")):
            return web.json_response({"code": 21201, "message": "No 'To', 'From' or 'Url' "
                                      "specified", "status": 400}, status=400)
        self.placed.append(recorded)
        sid = "CA" + uuid.uuid4().hex
        if self.network is not None:
            self.network.placed(sid, recorded)
        return web.json_response({"sid": sid, "status": "queued", "to": recorded.form["To"],
                                  "from": recorded.form["From"]}, status=201)

    async def update_call(self, request: web.Request) -> web.Response:
        if (recorded := await self._authorised(request)) is None:
            return _unauthorised()
        status = self.script.next()
        call = request.match_info["call"]
        if status == 200 and self.network is not None and not await self._play(call, recorded):
            status = 404
        if status == 200:
            return web.json_response({"sid": request.match_info["call"], "status": "completed"})
        if status == 404:
            return web.json_response({"code": 20404, "message": "The requested resource was "
                                      "not found", "status": 404}, status=404)
        return web.json_response({"code": 20500, "message": "Internal Server Error",
                                  "status": status}, status=status)

    async def _play(self, call: str, recorded: Recorded) -> bool:
        """What the update does on the network; False where the call is not up."""
        assert self.network is not None
        form = recorded.form
        if form.get("Status") in ("completed", "canceled"):
            return self.network.hang_up(call)
        document = form.get("Twiml")
        if document is None and form.get("Url"):
            document = await self.network.fetch(call, form["Url"])
            if document is None:
                return False
        room = xml_conference(document or "")
        return room is None or self.network.join(call, room)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(self.prefix + "/2010-04-01/Accounts/{account}/Calls/{call}.json",
                            self.update_call)
        app.router.add_post(self.prefix + "/2010-04-01/Accounts/{account}/Calls.json",
                            self.create_call)
        return app


@contextlib.asynccontextmanager
async def fake_twilio(account: str, token: str) -> AsyncIterator[tuple[FakeTwilio, TwilioRest]]:
    """The fake, and the gateway's REST client pointed at it with the account's credentials."""
    fake = FakeTwilio(account, account, token)
    async with serving(fake.app()) as url:
        rest = TwilioRest(TwilioCredentials(account, account, token), base_url=url,
                          retry=NO_WAIT)
        try:
            yield fake, rest
        finally:
            await rest.aclose()
