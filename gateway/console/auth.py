"""Who may use the console and the operator-only routes: a signed-in operator or a script.

An operator signs in with the console password (checked against its argon2id hash) and gets a
session: a cookie signed with the console key (itsdangerous), ``HttpOnly``, ``Secure``,
``SameSite=Strict``, with an expiry. Every state change made with that cookie must carry the
session's CSRF token in ``X-CSRF-Token`` and a same-origin ``Origin``; a WebSocket upgrade
with the cookie must carry a same-origin ``Origin`` (a browser cannot add headers to one, and
always sends its page's origin). A script sends ``Authorization: Bearer <token>`` instead and
needs neither: a cross-site page cannot make a browser send that header.

Handlers outside this package take the check as an :data:`Authorize`; a :class:`ConsoleAuth`
is one. Nothing here ever logs or returns the password, the token, the key or a cookie.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

import argon2
import orjson
import structlog
from aiohttp import web
from itsdangerous import BadSignature, URLSafeTimedSerializer
from yarl import URL

from gateway.console.counts import ConsoleCounts, Refusal
from gateway.console.settings import ConsoleSettings
from gateway.console.throttle import SignInThrottle

Authorize = Callable[[web.Request, bool], Awaitable[None]]
"""``await authorize(request, state_change)``: returns for an operator, else raises
``web.HTTPUnauthorized`` (not signed in) or ``web.HTTPForbidden`` (CSRF or Origin wrong)."""

COOKIE: Final = "voicegw_console"
CSRF_HEADER: Final = "X-CSRF-Token"
SESSION_S: Final = 12 * 3600.0
MAX_PASSWORD: Final = 1024  # characters; longer is no password anyone types
VERIFYING: Final = 2  # argon2id checks at once (each takes ~50 ms of CPU and 64 MiB)
SIGNED_OUT_KEPT: Final = 10_000  # signed-out sessions remembered until they expire anyway
_SESSION_SALT: Final = "voicegw.console.session"
_CSRF_SALT: Final = b"voicegw.console.csrf\0"

log = structlog.get_logger("gateway.console")


def refusal(cls: type[web.HTTPException], message: str, **headers: str) -> web.HTTPException:
    """A JSON error the pages can show; ``message`` is fixed text, never request input."""
    return cls(text=orjson.dumps({"error": message}).decode(), content_type="application/json",
               headers=headers or None)


def is_upgrade(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


def _origin_key(url: URL) -> tuple[str, str, int | None]:
    return (url.scheme, (url.host or "").lower(), url.port)


class ConsoleAuth:
    """Sessions, CSRF tokens, Origin checks and the sign-in routes; see the module."""

    def __init__(self, *, password_hash: str | None, token: str | None, key: bytes,
                 session_s: float = SESSION_S, origins: Sequence[str] = (),
                 counts: ConsoleCounts | None = None, throttle: SignInThrottle | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._hash = password_hash
        self._token = token.encode() if token else None
        self._key = key
        self._serializer = URLSafeTimedSerializer(key, salt=_SESSION_SALT)
        self.session_s = session_s
        # Configured origins (VOICEGW_CONSOLE_ORIGIN); without them, the page's origin must be
        # the host the request was sent to.
        self._origins = frozenset(_origin_key(URL(o)) for o in origins)
        self.counts = counts or ConsoleCounts()
        self.throttle = throttle or SignInThrottle()
        self._clock = clock
        self._hasher = argon2.PasswordHasher()
        self._verifying = asyncio.Semaphore(VERIFYING)
        self._signed_out: dict[str, float] = {}  # session id -> when it expires (epoch s)

    @classmethod
    def of(cls, settings: ConsoleSettings) -> ConsoleAuth:
        return cls(
            password_hash=settings.password_hash.reveal() if settings.password_hash else None,
            token=settings.token.reveal() if settings.token else None,
            key=settings.signing_key(), session_s=settings.session_s, origins=settings.origins)

    async def __call__(self, request: web.Request, state_change: bool) -> None:
        await self.check(request, state_change=state_change)

    async def check(self, request: web.Request, *, state_change: bool) -> None:
        """Return for an operator; raise 401 or 403 (see :data:`Authorize`)."""
        header = request.headers.get("Authorization")
        if header is not None:
            # A wrong bearer token is refused outright, never retried as a cookie session.
            if self._bearer_ok(header):
                return
            raise self._refuse("unauthorized")
        sid = self.session(request)
        if sid is None:
            raise self._refuse("unauthorized")
        upgrade = is_upgrade(request)
        if (state_change or upgrade) and not self.same_origin(request):
            raise self._refuse("origin")
        if state_change and not upgrade and not hmac.compare_digest(
                request.headers.get(CSRF_HEADER, "").encode(), self.csrf(sid).encode()):
            raise self._refuse("csrf")

    def _refuse(self, reason: Refusal) -> web.HTTPException:
        self.counts.refused[reason] += 1
        if reason == "unauthorized":
            return refusal(web.HTTPUnauthorized, "sign in first",
                           **{"WWW-Authenticate": 'Bearer realm="voicegw console"'})
        return refusal(web.HTTPForbidden, {"csrf": "missing or wrong CSRF token",
                                           "origin": "cross-site request refused"}[reason])

    def _bearer_ok(self, header: str) -> bool:
        scheme, _, value = header.partition(" ")
        if self._token is None or scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(value.strip().encode(), self._token)

    # -- sessions --------------------------------------------------------------------------

    def session(self, request: web.Request) -> str | None:
        """The id of the valid, unexpired, signed-in session the cookie carries, or None."""
        value = request.cookies.get(COOKIE)
        if not value:
            return None
        try:
            data = self._serializer.loads(value, max_age=math.ceil(self.session_s))
        except BadSignature:  # also an expired one (SignatureExpired)
            return None
        sid = data.get("sid") if isinstance(data, dict) else None
        if not isinstance(sid, str) or sid in self._signed_out:
            return None
        return sid

    def csrf(self, sid: str) -> str:
        """The session's CSRF token: derived from its id with the key, so it needs no store."""
        return hmac.new(self._key, _CSRF_SALT + sid.encode(), hashlib.sha256).hexdigest()

    def same_origin(self, request: web.Request) -> bool:
        origin = request.headers.get("Origin")
        if not origin or origin == "null":
            return False
        try:
            url = URL(origin)
        except ValueError:
            return False
        if self._origins:
            return _origin_key(url) in self._origins
        # https always (a proxy in front may end TLS); http only if the request came so.
        if url.scheme not in ("https", request.scheme):
            return False
        try:
            ours = URL.build(scheme=url.scheme, authority=request.host)
        except ValueError:
            return False
        return _origin_key(url) == _origin_key(ours)

    def _cookie(self, response: web.StreamResponse, value: str, max_age: int) -> None:
        response.set_cookie(COOKIE, value, max_age=max_age, path="/", secure=True,
                            httponly=True, samesite="Strict")

    # -- the routes: GET, POST, DELETE /console/api/session ----------------------------------

    async def get_session(self, request: web.Request) -> web.Response:
        sid = self.session(request)
        if sid is not None:
            return web.json_response({"signed_in": True, "csrf": self.csrf(sid)})
        header = request.headers.get("Authorization")
        return web.json_response({"signed_in": header is not None and self._bearer_ok(header),
                                  "csrf": None})

    async def sign_in(self, request: web.Request) -> web.Response:
        if "Origin" in request.headers and not self.same_origin(request):
            raise self._refuse("origin")
        password = await _password(request)
        client = request.remote or "unknown"
        wait = self.throttle.begin(client, self._clock())
        if wait > 0:
            self.counts.sign_ins["slowed"] += 1
            log.warning("console_sign_in_slowed", remote=client, retry_after_s=math.ceil(wait))
            raise refusal(web.HTTPTooManyRequests, "too many attempts: wait and try again",
                          **{"Retry-After": str(math.ceil(wait))})
        ok = False
        try:
            ok = await self._verify(password)
        finally:
            self.throttle.end(client, self._clock(), ok=ok)
        self.counts.sign_ins["ok" if ok else "wrong"] += 1
        log.info("console_sign_in", outcome="ok" if ok else "wrong", remote=client,
                 failures=self.throttle.failures(client))
        if not ok:
            raise refusal(web.HTTPUnauthorized, "wrong password")
        sid = secrets.token_urlsafe(18)
        response = web.json_response({"signed_in": True, "csrf": self.csrf(sid)})
        self._cookie(response, self._serializer.dumps({"sid": sid}), int(self.session_s))
        return response

    async def sign_out(self, request: web.Request) -> web.Response:
        await self.check(request, state_change=True)
        sid = self.session(request)
        if sid is not None:
            self._forget_signed_out()
            self._signed_out[sid] = time.time() + self.session_s
        response = web.json_response({"signed_in": False, "csrf": None})
        self._cookie(response, "", 0)
        return response

    def _forget_signed_out(self) -> None:
        now = time.time()
        for sid in [s for s, until in self._signed_out.items() if until <= now]:
            del self._signed_out[sid]
        while len(self._signed_out) >= SIGNED_OUT_KEPT:
            del self._signed_out[next(iter(self._signed_out))]

    async def _verify(self, password: str) -> bool:
        if self._hash is None:  # token-only console: no password is right
            return False
        async with self._verifying:
            # argon2id takes tens of ms of CPU on purpose: off the loop that carries calls.
            return await asyncio.to_thread(self._verify_now, self._hash, password)

    def _verify_now(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except argon2.exceptions.VerificationError:  # mismatch included
            return False
        except argon2.exceptions.InvalidHashError:
            log.error("console_password_hash_invalid")
            return False


async def _password(request: web.Request) -> str:
    try:
        body: Any = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        body = None
    password = body.get("password") if isinstance(body, dict) else None
    if not isinstance(password, str) or not 0 < len(password) <= MAX_PASSWORD:
        raise refusal(web.HTTPBadRequest, 'send JSON {"password": "..."}')
    return password
