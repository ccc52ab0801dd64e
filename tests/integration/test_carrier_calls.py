"""Every carrier, one bridge: a whole call per carrier over real loopback sockets.

For each carrier in :data:`tests.cases.CASES`, the phone peer plays the carrier's part as it
would: it fetches the answer document from ``/NAME/answer`` with the carrier's signature,
opens the media socket it points at carrying the per-call token, and streams the caller's
speech. The gateway bridges it to the simulated Live server; the carrier's REST API is a fake
on loopback that checks the credentials. Each call has a barge-in, a keypad digit and a hang-up
(or a transfer) checked against the fake, and its record is read back from SQLite.

Then the refusals: a webhook with a forged or missing signature, and a stream whose token is
forged, missing, expired or replayed, are refused before any Live session opens.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.agent import Agent
from gateway.bridge_config import CallServices
from gateway.carriers.core import TOKEN_PARAMETER
from gateway.config import Settings, custom_endpoint
from gateway.ending import EndKind
from gateway.record import CallSummary
from gateway.registry import AgentRegistry
from gateway.rig.peers import PhonePeer
from gateway.rig.phone import CallResult, Utterance, When, fetch_answer, load_utterance, place_call
from gateway.rig.rest_fakes import serving
from gateway.rig.simulator import SimulatorServer, scenario_from_dict
from gateway.rig.simulator.speech import speech_dir
from gateway.server import Gateway, load_prompt, running
from gateway.store.recorder import CallRecorder
from gateway.store.sqlite import SqliteStore
from tests.cases import CASES, CarrierCase, FakeApi

SPEED = 4.0
CALLER, CALLEE = "+15550100", "+15550199"
BILLING = "+15550111"
DESK = Agent(name="desk", instructions="Help the caller; transfer to billing on request; "
             "say goodbye, then end the call.", call_control=["end_call", "transfer_call"],
             transfer_targets={"billing": BILLING})
CALL: list[dict[str, Any]] = [
    {"caller_text": "Hi, I'd like to book a table for two tomorrow evening.",
     "reply": "agent_greeting"},
    {"caller_text": "Seven thirty would be great.", "reply": "agent_options"},
    {"caller_text": "Actually, wait, can we make it eight?", "reply": "agent_moved"},
    {"caller_text": "Thanks, goodbye.", "reply": "agent_goodbye",
     "tool_calls": [{"name": "end_call", "args": {"reason": "caller said goodbye"},
                     "id": "end-1"}]},
]
TRANSFER: list[dict[str, Any]] = [
    {"caller_text": "Can I talk to billing?", "reply": "agent_goodbye",
     "reply_text": "Transferring you to billing now.",
     "tool_calls": [{"name": "transfer_call", "args": {"to": "billing"}, "id": "xfer-1"}]}]


def say(name: str, when: When = When.AFTER_REPLY, delay_ms: int = 600,
        dtmf: str = "") -> Utterance:
    return Utterance(load_utterance(speech_dir() / f"{name}.wav"), when, delay_ms, dtmf=dtmf)


@dataclass
class Line:
    """A simulator, a gateway serving one carrier (signed) and that carrier's fake REST API."""

    case: CarrierCase
    sim: SimulatorServer
    gateway: Gateway
    fake: FakeApi
    port: int
    secret: str
    store: SqliteStore

    @property
    def answer_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{self.case.carrier.value}/answer"

    @property
    def media_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/{self.case.carrier.value}/media"

    def peer(self) -> PhonePeer:
        return self.case.peer({"From": CALLER, "To": CALLEE})

    async def call(self, script: Sequence[Utterance], peer: PhonePeer | None = None,
                   **kw: Any) -> tuple[CallResult, PhonePeer]:
        peer = peer or self.peer()
        kw.setdefault("max_s", 60.0)  # a stuck call fails the test instead of hanging it
        kw.setdefault("answer_url", self.answer_url if self.case.answers else None)
        kw.setdefault("secret", self.secret)
        result = await place_call(self.media_url, list(script), speed=SPEED, peer=peer, **kw)
        return result, peer

    def summary(self, result: CallResult) -> CallSummary:
        [summary] = [s for s in self.gateway.finished if s.call_sid == result.call_sid]
        return summary


@contextlib.asynccontextmanager
async def line(case: CarrierCase, turns: list[dict[str, Any]], tmp_path: Path,
               agent: Agent = DESK, **scenario: Any) -> AsyncIterator[Line]:
    fake = case.fake()
    registry = AgentRegistry(agents={agent.name: agent}, default=agent.name)
    async with serving(fake.app()) as api_url:
        env, secret = case.credentials(api_url)
        options = case.gateway_options(env)
        store = SqliteStore(tmp_path / "calls.db")
        recorder = CallRecorder(store)
        scenario.setdefault("speed", SPEED)
        async with SimulatorServer(scenario_from_dict({**scenario, "turns": turns})) as sim:
            gateway = Gateway(Settings(endpoint=custom_endpoint(sim.url, "test-model")),
                              services=CallServices(agents=registry, observers=(recorder,),
                                                    unavailable_prompt=load_prompt()),
                              **options)
            async with running(gateway) as port:
                yield Line(case, sim, gateway, fake, port, secret, store)
                await sim.wait_until(lambda: all(s.closed is not None for s in sim.sessions))
        for setup in options["carriers"].values():  # a REST client, where there is one
            if setup.call_control is not None:
                await setup.call_control.aclose()
    assert not gateway.calls


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_a_whole_call_with_a_barge_in_a_digit_and_a_hang_up(
        case: CarrierCase, tmp_path: Path) -> None:
    script = [say("caller_book_table", When.START, 300),
              say("caller_seven_thirty", dtmf="5"),
              say("caller_barge_in", When.BARGE_IN, 2000),
              say("caller_goodbye")]
    async with line(case, CALL, tmp_path) as ln:
        result, peer = await ln.call(script, tail_ms=10_000)
    [session] = ln.sim.sessions
    summary = ln.summary(result)

    # Every caller frame the gateway read reached the model, once. The gateway ends this call
    # (a hang-up), so the phone may write a frame or two after it stopped reading: those
    # are the only ones it did not read.
    stats = summary.stats
    assert stats.frames_in > 0
    assert stats.frames_forwarded == stats.frames_in
    assert 0 <= result.frames_sent - stats.frames_in <= 5
    assert session.audio_chunks == stats.frames_forwarded
    assert session.audio_rates == {16000}
    # One barge-in: the carrier was told to clear, and the caller stopped hearing the reply.
    assert session.interruptions == 1
    assert summary.stats.interruptions == 1
    assert result.clears == 1
    assert len(result.barge_in_ms) == 1
    # The digit reached the model; marks came back, so the record knows what was heard.
    assert "The caller pressed 5." in session.texts
    assert summary.stats.marks_heard > 0
    [cut] = [t for t in summary.transcript if t.interrupted]
    assert cut.heard is not None and cut.text.startswith(cut.heard)
    # The agent said goodbye, it was heard to the end, and the call was hung up by REST.
    assert summary.end.kind is EndKind.AGENT_ENDED
    assert result.closed_by_gateway and result.unplayed_at_close_ms == 0
    case.hung_up(ln.fake.requests, peer)
    # The call's record, read back from the database.
    await ln.store.open()
    try:
        record = await ln.store.get_call(result.call_sid)
    finally:
        await ln.store.aclose()
    assert record is not None
    assert record.carrier == case.carrier.value
    assert record.end_kind == EndKind.AGENT_ENDED.value
    assert (record.caller, record.dialled) == ((CALLER, CALLEE) if case.numbers
                                               else (None, None))
    assert record.interruptions == 1
    assert record.frames_in == stats.frames_in


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_a_transfer_goes_through_the_carriers_api(case: CarrierCase,
                                                        tmp_path: Path) -> None:
    async with line(case, TRANSFER, tmp_path, speed=SPEED * 4) as ln:
        result, peer = await ln.call([say("caller_seven_thirty", When.START, 300)],
                                     tail_ms=10_000)
    [session] = ln.sim.sessions
    summary = ln.summary(result)
    assert session.setup is not None
    declared = {d["name"] for d in session.setup["tools"][0]["functionDeclarations"]}
    if not case.transfers:
        assert "transfer_call" not in declared  # not offered where it cannot be done
        return
    assert "transfer_call" in declared
    assert session.tool_responses == [{"id": "xfer-1", "name": "transfer_call",
                                       "response": {"result": "Transferring the caller now."}}]
    case.transferred(ln.fake.requests, peer, BILLING)
    assert summary.end.kind is EndKind.TRANSFERRED
    assert result.closed_by_gateway and result.unplayed_at_close_ms == 0


# -- refused before any Live session ---------------------------------------------------------


async def _answer(ln: Line, peer: PhonePeer, secret: str | None) -> int:
    request = peer.webhook(ln.answer_url, secret)
    async with aiohttp.ClientSession() as session, session.request(
            request.method, request.url, headers=dict(request.headers),
            data=request.body or None) as resp:
        await resp.read()
        return resp.status


ANSWERING = [c for c in CASES if c.answers]  # the PBXs fetch no answer document
TOKENS = [c for c in CASES if c.tokens]  # the PBXs' streams carry no per-call token


@pytest.mark.parametrize("case", ANSWERING, ids=str)
@pytest.mark.parametrize("signature", ["forged", "missing"])
async def test_an_answer_webhook_the_carrier_did_not_sign_is_refused(
        case: CarrierCase, signature: str, tmp_path: Path) -> None:
    async with line(case, CALL, tmp_path) as ln:
        peer = ln.peer()
        status = await _answer(ln, peer, "not-the-secret" if signature == "forged" else None)
        assert status == 403
        assert await _answer(ln, ln.peer(), ln.secret) == 200  # the carrier's own is taken
    assert ln.sim.sessions == []
    assert ln.gateway.counters[(case.carrier.value, "signature")] == 1


@pytest.mark.parametrize("case", [c for c in CASES if c.signs_upgrade], ids=str)
@pytest.mark.parametrize("credentials", ["forged", "missing"])
async def test_a_media_upgrade_without_the_carriers_credentials_is_refused(
        case: CarrierCase, credentials: str, tmp_path: Path) -> None:
    async with line(case, CALL, tmp_path) as ln:
        secret = "not-the:credentials" if credentials == "forged" else None
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await ln.call([say("caller_goodbye", When.START, 300)], answer_url=None,
                          secret=secret, max_s=10.0)
        assert refused.value.status == 403
        result, _ = await ln.call([say("caller_goodbye", When.START, 300)], answer_url=None,
                                  max_s=10.0)  # the carrier's own is taken
    assert result.media_received > 0
    assert len(ln.sim.sessions) == 1  # the refused upgrade opened none
    assert ln.gateway.counters[(case.carrier.value, "signature")] == 1


async def _stream_with(ln: Line, edit: str) -> tuple[CallResult, PhonePeer]:
    """Answer as the carrier would, then open the stream with its token edited."""
    peer = ln.peer()
    async with aiohttp.ClientSession() as session:
        signed_url, _ = await fetch_answer(session, peer, ln.answer_url, ln.secret)
    token = peer.custom_parameters[TOKEN_PARAMETER]
    if edit == "forged":
        peer.custom_parameters[TOKEN_PARAMETER] = token[:-4] + "AAAA"
    elif edit == "missing":
        del peer.custom_parameters[TOKEN_PARAMETER]
    elif edit == "expired":
        clock = ln.gateway.tokens._clock
        ln.gateway.tokens._clock = lambda: clock() + ln.gateway.tokens.ttl_s + 1
    result, _ = await ln.call([say("caller_goodbye", When.START, 300)], peer=peer,
                              answer_url=None, signed_url=signed_url, max_s=10.0)
    return result, peer


@pytest.mark.parametrize("case", TOKENS, ids=str)
@pytest.mark.parametrize("edit", ["forged", "missing", "expired"])
async def test_a_stream_without_its_valid_token_is_refused(
        case: CarrierCase, edit: str, tmp_path: Path) -> None:
    async with line(case, CALL, tmp_path) as ln:
        result, _ = await _stream_with(ln, edit)
    assert ln.sim.sessions == []  # no Live session was opened
    assert result.closed_by_gateway
    assert result.close_code == 1008
    [summary] = ln.gateway.finished
    assert summary.end.kind is EndKind.REFUSED
    assert summary.call_sid is None  # nothing of a refused stream goes on record


@pytest.mark.parametrize("case", TOKENS, ids=str)
async def test_a_replayed_token_is_refused(case: CarrierCase, tmp_path: Path) -> None:
    async with line(case, CALL, tmp_path) as ln:
        peer = ln.peer()
        async with aiohttp.ClientSession() as session:
            signed_url, _ = await fetch_answer(session, peer, ln.answer_url, ln.secret)
        first, _ = await ln.call([say("caller_book_table", When.START, 300)], peer=peer,
                                 answer_url=None, signed_url=signed_url)
        again = case.peer(dict(peer.custom_parameters))  # the same stream, replayed
        second, _ = await ln.call([say("caller_goodbye", When.START, 300)], peer=again,
                                  answer_url=None, signed_url=signed_url, max_s=10.0)
    assert first.media_received > 0  # the first use was served
    assert len(ln.sim.sessions) == 1  # the replay opened none
    assert second.close_code == 1008
    kinds = sorted(s.end.kind.value for s in ln.gateway.finished)
    assert kinds == sorted([EndKind.CALLER_HUNG_UP.value, EndKind.REFUSED.value])
