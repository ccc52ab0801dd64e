"""Calls placed on every carrier that can place them, end to end over real sockets:
``POST /v1/calls`` on the gateway, the carrier's network faked on loopback (its create-call
API checked as it checks it, its status callbacks in its own shape and signature, the answer
fetched as it fetches it, the callee's stream through its rig peer), the simulated Live server
as the model, and the call records in SQLite.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.agent import Agent
from gateway.bridge_config import CallServices
from gateway.carrier_setup import PROVIDERS
from gateway.carriers.core import Carrier
from gateway.config import Settings, custom_endpoint
from gateway.dialing.model import DialStatus
from gateway.dialing.setup import OutboundSettings
from gateway.registry import AgentRegistry
from gateway.rig.dialing.callees import Book, Callee, CalleeKind, book, machine, person
from gateway.rig.dialing.network import FakeNetwork, PlacedCall, fake_network
from gateway.rig.dialing.networks import DIALING, carrier_part
from gateway.rig.loadtest.local import free_port
from gateway.rig.simulator import SimulatorServer, scenario_from_dict
from gateway.server import Gateway, load_prompt, running
from gateway.store.recorder import CallRecorder
from gateway.store.sqlite import SqliteStore

API_TOKEN = "api-token-for-network-tests"
FROM = "+14155550100"
PERSON, VOICEMAIL = "+14155550111", "+14155550122"
REMINDER = Agent(name="reminder", instructions="Remind the callee of their appointment.",
                 greeting="Hello, this is the clinic calling about your appointment.")
HEADERS = {"Authorization": f"Bearer {API_TOKEN}"}
# A short reply (the fixture's words do not matter here, only that the callee hears them).
SCENARIO = {"speed": 4.0, "turns": [{"reply": "agent_goodbye", "reply_text": REMINDER.greeting}]}
MESSAGE = "Your appointment is tomorrow at ten. Call us back on 555 0100."


@dataclass
class Dialling:
    net: FakeNetwork
    gateway: Gateway
    url: str
    store: SqliteStore
    http: aiohttp.ClientSession
    sim: SimulatorServer

    async def place(self, body: dict[str, Any]) -> tuple[PlacedCall, dict[str, Any]]:
        """Place a call through the API; the carrier's call and its record once over."""
        async with self.http.post(f"{self.url}/v1/calls", json=body, headers=HEADERS) as resp:
            placed = await resp.json()
            assert resp.status == 201, placed
        assert placed["status"] == "queued"
        [call] = self.net.calls.values()
        await call.done.wait()
        await self.gateway.wait_idle()
        async with self.http.get(f"{self.url}/v1/calls/{placed['id']}",
                                 headers=HEADERS) as resp:
            return call, await resp.json()


@contextlib.asynccontextmanager
async def dialling(tmp_path: Path, carrier: Carrier, callees: Book, *,
                   carrier_amd_ms: float | None = None) -> AsyncIterator[Dialling]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    part = carrier_part(carrier, url)
    async with (fake_network(part, callees, ring_speed=20.0, speed=4.0,
                             carrier_amd_ms=carrier_amd_ms) as (net, api),
                SimulatorServer(scenario_from_dict(SCENARIO)) as sim,
                aiohttp.ClientSession() as http):
        setup = PROVIDERS[carrier]({**part.environment(api), "VOICEGW_PUBLIC_URL": url})
        assert setup.dialer is not None
        store = SqliteStore(tmp_path / "calls.db")
        registry = AgentRegistry(agents={REMINDER.name: REMINDER}, default=REMINDER.name)
        gateway = Gateway(
            Settings(endpoint=custom_endpoint(sim.url, "test-model"), public_url=url),
            services=CallServices(agents=registry, observers=(CallRecorder(store),),
                                  unavailable_prompt=load_prompt()),
            carriers={carrier: setup}, outbound=OutboundSettings(API_TOKEN, {carrier: FROM}))
        try:
            async with running(gateway, port=port):
                yield Dialling(net, gateway, url, store, http, sim)
                await net.wait_all()
        finally:
            for client in {id(c): c for c in (setup.dialer, setup.call_control) if c}.values():
                await client.aclose()  # type: ignore[union-attr]


def call_to(number: str, **extra: Any) -> dict[str, Any]:
    return {"to": number, "agent": "reminder", "parameters": {"patient": "Ada"}, **extra}


@pytest.mark.parametrize("carrier", DIALING, ids=[c.value for c in DIALING])
async def test_a_person_answers_and_hears_the_greeting(tmp_path: Path,
                                                       carrier: Carrier) -> None:
    async with dialling(tmp_path, carrier, book({PERSON: person()})) as dl:
        call, done = await dl.place(call_to(PERSON))
    assert (call.to, call.from_) == (PERSON, FROM)
    # Exotel posts only a call's answer and its end: it never says it rings.
    ringing = [] if carrier is Carrier.EXOTEL else ["ringing"]
    assert [h["status"] for h in done["history"]] == ["queued", *ringing, "answered",
                                                     "completed"], done["history"]
    assert done["answered_by"] == "human"
    assert done["amd"]["source"] == "gateway"
    assert call.result is not None
    assert call.result.media_received > 0  # the person heard the agent
    [session] = dl.sim.sessions
    assert any("appointment" in text or "Greet them" in text for text in session.texts)
    # The request's parameters reached the agent, whatever the carrier's stream carries.
    [summary] = dl.gateway.finished
    assert summary.custom_parameters["patient"] == "Ada"
    assert summary.custom_parameters["voicegw_dial"] == done["id"]


@pytest.mark.parametrize("carrier", [Carrier.VONAGE, Carrier.JAMBONZ],
                         ids=["vonage", "jambonz"])
async def test_a_machine_gets_the_message_after_its_beep(tmp_path: Path,
                                                         carrier: Carrier) -> None:
    voicemail = machine(beep_hz=1400)
    async with dialling(tmp_path, carrier, book({VOICEMAIL: voicemail})) as dl:
        call, done = await dl.place(call_to(VOICEMAIL, machine_detection="leave_message",
                                            voicemail_message=MESSAGE))
    assert done["answered_by"] == "machine"
    assert done["amd"]["beep_ms"] is not None
    assert call.result is not None and voicemail.beep_end_ms is not None
    replies = [t for t, what in call.result.timeline if what == "media"]
    assert replies, "the message never played"
    assert replies[0] >= voicemail.beep_end_ms  # nothing over the greeting
    assert replies[0] - voicemail.beep_end_ms <= 500


async def test_the_carriers_own_detection_decides(tmp_path: Path) -> None:
    # jambonz's amd finds a person 600 ms into the call, before the gateway's detector does.
    async with dialling(tmp_path, Carrier.JAMBONZ, book({PERSON: person()}),
                        carrier_amd_ms=600) as dl:
        call, done = await dl.place(call_to(PERSON, machine_detection="hangup"))
    assert "amd:human" in call.statuses
    assert done["answered_by"] == "human"
    assert done["amd"]["source"] == "carrier"
    assert done["status"] == "completed"
    assert call.result is not None and call.result.media_received > 0


@pytest.mark.parametrize("carrier", [Carrier.PLIVO, Carrier.TWILIO], ids=["plivo", "twilio"])
async def test_an_answered_call_is_hung_up_through_the_api(tmp_path: Path,
                                                           carrier: Carrier) -> None:
    """Plivo knows a live call only by its CallUUID, not the request's id placing answered
    with: the gateway learns it from the callbacks and hangs up by it."""
    stays = Callee(CalleeKind.HUMAN, person().utterances, tail_ms=60_000, max_s=120.0)
    async with dialling(tmp_path, carrier, book({PERSON: stays})) as dl:
        assert dl.gateway.dialing is not None
        async with dl.http.post(f"{dl.url}/v1/calls", json=call_to(PERSON),
                                headers=HEADERS) as resp:
            dial = (await resp.json())["id"]
        answered = asyncio.Event()
        dl.gateway.dialing.on_status(
            dial, lambda r: answered.set() if r.status is DialStatus.ANSWERED else None)
        record = await dl.gateway.dialing.get(dial)
        if record is not None and record.status is not DialStatus.QUEUED \
                and record.status is not DialStatus.RINGING:
            answered.set()
        await answered.wait()
        async with dl.http.delete(f"{dl.url}/v1/calls/{dial}", headers=HEADERS) as resp:
            assert resp.status == 200
        [call] = dl.net.calls.values()
        await call.done.wait()
    assert call.hung_up_by_api
    assert call.final_status is DialStatus.COMPLETED
