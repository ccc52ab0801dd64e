"""Fakes of the carriers' REST APIs, on loopback: each checks the credentials as its carrier
does, records every request, and answers the way the carrier would (a scripted status first,
where a test wants a failure). Given a :class:`Network` (:mod:`gateway.rig.dialing`), a fake
hands it every call it accepts and every hang-up, so the call is then played end to end."""

from __future__ import annotations

import contextlib
import html
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

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


class Network(Protocol):
    """What plays the calls a fake API accepts (:mod:`gateway.rig.dialing.network`)."""

    def placed(self, call_id: str, request: Recorded) -> None:
        """The fake accepted ``request`` and named the new call ``call_id``."""

    def hang_up(self, call_id: str) -> bool:
        """End (or cancel) the call; False if no such call is in progress."""

    def join(self, call_id: str, room: str) -> bool:
        """Move the call into conference ``room``; False if no such call is up."""

    async def fetch(self, call_id: str, url: str) -> str | None:
        """The carrier fetches the call's new instructions from ``url`` (a redirect), signed
        as its answer was: the document, or None (the call is not up, or it was refused)."""


# A conference in TwiML, cXML, TeXML or Plivo XML: <Conference ...>room</Conference>.
_CONFERENCE: Final = re.compile(r"<Conference[^>]*>([^<]+)</Conference>")


def xml_conference(document: str) -> str | None:
    """The room an XML document puts the call into, or None."""
    found = _CONFERENCE.search(document)
    return html.unescape(found.group(1)) if found is not None else None


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
