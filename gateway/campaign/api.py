"""The campaign's client of the gateway's own ``/v1/calls`` API.

Not :class:`gateway.rest.http.RestTransport`: that one speaks to carriers (a 404 means the
call is gone, every request logged at info, its own backoff); here every request carries an
idempotency key, a 503's ``Retry-After`` is honoured, a 403 means do-not-call, and a refusal
names the field at fault, which decides whether one contact or the whole campaign is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

import aiohttp

from gateway.dialing.model import AnsweredBy, DialStatus
from gateway.errors import GatewayError
from gateway.log import scrub

DEFAULT_RETRY_S: Final = 5.0
# Fields that belong to one contact: a refusal naming any other is the campaign's fault.
_CONTACT_FIELDS: Final = ("to", "parameters")


@dataclass(frozen=True, slots=True)
class CallState:
    """What ``/v1/calls`` says of one call."""

    id: str
    status: DialStatus
    answered_by: AnsweredBy | None = None
    error: str | None = None

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> CallState:
        answered = body.get("answered_by")
        error = body.get("error")
        return cls(str(body["id"]), DialStatus(str(body["status"])),
                   AnsweredBy(answered) if answered else None,
                   str(error)[:300] if error else None)


class Refused(GatewayError):
    """The gateway refused a request (4xx)."""

    def __init__(self, status: int, field: str | None, message: str) -> None:
        self.status = status
        self.field = field
        super().__init__(f"HTTP {status}: {message}")

    @property
    def do_not_call(self) -> bool:
        return self.status == 403

    @property
    def contact_only(self) -> bool:
        """Whether only this contact is at fault (the campaign can go on)."""
        if self.do_not_call:
            return True
        return self.status in (400, 409, 422) and self.field is not None \
            and self.field.split(".")[0] in _CONTACT_FIELDS


class Unavailable(GatewayError):
    """The gateway cannot take the request now (503, 5xx, unreachable): try again later."""

    def __init__(self, message: str, retry_after_s: float = DEFAULT_RETRY_S) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message)


class CallsApi(Protocol):
    async def place(self, body: Mapping[str, Any], key: str) -> CallState: ...

    async def get(self, dial_id: str) -> CallState: ...


class GatewayCalls:
    """``POST`` and ``GET /v1/calls`` with a bearer token, over one pooled session."""

    def __init__(self, base_url: str, token: str, *, timeout_s: float = 15.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def place(self, body: Mapping[str, Any], key: str) -> CallState:
        return await self._send("POST", "/v1/calls", body,
                                {**self._headers, "Idempotency-Key": key})

    async def get(self, dial_id: str) -> CallState:
        return await self._send("GET", f"/v1/calls/{dial_id}", None, self._headers)

    async def _send(self, method: str, path: str, body: Mapping[str, Any] | None,
                    headers: Mapping[str, str]) -> CallState:
        try:
            async with self._http().request(method, self.base_url + path, json=body,
                                            headers=dict(headers),
                                            allow_redirects=False) as resp:
                data = await _json(resp)
                if resp.status < 300:
                    try:
                        return CallState.of(data)
                    except (KeyError, ValueError) as exc:
                        raise Unavailable(f"{method} {path}: unexpected answer "
                                          f"({type(exc).__name__})") from None
                message = scrub(str(data.get("error") or resp.reason or ""))[:300]
                if resp.status >= 500 or resp.status == 429:
                    raise Unavailable(f"{method} {path}: HTTP {resp.status} {message}",
                                      _retry_after(resp.headers.get("Retry-After")))
                field = data.get("field")
                raise Refused(resp.status, str(field) if field else None, message)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Unavailable(scrub(f"{method} {path}: {type(exc).__name__}: {exc}")[:300]) \
                from None


async def _json(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    try:
        data = await resp.json(content_type=None)
    except (ValueError, aiohttp.ClientError):
        return {}
    return data if isinstance(data, dict) else {}


def _retry_after(value: str | None) -> float:
    try:
        return min(max(float(value), 0.0), 300.0) if value else DEFAULT_RETRY_S
    except ValueError:
        return DEFAULT_RETRY_S
