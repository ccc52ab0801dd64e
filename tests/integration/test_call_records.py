"""Call records through real sockets: a whole call, and a call whose task dies mid-call."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from gateway.bridge_config import CallServices
from gateway.config import Settings, custom_endpoint
from gateway.rig.phone import When, place_call
from gateway.rig.simulator import SimulatorServer, load_scenario
from gateway.server import Gateway, running
from gateway.store.recorder import CallRecorder
from gateway.store.sqlite import SqliteStore
from tests.dbs import KINDS, new_store
from tests.integration.test_call import SPEED, _say, _scenario


@pytest.mark.parametrize("kind", KINDS)
async def test_a_whole_call_is_on_record(kind: str, tmp_path: Path) -> None:
    script = [_say("caller_book_table", When.START, 300),
              _say("caller_barge_in", When.BARGE_IN, 2000),
              _say("caller_goodbye", When.AFTER_REPLY, 600)]
    async with new_store(kind, tmp_path, opened=False) as store:
        recorder = CallRecorder(store)
        async with SimulatorServer(load_scenario(_scenario(tmp_path))) as sim:
            gateway = Gateway(Settings(endpoint=custom_endpoint(sim.url, "test-model")),
                              services=CallServices(observers=(recorder,)))
            async with running(gateway) as port:  # starts the recorder; closing flushes it
                result = await place_call(f"ws://127.0.0.1:{port}/media", script,
                                          speed=SPEED,
                                          parameters={"From": "+15550100", "To": "+15550199"})
        await store.open()  # the recorder closed its connection; read with a new one
        record = await store.get_call(result.call_sid)
    summary = gateway.finished[-1]
    assert record is not None
    assert record.end_reason == "caller hung up" and record.ended_at is not None
    assert record.caller == "+15550100" and record.dialled == "+15550199"
    assert record.agent == "assistant"
    assert record.frames_in == result.frames_sent
    assert record.frames_out == result.media_received
    assert record.frames_dropped == 0
    assert record.interruptions == 1
    assert record.live_reconnects == 0 and record.longest_gap_ms is None
    assert record.longest_reply_gap_ms == summary.stats.reply_gap_max_ms
    assert record.response_latency_ms == tuple(summary.stats.turn_latency_ms)
    assert len(record.response_latency_ms) == 3
    assert list(record.turns) == summary.transcript
    [cut] = [t for t in record.turns if t.interrupted]
    assert cut.role == "agent" and cut.heard and cut.text.startswith(cut.heard)
    assert [t.role for t in record.turns][:2] == ["caller", "agent"]
    assert recorder.stats.dropped == 0 and recorder.stats.write_errors == 0


async def test_a_call_killed_mid_call_keeps_its_completed_turns(tmp_path: Path) -> None:
    script = [_say("caller_book_table", When.START, 300),
              _say("caller_goodbye", When.AFTER_REPLY, 600)]
    path = tmp_path / "calls.db"
    recorder = CallRecorder(SqliteStore(path))

    def first_turn_written() -> bool:
        r = recorder.last_written
        return r is not None and any(t.role == "agent" for t in r.turns)

    async with SimulatorServer(load_scenario(_scenario(tmp_path))) as sim:
        gateway = Gateway(Settings(endpoint=custom_endpoint(sim.url, "test-model")),
                          services=CallServices(observers=(recorder,)))
        async with running(gateway) as port:
            phone = asyncio.create_task(place_call(f"ws://127.0.0.1:{port}/media", script,
                                                   speed=SPEED))
            async with asyncio.timeout(30):
                await recorder.wait_until(first_turn_written)
            # The call's task dies as in a crash: no clean end, no call_ended for the record.
            [task] = gateway.calls
            task.cancel()
            with contextlib.suppress(Exception):
                await phone
            # Read while the gateway still runs (no flush at close has happened): what is
            # there is what a killed process would have left.
            reader = SqliteStore(path, create=False)
            await reader.open()
            try:
                [listed] = await reader.list_calls(5)
                record = await reader.get_call(listed.call_sid)
            finally:
                await reader.aclose()
    assert record is not None
    assert record.ended_at is None and record.end_reason is None and not listed.ended
    assert [t.role for t in record.turns][:2] == ["caller", "agent"]
    assert record.turns[1].text and not record.turns[1].interrupted
    assert len(record.response_latency_ms) >= 1
    assert record.frames_in > 0
