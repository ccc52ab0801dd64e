"""Talking to the bundled agent from the talk page in headless Chromium, the microphone a
speech WAV: the reply is heard (a WebAudio analyser on the playback path), the agent's tool
call and the transcript show as they happen, and a barge-in silences the reply at once and
for as long as the caller talks over it. The call leaves a record like a phone call's.
How fast, as the page measures it: benchmarks/console_latency.py."""

from __future__ import annotations

from collections import deque
from typing import Any

from playwright.async_api import Page, expect

from gateway.rig.console_pages import FIGURES, sign_in, until
from gateway.rig.console_stack import AGENT, ConsoleStack


async def test_talk_hear_the_reply_and_barge_in(page: Page, stack: ConsoleStack) -> None:
    await sign_in(page)
    await page.select_option("#agent", AGENT)
    await page.click("#start")
    await expect(page.locator("#talk-status")).to_contain_text("Talking to front_desk")

    # Both replies heard: one after the first utterance, one after the barge-in.
    await until(page, f"{FIGURES}.speech_end_to_reply_ms.length >= 2")
    figures: dict[str, Any] = await page.evaluate(FIGURES)
    talk: dict[str, Any] = await page.evaluate("""({
        frames: voicegwConsole.talk.voice.framesSent,
        marks: voicegwConsole.talk.marksEchoed,
        reply: voicegwConsole.talk.replyBytes,
        rates: [voicegwConsole.talk.voice.in.sampleRate, voicegwConsole.talk.voice.out.sampleRate],
    })""")
    assert talk["rates"] == [16000, 24000]  # wide-band both ways
    assert talk["frames"] > 300 and talk["reply"] > 24000 * 2  # 6 s up, over a second down
    assert talk["marks"] > 0  # echoed as their audio played

    # The barge-in: one clear, after which the page's output went silent (at once: the
    # jitter buffer was dropped, not played out) and stayed so while the caller talked on.
    assert figures["clears"] == 1
    assert len(figures["clear_to_silence_ms"]) == 1
    assert len(figures["barge_in_to_silence_ms"]) == 1
    assert figures["reply_while_barging_in_ms"] == [0]

    # What was said, as it happened, and the tool the agent really called.
    caller = page.locator("ol.transcript li.caller")
    await expect(caller.nth(0)).to_contain_text("book a table for two")
    await expect(caller.nth(1)).to_contain_text("can we make it eight")
    cut = page.locator("ol.transcript li.agent.interrupted")
    await expect(cut).to_have_count(1)
    await expect(cut).to_contain_text("Of course")
    tool = page.locator("ul.tools li").first
    await expect(tool).to_contain_text("check_availability(")
    await expect(tool).to_have_class("tool ok")

    await page.click("#hangup")
    await expect(page.locator("#talk-status")).to_contain_text("Call ended")
    # A record like any call's, carrier "browser".
    listed = await page.evaluate(
        "async () => (await fetch('/console/api/calls?carrier=browser')).json()")
    assert listed["total"] == 1 and listed["calls"][0]["agent"] == AGENT


async def test_direct_to_the_model_with_an_ephemeral_token(page: Page,
                                                           stack: ConsoleStack) -> None:
    """The second way to talk: the page gets a one-use token from POST /v1/tokens and talks
    to the (simulated) Live API itself; labelled as bypassing the gateway's tools."""
    await sign_in(page)
    await page.check("#mode-direct")
    await expect(page.locator(".warning")).to_contain_text("tools are not run")
    await page.click("#start")
    await expect(page.locator("#talk-status")).to_contain_text("Talking to the model directly")
    await until(page, f"{FIGURES}.speech_end_to_reply_ms.length >= 1")
    await expect(page.locator("ol.transcript li.agent").first).to_contain_text("Hello")
    await page.click("#hangup")
    await expect(page.locator("#talk-status")).to_contain_text("Call ended")
    # The model was reached without the gateway's bridge: no call, no record.
    assert stack.gateway.finished == deque()
    [session] = stack.sim.sessions
    assert session.path.endswith("BidiGenerateContentConstrained")
    assert "audio" in session.sent
