"""A fake of Telnyx's Call Control commands (``POST /v2/calls/{call_control_id}/actions/...``)
and of its TeXML Calls API (``POST /v2/texml/Accounts/{account_sid}/Calls``) on loopback.

It checks the Bearer API key as Telnyx does (401 with Telnyx's ``errors`` list otherwise),
takes JSON bodies only, requires ``to`` on a transfer, and answers each request with the next
status in ``script`` (then 200), in Telnyx's shapes: ``{"data": {"result": "ok"}}``, and for
a call that has ended, 422 with code 90018. A new call needs a JSON body with
``ApplicationSid``, ``To`` and ``From`` (422 otherwise), and is answered with its
``call_sid``. A TeXML call update (``POST /v2/texml/Accounts/{account_sid}/Calls/{call_sid}``,
JSON as Telnyx's SDK sends it, or a form) takes ``Status`` ``completed``, a ``Url`` or inline
``Texml``; given a network, ``Texml`` holding a ``<Conference>`` joins the call to it (a warm
transfer's join). Every request is recorded; placed calls in ``placed`` too.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from gateway.faults import RetryPolicy
from gateway.rest.telnyx import TelnyxRest, TexmlApp
from gateway.rig.rest_fakes import (
    Network,
    Recorded,
    Script,
    record,
    serving,
    xml_conference,
)

NO_WAIT = RetryPolicy(attempts=4, base_s=0.0, cap_s=0.0)
ACTIONS = frozenset({"hangup", "transfer"})


def errors(status: int, code: str, title: str, detail: str) -> web.Response:
    return web.json_response({"errors": [{"code": code, "title": title, "detail": detail}]},
                             status=status)


@dataclass
class FakeTelnyx:
    api_key: str
    script: Script = field(default_factory=Script)
    requests: list[Recorded] = field(default_factory=list)
    placed: list[Recorded] = field(default_factory=list)
    network: Network | None = None

    async def create_call(self, request: web.Request) -> web.Response:
        self.requests.append(recorded := await record(request))
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return errors(401, "10009", "Authentication failed",
                          "The API key provided is not valid.")
        body: Any = recorded.json
        if recorded.content_type != "application/json" or not isinstance(body, dict):
            return errors(400, "10015", "Bad Request", "The body must be a JSON object.")
        missing = [k for k in ("ApplicationSid", "To", "From") if not body.get(k)]
        if missing:
            return errors(422, "10032", "Missing required parameter",
                          f"The '{missing[0]}' parameter is required.")
        status = self.script.next()
        if status != 200:
            return errors(status, "10007", "Unexpected error", "An unexpected error occurred.")
        self.placed.append(recorded)
        sid = f"v3:{uuid.uuid4().hex}"
        if self.network is not None:
            self.network.placed(sid, recorded)
        return web.json_response({"call_sid": sid, "from": body["From"],
                                  "to": body["To"], "status": "queued"})

    async def command(self, request: web.Request) -> web.Response:
        self.requests.append(recorded := await record(request))
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return errors(401, "10009", "Authentication failed",
                          "The API key provided is not valid.")
        if request.match_info["action"] not in ACTIONS:
            return errors(404, "10005", "Resource not found", "No such command.")
        body: Any = recorded.json
        if recorded.content_type != "application/json" or not isinstance(body, dict):
            return errors(400, "10015", "Bad Request", "The body must be a JSON object.")
        if request.match_info["action"] == "transfer" and not body.get("to"):
            return errors(422, "10032", "Missing required parameter",
                          "The 'to' parameter is required.")
        status = self.script.next()
        if status == 200 and self.network is not None \
                and request.match_info["action"] == "hangup" \
                and not self.network.hang_up(request.match_info["call"]):
            status = 422
        if status == 200:
            return web.json_response({"data": {"result": "ok"}})
        if status == 422:
            return errors(422, "90018", "Call has already ended",
                          "This call is no longer active and can't receive commands.")
        if status == 404:
            return errors(404, "10005", "Resource not found", "The call was not found.")
        return errors(status, "10007", "Unexpected error", "An unexpected error occurred.")

    async def update_call(self, request: web.Request) -> web.Response:
        self.requests.append(recorded := await record(request))
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return errors(401, "10009", "Authentication failed",
                          "The API key provided is not valid.")
        body: Any = recorded.json if recorded.json is not None else recorded.form
        if not isinstance(body, dict) or not any(body.get(k) for k in ("Status", "Url",
                                                                        "Texml")):
            return errors(422, "10032", "Missing required parameter",
                          "One of 'Status', 'Url' or 'Texml' is required.")
        status = self.script.next()
        call = request.match_info["call"]
        room = xml_conference(str(body.get("Texml", "")))
        if status == 200 and self.network is not None and (
                (body.get("Status") == "completed" and not self.network.hang_up(call))
                or (room is not None and not self.network.join(call, room))):
            status = 404
        if status == 200:
            return web.json_response({"account_sid": request.match_info["account"],
                                      "sid": call, "status": "in-progress"})
        if status == 404:
            return errors(404, "10005", "Resource not found", "The call was not found.")
        return errors(status, "10007", "Unexpected error", "An unexpected error occurred.")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v2/texml/Accounts/{account}/Calls/{call}", self.update_call)
        app.router.add_post("/v2/calls/{call}/actions/{action}", self.command)
        app.router.add_post("/v2/texml/Accounts/{account}/Calls", self.create_call)
        return app


@contextlib.asynccontextmanager
async def fake_telnyx(api_key: str, texml: TexmlApp | None = None,
                      ) -> AsyncIterator[tuple[FakeTelnyx, TelnyxRest, str]]:
    """The fake, the gateway's REST client pointed at it, and the fake's base URL."""
    fake = FakeTelnyx(api_key)
    async with serving(fake.app()) as url:
        rest = TelnyxRest(api_key, base_url=url, texml=texml, retry=NO_WAIT)
        try:
            yield fake, rest, url
        finally:
            await rest.aclose()
