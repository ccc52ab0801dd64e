"""``GET /metrics`` over a real socket, during and after a whole call with a barge-in.

The exposition is read back with prometheus_client's own parser, so what is checked is what
Prometheus would store, and the figures must agree with the call's own record.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from gateway.config import Settings, custom_endpoint
from gateway.rig.phone import Utterance, When, load_utterance, place_call
from gateway.rig.simulator import SimulatorServer, load_scenario
from gateway.rig.simulator.speech import speech_dir
from gateway.server import Gateway, running

from .test_call import SPEED, _scenario

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _say(name: str, when: When, delay_ms: int) -> Utterance:
    return Utterance(load_utterance(speech_dir() / f"{name}.wav"), when, delay_ms)


async def _scrape(port: int) -> tuple[str, Samples]:
    async with aiohttp.ClientSession() as http, \
            http.get(f"http://127.0.0.1:{port}/metrics") as resp:
        assert resp.status == 200
        content_type = resp.headers["Content-Type"]
        text = await resp.text()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    return content_type, samples


async def test_metrics_after_a_call_with_a_barge_in(tmp_path: Path) -> None:
    script = [
        _say("caller_book_table", When.START, 300),
        _say("caller_barge_in", When.BARGE_IN, 2000),
        _say("caller_goodbye", When.AFTER_REPLY, 600),
    ]
    async with SimulatorServer(load_scenario(_scenario(tmp_path))) as sim:
        gateway = Gateway(Settings(endpoint=custom_endpoint(sim.url, "test-model")))
        async with running(gateway) as port:
            call = asyncio.create_task(place_call(
                f"ws://127.0.0.1:{port}/media", script, speed=SPEED,
                parameters={"From": "+15550100"}))
            await sim.wait_until(lambda: bool(sim.sessions))  # the call is up
            _, during = await _scrape(port)
            result = await call
            await gateway.wait_idle()
            content_type, after = await _scrape(port)

    def value(name: str, **labels: str) -> float:
        labels = {"carrier": "twilio", **labels} if name.startswith(
            ("voicegw_calls", "voicegw_caller", "voicegw_reply", "voicegw_frames",
             "voicegw_barge", "voicegw_response", "voicegw_inbound", "voicegw_live",
             "voicegw_requests")) else labels
        return after[(name, tuple(sorted(labels.items())))]

    summary = gateway.finished[-1]
    stats = summary.stats
    assert content_type.startswith("text/plain")
    assert during[("voicegw_active_calls", ())] == 1
    assert value("voicegw_active_calls") == 0

    assert value("voicegw_caller_frames_total") == stats.frames_in == result.frames_sent
    assert value("voicegw_reply_frames_total") == stats.media_out == result.media_received
    assert value("voicegw_frames_dropped_total", kind="reply_barge_in") == \
        stats.media_dropped_barge_in
    assert value("voicegw_barge_in_reaction_seconds_count") == 1 == result.clears
    assert value("voicegw_barge_in_reaction_seconds_sum") == stats.barge_in.total
    assert value("voicegw_response_latency_seconds_count") == \
        len(stats.turn_latency_ms) == 3
    assert value("voicegw_inbound_forward_latency_seconds_count") == stats.frames_forwarded
    assert value("voicegw_calls_total", reason="caller_hung_up") == 1
    assert sum(v for (name, _), v in after.items() if name == "voicegw_calls_total") == 1
    assert value("voicegw_live_reconnects_total", kind="swap") == 0
    assert value("voicegw_requests_refused_total", reason="capacity") == 0

    # Buckets are cumulative and end at the count, as Prometheus requires.
    # Every carrier is exported from the start; this call's are Twilio's.
    buckets = [v for (name, labels), v in after.items()
               if name == "voicegw_response_latency_seconds_bucket"
               and ("carrier", "twilio") in labels]
    assert buckets == sorted(buckets) and buckets[-1] == 3
    # No label anywhere carries a sid or a number.
    assert not any("CA" in v or "+1555" in v for (_, labels), _ in after.items()
                   for _, v in labels)


async def test_each_gateway_has_its_own_registry() -> None:
    one, two = (Gateway(Settings(endpoint=custom_endpoint("ws://127.0.0.1:9", "m")))
                for _ in range(2))
    assert one.metrics.registry is not two.metrics.registry
    assert one.metrics in one.services.observers
    assert two.metrics not in one.services.observers
