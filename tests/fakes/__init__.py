"""Fakes of the carriers' REST APIs, on loopback: each checks the credentials as its carrier
does, records every request, and answers the way the carrier would (a scripted status first,
where a test wants a failure)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass(frozen=True)
class Recorded:
    """One request the gateway made."""

    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, str]
    json: Any
    body: bytes

    @property
    def auth(self) -> str | None:
        return self.headers.get("Authorization")

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";")[0]


async def record(request: web.Request) -> Recorded:
    body = await request.read()
    form: dict[str, str] = {}
    data: Any = None
    if request.content_type == "application/x-www-form-urlencoded":
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
    elif body and request.content_type == "application/json":
        data = json.loads(body)
    return Recorded(request.method, request.path, dict(request.headers), form, data, body)


@dataclass
class Script:
    """HTTP statuses to answer with, in order; 200 (or the carrier's success) once spent."""

    statuses: list[int] = field(default_factory=list)

    def next(self, success: int = 200) -> int:
        return self.statuses.pop(0) if self.statuses else success


@contextlib.asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` on a free loopback port; yields its base URL."""
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()
