"""Shared by the console tests: a cheap password hash, a console auth, cookie handling."""

from __future__ import annotations

from http.cookies import SimpleCookie
from typing import Final

import argon2

from gateway.console.auth import COOKIE, ConsoleAuth
from gateway.console.throttle import SignInThrottle

PASSWORD: Final = "correct horse battery staple"
TOKEN: Final = "t0ken-" + "x" * 40
KEY: Final = b"k" * 32
# The same algorithm (argon2id) with the least work, so a test's sign-ins cost microseconds.
HASH: Final = argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)


class Clock:
    """A clock the test moves: the throttle's waits pass without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_auth(clock: Clock | None = None, *, password_hash: str | None = HASH,
              token: str | None = TOKEN) -> ConsoleAuth:
    return ConsoleAuth(password_hash=password_hash, token=token, key=KEY,
                       throttle=SignInThrottle(), clock=clock or Clock())


def session_cookie(set_cookie: str) -> tuple[str, dict[str, str | bool]]:
    """The console cookie's value and its attributes, from a Set-Cookie header."""
    jar: SimpleCookie = SimpleCookie()
    jar.load(set_cookie)
    morsel = jar[COOKIE]
    attrs: dict[str, str | bool] = {k.lower(): v for k, v in morsel.items() if v}
    return morsel.value, attrs
