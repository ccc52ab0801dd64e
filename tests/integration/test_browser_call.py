"""The browser carrier over real loopback sockets: the talk page's peer calls a gateway
bridged to the simulated Live server.

- Each format carries real speech exactly: with ``pcm16`` the model hears the page's 16 kHz
  samples bit for bit and the page gets the model's 24 kHz reply bit for bit; with
  ``mulaw8k`` both go exactly through the 8 kHz mu-law path a phone caller's take.
- The page's socket carries its call's live view (``started``, the transcript and tool calls
  as monitor events, ``ended``), the same a monitor subscription gets; the record says
  ``browser``.
- Only an operator opens one: without the token, with a wrong one or from another origin the
  upgrade is refused before any Live session; an unknown agent or format too; and a gateway
  not given the operator check has no such route at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest

from gateway.audio import AudioFormat, Codec, Resampler, decoder, encoder, frame_bytes
from gateway.bridge_config import BridgeSettings, CallServices
from gateway.caller_processing import LineProcessing
from gateway.carriers.browser import BrowserFormat
from gateway.config import Settings, custom_endpoint
from gateway.live import INPUT_RATE, OUTPUT_RATE
from gateway.registry import AgentRegistry
from gateway.rig.peers import PhonePeer
from gateway.rig.peers.browser import BrowserPeer
from gateway.rig.phone import Speech, Utterance, When, place_call
from gateway.rig.simulator import SimulatorServer, scenario_from_dict
from gateway.server import Gateway, load_prompt, running
from gateway.store.recorder import CallRecorder
from gateway.store.sqlite import SqliteStore
from tests.audio_measure import agent_speech, stream
from tests.cases.browser import TOKEN, operator
from tests.integration.test_carrier_audio import Listening
from tests.integration.test_carrier_calls import CALL, DESK, say
from tests.integration.test_monitor_call import watch

SPEED = 8.0
SAID, REPLY = "agent_goodbye", "agent_moved"  # wideband speech, 2.8 s and 4.9 s


class _Exact(Gateway):
    """The codec and resampler path alone: no echo canceller or noise suppressor, which
    change what the model hears by design."""

    def bridge_settings(self) -> BridgeSettings:
        return dataclasses.replace(super().bridge_settings(),
                                   line_processing=LineProcessing(False, False))


@contextlib.asynccontextmanager
async def page_line(turns: list[dict[str, Any]], tmp_path: Path, *, speed: float = SPEED,
                    **scenario: Any) -> AsyncIterator[tuple[str, SimulatorServer, Gateway]]:
    registry = AgentRegistry(agents={DESK.name: DESK}, default=DESK.name)
    recorder = CallRecorder(SqliteStore(tmp_path / "calls.db"))
    async with SimulatorServer(scenario_from_dict({"speed": speed, **scenario,
                                                   "turns": turns})) as sim:
        gateway = _Exact(Settings(endpoint=custom_endpoint(sim.url, "test-model")),
                         services=CallServices(agents=registry, observers=(recorder,),
                                               unavailable_prompt=load_prompt()),
                         carriers={}, browser=operator())
        async with running(gateway) as port:
            yield f"ws://127.0.0.1:{port}/browser/media", sim, gateway
            await sim.wait_until(lambda: all(s.closed is not None for s in sim.sessions))


@pytest.mark.parametrize("fmt", list(BrowserFormat), ids=lambda f: f.value.wire)
async def test_each_format_carries_speech_exactly_both_ways(fmt: BrowserFormat,
                                                           tmp_path: Path) -> None:
    inbound = fmt.value.inbound
    said = Speech(agent_speech(SAID, inbound.rate), AudioFormat(Codec.L16, inbound.rate))
    page = BrowserPeer(fmt=fmt, agent=DESK.name)
    phone = Listening(page)
    async with page_line([{"reply": REPLY}], tmp_path, silence_ms=1200,
                         keep_audio_s=60) as (url, sim, _):
        result = await place_call(url, [Utterance(said, When.START, 300)], speed=SPEED,
                                  peer=cast(PhonePeer, phone), secret=TOKEN, max_s=60.0)
    [session] = sim.sessions
    assert session.audio_rates == {INPUT_RATE} and session.turns_completed == 1
    assert page.started == {"event": "started", "call_id": result.call_sid, "agent": "desk",
                            "format": fmt.value.describe()}
    reply = agent_speech(REPLY, OUTPUT_RATE)
    model, sent = bytes(session.audio), bytes(result.said)
    if fmt is BrowserFormat.PCM16:
        heard_by_model, heard_by_page = sent, reply  # untouched either way
    else:  # exactly a phone's mu-law path: decode and resample, resample and encode
        heard_by_model = stream(Resampler(8000, INPUT_RATE), decoder(Codec.PCMU)(sent),
                                frame_bytes(8000))
        heard_by_page = encoder(Codec.PCMU)(stream(Resampler(OUTPUT_RATE, 8000), reply,
                                                   frame_bytes(OUTPUT_RATE)))
    # Every sample the gateway read (it may not read the last frame or two, sent as the page
    # hung up), and the whole reply, byte for byte.
    assert len(model) >= len(heard_by_model) - 5 * frame_bytes(INPUT_RATE)
    assert model == heard_by_model[:len(model)]
    assert bytes(phone.replies) == heard_by_page
    assert result.clears == 0 and result.marks_echoed > 0


async def test_the_page_sees_its_call_live_as_a_monitor_does_and_the_record_says_browser(
        tmp_path: Path) -> None:
    script = [say("caller_book_table", When.START, 300),
              say("caller_seven_thirty", dtmf="5"),
              say("caller_barge_in", When.BARGE_IN, 2000),
              say("caller_goodbye")]
    page = BrowserPeer(fmt=BrowserFormat.MULAW8K)
    async with page_line(CALL, tmp_path, speed=4.0) as (url, sim, gateway):
        watcher = asyncio.create_task(watch(gateway.monitor))
        result = await place_call(url, script, speed=4.0, peer=page, secret=TOKEN,
                                  tail_ms=10_000, max_s=60.0)
        _, watched = await watcher
    [summary] = gateway.finished
    assert summary.carrier == "browser" and summary.call_sid == result.call_sid
    assert (summary.caller, summary.callee) == (None, None)
    # The barge-in: one clear, and the page stopped hearing the reply.
    assert result.clears == 1 and len(result.barge_in_ms) == 1
    assert "The caller pressed 5." in sim.sessions[0].texts
    assert page.ended == {"event": "ended", "end_kind": "agent_ended",
                          "end_reason": summary.end.detail}
    # The page's socket carried the call's own monitor stream, as a subscription saw it.
    kinds = {"transcript", "tool_call", "tool_result"}
    on_page = [e for e in page.monitor if e["type"] in kinds]
    assert on_page == [e for e in watched if e["type"] in kinds]
    assert {e["call_id"] for e in on_page} == {result.call_sid}
    last: dict[int, dict[str, Any]] = {}
    for e in on_page:
        if e["type"] == "transcript":
            last[e["line"]] = e
    assert [(e["role"], e["text"], e["interrupted"]) for e in last.values()] == [
        (t.role, t.text, t.interrupted) for t in summary.transcript]
    assert any(e["interrupted"] for e in last.values())
    assert [(e["type"], e["id"]) for e in on_page if e["type"] != "transcript"] == [
        ("tool_call", "end-1"), ("tool_result", "end-1")]
    # The record, as stored.
    store = SqliteStore(tmp_path / "calls.db")
    await store.open()
    try:
        record = await store.get_call(result.call_sid)
    finally:
        await store.aclose()
    assert record is not None and record.carrier == "browser"
    assert [t.text for t in record.turns] == [t.text for t in summary.transcript]
    assert [(t.name, t.outcome) for t in record.tool_calls] == [("end_call", "ok")]


async def _upgrade(url: str, headers: dict[str, str]) -> int:
    async with aiohttp.ClientSession() as session:
        try:
            async with session.ws_connect(url, headers=headers) as ws:
                await ws.close()
                return 101
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status


async def test_only_an_operator_opens_a_page_and_nothing_reaches_the_model_before(
        tmp_path: Path) -> None:
    token = {"Authorization": f"Bearer {TOKEN}"}
    async with page_line(CALL, tmp_path) as (url, sim, gateway):
        origin = url.replace("ws://", "http://").split("/browser")[0]
        statuses = [
            await _upgrade(f"{url}/desk", {}),
            await _upgrade(f"{url}/desk", {"Authorization": "Bearer not-the-token"}),
            await _upgrade(f"{url}/desk", {**token, "Origin": "https://elsewhere.example"}),
            await _upgrade(f"{url}/nobody", token),
            await _upgrade(f"{url}/desk?format=opus", token),
        ]
        assert statuses == [401, 401, 403, 404, 400]
        assert sim.sessions == []  # none of them opened a Live session
        assert gateway.counters[("browser", "signature")] == 3
        # The operator's own, from the gateway's own origin, is served.
        page = BrowserPeer(agent="desk")
        result = await place_call(url, [say("caller_goodbye", When.START, 300)],
                                  speed=SPEED, peer=page, secret=TOKEN, max_s=30.0,
                                  headers={"Origin": origin})
        assert page.started is not None and result.media_received > 0


async def test_a_gateway_without_the_operator_check_has_no_browser_route() -> None:
    gateway = Gateway(Settings(endpoint=custom_endpoint("ws://127.0.0.1:9", "test-model")),
                      carriers={})
    async with running(gateway) as port:
        url = f"ws://127.0.0.1:{port}/browser/media/assistant"
        assert await _upgrade(url, {"Authorization": f"Bearer {TOKEN}"}) == 404
