"""A fake of Twilio's Call-update API (``POST .../Accounts/{sid}/Calls/{sid}.json``) on loopback.

It checks Basic auth as Twilio does, answers each request with the next status in ``script``
(then 200), and records every request, so a test can check the path, the credentials and the
form body the gateway sent.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from gateway.rest.twilio import TwilioCredentials, TwilioRest


@dataclass
class FakeTwilio:
    account: str
    user: str  # the API user: the account sid, or an API key sid
    password: str
    script: list[int] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)

    async def update_call(self, request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        expected = "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        self.requests.append({"path": request.path, "form": dict(await request.post()),
                              "auth": request.headers.get("Authorization"),
                              "content_type": request.content_type})
        if request.match_info["account"] != self.account or header != expected:
            return web.json_response({"code": 20003, "message": "Authenticate",
                                      "status": 401}, status=401)
        status = self.script.pop(0) if self.script else 200
        if status == 200:
            return web.json_response({"sid": request.match_info["call"], "status": "completed"})
        if status == 404:
            return web.json_response({"code": 20404, "message": "The requested resource was "
                                      "not found", "status": 404}, status=404)
        return web.json_response({"code": 20500, "message": "Internal Server Error",
                                  "status": status}, status=status)


@contextlib.asynccontextmanager
async def serving(fake: FakeTwilio) -> AsyncIterator[str]:
    """Serve ``fake`` on a free loopback port; yields its base URL."""
    app = web.Application()
    app.router.add_post("/2010-04-01/Accounts/{account}/Calls/{call}.json", fake.update_call)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def fake_twilio(account: str, token: str) -> AsyncIterator[tuple[FakeTwilio, TwilioRest]]:
    """The fake, and the gateway's REST client pointed at it with the account's credentials."""
    fake = FakeTwilio(account, account, token)
    async with serving(fake) as url:
        rest = TwilioRest(TwilioCredentials(account, account, token), base_url=url,
                          backoff_s=0.0)
        try:
            yield fake, rest
        finally:
            await rest.aclose()
