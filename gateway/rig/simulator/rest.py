"""The *simulated* Live server's REST side: ``POST /{version}/auth_tokens`` (test and demo tool).

``websockets`` serves only the GET of a WebSocket upgrade (a request with a body is refused
before any hook sees it), so the token endpoint listens on a port of its own, served by
aiohttp with the same TLS context. Google serves both on one host; a client of the simulator
is given both base URLs (:attr:`SimulatorServer.base_url`, :attr:`SimulatorServer.rest_base_url`).
Authenticated like the Live socket: the API key in ``x-goog-api-key`` (or ``?key=``), checked
against the scenario's ``required_key`` when it has one.
"""

from __future__ import annotations

import hmac
import ssl
from typing import Any

from aiohttp import web

from gateway.jsonio import JSONDecodeError, loads
from gateway.rig.simulator.auth_tokens import PREFIX, AuthTokenStore, TokenRequestError


def _error(status: int, word: str, message: str) -> web.Response:
    return web.json_response(TokenRequestError(status, word, message).body(), status=status)


class TokenEndpoint:
    """The aiohttp app minting into ``store``; started and stopped by the simulator."""

    def __init__(self, store: AuthTokenStore, required_key: str | None) -> None:
        self.store = store
        self.required_key = required_key
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, host: str, port: int, ssl_context: ssl.SSLContext | None) -> int:
        app = web.Application(client_max_size=256 * 1024)
        app.router.add_post("/{version}/auth_tokens", self.create)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=ssl_context)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def create(self, request: web.Request) -> web.Response:
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if not key:
            return _error(403, "PERMISSION_DENIED", "Method doesn't allow unregistered "
                          "callers. Please use an API key.")
        required = self.required_key
        wrong = (not hmac.compare_digest(key.encode(), required.encode())
                 if required is not None else key.startswith(PREFIX))
        if wrong:  # a token cannot mint tokens
            return _error(400, "INVALID_ARGUMENT",
                          "API key not valid. Please pass a valid API key.")
        try:
            body: Any = loads(await request.read())
            return web.json_response(self.store.create(body))
        except JSONDecodeError:
            return _error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        except TokenRequestError as exc:
            return web.json_response(exc.body(), status=exc.status)
