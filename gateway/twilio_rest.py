"""The two Twilio REST calls a voice agent needs: hang up and redirect (transfer).

Both are ``POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json`` with a form body:
``Status=completed`` ends the call, ``Twiml=<Response>...`` replaces what the call is doing
(for a transfer, a ``<Dial>``), which also ends the Media Stream. Credentials are the account's
Auth Token or an API key (``TWILIO_API_KEY``/``TWILIO_API_SECRET``), sent as HTTP Basic auth.

Server errors, rate limiting and connection failures are retried with capped exponential
backoff (updating a call is idempotent, so a retry cannot do harm twice). A 404 means the call
has already ended, which for a hang-up is success. The secret never appears in an exception
or a log line.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final
from xml.sax.saxutils import escape

import aiohttp
import structlog

from gateway.errors import ConfigError, PeerError
from gateway.log import register_secret, scrub

DEFAULT_BASE_URL: Final = "https://api.twilio.com"
_SID: Final = re.compile(r"^[A-Za-z]{2}[A-Za-z0-9]{1,62}$")
_RETRY_STATUS: Final = frozenset({429, 500, 502, 503, 504})


class TwilioRestError(PeerError):
    """Twilio refused a request (4xx other than 404), or kept failing until we gave up."""

    def __init__(self, message: str, *, status: int | None = None,
                 code: int | None = None) -> None:
        self.status = status
        self.code = code  # Twilio's own error code (https://www.twilio.com/docs/api/errors)
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class TwilioCredentials:
    account_sid: str
    username: str  # the AccountSid, or an API key SID (SK...)
    password: str = field(repr=False)  # the Auth Token or the API key secret

    def __post_init__(self) -> None:
        if not _SID.match(self.account_sid):
            raise ConfigError("TWILIO_ACCOUNT_SID does not look like an account SID")
        if not self.username or not self.password:
            raise ConfigError("Twilio credentials need a user name and a secret")
        register_secret(self.password)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TwilioCredentials | None:
        """From ``TWILIO_ACCOUNT_SID`` plus ``TWILIO_AUTH_TOKEN`` or ``TWILIO_API_KEY`` and
        ``TWILIO_API_SECRET``; None when no account is configured (call control disabled)."""
        env = os.environ if env is None else env
        account = env.get("TWILIO_ACCOUNT_SID", "").strip()
        if not account:
            return None
        key, secret = env.get("TWILIO_API_KEY", "").strip(), env.get("TWILIO_API_SECRET", "")
        if key and secret:
            return cls(account, key, secret.strip())
        token = env.get("TWILIO_AUTH_TOKEN", "").strip()
        if not token:
            raise ConfigError("TWILIO_ACCOUNT_SID is set but neither TWILIO_AUTH_TOKEN nor "
                              "TWILIO_API_KEY/TWILIO_API_SECRET is")
        return cls(account, account, token)


def dial_twiml(number: str) -> str:
    """TwiML that connects the call to ``number`` (E.164) or a ``sip:`` address."""
    target = number.strip()
    if not target:
        raise ValueError("empty transfer destination")
    if target.lower().startswith("sip:"):
        return f"<Response><Dial><Sip>{escape(target)}</Sip></Dial></Response>"
    return f"<Response><Dial>{escape(target)}</Dial></Response>"


class TwilioRest:
    """A small async client; one per process (it keeps a connection pool)."""

    def __init__(self, credentials: TwilioCredentials, *, base_url: str = DEFAULT_BASE_URL,
                 timeout_s: float = 10.0, attempts: int = 4, backoff_s: float = 0.5,
                 max_backoff_s: float = 4.0, log: Any = None) -> None:
        if attempts < 1:
            raise ConfigError("attempts must be >= 1")
        self.credentials = credentials
        self.base_url = base_url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.log = log if log is not None else structlog.get_logger("gateway.twilio_rest")
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> TwilioRest:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def hang_up(self, call_sid: str) -> bool:
        """End a call in progress. False if Twilio no longer knows it (already over)."""
        return await self._update_call(call_sid, {"Status": "completed"})

    async def redirect(self, call_sid: str, twiml: str) -> bool:
        """Make the call execute ``twiml`` now. False if the call has already ended."""
        return await self._update_call(call_sid, {"Twiml": twiml})

    async def transfer(self, call_sid: str, number: str) -> bool:
        """Redirect the call to ``<Dial>number</Dial>``."""
        return await self.redirect(call_sid, dial_twiml(number))

    def _url(self, call_sid: str) -> str:
        if not _SID.match(call_sid):
            raise ValueError(f"not a call SID: {call_sid[:40]!r}")
        return (f"{self.base_url}/2010-04-01/Accounts/{self.credentials.account_sid}"
                f"/Calls/{call_sid}.json")

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # Built by hand: aiohttp.BasicAuth is deprecated in newer aiohttp, and its
            # replacement does not exist in the older versions we support.
            pair = f"{self.credentials.username}:{self.credentials.password}".encode()
            auth = "Basic " + base64.b64encode(pair).decode("ascii")
            self._session = aiohttp.ClientSession(headers={"Authorization": auth},
                                                  timeout=self.timeout)
        return self._session

    async def _update_call(self, call_sid: str, form: Mapping[str, str]) -> bool:
        url = self._url(call_sid)
        action = "hang_up" if "Status" in form else "redirect"
        problem = ""
        for attempt in range(1, self.attempts + 1):
            try:
                async with self._http().post(url, data=dict(form), allow_redirects=False) as resp:
                    if resp.status < 300:
                        self.log.info("twilio_call_updated", action=action, call_sid=call_sid,
                                      attempt=attempt)
                        return True
                    if resp.status == 404:
                        self.log.info("twilio_call_gone", action=action, call_sid=call_sid)
                        return False
                    body = await _error_body(resp)
                    text = f"HTTP {resp.status}: {body.get('message', '')}"
                    problem = scrub(text[:300]).strip()
                    if resp.status not in _RETRY_STATUS:
                        raise TwilioRestError(
                            f"Twilio refused {action} for {call_sid}: {problem}",
                            status=resp.status, code=_int(body.get("code")))
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError,
                    TimeoutError) as exc:
                problem = scrub(f"{type(exc).__name__}: {exc}"[:300])
            if attempt < self.attempts:
                delay = min(self.backoff_s * 2 ** (attempt - 1), self.max_backoff_s)
                self.log.warning("twilio_retry", action=action, call_sid=call_sid,
                                 attempt=attempt, problem=problem, retry_in_s=delay)
                await asyncio.sleep(delay)
        raise TwilioRestError(f"Twilio {action} for {call_sid} failed after {self.attempts} "
                              f"attempts: {problem}")


async def _error_body(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    try:
        data = await resp.json(content_type=None)
    except (ValueError, aiohttp.ClientError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if k in ("code", "message", "more_info")}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
