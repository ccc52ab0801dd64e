"""A fake of Exotel's Voice v1 API on loopback: its call resource,
``/v1/Accounts/{sid}/Calls/{CallSid}``, which answers ``GET`` (the call's details) and nothing
else, and ``POST .../Calls/connect.json``, which places a call into a flow (``From``,
``CallerId`` and a flow ``Url`` required) and answers with the call's ``Sid``. Exotel offers
no request that ends or transfers a call the Voicebot applet holds, so a gateway that tried
would be refused here as there (405), and it checks Basic auth (the API key and token) as
Exotel does.

The carrier-neutral tests use it to show that an Exotel call is ended by closing its stream,
with no REST request at all.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field

from aiohttp import web

from gateway.rig.rest_fakes import Network, Recorded, record


@dataclass
class FakeExotel:
    account: str
    api_key: str
    api_token: str
    requests: list[Recorded] = field(default_factory=list)
    placed: list[Recorded] = field(default_factory=list)
    network: Network | None = None

    def _authorised(self, request: web.Request) -> bool:
        pair = f"{self.api_key}:{self.api_token}".encode()
        return request.match_info["account"] == self.account and \
            request.headers.get("Authorization") == "Basic " + base64.b64encode(pair).decode()

    async def connect(self, request: web.Request) -> web.Response:
        self.requests.append(recorded := await record(request))
        if not self._authorised(request):
            return _exception(401, "Authentication required")
        form = recorded.form
        if not all(form.get(k) for k in ("From", "CallerId", "Url")):
            return _exception(400, "From, CallerId and Url are mandatory")
        self.placed.append(recorded)
        sid = uuid.uuid4().hex
        if self.network is not None:
            self.network.placed(sid, recorded)
        return web.json_response({"Call": {"Sid": sid, "Status": "in-progress",
                                           "From": form["From"],
                                           "PhoneNumberSid": form["CallerId"]}})

    async def call(self, request: web.Request) -> web.Response:
        self.requests.append(await record(request))
        if not self._authorised(request):
            return _exception(401, "Authentication required")
        if request.method != "GET":
            return web.json_response({"RestException": {"Status": 405,
                                                        "Message": "Method not allowed"}},
                                     status=405)
        return web.json_response({"Call": {"Sid": request.match_info["call"],
                                           "Status": "in-progress"}})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/Accounts/{account}/Calls/connect.json", self.connect)
        app.router.add_route("*", "/v1/Accounts/{account}/Calls/{call}", self.call)
        app.router.add_route("*", "/v1/Accounts/{account}/Calls/{call}.json", self.call)
        return app


def _exception(status: int, message: str) -> web.Response:
    return web.json_response({"RestException": {"Status": status, "Message": message}},
                             status=status)
