"""Headless Chromium (Debian's, driven by Playwright) against a real gateway with its console
and the simulated Live server on loopback. Under CI a missing Chromium fails these tests;
elsewhere it skips them."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

from gateway.rig.chromium import chromium_args, chromium_path, mic_wav
from gateway.rig.console_stack import ConsoleStack, console_stack

# Each page step waits at most this long (Playwright's default is 30 s).
STEP_MS = 15_000


@pytest.fixture(scope="session")
def chromium() -> str:
    found = chromium_path()
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is not installed (.ci/run installs it)")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    return found


@pytest.fixture(scope="session")
def mic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return mic_wav(tmp_path_factory.mktemp("mic") / "caller.wav")


@pytest.fixture
async def browser(chromium: str, mic: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path=chromium, args=chromium_args(mic))
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def stack(request: pytest.FixtureRequest, tmp_path: Path,
                monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[ConsoleStack]:
    """The gateway and simulator; ``parametrize("stack", [SPEED], indirect=True)`` runs the
    simulator (and phone calls) faster than real time. A browser talks at real time."""
    monkeypatch.setenv("VOICEGW_FRONT_DESK_DB", str(tmp_path / "front_desk.sqlite3"))
    speed = getattr(request, "param", 1.0)
    async with console_stack(tmp_path, speed=speed) as running:
        yield running


@pytest.fixture
async def page(browser: Browser, stack: ConsoleStack) -> AsyncIterator[Page]:
    context = await browser.new_context(base_url=stack.base)
    opened = await context.new_page()
    opened.set_default_timeout(STEP_MS)
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    # Anything the console's strict CSP had to refuse is a bug in the page.
    opened.on("console", lambda m: errors.append(m.text)
              if "Content Security Policy" in m.text else None)
    try:
        yield opened
    finally:
        await context.close()
    assert errors == [], errors  # no script error and no CSP refusal on any page
