"""A fake of Exotel's Voice v1 API on loopback: its one call resource,
``/v1/Accounts/{sid}/Calls/{CallSid}``, which answers ``GET`` (the call's details) and nothing
else. Exotel offers no request that ends or transfers a call the Voicebot applet holds, so a
gateway that tried would be refused here as there (405), and it checks Basic auth (the API key
and token) as Exotel does.

The gateway sends it nothing: the carrier-neutral tests use it to show that an Exotel call is
ended by closing its stream, with no REST request at all.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from aiohttp import web

from tests.fakes import Recorded, record


@dataclass
class FakeExotel:
    account: str
    api_key: str
    api_token: str
    requests: list[Recorded] = field(default_factory=list)

    async def call(self, request: web.Request) -> web.Response:
        self.requests.append(await record(request))
        pair = f"{self.api_key}:{self.api_token}".encode()
        if request.match_info["account"] != self.account or \
                request.headers.get("Authorization") != "Basic " + base64.b64encode(pair).decode():
            return web.json_response({"RestException": {"Status": 401,
                                                        "Message": "Authentication required"}},
                                     status=401)
        if request.method != "GET":
            return web.json_response({"RestException": {"Status": 405,
                                                        "Message": "Method not allowed"}},
                                     status=405)
        return web.json_response({"Call": {"Sid": request.match_info["call"],
                                           "Status": "in-progress"}})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/v1/Accounts/{account}/Calls/{call}", self.call)
        app.router.add_route("*", "/v1/Accounts/{account}/Calls/{call}.json", self.call)
        return app
