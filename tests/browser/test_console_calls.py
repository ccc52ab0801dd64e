"""A phone call seen from the console: on the live-calls page while it runs (duration ticking,
who is speaking) and on its live page (transcript growing), then, once over, its record's
page: the recording plays and seeks from the waveform and from a transcript line."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from gateway.rig.console_pages import sign_in, until
from gateway.rig.console_stack import AGENT, ConsoleStack
from gateway.rig.simulator.speech import speech_dir

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


@pytest.mark.parametrize("stack", [SPEED], indirect=True)
async def test_a_call_placed_by_voicegw_call_shows_on_the_live_page(
        page: Page, stack: ConsoleStack, tmp_path: Path) -> None:
    """The operator's own tool, as a separate process: the call is on the live-calls page
    while it runs and gone from it once it ends."""
    await sign_in(page)
    await page.click("a[href='/console/live']")
    await expect(page.locator("#no-live-calls")).to_be_visible()
    wav = speech_dir() / "caller_book_table.wav"
    call = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "call", str(wav),
        "--url", f"ws://127.0.0.1:{stack.port}/twilio/media", "--speed", str(SPEED),
        "--wait", "20", "--out", str(tmp_path / "call.wav"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    row = page.locator("#live-calls tbody tr")
    await expect(row).to_have_count(1)
    await expect(row.locator("td").nth(1)).to_have_text("twilio")
    await expect(row.locator("td").nth(2)).to_have_text(AGENT)
    output, _ = await call.communicate()
    assert call.returncode == 0, output.decode()
    # Gone once the gateway has ended it (its Live session closed, its record written).
    await expect(page.locator("#no-live-calls")).to_be_visible(timeout=30_000)
