"""Steps an operator takes in the console, for Playwright (a test and benchmark tool): sign
in, wait for something in a page, hold a talk-page call and read what the page measured."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

from playwright.async_api import Page, ViewportSize, async_playwright

from gateway.rig.chromium import chromium_args, chromium_path, mic_wav
from gateway.rig.console_stack import PASSWORD, ConsoleStack, console_stack

# The talk page's own measurements (console/src/audio/levels.js).
FIGURES: Final = "voicegwConsole.talk.voice.log.figures()"


@contextlib.asynccontextmanager
async def console_page(viewport: ViewportSize | None = None
                       ) -> AsyncIterator[tuple[ConsoleStack, Page]]:
    """A console stack (gateway and simulator, in a temporary folder) and a page of headless
    Chromium on it with the fake microphone, for the benchmarks and the screenshots; exits
    if Debian's chromium is not installed."""
    browser_path = chromium_path()
    if browser_path is None:
        raise SystemExit("Debian's chromium is not installed (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ.setdefault("VOICEGW_FRONT_DESK_DB", str(work / "front_desk.sqlite3"))
        mic = mic_wav(work / "caller.wav")
        async with console_stack(work) as stack, async_playwright() as p:
            browser = await p.chromium.launch(executable_path=browser_path,
                                              args=chromium_args(mic))
            try:
                context = await browser.new_context(base_url=stack.base, viewport=viewport)
                yield stack, await context.new_page()
            finally:
                await browser.close()


async def until(page: Page, condition: str, timeout_s: float = 30.0) -> Any:
    """Wait in the page until the JavaScript expression ``condition`` is truthy; its value.

    (Playwright's wait_for_function evaluates strings with eval, which the console's CSP
    rightly refuses; a function handed to evaluate is not a string the page evaluates.)"""
    waiting = page.evaluate(f"""() => new Promise((resolve) => {{
        const check = () => {{
            const v = ({condition});
            if (v) {{ clearInterval(t); resolve(v); }}
        }};
        const t = setInterval(check, 20);
        check();
    }})""")
    return await asyncio.wait_for(waiting, timeout_s)


async def sign_in(page: Page, password: str = PASSWORD) -> None:
    await page.goto("/console/")
    await page.fill("#password", password)
    await page.click("button[type=submit]")


async def talk(page: Page, agent: str, fmt: str = "pcm16", replies: int = 2) -> dict[str, Any]:
    """On the talk page (signed in): call ``agent``, let the fake microphone speak until
    ``replies`` replies have followed the caller's speech, hang up; the page's figures."""
    await page.goto("/console/talk")
    await page.select_option("#agent", agent)
    await page.check(f"#format-{fmt}")
    await page.click("#start")
    await until(page, "document.querySelector('#hangup').disabled === false")
    await until(page, f"{FIGURES}.speech_end_to_reply_ms.length >= {replies}")
    figures: dict[str, Any] = await page.evaluate(FIGURES)
    await page.click("#hangup")
    await until(page, "document.querySelector('#talk-status').textContent"
                      ".startsWith('Call ended')")
    return figures
