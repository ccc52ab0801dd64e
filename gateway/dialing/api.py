"""``/v1/calls``: placing, following and hanging up outbound calls over HTTP (adapter layer).

Off unless ``VOICEGW_API_TOKEN`` is set; every request then carries it as a bearer token,
compared in constant time. Bad input is a 4xx naming the field at fault, in JSON; the token
never appears in a log line or an answer.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Collection

import structlog
from aiohttp import web

from gateway.dialing.model import DialInputError, parse_dial_request
from gateway.dialing.service import DialService
from gateway.errors import CallControlError
from gateway.jsonio import JSONDecodeError, loads
from gateway.store.base import StoreError

MAX_BODY = 64 * 1024
log = structlog.get_logger("gateway.dialing")


class DialApi:
    """``agents``: the names a call may ask for; ``refusal``: why the gateway takes no new
    call now ("draining", "capacity"...), or None."""

    def __init__(self, service: DialService, token: str, agents: Callable[[], Collection[str]],
                 refusal: Callable[[], str | None]) -> None:
        self.service = service
        self._token = ("Bearer " + token).encode()
        self.agents = agents
        self.refusal = refusal

    def add_to(self, app: web.Application) -> None:
        app.router.add_post("/v1/calls", self.place)
        app.router.add_get("/v1/calls/{id}", self.get)
        app.router.add_delete("/v1/calls/{id}", self.hang_up)

    def _check(self, request: web.Request) -> None:
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, self._token):
            raise web.HTTPUnauthorized(text='{"error": "a valid bearer token is required"}',
                                       content_type="application/json",
                                       headers={"WWW-Authenticate": 'Bearer realm="voicegw"'})

    async def place(self, request: web.Request) -> web.Response:
        self._check(request)
        if (refusal := self.refusal()) is not None:
            return web.json_response({"error": f"not placing calls now ({refusal})"},
                                     status=503, headers={"Retry-After": "5"})
        try:
            body = await _json(request)
            dial = parse_dial_request(body, agents=self.agents(),
                                      carriers=self.service.carriers,
                                      default_carrier=self.service.default_carrier,
                                      default_from=self.service.default_from)
            key = request.headers.get("Idempotency-Key")
            record, replayed = await self.service.place(dial, key)
        except DialInputError as exc:
            log.info("dial_request_refused", field=exc.field, error=str(exc))
            return web.json_response(exc.as_json(), status=exc.status)
        except StoreError as exc:  # without its record a call is not placed: nothing lost
            log.error("dial_store_unavailable", error=str(exc))
            return web.json_response({"error": "call records unavailable; try again"},
                                     status=503, headers={"Retry-After": "5"})
        headers = {"Location": f"/v1/calls/{record.id}"}
        if replayed:
            headers["Idempotent-Replayed"] = "true"
        return web.json_response(record.as_json(), status=200 if replayed else 201,
                                 headers=headers)

    async def get(self, request: web.Request) -> web.Response:
        self._check(request)
        record = await self.service.get(request.match_info["id"][:64])
        if record is None:
            return web.json_response({"error": "no such call", "field": "id"}, status=404)
        return web.json_response(record.as_json())

    async def hang_up(self, request: web.Request) -> web.Response:
        self._check(request)
        try:
            record = await self.service.hang_up(request.match_info["id"][:64])
        except CallControlError as exc:
            return web.json_response({"error": f"the carrier refused: {exc}"}, status=502)
        if record is None:
            return web.json_response({"error": "no such call", "field": "id"}, status=404)
        return web.json_response(record.as_json())


async def _json(request: web.Request) -> object:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise DialInputError("body", f"larger than {MAX_BODY} bytes", 413)
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise DialInputError("body", f"larger than {MAX_BODY} bytes", 413)
    try:
        return loads(raw)
    except JSONDecodeError:
        raise DialInputError("body", "not JSON", 400) from None
