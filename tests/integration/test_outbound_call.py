"""Calls the gateway places, end to end over real sockets: ``POST /v1/calls`` on the gateway,
Twilio's Calls API faked on loopback (it checks the request, posts signed status callbacks,
fetches the answer and plays the callee's media stream), the simulated Live server as the
model, and the call-record store in SQLite.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.agent import Agent
from gateway.bridge_config import CallServices
from gateway.carrier_setup import twilio
from gateway.config import Settings, custom_endpoint
from gateway.dialing.setup import OutboundSettings
from gateway.registry import AgentRegistry
from gateway.rig.dialing.callees import Book, Callee, CalleeKind, book, machine, person
from gateway.rig.dialing.twilio_net import FakeTwilioNetwork, fake_twilio_network
from gateway.rig.loadtest.local import free_port
from gateway.rig.simulator import SimulatorServer, scenario_from_dict
from gateway.server import Gateway, load_prompt, running
from gateway.store.recorder import CallRecorder
from gateway.store.sqlite import SqliteStore

ACCOUNT = "AC" + "7" * 32
TOKEN = "twilio-auth-token-for-tests"
API_TOKEN = "api-token-for-outbound-tests"
FROM = "+14155550100"
PERSON, VOICEMAIL, HANGS_UP_ON, BUSY = ("+14155550111", "+14155550122", "+14155550133",
                                       "+14155550144")
REMINDER = Agent(name="reminder", instructions="Remind the callee of their appointment.",
                 greeting="Hello, this is the clinic calling about your appointment.")
HEADERS = {"Authorization": f"Bearer {API_TOKEN}"}


@dataclass
class Outbound:
    net: FakeTwilioNetwork
    gateway: Gateway
    url: str
    store: SqliteStore
    http: aiohttp.ClientSession
    sim: SimulatorServer

    async def post(self, body: dict[str, Any], key: str | None = None,
                   headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
        extra = {"Idempotency-Key": key} if key else {}
        async with self.http.post(f"{self.url}/v1/calls", json=body,
                                  headers={**(HEADERS if headers is None else headers),
                                           **extra}) as resp:
            return resp.status, await resp.json()

    async def get(self, dial_id: str) -> dict[str, Any]:
        async with self.http.get(f"{self.url}/v1/calls/{dial_id}", headers=HEADERS) as resp:
            assert resp.status == 200
            data: dict[str, Any] = await resp.json()
            return data

    async def finished(self, dial_id: str) -> dict[str, Any]:
        """The call's record once the carrier has finished it (every callback posted)."""
        for call in self.net.calls.values():
            if call.form.get("StatusCallback", [""])[0].endswith(dial_id):
                await call.done.wait()
        await self.gateway.wait_idle()
        return await self.get(dial_id)


@contextlib.asynccontextmanager
async def outbound(tmp_path: Path, callees: Book, **scenario: Any
                   ) -> AsyncIterator[Outbound]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    scenario.setdefault("speed", 4.0)
    async with (fake_twilio_network(ACCOUNT, TOKEN, callees, ring_speed=20.0,
                                    speed=4.0) as (net, api),
                SimulatorServer(scenario_from_dict(scenario)) as sim,
                aiohttp.ClientSession() as http):
        setup = twilio.from_env({"TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_AUTH_TOKEN": TOKEN,
                                 "VOICEGW_TWILIO_API_URL": api})
        store = SqliteStore(tmp_path / "calls.db")
        registry = AgentRegistry(agents={REMINDER.name: REMINDER}, default=REMINDER.name)
        gateway = Gateway(
            Settings(endpoint=custom_endpoint(sim.url, "test-model"), public_url=url),
            services=CallServices(agents=registry, observers=(CallRecorder(store),),
                                  unavailable_prompt=load_prompt()),
            carriers={setup.carrier: setup},
            outbound=OutboundSettings(API_TOKEN, {setup.carrier: FROM}))
        try:
            async with running(gateway, port=port):
                yield Outbound(net, gateway, url, store, http, sim)
                await net.wait_all()
        finally:
            assert setup.call_control is not None
            await setup.call_control.aclose()


def call_to(number: str, **extra: Any) -> dict[str, Any]:
    return {"to": number, "agent": "reminder", "parameters": {"patient": "Ada"}, **extra}


async def test_a_person_answers_and_the_agent_greets_them(tmp_path: Path) -> None:
    async with outbound(tmp_path, book({PERSON: person(then="caller_goodbye")})) as ob:
        status, placed = await ob.post(call_to(PERSON))
        assert status == 201
        assert placed["status"] == "queued"
        done = await ob.finished(placed["id"])
        [call] = ob.net.calls.values()
    # The request Twilio got: the callee, our number, and our answer and status URLs.
    assert call.to == PERSON
    assert call.from_ == FROM
    assert call.first("Url").startswith(f"{ob.url}/twilio/answer/reminder?voicegw_dial=")
    assert call.form["StatusCallbackEvent"] == ["initiated", "ringing", "answered",
                                                "completed"]
    assert [h["status"] for h in done["history"]] == ["queued", "ringing", "answered",
                                                     "completed"]
    assert done["answered_by"] == "human"
    assert done["amd"]["source"] == "gateway"
    assert done["amd"]["decided_ms"] <= 2500
    # The agent greeted only once a person was heard, and the person heard it.
    assert call.result is not None
    assert call.result.media_received > 0
    [session] = ob.sim.sessions
    assert any("Greet them" in text or "appointment" in text for text in session.texts)
    # The request's parameters reached the call, beside the dial's id.
    [summary] = ob.gateway.finished
    assert summary.custom_parameters["patient"] == "Ada"


async def test_a_machine_answers_and_the_message_starts_right_after_the_beep(
        tmp_path: Path) -> None:
    voicemail = machine(beep_hz=1400)
    async with outbound(tmp_path, book({VOICEMAIL: voicemail})) as ob:
        status, placed = await ob.post(call_to(
            VOICEMAIL, machine_detection="leave_message",
            voicemail_message="Your appointment is tomorrow at ten. Call us back on 555 0100."))
        assert status == 201
        done = await ob.finished(placed["id"])
        [call] = ob.net.calls.values()
        record = await ob.store.get_call(call.sid)
    assert done["answered_by"] == "machine"
    assert done["amd"]["beep_ms"] is not None
    assert call.result is not None
    assert voicemail.beep_end_ms is not None
    replies = [t for t, what in call.result.timeline if what == "media"]
    assert replies, "the message never played"
    # Nothing was played over the greeting, and the message began right after the beep.
    assert replies[0] >= voicemail.beep_end_ms
    assert replies[0] - voicemail.beep_end_ms <= 500
    assert record is not None
    assert record.end_kind == "voicemail_left"


async def test_a_machine_is_hung_up_on_when_asked(tmp_path: Path) -> None:
    async with outbound(tmp_path, book({HANGS_UP_ON: machine()})) as ob:
        _, placed = await ob.post(call_to(HANGS_UP_ON, machine_detection="hangup"))
        done = await ob.finished(placed["id"])
        [call] = ob.net.calls.values()
    assert done["answered_by"] == "machine"
    assert call.result is not None
    assert call.result.media_received == 0  # the agent never spoke to the machine
    assert done["status"] == "completed"


async def test_busy_and_the_idempotency_key(tmp_path: Path) -> None:
    async with outbound(tmp_path, book({BUSY: Callee(CalleeKind.BUSY)})) as ob:
        first = await ob.post(call_to(BUSY), key="reminder-42")
        again = await ob.post(call_to(BUSY), key="reminder-42")
        other = await ob.post(call_to(PERSON), key="reminder-42")
        done = await ob.finished(first[1]["id"])
    assert first[0] == 201
    assert again[0] == 200
    assert again[1]["id"] == first[1]["id"]
    assert other[0] == 422
    assert other[1]["field"] == "Idempotency-Key"
    assert len(ob.net.calls) == 1  # the same key never placed a second call
    assert done["status"] == "busy"


@pytest.mark.parametrize(("body", "field", "status"), [
    ({"to": "555", "agent": "reminder"}, "to", 422),
    ({"to": "+1415555", "agent": "reminder", "machine_detection": "maybe"}, "to", 422),
    ({"to": PERSON, "agent": "nobody"}, "agent", 422),
    ({"to": PERSON, "agent": "reminder", "carrier": "telnyx"}, "carrier", 422),
    ({"to": PERSON, "agent": "reminder", "carrier": "pigeon"}, "carrier", 422),
    ({"to": PERSON, "agent": "reminder", "timeout_s": 1}, "timeout_s", 422),
    ({"to": PERSON, "agent": "reminder", "machine_detection": "leave_message"},
     "voicemail_message", 422),
    ({"to": PERSON, "agent": "reminder", "parameters": {"voicegw_dial": "x"}},
     "parameters.voicegw_dial", 422),
])
async def test_bad_requests_name_the_field(tmp_path: Path, body: dict[str, Any], field: str,
                                           status: int) -> None:
    async with outbound(tmp_path, book({})) as ob:
        got, answer = await ob.post(body)
        unauthorised, _ = await ob.post(call_to(PERSON), headers={})
    assert (got, answer["field"]) == (status, field)
    assert unauthorised == 401
    assert not ob.net.calls


async def test_hanging_up_a_ringing_call_cancels_it(tmp_path: Path) -> None:
    slow = Callee(CalleeKind.HUMAN, person().utterances, ring_s=60.0)
    async with outbound(tmp_path, book({PERSON: slow})) as ob:
        _, placed = await ob.post(call_to(PERSON))
        async with ob.http.delete(f"{ob.url}/v1/calls/{placed['id']}", headers=HEADERS) as r:
            assert r.status == 200
            assert (await r.json())["status"] == "canceled"
        done = await ob.finished(placed["id"])
        [call] = ob.net.calls.values()
    assert call.hung_up_by_api
    assert done["status"] == "canceled"


async def test_voicegw_dial_places_a_call_and_follows_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from gateway.cli import _parser
    from gateway.dialing.cli import run

    monkeypatch.setenv("VOICEGW_API_TOKEN", API_TOKEN)
    async with outbound(tmp_path, book({BUSY: Callee(CalleeKind.BUSY)})) as ob:
        args = _parser().parse_args(["dial", BUSY, "--agent", "reminder", "--param",
                                     "patient=Ada", "--gateway", ob.url, "--wait"])
        assert await run(args) == 0
        [call] = ob.net.calls.values()
    out = capsys.readouterr().out
    assert '"status": "busy"' in out
    assert call.to == BUSY
