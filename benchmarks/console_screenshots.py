"""Screenshots of each console page from a real run, for the README (docs/screenshots/).

A gateway with the console and the simulated Live server on loopback (as the browser tests
start them); headless Chromium (Debian's, through Playwright) with the fake microphone signs
in, holds a talk-page call with a barge-in, watches three phone calls live, then opens the
call list and one call's record. Everything shown is what that run produced.

Run: .venv/bin/python benchmarks/console_screenshots.py [--out docs/screenshots]
(or `make screenshots`)
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import structlog
from playwright.async_api import Page, ViewportSize

from gateway.rig.console_pages import FIGURES, console_page, until
from gateway.rig.console_stack import AGENT, PASSWORD

VIEWPORT: ViewportSize = {"width": 1280, "height": 860}


async def shoot(page: Page, out: Path, name: str) -> None:
    await page.screenshot(path=str(out / f"{name}.png"), full_page=True)
    print(f"wrote {out / name}.png")


async def run(out: Path) -> None:
    async with console_page(VIEWPORT) as (stack, page):
        await page.goto("/console/")
        await page.wait_for_selector("#password")
        await shoot(page, out, "signin")
        await page.fill("#password", PASSWORD)
        await page.click("button[type=submit]")

        # Talk: the greeting, a question (the agent checks a table), a barge-in.
        await page.select_option("#agent", AGENT)
        await page.click("#start")
        await until(page, "document.querySelector('#hangup').disabled === false")
        await until(page, f"{FIGURES}.speech_end_to_reply_ms.length >= 2")
        await page.wait_for_timeout(1500)  # the reply under way: the meters move
        await shoot(page, out, "talk")
        await page.click("#hangup")
        await until(page, "document.querySelector('#talk-status').textContent"
                          ".startsWith('Call ended')")

        # Live: three phone calls at once, a moment apart.
        await page.click("a[href='/console/live']")
        phones = []
        for _ in range(3):
            phones.append(asyncio.create_task(stack.phone_call()))
            await page.wait_for_timeout(1200)
        await until(page, "document.querySelectorAll('#live-calls tbody tr').length === 3")
        await until(page, "[...document.querySelectorAll('#live-calls tbody tr')]"
                          ".filter((r) => r.lastChild.textContent !== '–').length >= 2",
                    timeout_s=40)  # answered turns: their latencies show
        await shoot(page, out, "live")
        await page.locator("#live-calls tbody tr a").last.click()
        await until(page, "document.querySelectorAll('ol.transcript li.interrupted')"
                          ".length >= 1", timeout_s=40)
        await page.wait_for_timeout(1000)
        await shoot(page, out, "live-call")
        results = await asyncio.gather(*phones)
        for r in results:
            assert r.call_sid is not None
            await stack.stored(r.call_sid)

        await page.click("a[href='/console/calls']")
        await page.wait_for_selector("#call-results table")
        await shoot(page, out, "calls")
        sid = results[0].call_sid
        await page.goto(f"/console/calls/{sid}")
        await page.wait_for_selector("#barge-chart")
        await until(page, "document.querySelector('#call-audio').readyState >= 1")
        box = await page.locator("#waveform").bounding_box()
        assert box is not None
        await page.mouse.click(box["x"] + box["width"] * 0.42, box["y"] + 10)
        await shoot(page, out, "call")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    asyncio.run(run(args.out))


if __name__ == "__main__":
    main()
