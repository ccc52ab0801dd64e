"""The console's JSON API over the call records and agents: every route is operator-only.

Phone numbers leave masked (``+1•••••4567``) unless the operator asks with ``?numbers=1``;
recordings are served only from the recordings folder, by call id, with Range support (aiohttp's
``FileResponse``) so a page can seek.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import orjson
import structlog
from aiohttp import web

from gateway.console.auth import ConsoleAuth, refusal
from gateway.registry import AgentRegistry
from gateway.store.base import CallStore, StoreError
from gateway.store.model import CallQuery
from gateway.store.report import listing_data, record_data

MAX_PER_PAGE: Final = 200
DESCRIPTION_CHARS: Final = 160
BULLETS: Final = "•••••"  # always five, so the mask does not tell the number's length
# A call id fit to name a file: what carriers use (letters, digits, - _ . :), no dot first.
_SAFE_ID: Final = re.compile(r"[A-Za-z0-9_\-:][A-Za-z0-9_\-.:]{0,127}")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
log = structlog.get_logger("gateway.console")


def mask(number: str | None) -> str | None:
    """``+15551234567`` as ``+1•••••4567``: the country's first digit and the last four."""
    if not number:
        return number
    if len(number) < 8:  # an extension or a short name: only its last two
        return BULLETS + number[-2:] if len(number) > 4 else BULLETS
    head = number[:2] if number.startswith("+") else ""
    return head + BULLETS + number[-4:]


def _whole(number: str | None) -> str | None:
    return number


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status,
                        content_type="application/json")


class Api:
    """The handlers; each checks the operator first."""

    def __init__(self, auth: ConsoleAuth, *, agents: AgentRegistry | None,
                 store: CallStore | None, recordings: Path) -> None:
        self.auth = auth
        self.agents = agents
        self.store = store
        self.recordings = recordings

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/api/agents", self._operator(self.list_agents))
        app.router.add_get("/api/calls", self._operator(self.search_calls))
        app.router.add_get("/api/calls/{sid}", self._operator(self.get_call))
        app.router.add_get("/api/calls/{sid}/recording.wav", self._operator(self.recording))

    def _operator(self, handler: Handler) -> Handler:
        async def checked(request: web.Request) -> web.StreamResponse:
            await self.auth.check(request, state_change=False)
            return await handler(request)

        return checked

    async def list_agents(self, _request: web.Request) -> web.Response:
        agents = self.agents.agents.values() if self.agents is not None else ()
        return json_response([{
            "name": a.name, "voice": a.voice, "tools": sorted(a.all_tools),
            "description": _description(a.instructions)}
            for a in sorted(agents, key=lambda a: a.name)])

    def _store(self) -> CallStore:
        if self.store is None:
            raise refusal(web.HTTPNotFound, "call records are off (VOICEGW_DATABASE=off)")
        return self.store

    async def search_calls(self, request: web.Request) -> web.Response:
        query = parse_query(request.query)
        number = _whole if _numbers(request) else mask
        try:
            page = await self._store().search_calls(query)
        except StoreError as exc:
            raise _unavailable(exc) from None
        return json_response({"calls": [listing_data(c, number) for c in page.calls],
                              "total": page.total, "page": query.page,
                              "per_page": query.per_page})

    async def get_call(self, request: web.Request) -> web.Response:
        sid = request.match_info["sid"]
        try:
            record = await self._store().get_call(sid)
        except StoreError as exc:
            raise _unavailable(exc) from None
        if record is None:
            raise refusal(web.HTTPNotFound, "no such call")
        data = record_data(record, _whole if _numbers(request) else mask)
        data["recording"] = (f"/console/api/calls/{quote(sid, safe='')}/recording.wav"
                             if self._wav(sid) is not None else None)
        return json_response(data)

    async def recording(self, request: web.Request) -> web.StreamResponse:
        path = self._wav(request.match_info["sid"])
        if path is None:
            raise refusal(web.HTTPNotFound, "no recording of this call")
        # FileResponse answers Range (206, Content-Range) and If-Range itself.
        return web.FileResponse(path, headers={"Content-Type": "audio/wav",
                                               "Cache-Control": "private, no-store"})

    def _wav(self, sid: str) -> Path | None:
        """The call's recording, only ever a file directly inside the recordings folder."""
        if not _SAFE_ID.fullmatch(sid):
            return None
        folder = self.recordings.resolve()
        path = (folder / f"{sid}.wav").resolve()  # a link pointing elsewhere resolves out
        if path.parent != folder or not path.is_file():
            return None
        return path


def parse_query(params: Any) -> CallQuery:
    """``?since=ISO&until=ISO&agent=&carrier=&end_kind=&q=&page=&per_page=``; 400 if bad."""
    def text(name: str) -> str | None:
        value = str(params.get(name, "")).strip()
        return value[:200] or None

    def when(name: str) -> datetime | None:
        value = text(name)
        if value is None:
            return None
        try:
            at = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise refusal(web.HTTPBadRequest, f"{name} must be an ISO 8601 time") from None
        return at if at.tzinfo is not None else at.replace(tzinfo=UTC)

    def whole(name: str, default: int, top: int) -> int:
        value = text(name)
        if value is None:
            return default
        if not value.isdigit() or not 1 <= int(value) <= top:
            raise refusal(web.HTTPBadRequest, f"{name} must be a whole number from 1 to {top}")
        return int(value)

    return CallQuery(since=when("since"), until=when("until"), agent=text("agent"),
                     carrier=text("carrier"), end_kind=text("end_kind"), text=text("q"),
                     page=whole("page", 1, 1_000_000),
                     per_page=whole("per_page", 50, MAX_PER_PAGE))


def _numbers(request: web.Request) -> bool:
    return request.query.get("numbers") == "1"


def _unavailable(exc: StoreError) -> web.HTTPException:
    log.warning("console_store_unavailable", error=str(exc))
    return refusal(web.HTTPServiceUnavailable, "the call records cannot be read now")


def _description(instructions: str) -> str:
    first = " ".join(instructions.split())
    if len(first) <= DESCRIPTION_CHARS:
        return first
    return first[: DESCRIPTION_CHARS - 1].rstrip() + "…"
