"""A warm transfer end to end over real sockets: a caller rings the gateway through a carrier's
faked network, asks for billing, and the agent (the simulated Live server) calls
``warm_transfer``. The caller hears the agent, then hold music; the gateway places a call to
billing, tells the person who is calling once they say hello, and joins both calls in one
conference through the carrier's call-update API, faked (inline on Twilio, Telnyx and Vonage;
a signed link the carrier fetches on SignalWire, Plivo and jambonz). When billing does not
answer, the caller comes back to the agent, which is told why. Where the carrier cannot join
two calls (Exotel), the tool is never declared.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gateway.agent import Agent
from gateway.bridge_config import CallServices
from gateway.carrier_setup import PROVIDERS
from gateway.carriers.core import Carrier
from gateway.config import Settings, custom_endpoint
from gateway.dialing.setup import OutboundSettings
from gateway.hold_music import hold_music
from gateway.registry import AgentRegistry
from gateway.rig.dialing.callees import Book, Callee, CalleeKind, book, person
from gateway.rig.dialing.network import FakeNetwork, PlacedCall, fake_network
from gateway.rig.dialing.networks import carrier_part
from gateway.rig.loadtest.local import free_port
from gateway.rig.phone import Utterance, When, load_utterance
from gateway.rig.simulator import SimulatorServer, scenario_from_dict
from gateway.rig.simulator.speech import speech_dir
from gateway.server import Gateway, load_prompt, running
from gateway.store.recorder import CallRecorder
from gateway.store.sqlite import SqliteStore

JOINING = (Carrier.TWILIO, Carrier.SIGNALWIRE, Carrier.TELNYX, Carrier.PLIVO, Carrier.VONAGE,
           Carrier.JAMBONZ)
OURS, CALLER, BILLING = "+14155550100", "+14155550166", "+14155550177"
DESK = Agent(name="desk", instructions="Help the caller; hand them to billing on request.",
             call_control=["warm_transfer"], transfer_targets={"billing": BILLING})
SUMMARY = "Ada Lovelace wants to dispute a double charge on her March invoice."
TURNS: list[dict[str, Any]] = [
    {"caller_text": "Can I talk to someone in billing?", "reply": "agent_moved",
     "reply_text": "Of course, let me fetch someone from billing. Please hold.",
     "tool_calls": [{"name": "warm_transfer", "id": "warm-1",
                     "args": {"to": "billing", "summary": SUMMARY}}]},
    {"caller_text": "", "reply": "agent_goodbye"},
]


@dataclass
class Desk:
    carrier: Carrier
    net: FakeNetwork
    gateway: Gateway
    url: str
    sim: SimulatorServer
    store: SqliteStore

    def ended(self, call: PlacedCall) -> str:
        sid = call.peer.call_id if call.peer is not None else call.sid  # Plivo: its CallUUID
        [summary] = [s for s in self.gateway.finished if s.call_sid == sid]
        return summary.end.kind.value

    def ring(self) -> PlacedCall:
        """The caller rings the gateway and asks for billing, then waits on the line."""
        ask = Utterance(load_utterance(speech_dir() / "caller_book_table.wav"), When.START,
                        delay_ms=300)
        caller = Callee(CalleeKind.HUMAN, (ask,), ring_s=0.0, tail_ms=6_000, max_s=90.0)
        return self.net.ring_in(OURS, CALLER, f"{self.url}/{self.carrier.value}/answer",
                                caller)


@contextlib.asynccontextmanager
async def desk(tmp_path: Path, callees: Book, carrier: Carrier = Carrier.TWILIO
               ) -> AsyncIterator[Desk]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    part = carrier_part(carrier, url)
    async with (fake_network(part, callees, ring_speed=20.0, speed=4.0) as (net, api),
                SimulatorServer(scenario_from_dict({"speed": 4.0, "turns": TURNS})) as sim):
        setup = PROVIDERS[carrier]({**part.environment(api), "VOICEGW_PUBLIC_URL": url})
        store = SqliteStore(tmp_path / "calls.db")
        gateway = Gateway(
            Settings(endpoint=custom_endpoint(sim.url, "test-model"), public_url=url),
            services=CallServices(agents=AgentRegistry(agents={DESK.name: DESK},
                                                       default=DESK.name),
                                  observers=(CallRecorder(store),),
                                  unavailable_prompt=load_prompt()),
            carriers={setup.carrier: setup},
            outbound=OutboundSettings("api-token-for-handover-tests"))
        try:
            async with running(gateway, port=port):
                yield Desk(carrier, net, gateway, url, sim, store)
                await net.wait_all()
                await gateway.wait_idle()
        finally:
            for client in {id(c): c for c in (setup.dialer, setup.call_control) if c}.values():
                await client.aclose()  # type: ignore[union-attr]


def heard_music(call: PlacedCall) -> bool:
    """Whether the caller heard the hold chime: some 100 ms of what they heard matches its
    first note (correlation above 0.9, through the line's mu-law)."""
    assert call.result is not None
    pcm = np.frombuffer(call.result.heard_pcm(8000), dtype="<i2").astype(float)
    note = np.frombuffer(hold_music(8000), dtype="<i2").astype(float)[:800]
    for start in range(0, len(pcm) - len(note), 8):
        block = pcm[start:start + len(note)]
        energy = float(np.dot(block, block)) * float(np.dot(note, note))
        if energy and float(np.dot(block, note)) ** 2 / energy > 0.81:
            return True
    return False


@pytest.mark.parametrize("carrier", JOINING, ids=[c.value for c in JOINING])
async def test_the_person_answers_hears_who_is_calling_and_is_joined(
        tmp_path: Path, carrier: Carrier) -> None:
    # Billing says hello and stays on the line until the call is moved.
    billing = Callee(CalleeKind.HUMAN, person().utterances, tail_ms=30_000, max_s=90.0)
    async with desk(tmp_path, book({BILLING: billing}), carrier) as d:
        caller = d.ring()
        await caller.done.wait()
        await d.gateway.wait_idle()
    [leg] = [c for c in d.net.calls.values() if c.to == BILLING]
    # Billing was called from the line's own number, and both calls met in one conference.
    assert leg.from_ == OURS
    assert caller.room is not None and caller.room.startswith("voicegw-ho_")
    assert leg.room == caller.room
    assert d.net.rooms[caller.room] == [leg.sid, caller.sid]  # the person first
    # The caller heard the hold music; billing heard the agent's word before the join.
    assert heard_music(caller)
    assert leg.result is not None
    assert leg.result.media_received > 0
    assert any(SUMMARY in text for s in d.sim.sessions for text in s.texts)
    assert d.ended(caller) == "transferred"


@pytest.mark.parametrize("kind", [CalleeKind.BUSY, CalleeKind.NO_ANSWER])
async def test_when_nobody_answers_the_caller_is_back_with_the_agent(
        tmp_path: Path, kind: CalleeKind) -> None:
    async with desk(tmp_path, book({BILLING: Callee(kind)})) as d:
        caller = d.ring()
        await caller.done.wait()
        await d.gateway.wait_idle()
    assert caller.room is None
    assert heard_music(caller)
    [session] = [s for s in d.sim.sessions if any("did not go through" in t for t in s.texts)]
    why = "the line was busy" if kind is CalleeKind.BUSY else "nobody answered"
    assert any(why in text for text in session.texts)
    assert d.ended(caller) == "caller_hung_up"
    # The agent answered the news with a second turn, which the caller heard after the hold.
    assert session.turns_completed == 2
    assert caller.result is not None
    assert caller.result.timeline[-1][0] > caller.result.timeline[0][0] + 3000


async def test_where_the_carrier_cannot_join_calls_the_tool_is_not_declared(
        tmp_path: Path) -> None:
    # Exotel places calls but has no API that moves a live call: the agent keeps the caller.
    async with desk(tmp_path, book({}), Carrier.EXOTEL) as d:
        caller = d.ring()
        await caller.done.wait()
        await d.gateway.wait_idle()
    [session] = d.sim.sessions
    assert session.setup is not None
    declared = {f["name"] for tool in session.setup.get("tools", [])
                for f in tool.get("functionDeclarations", [])}
    assert "warm_transfer" not in declared
    assert not [c for c in d.net.calls.values() if c.to == BILLING]
