"""Ephemeral auth tokens of the *simulated* Live server (test and demo tooling). Pure.

What the service documents, and this store enforces:

* ``POST /v1alpha/auth_tokens`` (authenticated by the API key) mints a token named
  ``auth_tokens/...``; ``uses`` (default 1, 0 = unlimited), ``expireTime`` (default 30 min)
  and ``newSessionExpireTime`` (default 60 s) are optional, each time less than 20 h ahead.
  ``bidiGenerateContentSetup`` locks the setup of the sessions the token opens: with a
  ``fieldMask`` only the fields it names, without one the whole setup.
* ``BidiGenerateContentConstrained`` takes only a token. A new session needs a token that is
  known, unexpired, inside its new-session window and not used up; it takes one use. A session
  that resumes (its handle is one this server issued) takes none, as the docs say, and we let
  it past the new-session window too: resuming is not a new session (an inference, the docs do
  not say). Messages after ``expireTime`` are refused.
* Locked fields cannot be overridden: the token's values replace the client's. The SDK's
  documentation says such a change "will be ignored by the API", so the session goes on with
  the locked values rather than being refused. A resumption handle is session state, not
  configuration, so the client's ``sessionResumption`` always stands.

The store is bounded: expired tokens are forgotten as new ones are minted, and past
``max_tokens`` live ones a mint is refused (429) rather than any forgotten early.
"""

from __future__ import annotations

import copy
import enum
import heapq
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from gateway.rig.simulator.protocol import get, snake

PREFIX: Final = "auth_tokens/"
DEFAULT_EXPIRE_S: Final = 30 * 60.0
DEFAULT_NEW_SESSION_S: Final = 60.0
MAX_AHEAD_S: Final = 20 * 3600.0
MAX_TOKENS: Final = 10_000
_FIELDS: Final = frozenset({"uses", "expireTime", "newSessionExpireTime",
                            "bidiGenerateContentSetup", "fieldMask", "name"})
_CAMEL: Final = re.compile(r"_([a-z])")


class Refusal(enum.Enum):
    """Why a constrained session or message is refused (each closes the socket with 1007)."""

    MALFORMED = ("Missing or malformed auth token. Pass an auth_tokens/ name in the "
                 "access_token query parameter.")
    EXPIRED = "Auth token expired."
    NO_NEW_SESSIONS = "Auth token no longer accepts new sessions."
    USED_UP = "Auth token has no uses left."


class TokenRequestError(Exception):
    """A refused mint: HTTP status, the service's status word and its message."""

    def __init__(self, status: int, word: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.word = word

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.status, "message": str(self), "status": self.word}}


def _invalid(message: str) -> TokenRequestError:
    return TokenRequestError(400, "INVALID_ARGUMENT", message)


@dataclass(slots=True)
class IssuedToken:
    name: str
    expire_at: float  # epoch seconds
    new_sessions_until: float
    uses: int  # 0: unlimited
    setup: dict[str, Any] | None  # the locked setup (camelCase as sent)
    field_mask: tuple[str, ...] | None  # None with a setup: all of it is locked
    used: int = 0

    def effective_setup(self, client: Mapping[str, Any]) -> dict[str, Any]:
        """The setup a session runs with: the client's, with the locked fields the token's."""
        if self.setup is None:
            return dict(client)
        if self.field_mask is None:
            out = copy.deepcopy(self.setup)
            out.setdefault("model", client.get("model"))
            resumption = get(client, "sessionResumption")
            _pop(out, "sessionResumption")
            if resumption is not None:
                out["sessionResumption"] = resumption
            return out
        out = copy.deepcopy(dict(client))
        for path in self.field_mask:
            _lock(out, self.setup, path.split("."))
        return out


def _pop(obj: dict[str, Any], camel: str) -> None:
    obj.pop(camel, None)
    obj.pop(snake(camel), None)


def _lock(out: dict[str, Any], locked: Mapping[str, Any], path: list[str]) -> None:
    """Set ``path`` in ``out`` to its value in ``locked`` (absent there: absent here)."""
    name = _CAMEL.sub(lambda m: m.group(1).upper(), path[0])
    value = get(locked, name)
    if len(path) == 1:
        _pop(out, name)
        if value is not None:
            out[name] = copy.deepcopy(value)
        return
    inner = get(out, name)
    if not isinstance(inner, dict):
        inner = {}
    _pop(out, name)
    out[name] = inner
    _lock(inner, value if isinstance(value, Mapping) else {}, path[1:])


def _time(body: Mapping[str, Any], name: str, now: float, default_s: float) -> float:
    value = body.get(name)
    if value is None:
        return now + default_s
    if not isinstance(value, str):
        raise _invalid(f"Invalid value at '{name}': expected an RFC 3339 timestamp")
    try:
        at = datetime.fromisoformat(value.strip())
    except ValueError:
        raise _invalid(f"Invalid value at '{name}' ({value[:40]!r})") from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    seconds = at.timestamp()
    if seconds >= now + MAX_AHEAD_S:
        raise _invalid(f"{name} must be less than 20 hours in the future.")
    return seconds


def _mask(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise _invalid("Invalid value at 'fieldMask': expected a comma-separated string")
    return tuple(i.strip() for i in items if i.strip())


class AuthTokenStore:
    """Every token one simulated server minted; ``clock`` is epoch seconds (tests move it)."""

    def __init__(self, *, clock: Callable[[], float] | None = None,
                 max_tokens: int = MAX_TOKENS) -> None:
        self.clock = clock or time.time
        self.max_tokens = max_tokens
        self._tokens: dict[str, IssuedToken] = {}
        self._expiry: list[tuple[float, str]] = []
        self.requests: list[dict[str, Any]] = []  # bodies of accepted mints, for tests

    def __len__(self) -> int:
        return len(self._tokens)

    def create(self, body: Any) -> dict[str, Any]:
        """Mint from a request body; the answer carries only ``name``, since the service
        marks every other field input-only. Raises :class:`TokenRequestError`."""
        if not isinstance(body, Mapping):
            raise _invalid("Invalid JSON payload received: expected an object")
        unknown = sorted(set(body) - _FIELDS)
        if unknown:
            raise _invalid(f'Invalid JSON payload received. Unknown name "{unknown[0]}"')
        now = self.clock()
        uses = body.get("uses", 1)
        if not isinstance(uses, int) or isinstance(uses, bool) or uses < 0:
            raise _invalid("Invalid value at 'uses': expected a non-negative integer")
        expire_at = _time(body, "expireTime", now, DEFAULT_EXPIRE_S)
        new_until = _time(body, "newSessionExpireTime", now, DEFAULT_NEW_SESSION_S)
        setup = body.get("bidiGenerateContentSetup")
        if setup is not None and not isinstance(setup, Mapping):
            raise _invalid("Invalid value at 'bidiGenerateContentSetup': expected an object")
        self._forget_expired(now)
        if len(self._tokens) >= self.max_tokens:
            raise TokenRequestError(429, "RESOURCE_EXHAUSTED",
                                    "Resource has been exhausted (e.g. check quota).")
        name = PREFIX + secrets.token_urlsafe(32)
        self._tokens[name] = IssuedToken(
            name, expire_at, new_until, uses, copy.deepcopy(dict(setup)) if setup else None,
            _mask(body.get("fieldMask")) if setup else None)
        heapq.heappush(self._expiry, (expire_at, name))
        self.requests.append(dict(body))
        return {"name": name}

    def _forget_expired(self, now: float) -> None:
        while self._expiry and self._expiry[0][0] <= now:
            _, name = heapq.heappop(self._expiry)
            self._tokens.pop(name, None)

    def open_session(self, name: str | None, *, resuming: bool) -> IssuedToken | Refusal:
        """A constrained session starts: the token, its use taken, or why it is refused."""
        token = self._tokens.get(name) if name else None
        if token is None:
            return Refusal.MALFORMED
        now = self.clock()
        if now >= token.expire_at:
            return Refusal.EXPIRED
        if resuming:
            return token
        if now >= token.new_sessions_until:
            return Refusal.NO_NEW_SESSIONS
        if token.uses and token.used >= token.uses:
            return Refusal.USED_UP
        token.used += 1
        return token

    def expired(self, token: IssuedToken) -> bool:
        return self.clock() >= token.expire_at
