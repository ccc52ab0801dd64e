"""A fake of Plivo's Call API (``DELETE``/``POST /v1/Account/{auth_id}/Call/{call_uuid}/``) on
loopback.

It checks Basic auth (Auth ID and Auth Token) and the transfer's body as Plivo does, answers
each request with the next status in ``script`` (then 204 for a hang-up, 202 for a transfer),
and records every request, so a test can check the path, the credentials and the body the
gateway sent. A new call (``POST .../Call/``) needs ``from``, ``to`` and an http(s)
``answer_url`` and is answered 201 with its ``request_uuid``; a request is cancelled with
``DELETE .../Request/{request_uuid}/`` (204, or 404 once it is no longer queued or ringing).
Given a network, a transfer has it fetch the ``aleg_url`` as Plivo would and, where the XML
names a ``<Conference>``, join the call to it (a warm transfer's join).
"""

from __future__ import annotations

import base64
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web

from gateway.carriers.transfer_links import TransferLinks
from gateway.faults import RetryPolicy
from gateway.rest.plivo import PlivoCredentials, PlivoRest
from gateway.rig.rest_fakes import (
    Network,
    Recorded,
    Script,
    record,
    serving,
    xml_conference,
)

NO_WAIT = RetryPolicy(attempts=4, base_s=0.0, cap_s=0.0)
API_ID = "c1d2e3f4-0000-4000-8000-000000000000"


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"api_id": API_ID, "error": message}, status=status)


@dataclass
class FakePlivo:
    auth_id: str
    token: str
    script: Script = field(default_factory=Script)
    requests: list[Recorded] = field(default_factory=list)
    placed: dict[str, Recorded] = field(default_factory=dict)  # by request_uuid
    network: Network | None = None
    live: dict[str, str] = field(default_factory=dict)  # CallUUID -> its request_uuid

    def _authorised(self, request: web.Request, recorded: Recorded) -> bool:
        expected = "Basic " + base64.b64encode(f"{self.auth_id}:{self.token}".encode()).decode()
        return request.match_info["account"] == self.auth_id and recorded.auth == expected

    async def create_call(self, request: web.Request) -> web.Response:
        self.requests.append(recorded := await record(request))
        if not self._authorised(request, recorded):
            return _error(401, "authentication failed")
        body = recorded.json
        if recorded.content_type != "application/json" or not isinstance(body, dict) \
                or not body.get("from") or not body.get("to") \
                or not str(body.get("answer_url", "")).startswith(("https://", "http://")):
            return _error(400, "from, to and answer_url are required")
        status = self.script.next(201)
        if status != 201:
            return _error(status, "server error")
        request_uuid = str(uuid.uuid4())
        self.placed[request_uuid] = recorded
        if self.network is not None:
            self.network.placed(request_uuid, recorded)
        return web.json_response({"api_id": API_ID, "message": "call fired",
                                  "request_uuid": request_uuid}, status=201)

    async def cancel(self, request: web.Request) -> web.Response:
        self.requests.append(recorded := await record(request))
        if not self._authorised(request, recorded):
            return _error(401, "authentication failed")
        request_uuid = request.match_info["request"]
        if request_uuid in self.live.values() or self.placed.pop(request_uuid, None) is None \
                or (self.network is not None and not self.network.hang_up(request_uuid)):
            return _error(404, "not found")  # Plivo cancels only a queued or ringing request
        return web.Response(status=204)

    async def call(self, request: web.Request) -> web.Response:
        recorded = await record(request)
        self.requests.append(recorded)
        expected = "Basic " + base64.b64encode(f"{self.auth_id}:{self.token}".encode()).decode()
        if request.match_info["account"] != self.auth_id or recorded.auth != expected:
            return _error(401, "authentication failed")
        if request.method == "POST":
            body = recorded.json
            if recorded.content_type != "application/json" or not isinstance(body, dict) \
                    or body.get("legs") not in ("aleg", "bleg", "both") \
                    or not str(body.get("aleg_url", "")).startswith(("https://", "http://")):
                return _error(400, "legs and aleg_url are required")
        status = self.script.next(202 if request.method == "POST" else 204)
        if status in (202, 204) and self.network is not None:  # a live call, by its CallUUID
            request_uuid = self.live.get(request.match_info["call"])
            if request_uuid is None or not (
                    self.network.hang_up(request_uuid) if status == 204
                    else await self._redirect(request_uuid, str(recorded.json["aleg_url"]))):
                status = 404
        if status == 204:
            return web.Response(status=204)
        if status == 202:
            return web.json_response({"api_id": API_ID, "message": "call transferred"},
                                     status=202)
        if status == 404:
            return _error(404, "not found")
        return _error(status, "server error")

    async def _redirect(self, request_uuid: str, url: str) -> bool:
        """The call runs the XML at ``url``: a conference joins it; False if it is not up."""
        assert self.network is not None
        document = await self.network.fetch(request_uuid, url)
        if document is None:
            return False
        room = xml_conference(document)
        return room is None or self.network.join(request_uuid, room)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("DELETE", "/v1/Account/{account}/Call/{call}/", self.call)
        app.router.add_route("POST", "/v1/Account/{account}/Call/{call}/", self.call)
        app.router.add_post("/v1/Account/{account}/Call/", self.create_call)
        app.router.add_delete("/v1/Account/{account}/Request/{request}/", self.cancel)
        return app


@contextlib.asynccontextmanager
async def fake_plivo(auth_id: str, token: str, links: TransferLinks | None = None,
                     ) -> AsyncIterator[tuple[FakePlivo, PlivoRest]]:
    """The fake, and the gateway's REST client pointed at it with the account's credentials."""
    fake = FakePlivo(auth_id, token)
    async with serving(fake.app()) as url:
        rest = PlivoRest(PlivoCredentials(auth_id, token), base_url=url, links=links,
                         retry=NO_WAIT)
        try:
            yield fake, rest
        finally:
            await rest.aclose()
