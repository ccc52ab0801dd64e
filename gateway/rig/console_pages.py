"""Steps an operator takes in the console, for Playwright (a test and benchmark tool): sign
in, wait for something in a page, hold a talk-page call and read what the page measured."""

from __future__ import annotations

import asyncio
from typing import Any, Final

from playwright.async_api import Page

from gateway.rig.console_stack import PASSWORD

# The talk page's own measurements (console/src/audio/levels.js).
FIGURES: Final = "voicegwConsole.talk.voice.log.figures()"


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
