"""One HTTP transport for every carrier's REST API: a pooled aiohttp session, the project's
one retry policy (:data:`gateway.faults.REST_RETRY`), and errors that never carry a secret.

Server errors, rate limiting and connection failures are retried with capped exponential
backoff; call-control requests are idempotent (hanging up or redirecting a call twice does no
more harm than once), so a retry cannot do damage. A 404 means the call has already ended
(a carrier that says so otherwise passes its own ``gone`` test: Telnyx answers 422 with its
code 90018). Anything else the carrier refuses raises :class:`CallControlError` with its status
and the carrier's own error code and message, scrubbed of registered secrets.
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
import structlog

from gateway.errors import CallControlError
from gateway.faults import REST_RETRY, RetryPolicy
from gateway.log import scrub

__all__ = ["CallControlError", "Gone", "Reply", "RestTransport", "basic_auth", "created_id",
           "error_code", "not_found"]

_RETRY_STATUS: Final = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: Mapping[str, Any]


# Called before each attempt: the headers that authenticate it (a fresh JWT for Vonage).
Authorise = Callable[[], Mapping[str, str]]


def basic_auth(user: str, secret: str) -> Authorise:
    """HTTP Basic credentials, built once. By hand: aiohttp.BasicAuth is deprecated in newer
    aiohttp, and its replacement does not exist in the older versions we support."""
    pair = base64.b64encode(f"{user}:{secret}".encode()).decode("ascii")
    headers = {"Authorization": "Basic " + pair}
    return lambda: headers


# Whether a refusal (status, body) says the call has already ended.
Gone = Callable[[int, Mapping[str, Any]], bool]


def not_found(status: int, body: Mapping[str, Any]) -> bool:
    return status == 404


class RestTransport:
    """One per carrier client; keeps a connection pool until :meth:`aclose`."""

    def __init__(self, base_url: str, authorise: Authorise, *, carrier: str,
                 timeout_s: float = 10.0, retry: RetryPolicy = REST_RETRY,
                 log: Any = None, gone: Gone = not_found) -> None:
        self.base_url = base_url.rstrip("/")
        self.carrier = carrier
        self._authorise = authorise
        self._gone = gone
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.retry = retry
        self.log = log if log is not None else structlog.get_logger("gateway.rest")
        self._session: aiohttp.ClientSession | None = None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session

    async def request(self, method: str, path: str, *, action: str, call: str,
                      form: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
                      json: Mapping[str, Any] | None = None) -> Reply | None:
        """Send until the carrier accepts (a 2xx :class:`Reply`), says the call is gone
        (``None``, a 404), or refuses (:class:`CallControlError`)."""
        url = self.base_url + path
        problem = ""
        for attempt in range(1, self.retry.attempts + 1):
            try:
                async with self._http().request(
                        method, url, data=_form(form), json=json,
                        headers=dict(self._authorise()), allow_redirects=False) as resp:
                    body = await _body(resp)
                    if resp.status < 300:
                        self.log.info("carrier_call_updated", carrier=self.carrier,
                                      action=action, call=call, attempt=attempt)
                        return Reply(resp.status, body)
                    if self._gone(resp.status, body):
                        self.log.info("carrier_call_gone", carrier=self.carrier, action=action,
                                      call=call)
                        return None
                    problem = scrub(f"HTTP {resp.status}: {_message(body)}"[:300]).strip()
                    if resp.status not in _RETRY_STATUS:
                        raise CallControlError(
                            f"{self.carrier} refused {action} for {call}: {problem}",
                            status=resp.status, code=error_code(body))
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError,
                    TimeoutError) as exc:
                problem = scrub(f"{type(exc).__name__}: {exc}"[:300])
            if attempt < self.retry.attempts:
                delay = self.retry.delay_s(attempt)
                self.log.warning("carrier_retry", carrier=self.carrier, action=action,
                                 call=call, attempt=attempt, problem=problem, retry_in_s=delay)
                await asyncio.sleep(delay)
        raise CallControlError(f"{self.carrier} {action} for {call} failed after "
                               f"{self.retry.attempts} attempts: {problem}")


def _form(form: Mapping[str, str] | Sequence[tuple[str, str]] | None
          ) -> list[tuple[str, str]] | None:
    # Pairs, not a dict: a field may repeat (Twilio's StatusCallbackEvent, one per event).
    if form is None:
        return None
    return list(form.items()) if isinstance(form, Mapping) else list(form)


async def _body(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    try:
        data = await resp.json(content_type=None)
    except (ValueError, aiohttp.ClientError):
        return {}
    return data if isinstance(data, dict) else {}


def error_code(body: Mapping[str, Any]) -> object:
    """The carrier's own error code: ``code``, or Telnyx's ``errors[0].code``."""
    errors = body.get("errors")
    first = errors[0] if isinstance(errors, list) and errors else None
    if body.get("code") is None and isinstance(first, dict):
        return first.get("code")
    return body.get("code")


def _message(body: Mapping[str, Any]) -> str:
    """The carrier's own explanation, from whichever error field it uses: Twilio's
    ``message``, Telnyx's ``errors[0]``, Vonage's ``title``/``detail``, Plivo's ``error``,
    jambonz's ``msg``."""
    errors = body.get("errors")
    first = errors[0] if isinstance(errors, list) and errors else None
    if isinstance(first, dict):
        body = first
    for key in ("message", "detail", "title", "error", "msg"):
        if isinstance(body.get(key), str) and body[key]:
            return str(body[key])[:240]
    return ""


def created_id(reply: Reply | None, carrier: str, pattern: re.Pattern[str],
               *paths: tuple[str, ...]) -> str:
    """The id a carrier gave a call it accepted to place: the first of ``paths`` (keys into
    its JSON answer, ``("data", "call_sid")``) that holds a string ``pattern`` matches.
    :class:`CallControlError` if none does: the call may exist, but it cannot be followed."""
    for path in paths:
        value: Any = reply.body if reply is not None else None
        for key in path:
            value = value.get(key) if isinstance(value, Mapping) else None
        if isinstance(value, str) and pattern.match(value):
            return value
    raise CallControlError(f"{carrier} accepted the call but named no call id",
                           status=reply.status if reply is not None else 404)
