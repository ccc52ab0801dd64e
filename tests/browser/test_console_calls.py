"""A phone call seen from the console: on the live-calls page while it runs (duration ticking,
who is speaking) and on its live page (transcript growing), then, once over, its record's
page: the recording plays and seeks from the waveform and from a transcript line."""

from __future__ import annotations

import asyncio

import pytest
from playwright.async_api import Page, expect

from gateway.rig.console_pages import sign_in, until
from gateway.rig.console_stack import AGENT, ConsoleStack

SPEED = 3.0  # the phone and the simulator; the page watches in real time
AUDIO = "document.querySelector('#call-audio')"


@pytest.mark.parametrize("stack", [SPEED], indirect=True)
async def test_a_phone_call_live_then_replayed(page: Page, stack: ConsoleStack) -> None:
    await sign_in(page)
    await page.click("a[href='/console/live']")
    await expect(page.locator("#no-live-calls")).to_be_visible()

    phone = asyncio.create_task(stack.phone_call())
    row = page.locator("#live-calls tbody tr")
    await expect(row).to_have_count(1)
    await expect(row.locator("td").nth(1)).to_have_text("twilio")
    await expect(row.locator("td").nth(2)).to_have_text(AGENT)
    await expect(row.locator("td.duration")).not_to_have_text("0:00")  # it ticks
    await expect(row.locator(".speaking.agent")).to_be_visible()  # the greeting

    # Its own page: the transcript grows as the call goes on, then it ends.
    await row.locator("a").click()
    await expect(page.locator("h1")).to_contain_text("Live call")
    await expect(page.locator("ol.transcript li.caller").first).to_contain_text("book a table")
    await expect(page.locator("ul.tools li").first).to_contain_text("check_availability")
    await expect(page.locator("main .status")).to_contain_text("Call ended", timeout=30_000)
    result = await phone
    assert result.call_sid is not None
    await stack.stored(result.call_sid)

    # The record: a waveform to play and seek, the transcript aligned to it.
    await page.click("text=Open its record")
    await expect(page.locator("h1")).to_have_text(f"Call {result.call_sid}")
    await expect(page.locator("#barge-chart")).to_be_visible()
    duration = await until(page, f"{AUDIO}.readyState >= 1 && {AUDIO}.duration")
    assert duration > 5
    box = await page.locator("#waveform").bounding_box()
    assert box is not None
    await page.mouse.click(box["x"] + box["width"] * 0.6, box["y"] + 10)
    at = await page.evaluate(f"{AUDIO}.currentTime")
    assert at == pytest.approx(duration * 0.6, abs=duration / box["width"] * 3)

    # A line of the transcript plays from where it was said.
    line = page.locator("#call-transcript li.caller").nth(1)
    said_at = float(await line.get_attribute("data-at") or "nan")
    await line.locator("button").click()
    now = await until(page, f"!{AUDIO}.paused && {AUDIO}.currentTime > {said_at + 0.2}"
                            f" && {AUDIO}.currentTime")
    assert said_at < now < said_at + 5
    await expect(page.locator("#call-transcript li.agent.interrupted")).to_have_count(1)
