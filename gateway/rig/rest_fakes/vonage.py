"""A fake of Vonage's Voice API call updates (``PUT /v1/calls/{uuid}``) on loopback.

It checks each request's JWT as Vonage does: signed RS256 by the application's private key
(checked with its public key), for this application, unexpired, and never used before (its
``jti``); then the JSON body (``hangup``, or a ``transfer`` to an NCCO). It answers with the
next status in ``script`` (then 204, Vonage's success) and records every request. A new call
(``POST /v1/calls``) needs ``to`` (a list of endpoints), ``from`` and ``answer_url`` (a list)
or an ``ncco``, and is answered 201 with its ``uuid``. Given a network, a transfer to an NCCO
with a ``conversation`` joins the call to it (a warm transfer's join).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from gateway.faults import RetryPolicy
from gateway.rest.vonage import VonageCredentials, VonageRest
from gateway.rig.rest_fakes import Network, Recorded, Script, record, serving

NO_WAIT = RetryPolicy(attempts=4, base_s=0.0, cap_s=0.0)
_ERRORS = "https://developer.nexmo.com/api-errors"


def _problem(status: int, title: str, detail: str) -> web.Response:
    # Vonage's errors are RFC 7807 problem documents.
    return web.json_response({"type": f"{_ERRORS}#{title.lower().replace(' ', '-')}",
                              "title": title, "detail": detail}, status=status)


def conversation_name(ncco: list[Any]) -> str | None:
    """The room a ``conversation`` action in the NCCO puts the call into, or None."""
    rooms = [a.get("name") for a in ncco
             if isinstance(a, dict) and a.get("action") == "conversation"]
    return rooms[0] if rooms and isinstance(rooms[0], str) else None


@dataclass
class FakeVonage:
    application_id: str
    public_key: RSAPublicKey
    script: Script = field(default_factory=Script)
    requests: list[Recorded] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)  # the jti of every token taken
    placed: list[Recorded] = field(default_factory=list)
    network: Network | None = None

    async def create_call(self, request: web.Request) -> web.Response:
        self.requests.append(recorded := await record(request))
        if not self.authorised(request.headers.get("Authorization", "")):
            return _problem(401, "Unauthorized", "You did not provide correct credentials.")
        body = recorded.json
        if recorded.content_type != "application/json" or not isinstance(body, dict) \
                or not isinstance(body.get("to"), list) or not body["to"] \
                or not isinstance(body.get("from"), dict) \
                or not (isinstance(body.get("answer_url"), list) or "ncco" in body):
            return _problem(400, "Bad Request", "The request body did not contain valid JSON")
        status = self.script.next(201)
        if status != 201:
            return _problem(status, "Internal Server Error", "Please try again later")
        self.placed.append(recorded)
        call = str(uuid.uuid4())
        if self.network is not None:
            self.network.placed(call, recorded)
        return web.json_response({"uuid": call, "status": "started",
                                  "direction": "outbound",
                                  "conversation_uuid": f"CON-{uuid.uuid4()}"}, status=201)

    def authorised(self, header: str) -> bool:
        scheme, _, token = header.partition(" ")
        if scheme != "Bearer":
            return False
        try:
            claims: dict[str, Any] = jwt.decode(
                token, self.public_key, algorithms=["RS256"],
                options={"require": ["application_id", "iat", "exp", "jti"]})
        except jwt.PyJWTError:
            return False
        if claims["application_id"] != self.application_id or claims["jti"] in self.seen:
            return False
        self.seen.add(claims["jti"])
        return True

    async def update_call(self, request: web.Request) -> web.Response:
        recorded = await record(request)
        self.requests.append(recorded)
        if not self.authorised(request.headers.get("Authorization", "")):
            return _problem(401, "Unauthorized", "You did not provide correct credentials.")
        body = recorded.json
        action = body.get("action") if isinstance(body, dict) else None
        destination = body.get("destination") if isinstance(body, dict) else None
        if recorded.content_type != "application/json" or action not in ("hangup", "transfer") \
                or (action == "transfer" and not (isinstance(destination, dict)
                                                  and destination.get("type") == "ncco"
                                                  and isinstance(destination.get("ncco"),
                                                                 list))):
            return _problem(400, "Bad Request", "The request body did not contain valid JSON")
        status = self.script.next(204)
        call = request.match_info["uuid"]
        room = conversation_name(destination.get("ncco", [])) \
            if isinstance(destination, dict) else None
        if status == 204 and self.network is not None and (
                (action == "hangup" and not self.network.hang_up(call))
                or (room is not None and not self.network.join(call, room))):
            status = 404
        if status == 204:
            return web.Response(status=204)
        if status == 404:
            return _problem(404, "Not Found",
                            f"Call {request.match_info['uuid']} doesn't exist")
        return _problem(status, "Internal Server Error", "Please try again later")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_put("/v1/calls/{uuid}", self.update_call)
        app.router.add_post("/v1/calls", self.create_call)
        return app


@contextlib.asynccontextmanager
async def fake_vonage(application_id: str, key: RSAPrivateKey
                      ) -> AsyncIterator[tuple[FakeVonage, VonageRest]]:
    """The fake, and the gateway's REST client pointed at it with the application's key."""
    fake = FakeVonage(application_id, key.public_key())
    async with serving(fake.app()) as url:
        rest = VonageRest(VonageCredentials(application_id, key), base_url=url, retry=NO_WAIT)
        try:
            yield fake, rest
        finally:
            await rest.aclose()
