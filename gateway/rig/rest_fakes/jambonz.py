"""A fake of jambonz's REST API call updates (``PUT /v1/Accounts/{sid}/Calls/{call_sid}``) on
loopback.

It checks each request as jambonz's API server does: the account's API key as a Bearer token,
for the account in the path, then the JSON body (``call_status`` ``completed`` or
``no-answer``, or a ``call_hook`` with an absolute http(s) URL). It answers with the next status
in ``script`` (then 200) and records every request. A new call (``POST
/v1/Accounts/{sid}/Calls``) needs ``from``, a ``to`` target and a ``call_hook`` or an
``application_sid``, and is answered 201 with its ``sid``. Given a network, a ``call_hook``
has it fetch the new verbs as jambonz would and, where they hold a ``conference``, join the
call to it (a warm transfer's join).
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from gateway.faults import RetryPolicy
from gateway.rest.jambonz import JambonzCredentials, JambonzRest
from gateway.rig.rest_fakes import Network, Recorded, Script, record, serving

NO_WAIT = RetryPolicy(attempts=4, base_s=0.0, cap_s=0.0)


def _hook_url(hook: Any) -> Any:
    return hook.get("url") if isinstance(hook, dict) else hook


def valid_update(body: Any) -> bool:
    """What jambonz's own validator takes (the parts the gateway uses)."""
    if not isinstance(body, dict):
        return False
    status, hook = body.get("call_status"), body.get("call_hook")
    if status is None and hook is None:
        return False
    if status is not None and status not in ("completed", "no-answer"):
        return False
    url = _hook_url(hook)
    return hook is None or (isinstance(url, str) and url.startswith(("http://", "https://")))


def conference_name(document: str) -> str | None:
    """The room a ``conference`` verb in the verbs puts the call into, or None."""
    try:
        verbs = json.loads(document)
    except ValueError:
        return None
    rooms = [v.get("name") for v in verbs if isinstance(v, dict)
             and v.get("verb") == "conference"] if isinstance(verbs, list) else []
    return rooms[0] if rooms and isinstance(rooms[0], str) else None


@dataclass
class FakeJambonz:
    account_sid: str
    api_key: str
    script: Script = field(default_factory=Script)
    requests: list[Recorded] = field(default_factory=list)
    placed: list[Recorded] = field(default_factory=list)
    network: Network | None = None

    async def create_call(self, request: web.Request) -> web.Response:
        self.requests.append(recorded := await record(request))
        if request.headers.get("Authorization") != f"Bearer {self.api_key}" \
                or request.match_info["sid"] != self.account_sid:
            return web.json_response({"msg": "unauthorized"}, status=401)
        body = recorded.json
        if recorded.content_type != "application/json" or not isinstance(body, dict) \
                or not body.get("from") or not isinstance(body.get("to"), dict) \
                or not (body.get("application_sid") or _hook_url(body.get("call_hook"))):
            return web.json_response({"msg": "either call_hook or application_sid required"},
                                     status=400)
        status = self.script.next(201)
        if status != 201:
            return web.json_response({"msg": "a server error"}, status=status)
        self.placed.append(recorded)
        sid = str(uuid.uuid4())
        if self.network is not None:
            self.network.placed(sid, recorded)
        return web.json_response({"sid": sid}, status=201)

    async def update_call(self, request: web.Request) -> web.Response:
        recorded = await record(request)
        self.requests.append(recorded)
        if request.headers.get("Authorization") != f"Bearer {self.api_key}" \
                or request.match_info["sid"] != self.account_sid:
            return web.json_response({"msg": "unauthorized"}, status=401)
        if recorded.content_type != "application/json" or not valid_update(recorded.json):
            return web.json_response({"msg": "calls.update: invalid request"}, status=400)
        status = self.script.next(200)
        if status == 200 and self.network is not None \
                and not await self._play(request.match_info["call_sid"], recorded.json):
            status = 404
        if status == 200:
            return web.json_response({})
        if status == 404:
            return web.Response(status=404, text="Not Found")
        return web.json_response({"msg": "a server error"}, status=status)

    async def _play(self, call: str, body: dict[str, Any]) -> bool:
        """What the update does on the network; False where the call is not up."""
        assert self.network is not None
        if body.get("call_status") in ("completed", "no-answer"):
            return self.network.hang_up(call)
        url = _hook_url(body.get("call_hook"))
        if not url:
            return True
        document = await self.network.fetch(call, url)
        if document is None:
            return False
        room = conference_name(document)
        return room is None or self.network.join(call, room)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_put("/v1/Accounts/{sid}/Calls/{call_sid}", self.update_call)
        app.router.add_post("/v1/Accounts/{sid}/Calls", self.create_call)
        return app


@contextlib.asynccontextmanager
async def fake_jambonz(account_sid: str, api_key: str, application_sid: str | None = None,
                       ) -> AsyncIterator[tuple[FakeJambonz, JambonzRest]]:
    """The fake, and the gateway's REST client pointed at it (no transfer links)."""
    fake = FakeJambonz(account_sid, api_key)
    async with serving(fake.app()) as url:
        rest = JambonzRest(JambonzCredentials(account_sid, api_key, url),
                           application_sid=application_sid, retry=NO_WAIT)
        try:
            yield fake, rest
        finally:
            await rest.aclose()
