"""Shared by the console tests: a cheap password hash, a console auth, cookie handling."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Final

import aiohttp
import argon2

from gateway.agent import Agent
from gateway.bridge_config import CallServices
from gateway.config import Secret, Settings, custom_endpoint
from gateway.console.auth import COOKIE, CSRF_HEADER, ConsoleAuth
from gateway.console.settings import ConsoleSettings
from gateway.console.throttle import SignInThrottle
from gateway.monitor import CallMonitor
from gateway.registry import AgentRegistry
from gateway.server import Gateway, running
from gateway.store import CallRecorder
from gateway.store.base import CallStore

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


# -- a whole gateway with its console, over real sockets ------------------------------------

@dataclass
class Served:
    """A running gateway with the console on; ``base`` is where the console is served."""

    gateway: Gateway
    http: aiohttp.ClientSession
    base: str  # http://127.0.0.1:PORT of the console (its own port, or the gateway's)
    main: str  # http://127.0.0.1:PORT of the gateway's webhooks
    store: CallStore | None
    recordings: Path

    @property
    def monitor(self) -> CallMonitor:
        assert self.gateway.console is not None
        return self.gateway.console.live.monitor

    async def sign_in(self) -> dict[str, str]:
        """Headers of a signed-in browser: its cookie, CSRF token and Origin."""
        async with self.http.post(f"{self.base}/console/api/session",
                                  json={"password": PASSWORD}) as r:
            assert r.status == 200, await r.text()
            csrf = (await r.json())["csrf"]
            value, _ = session_cookie(r.headers["Set-Cookie"])
        return {"Cookie": f"{COOKIE}={value}", CSRF_HEADER: csrf, "Origin": self.base}


def console_settings(listen: tuple[str, int] | None = None) -> ConsoleSettings:
    return ConsoleSettings(listen=listen, password_hash=Secret(HASH), token=Secret(TOKEN),
                           key=Secret(KEY.decode()))


@asynccontextmanager
async def served_gateway(tmp_path: Path, *, console: ConsoleSettings | None,
                         store: CallStore | None = None) -> AsyncIterator[Served]:
    recordings = tmp_path / "recordings"
    recordings.mkdir(exist_ok=True)
    settings = Settings(endpoint=custom_endpoint("ws://127.0.0.1:9/live", "m"),
                        recordings_dir=str(recordings))
    agents = {"assistant": Agent(name="assistant", instructions="Answer the caller's "
                                 "questions.\nBe brief."),
              "booker": Agent(name="booker", instructions="Book tables. " * 40, voice="Puck",
                              tools=[book_table])}
    services = CallServices(agents=AgentRegistry(agents=agents),
                            observers=(CallRecorder(store),) if store is not None else ())
    gateway = Gateway(settings, services=services, console=console)
    async with running(gateway) as port, \
            aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        main = f"http://127.0.0.1:{port}"
        own = gateway.console.port if gateway.console is not None else None
        yield Served(gateway, http, f"http://127.0.0.1:{own}" if own else main, main, store,
                     recordings)


def book_table(people: int) -> dict[str, int]:
    """Book a table.

    Args:
        people: How many.
    """
    return {"booked": people}
