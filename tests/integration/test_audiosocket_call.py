"""Asterisk AudioSocket: whole calls over plain TCP on loopback, against the simulated Live
server, as Asterisk's dialplan would place them.

The phone registers the call over HTTP (as the dialplan's ``CURL()`` would, with Basic
credentials), opens the TCP connection, sends the UUID and streams the caller's speech in 20 ms
messages. There is no clear and no mark: the gateway paces its replies and its own clock says
what the caller heard. Then the refusals, each before any Live session opens.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.audiosocket_server import AudioSocketConfig, registration_auth
from gateway.bridge_config import CallServices
from gateway.carriers.audiosocket import HANGUP_FRAME, Kind, frame, uuid_frame
from gateway.carriers.core import Carrier
from gateway.config import Settings, custom_endpoint
from gateway.ending import EndKind
from gateway.record import CallSummary
from gateway.registry import AgentRegistry
from gateway.rig.peers.audiosocket import AudioSocketPeer
from gateway.rig.peers.registry import test_credentials as credentials_for
from gateway.rig.phone import CallResult, Utterance, When, place_call
from gateway.rig.rest_fakes import serving
from gateway.rig.simulator import SimulatorServer, scenario_from_dict
from gateway.server import Gateway, load_prompt, running
from gateway.store.recorder import CallRecorder
from gateway.store.sqlite import SqliteStore
from tests.integration.test_carrier_audio import _SendsAhead
from tests.integration.test_carrier_calls import CALLEE, CALLER, DESK, say

# Real time: the gateway paces an AudioSocket call's replies by the clock, so a call cannot
# be played faster than its replies last. Hence a short call.
SPEED = 1.0
SHORT: list[dict[str, Any]] = [
    {"caller_text": "Seven thirty would be great.", "reply": "agent_greeting"},
    {"caller_text": "Actually, wait, can we make it eight?", "reply": "agent_goodbye",
     "tool_calls": [{"name": "end_call", "args": {"reason": "caller said goodbye"},
                     "id": "end-1"}]},
]


@dataclass
class Pbx:
    sim: SimulatorServer
    gateway: Gateway
    port: int  # HTTP
    tcp: int  # AudioSocket
    secret: str
    store: SqliteStore

    @property
    def register_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/audiosocket/calls"

    @property
    def socket_url(self) -> str:
        return f"tcp://127.0.0.1:{self.tcp}"

    async def call(self, script: Sequence[Utterance], peer: AudioSocketPeer | None = None,
                   **kw: Any) -> tuple[CallResult, AudioSocketPeer]:
        peer = peer or AudioSocketPeer({"From": CALLER, "To": CALLEE, "agent": DESK.name})
        kw.setdefault("max_s", 60.0)
        kw.setdefault("answer_url", self.register_url)
        kw.setdefault("speed", SPEED)
        result = await place_call(self.socket_url, list(script), peer=peer,
                                  secret=self.secret, **kw)
        return result, peer

    def summary(self, result: CallResult) -> CallSummary:
        [summary] = [s for s in self.gateway.finished if s.call_sid == result.call_sid]
        return summary


@contextlib.asynccontextmanager
async def pbx(tmp_path: Path, turns: list[dict[str, Any]], *, lookup: str | None = None,
              paced: bool = True, **scenario: Any) -> AsyncIterator[Pbx]:
    """A gateway with an AudioSocket listener and a simulator. ``paced=False`` lets the
    gateway send replies as soon as it has them (its lead made endless), so a test that is
    not about pacing can run its call faster than real time."""
    env, secret = credentials_for(Carrier.AUDIOSOCKET)
    if lookup is not None:
        env["VOICEGW_AUDIOSOCKET_LOOKUP_URL"] = lookup
    store = SqliteStore(tmp_path / "calls.db")
    scenario.setdefault("speed", SPEED)
    registry = AgentRegistry(agents={DESK.name: DESK}, default=DESK.name)
    async with SimulatorServer(scenario_from_dict({**scenario, "turns": turns})) as sim:
        make = Gateway if paced else _SendsAhead
        gateway = make(Settings(endpoint=custom_endpoint(sim.url, "test-model")),
                       services=CallServices(agents=registry, observers=(CallRecorder(store),),
                                             unavailable_prompt=load_prompt()),
                       carriers={},
                       audiosocket=AudioSocketConfig.parse("127.0.0.1:0",
                                                           allow_unsigned=False, env=env),
                       audiosocket_auth=registration_auth(env))
        async with running(gateway) as port:
            assert gateway.audiosocket_port is not None
            yield Pbx(sim, gateway, port, gateway.audiosocket_port, secret, store)
            await sim.wait_until(lambda: all(s.closed is not None for s in sim.sessions))
    assert not gateway.calls


async def test_a_whole_call_with_a_barge_in_a_digit_and_a_hang_up(tmp_path: Path) -> None:
    script = [say("caller_seven_thirty", When.START, 300, dtmf="5"),
              say("caller_barge_in", When.BARGE_IN, 1000)]
    async with pbx(tmp_path, SHORT) as p:
        result, peer = await p.call(script, tail_ms=10_000)
        await p.gateway.wait_idle()
        async with aiohttp.ClientSession() as http, \
                http.get(f"http://127.0.0.1:{p.port}/metrics") as resp:
            metrics = await resp.text()
    [session] = p.sim.sessions
    summary = p.summary(result)
    stats = summary.stats
    # Every caller message the gateway read reached the model, resampled 8 -> 16 kHz.
    assert stats.frames_in > 0
    assert stats.frames_forwarded == stats.frames_in
    assert 0 <= result.frames_sent - stats.frames_in <= 5
    assert session.audio_chunks == stats.frames_forwarded
    assert session.audio_rates == {16000}
    # The agent the dialplan registered answered, with the registered numbers.
    assert summary.agent == DESK.name
    # One barge-in, and no clear (there is none): the gateway's pacing silenced the caller.
    assert session.interruptions == 1
    assert stats.interruptions == 1
    assert result.clears == 0
    assert len(result.barge_in_ms) == 1
    assert "The caller pressed 5." in session.texts
    # The gateway's own clock said what was heard: marks it confirmed itself.
    assert stats.marks_heard > 0
    [cut] = [t for t in summary.transcript if t.interrupted]
    assert cut.heard is not None and cut.text.startswith(cut.heard)
    # The agent said goodbye, heard to the end, and hung up with AudioSocket's hang-up.
    assert summary.end.kind is EndKind.AGENT_ENDED
    assert peer.hung_up_by_gateway
    # Heard to the end by the gateway's clock: the phone starts a message on its next 20 ms
    # tick, so at most that much of the last one was still to play when the hang-up came.
    assert result.closed_by_gateway and result.unplayed_at_close_ms <= 20
    await p.store.open()
    try:
        record = await p.store.get_call(result.call_sid)
    finally:
        await p.store.aclose()
    assert record is not None
    assert record.carrier == "audiosocket"
    assert record.end_kind == EndKind.AGENT_ENDED.value
    assert (record.caller, record.dialled) == (CALLER, CALLEE)
    assert record.interruptions == 1
    # Counted by carrier, as every carrier's calls are.
    assert 'voicegw_calls_total{carrier="audiosocket",reason="agent_ended"} 1.0' in metrics


async def test_paced_replies_stay_within_the_lead_at_real_time(tmp_path: Path) -> None:
    # The model streams its reply four times faster than real time, as the real service
    # bursts; the phone holds no more than the pacer's lead (80 ms) plus its own 20 ms tick.
    # The precise figures and their spread are benchmarks/audiosocket_barge_in.py's.
    async with pbx(tmp_path, SHORT[:1], speed=4.0) as p:
        result, _ = await p.call([say("caller_seven_thirty", When.START, 300)], tail_ms=1000)
    assert result.audio_received_ms > 1000
    assert 60 <= result.peak_queued_ms <= 130, result.peak_queued_ms
    assert result.underruns == 0


# -- refused before any Live session ---------------------------------------------------------


async def _registration(p: Pbx, peer: AudioSocketPeer, secret: str | None) -> int:
    request = peer.webhook(p.register_url, secret)
    async with aiohttp.ClientSession() as session, session.request(
            request.method, request.url, headers=dict(request.headers),
            data=request.body) as resp:
        await resp.read()
        return resp.status


@pytest.mark.parametrize("secret", ["pbx:not-the-password", None], ids=["forged", "missing"])
async def test_a_registration_without_the_credentials_is_refused(
        tmp_path: Path, secret: str | None) -> None:
    async with pbx(tmp_path, SHORT) as p:
        assert await _registration(p, AudioSocketPeer(), secret) == 401
        assert len(p.gateway.routes) == 0


async def _raw(p: Pbx, *messages: str | bytes) -> bytes:
    """Send ``messages`` and read until the gateway closes: everything it sent."""
    reader, writer = await asyncio.open_connection("127.0.0.1", p.tcp)
    for message in messages:
        assert isinstance(message, bytes)
        writer.write(message)
    await writer.drain()
    async with asyncio.timeout(10):
        got = await reader.read()
    writer.close()
    return got


async def test_a_connection_that_does_not_start_with_a_uuid_is_hung_up(tmp_path: Path) -> None:
    async with pbx(tmp_path, SHORT) as p:
        got = await _raw(p, frame(Kind.AUDIO, b"\x00" * 320))
        assert got == HANGUP_FRAME
        assert p.gateway.counters[("audiosocket", "bad_start")] == 1
    assert p.sim.sessions == []


async def test_a_call_the_operators_lookup_does_not_know_is_hung_up(tmp_path: Path) -> None:
    app = aiohttp.web.Application()
    asked: list[str] = []

    async def lookup(request: aiohttp.web.Request) -> aiohttp.web.Response:
        asked.append(request.match_info["uuid"])
        return aiohttp.web.Response(status=404)

    app.router.add_get("/calls/{uuid}", lookup)
    async with serving(app) as url, pbx(tmp_path, SHORT, lookup=url + "/calls/{uuid}") as p:
        peer = AudioSocketPeer()
        got = await _raw(p, *peer.opening(), peer.media(b"\x00" * 320))
        assert got == HANGUP_FRAME
        assert asked == [peer.call_id]
        assert p.gateway.counters[("audiosocket", "unknown_call")] == 1
    assert p.sim.sessions == []


async def test_the_operators_lookup_routes_an_unregistered_call(tmp_path: Path) -> None:
    app = aiohttp.web.Application()

    async def lookup(request: aiohttp.web.Request) -> aiohttp.web.Response:
        return aiohttp.web.json_response({"agent": DESK.name, "from": "+15550123",
                                          "parameters": {"account": "42"}})

    app.router.add_get("/calls/{uuid}", lookup)
    async with serving(app) as url, pbx(tmp_path, SHORT[:1], lookup=url + "/calls/{uuid}",
                                        paced=False, speed=8.0) as p:
        result, _ = await p.call([say("caller_seven_thirty", When.START, 300)],
                                 answer_url=None, tail_ms=500, speed=8.0)
    summary = p.summary(result)
    assert summary.agent == DESK.name
    assert summary.caller == "+15550123"
    assert result.audio_received_ms > 0


async def test_at_capacity_a_call_is_hung_up_before_the_live_api(tmp_path: Path) -> None:
    async with pbx(tmp_path, SHORT) as p:
        p.gateway.settings = Settings(endpoint=p.gateway.settings.endpoint, max_calls=0)
        peer = AudioSocketPeer()
        got = await _raw(p, *peer.opening())
        assert got == HANGUP_FRAME
        assert p.gateway.counters[("audiosocket", "capacity")] == 1
    assert p.sim.sessions == []


def test_the_listener_stays_on_loopback_unless_unsigned_is_allowed() -> None:
    from gateway.errors import ConfigError

    with pytest.raises(ConfigError, match="private network"):
        AudioSocketConfig.parse("0.0.0.0:9092", allow_unsigned=False, env={})
    assert AudioSocketConfig.parse("0.0.0.0:9092", allow_unsigned=True, env={}).port == 9092
    with pytest.raises(ConfigError, match="HOST:PORT"):
        AudioSocketConfig.parse("9092", allow_unsigned=False, env={})


def test_uuid_frame_is_what_asterisk_sends() -> None:
    import uuid
    call = uuid.UUID("a0b1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4d")
    assert uuid_frame(call) == b"\x01\x00\x10" + call.bytes
