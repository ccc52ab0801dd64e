"""Agents in whole calls over real loopback sockets: phone -> gateway -> simulator -> back.

The simulator plays the model: its scenario issues tool calls (and cancels them when the caller
barges in); the gateway really dispatches them to the agent's tools and answers. What reaches
the simulator (``tool_responses``, ``texts``, ``setup``, ``sent``) and what the phone heard are
the evidence. Calls run time-compressed (SPEED x real time) on the phone and the simulator.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import re
import sqlite3
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest

from gateway.agent import Agent, CallContext, Scheduling, ToolError, tool
from gateway.audio import pcm16_to_ulaw
from gateway.bridge_config import CallServices
from gateway.carriers.core import Carrier
from gateway.config import Settings, custom_endpoint
from gateway.log import mask_number
from gateway.record import CallSummary
from gateway.registry import DEFAULT_AGENT, AgentRegistry, bundled_agents, discover_agents
from gateway.rest.twilio import TwilioRest
from gateway.rig.phone import CallResult, Utterance, When, load_utterance, place_call
from gateway.rig.rest_fakes import Recorded
from gateway.rig.rest_fakes.twilio import FakeTwilio, fake_twilio
from gateway.rig.simulator import SimulatorServer, scenario_from_dict
from gateway.rig.simulator.record import SessionRecord
from gateway.rig.simulator.speech import fixture, speech_dir
from gateway.server import Gateway, load_prompt, running
from voicegw_agents import front_desk, support

SPEED = 6.0
ROOT = Path(__file__).resolve().parents[2]
CALLER = "+15550100"
ACCOUNT = "AC" + "5" * 32
TOKEN = "fake-twilio-auth-token-42"
TWILIO_SID = re.compile(r"CA[0-9a-f]{32}")
GOODBYE_MS = fixture("agent_goodbye").duration_s * 1000


# -- plumbing -------------------------------------------------------------------------------


@dataclass
class Line:
    """A simulator and a gateway in front of it, both on loopback."""

    sim: SimulatorServer
    gateway: Gateway
    port: int

    def url(self, path: str = "/media") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    async def call(self, script: Sequence[Utterance], path: str = "/media",
                   **kw: Any) -> CallResult:
        kw.setdefault("parameters", {"From": CALLER})
        kw.setdefault("max_s", 60.0)  # a stuck call fails the test instead of hanging it
        return await place_call(self.url(path), list(script), speed=SPEED, **kw)

    def summary(self, result: CallResult) -> CallSummary:
        [summary] = [s for s in self.gateway.finished if s.call_sid == result.call_sid]
        return summary


@contextlib.asynccontextmanager
async def line(turns: Sequence[dict[str, Any]], agents: Sequence[Agent], *,
               numbers: dict[str, str] | None = None, rest: TwilioRest | None = None,
               **scenario: Any) -> AsyncIterator[Line]:
    """The first agent answers plain ``/media``; after the block every call has finished."""
    scenario.setdefault("speed", SPEED)
    by_name = {DEFAULT_AGENT.name: DEFAULT_AGENT} | {a.name: a for a in agents}
    registry = AgentRegistry(agents=by_name, default=agents[0].name if agents else "assistant",
                             numbers=numbers or {})
    async with SimulatorServer(scenario_from_dict({**scenario, "turns": list(turns)})) as sim:
        gateway = Gateway(Settings(endpoint=custom_endpoint(sim.url, "test-model")),
                          services=CallServices(
                              agents=registry, unavailable_prompt=load_prompt(),
                              call_control={Carrier.TWILIO: rest} if rest else {}))
        async with running(gateway) as port:
            yield Line(sim, gateway, port)
            # Every Live session the calls opened has been closed by the gateway...
            await sim.wait_until(lambda: all(s.closed is not None for s in sim.sessions))
        # ...and leaving `running` drained the gateway: every call's summary is recorded.
    assert not gateway.calls


def say(name: str, when: When = When.AFTER_REPLY, delay_ms: int = 600) -> Utterance:
    return Utterance(load_utterance(speech_dir() / f"{name}.wav"), when, delay_ms)


def responses(session: SessionRecord) -> dict[str, dict[str, Any]]:
    """The simulator's received function responses by call id (each id answered once)."""
    ids = [r["id"] for r in session.tool_responses]
    assert len(ids) == len(set(ids)), ids
    return {r["id"]: r for r in session.tool_responses}


def reply_heard_in_full(result: CallResult, ms: float) -> bool:
    # One reply's audio at the phone is its recording resampled to 8 kHz: within a frame.
    return abs(result.audio_received_ms - ms) <= 20


def declared(session: SessionRecord) -> dict[str, dict[str, Any]]:
    assert session.setup is not None
    tools = session.setup.get("tools") or [{"functionDeclarations": []}]
    return {d["name"]: d for d in tools[0]["functionDeclarations"]}


def instruction(session: SessionRecord) -> str:
    assert session.setup is not None
    return str(session.setup["systemInstruction"]["parts"][0]["text"])


def next_open_day() -> dt.date:
    day = dt.date.today() + dt.timedelta(days=1)
    while day.weekday() in front_desk.CLOSED_WEEKDAYS:
        day += dt.timedelta(days=1)
    return day


@pytest.fixture(autouse=True)
def databases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The bundled agents' SQLite files live in this test's temporary directory."""
    monkeypatch.setenv("VOICEGW_FRONT_DESK_DB", str(tmp_path / "front_desk.sqlite3"))
    monkeypatch.setenv("VOICEGW_SUPPORT_DB", str(tmp_path / "support.sqlite3"))
    return tmp_path


# -- 1-4: tool results, scheduling, errors, timeouts ------------------------------------------


@tool
def opening_hours(day: Literal["monday", "tuesday", "wednesday", "thursday", "friday",
                               "saturday", "sunday"]) -> str:
    """Opening hours for a day of the week.

    Args:
        day: The day the caller asks about.
    """
    return "closed" if day == "monday" else "12:00 to 22:00"


async def test_a_blocking_tool_answers_with_the_call_id_before_the_reply_is_heard() -> None:
    agent = Agent(name="hours", instructions="You tell callers when we are open.",
                  tools=[opening_hours])
    turns = [{"caller_text": "Are you open on Monday?", "reply": "agent_goodbye",
              "reply_text": "Sorry, we are closed on Mondays.",
              "tool_calls": [{"name": "opening_hours", "args": {"day": "monday"},
                              "id": "hours-1"}]}]
    async with line(turns, [agent]) as ln:
        result = await ln.call([say("caller_seven_thirty", When.START, 300)])
    session = ln.sim.sessions[0]
    summary = ln.summary(result)

    assert declared(session)["opening_hours"]["parametersJsonSchema"]["required"] == ["day"]
    assert "behavior" not in declared(session)["opening_hours"]
    assert session.tool_responses == [{"id": "hours-1", "name": "opening_hours",
                                       "response": {"result": "closed"}}]
    # The reply waited for that answer (not for the simulator's own tool timeout)...
    assert session.tool_timeouts == 0
    assert session.sent.index("toolCall") < session.sent.index("audio")
    # ...and then the caller heard it, all of it.
    assert len(result.response_ms) == 1
    assert result.unanswered == 0
    assert reply_heard_in_full(result, GOODBYE_MS)
    [record] = summary.tool_calls
    assert (record.id, record.outcome, record.result) == ("hours-1", "ok", {"result": "closed"})
    assert summary.end_reason == "caller hung up"


async def test_non_blocking_tools_answer_with_their_scheduling() -> None:
    @tool(non_blocking=True, scheduling=Scheduling.INTERRUPT)
    async def table_freed(table: int) -> dict[str, Any]:
        """Tell the model at once when a table becomes free.

        Args:
            table: Table number.
        """
        return {"table": table, "free": True}

    @tool(non_blocking=True)
    def weather(city: str) -> str:
        """Tomorrow's weather, for the terrace.

        Args:
            city: City name.
        """
        return f"sunny in {city}"

    @tool(non_blocking=True, scheduling="SILENT")
    def note(text: str) -> dict[str, bool]:
        """Add a note to the booking.

        Args:
            text: The note.
        """
        return {"noted": bool(text)}

    agent = Agent(name="host", instructions="You seat guests.",
                  tools=[table_freed, weather, note])
    turns = [{"caller_text": "Can we sit on the terrace?", "reply": "agent_goodbye",
              "tool_calls": [{"name": "table_freed", "args": {"table": 7}, "id": "nb-1"},
                             {"name": "weather", "args": {"city": "Lyon"}, "id": "nb-2"},
                             {"name": "note", "args": {"text": "terrace"}, "id": "nb-3"}]}]
    async with line(turns, [agent]) as ln:
        result = await ln.call([say("caller_seven_thirty", When.START, 300)])
        await ln.sim.wait_until(lambda: len(ln.sim.sessions[0].tool_responses) == 3)
    session = ln.sim.sessions[0]

    assert {n: d.get("behavior") for n, d in declared(session).items()} == {
        "table_freed": "NON_BLOCKING", "weather": "NON_BLOCKING", "note": "NON_BLOCKING"}
    assert responses(session) == {
        "nb-1": {"id": "nb-1", "name": "table_freed", "response": {"table": 7, "free": True},
                 "scheduling": "INTERRUPT"},
        "nb-2": {"id": "nb-2", "name": "weather", "response": {"result": "sunny in Lyon"},
                 "scheduling": "WHEN_IDLE"},
        "nb-3": {"id": "nb-3", "name": "note", "response": {"noted": True},
                 "scheduling": "SILENT"},
    }
    # NON_BLOCKING: the model talked on at once, without waiting for the answers.
    cut = session.sent.index("toolCall")
    assert session.sent[cut + 1] == "audio"
    assert reply_heard_in_full(result, GOODBYE_MS)


async def test_tool_failures_reach_the_model_as_errors_with_their_ids() -> None:
    @tool
    def reserve(time: str) -> str:
        """Reserve a table.

        Args:
            time: HH:MM.
        """
        raise ToolError(f"No table at {time}")

    @tool
    async def loyalty_points(member: int) -> int:
        """A member's loyalty points.

        Args:
            member: Member number.
        """
        raise RuntimeError("database is locked")

    agent = Agent(name="broken", instructions="You try your best.",
                  tools=[reserve, loyalty_points])
    turns = [{"caller_text": "A table at eight, and my points?", "reply": "agent_goodbye",
              "reply_text": "Sorry, something went wrong.",
              "tool_calls": [{"name": "reserve", "args": {"time": "20:00"}, "id": "err-1"},
                             {"name": "loyalty_points", "args": {"member": 42}, "id": "err-2"},
                             {"name": "loyalty_points", "args": {"member": "forty"},
                              "id": "err-3"},
                             {"name": "no_such_tool", "args": {}, "id": "err-4"}]}]
    async with line(turns, [agent]) as ln:
        result = await ln.call([say("caller_seven_thirty", When.START, 300)])
    session = ln.sim.sessions[0]
    got = {cid: r["response"] for cid, r in responses(session).items()}

    assert got["err-1"] == {"error": "No table at 20:00"}
    assert got["err-2"] == {"error": "loyalty_points failed: RuntimeError: database is locked"}
    assert got["err-3"]["error"].startswith("invalid arguments: member:")
    assert got["err-4"]["error"].startswith("no tool named 'no_such_tool'")
    assert {r["name"] for r in session.tool_responses} == {"reserve", "loyalty_points",
                                                           "no_such_tool"}
    assert session.tool_timeouts == 0
    # The call carries on: the model's apology is heard.
    assert reply_heard_in_full(result, GOODBYE_MS)
    summary = ln.summary(result)
    assert summary.tool_stats is not None and summary.tool_stats.errors == 4
    assert summary.end_reason == "caller hung up"


async def test_a_tool_past_its_own_timeout_is_stopped_and_answered_with_an_error() -> None:
    started, stopped = asyncio.Event(), asyncio.Event()

    @tool(timeout_s=0.25)
    async def supplier_stock(item: str) -> str:
        """Ask the supplier whether an item is in stock.

        Args:
            item: What the caller wants.
        """
        started.set()
        try:
            await asyncio.Event().wait()  # the supplier never answers
        finally:
            stopped.set()
        return "in stock"

    agent = Agent(name="shop", instructions="You sell things.", tools=[supplier_stock],
                  tool_timeout_s=30.0)
    turns = [{"caller_text": "Do you have the boots?", "reply": "agent_goodbye",
              "tool_calls": [{"name": "supplier_stock", "args": {"item": "boots"},
                              "id": "slow-1"}]}]
    # The simulated model would wait far longer than the tool's 0.25 s.
    async with line(turns, [agent], tool_timeout_ms=30000) as ln:
        result = await ln.call([say("caller_seven_thirty", When.START, 300)])
    session = ln.sim.sessions[0]

    assert started.is_set() and stopped.is_set()
    assert session.tool_responses == [{"id": "slow-1", "name": "supplier_stock", "response": {
        "error": "supplier_stock did not answer within 0.25 s"}}]
    assert session.tool_timeouts == 0  # the gateway's timeout answered, not the model's
    assert reply_heard_in_full(result, GOODBYE_MS)
    summary = ln.summary(result)
    assert summary.tool_stats is not None and summary.tool_stats.timeouts == 1
    [record] = summary.tool_calls
    assert record.outcome == "error"
    assert 0.25 <= record.latency_s < 5


# -- 5: cancellation by barge-in ---------------------------------------------------------------


@dataclass
class Probe:
    started: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    sent_at_cancel: list[str] = field(default_factory=list)
    end_reason_at_cancel: str = ""


async def test_barge_in_cancels_a_running_non_blocking_tool_and_it_is_never_answered() -> None:
    probe = Probe()
    lines: list[Line] = []  # the tool reads the line it runs on, once it is open

    @tool(non_blocking=True)
    async def search_flights(destination: str) -> dict[str, Any]:
        """Search flights; slow.

        Args:
            destination: City.
        """
        probe.started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            probe.sent_at_cancel = list(lines[0].sim.sessions[0].sent)
            probe.end_reason_at_cancel = next(iter(lines[0].gateway.calls.values())).end.detail
            probe.cancelled.set()
            raise
        return {"flights": []}

    @tool(non_blocking=True)
    def loyalty_status() -> str:
        """The caller's frequent-flyer status."""
        return "gold"

    agent = Agent(name="travel", instructions="You book travel.",
                  tools=[search_flights, loyalty_status])
    turns = [
        {"caller_text": "Flights to Lisbon, please.", "reply": "agent_options", "cancel": True,
         "tool_calls": [{"name": "search_flights", "args": {"destination": "Lisbon"},
                         "id": "fl-1"},
                        {"name": "loyalty_status", "id": "fl-2"}]},
        {"caller_text": "Actually, wait.", "reply": "agent_goodbye"},
    ]
    async with line(turns, [agent]) as ln:
        lines.append(ln)
        result = await ln.call([say("caller_book_table", When.START, 300),
                                say("caller_barge_in", When.BARGE_IN, 800)])
    session = ln.sim.sessions[0]

    # The caller talked over the reply while the search ran: the model withdrew the call,
    # and the gateway cancelled the tool right then, mid-call (not at the end of the call).
    assert probe.started.is_set() and probe.cancelled.is_set()
    assert "toolCallCancellation" in probe.sent_at_cancel
    assert probe.end_reason_at_cancel == "not ended"  # the call was not ending
    after = session.sent[len(probe.sent_at_cancel):]
    assert "audio" in after and "turnComplete" in after  # the next reply came afterwards
    assert session.interruptions == 1 and result.clears == 1
    # No answer for the cancelled call ever reached the model; the other one was answered.
    assert set(responses(session)) == {"fl-2"}
    summary = ln.summary(result)
    records = {r.id: r for r in summary.tool_calls}
    assert records["fl-1"].outcome == "cancelled"
    assert records["fl-2"].outcome == "ok"
    assert summary.tool_stats is not None and summary.tool_stats.cancelled == 1
    assert summary.end_reason == "caller hung up"


# -- 6, 7: ending and transferring the call ----------------------------------------------------


CLOSER = Agent(name="closer", instructions="Say goodbye, then call end_call.",
               call_control=["end_call"])
END_TURN = {"caller_text": "Thanks, goodbye.", "reply": "agent_goodbye",
            "tool_calls": [{"name": "end_call", "args": {"reason": "caller said goodbye"},
                            "id": "end-1"}]}


async def test_end_call_hangs_up_only_after_the_goodbye_has_played_to_the_end() -> None:
    # The simulated model speaks 4x faster than the phone plays (as Gemini generates faster
    # than real time): its turn is complete long before the caller has heard the goodbye.
    async with line([END_TURN], [CLOSER], speed=SPEED * 4) as ln:
        result = await ln.call([say("caller_goodbye", When.START, 300)], tail_ms=10_000)
    session = ln.sim.sessions[0]
    summary = ln.summary(result)

    assert session.tool_responses == [{"id": "end-1", "name": "end_call", "response": {
        "result": "Hanging up after your last words. Say nothing more."}}]
    # The gateway, not the phone, ended the call...
    assert result.closed_by_gateway
    assert result.close_code == 1000
    assert summary.end_reason == "agent ended the call: caller said goodbye"
    # ...after all of the goodbye had arrived and been played out.
    assert session.interruptions == 0
    assert reply_heard_in_full(result, GOODBYE_MS)
    assert result.unplayed_at_close_ms == 0
    times = {what: ms for ms, what in result.timeline}  # the last time of each kind
    first_audio = next(ms for ms, what in result.timeline if what == "media")
    assert times["close"] - first_audio >= result.audio_received_ms - 20
    assert times["mark:call-control"] >= times["media"]  # queued behind the last audio


@pytest.fixture
async def twilio() -> AsyncIterator[tuple[FakeTwilio, TwilioRest]]:
    async with fake_twilio(ACCOUNT, TOKEN) as (fake, rest):
        yield fake, rest


def assert_twilio_request(request: Recorded, call_sid: str) -> None:
    assert TWILIO_SID.fullmatch(call_sid), call_sid
    assert request.path == f"/2010-04-01/Accounts/{ACCOUNT}/Calls/{call_sid}.json"
    assert request.auth == "Basic " + base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()
    assert request.content_type == "application/x-www-form-urlencoded"


async def test_transfer_redirects_the_call_through_twilio_rest_after_the_last_words(
        twilio: tuple[FakeTwilio, TwilioRest]) -> None:
    fake, rest = twilio
    desk = Agent(name="desk", instructions="Transfer callers who ask for billing.",
                 call_control=["transfer_call"], transfer_to="+15550100",
                 transfer_targets={"billing": "+15550111"})
    turns = [{"caller_text": "Can I talk to billing?", "reply": "agent_goodbye",
              "reply_text": "Transferring you to billing now.",
              "tool_calls": [{"name": "transfer_call", "args": {"to": "billing"},
                              "id": "xfer-1"}]}]
    async with line(turns, [desk], rest=rest, speed=SPEED * 4) as ln:
        result = await ln.call([say("caller_seven_thirty", When.START, 300)], tail_ms=10_000)
    session = ln.sim.sessions[0]

    assert declared(session)["transfer_call"]["parametersJsonSchema"]["properties"]["to"][
        "enum"] == ["billing"]
    assert session.tool_responses == [{"id": "xfer-1", "name": "transfer_call",
                                       "response": {"result": "Transferring the caller now."}}]
    [request] = fake.requests
    assert_twilio_request(request, result.call_sid)
    assert request.form == {"Twiml": "<Response><Dial>+15550111</Dial></Response>"}
    assert ln.summary(result).end_reason == f"transferred to {mask_number('+15550111')}"
    assert result.closed_by_gateway and result.unplayed_at_close_ms == 0
    assert reply_heard_in_full(result, GOODBYE_MS)


async def test_end_call_hangs_up_through_twilio_rest(
        twilio: tuple[FakeTwilio, TwilioRest]) -> None:
    fake, rest = twilio
    async with line([END_TURN], [CLOSER], rest=rest, speed=SPEED * 4) as ln:
        result = await ln.call([say("caller_goodbye", When.START, 300)], tail_ms=10_000)

    [request] = fake.requests
    assert_twilio_request(request, result.call_sid)
    assert request.form == {"Status": "completed"}
    assert ln.summary(result).end_reason == "agent ended the call: caller said goodbye"
    assert result.closed_by_gateway and result.unplayed_at_close_ms == 0
    assert reply_heard_in_full(result, GOODBYE_MS)


# -- 8: the keypad -------------------------------------------------------------------------------


async def test_keypad_digits_reach_the_model_and_the_tools() -> None:
    @tool
    async def keys_pressed(ctx: CallContext) -> dict[str, Any]:
        """The keys the caller has pressed so far."""
        return {"keys": list(ctx.dtmf)}

    agent = Agent(name="keypad", instructions="Callers choose options by pressing keys.",
                  tools=[keys_pressed])
    turns = [{"reply": "agent_goodbye", "reply_text": "You pressed five.",
              "tool_calls": [{"name": "keys_pressed", "id": "keys-1"}]}]
    async with line(turns, [agent]) as ln:
        # The caller presses 5 the moment the call connects, before the model is even there.
        result = await ln.call([Utterance(dtmf="5", when=When.START, delay_ms=0)])
    session = ln.sim.sessions[0]

    assert result.dtmf_sent == 1
    assert session.texts == ["The caller pressed 5."]
    assert session.tool_responses == [{"id": "keys-1", "name": "keys_pressed",
                                       "response": {"keys": ["5"]}}]
    assert reply_heard_in_full(result, GOODBYE_MS)


# -- 9, 10: which agent answers ----------------------------------------------------------------


async def test_an_unknown_agent_gets_the_recorded_apology_and_no_live_session() -> None:
    prompt = load_prompt()
    assert prompt.rate == 8000  # as the line: what the caller hears is its mu-law
    heard = pcm16_to_ulaw(prompt.pcm)
    async with line([], [CLOSER]) as ln:
        result = await ln.call([], path="/media/nosuch", tail_ms=10_000)

    assert ln.sim.sessions == []
    assert result.audio_received_ms == len(heard) / 8
    assert heard in bytes(result.heard)  # played whole, uninterrupted
    assert result.closed_by_gateway and result.unplayed_at_close_ms == 0
    summary = ln.summary(result)
    assert summary.agent is None
    assert summary.end_reason == "unknown agent 'nosuch'"


def _persona(name: str) -> Agent:
    @tool(name=f"{name}_lookup")
    def lookup(query: str) -> str:
        """Look something up.

        Args:
            query: What to look up.
        """
        return query

    return Agent(name=name, instructions=f"You are the {name} line.", tools=[lookup],
                 greeting=f"Hello, {name} here.")


async def test_calls_are_routed_by_path_then_parameter_then_dialled_number() -> None:
    alpha, beta, gamma = _persona("alpha"), _persona("beta"), _persona("gamma")
    fallback = Agent(name="reception", instructions="You are the main line.",
                     greeting="Main line, hello.")
    turns = [{"reply": "agent_goodbye"}]
    calls = [  # (path, parameters, the agent that must answer)
        ("/media/alpha", {"agent": "beta", "To": "+15550111"}, alpha),
        ("/media", {"agent": "beta", "To": "+15550111"}, beta),
        ("/media", {"To": "+1 (555) 011-1"}, gamma),
        ("/media", {"To": "+15559999"}, fallback),
    ]
    async with line(turns, [fallback, alpha, beta, gamma],
                    numbers={"+15550111": "gamma"}) as ln:
        results = await asyncio.gather(*(
            ln.call([], path=path, parameters={"From": CALLER, **params})
            for path, params, _ in calls))
    sessions = {instruction(s): s for s in ln.sim.sessions}

    assert len(ln.sim.sessions) == len(calls) == len(sessions)
    for (_, _, agent), result in zip(calls, results, strict=True):
        assert ln.summary(result).agent == agent.name
        session = sessions[agent.instructions]
        assert list(declared(session)) == list(agent.all_tools)
        assert session.texts == [agent.greeting_prompt()]
        assert reply_heard_in_full(result, GOODBYE_MS)


# -- 11: the bundled agents ----------------------------------------------------------------------


def _bundled_registry_numbers() -> dict[str, str]:
    return {"+15550120": "front_desk", "+15550130": "support"}


async def test_front_desk_checks_books_and_hangs_up(databases: Path) -> None:
    day = next_open_day().isoformat()
    booking = {"date": day, "time": "19:30", "party_size": 2}
    turns = [
        {"reply": "agent_greeting", "reply_text": front_desk.agent.greeting},
        {"caller_text": "Hi, I'd like to book a table for two tomorrow evening.",
         "reply": "agent_goodbye", "reply_text": "Yes, 19:30 is free. Shall I book it?",
         "tool_calls": [{"name": "current_date", "id": "fd-date"},
                        {"name": "check_availability", "args": booking, "id": "fd-check"}]},
        {"caller_text": "Seven thirty would be great, for Jane Doe.",
         "reply": "agent_goodbye", "reply_text": "Booked. Your code is on its way.",
         "tool_calls": [{"name": "book_table", "args": {"name": "Jane Doe", **booking},
                         "id": "fd-book"}]},
        END_TURN,
    ]
    agents = discover_agents()
    async with line(turns, [agents["front_desk"], agents["support"]],
                    numbers=_bundled_registry_numbers()) as ln:
        result = await ln.call([say("caller_book_table"), say("caller_seven_thirty"),
                                say("caller_goodbye")],
                               parameters={"From": CALLER, "To": "+1 555 0120"},
                               tail_ms=10_000)
    session = ln.sim.sessions[0]
    got = {cid: r["response"] for cid, r in responses(session).items()}

    assert instruction(session) == front_desk.agent.instructions
    assert session.texts == [front_desk.agent.greeting_prompt()]
    today = dt.date.today()
    assert got["fd-date"] == {"date": today.isoformat(), "weekday": today.strftime("%A")}
    assert got["fd-check"] == {"available": True}
    code = got["fd-book"]["booking_id"]
    assert re.fullmatch(r"FD-[ACDEFHJKMNPRTUVWXY34679]{4}", code)
    assert got["fd-book"] == {"booking_id": code, "name": "Jane Doe", **booking}
    assert set(got) == {"fd-date", "fd-check", "fd-book", "end-1"}
    assert session.tool_timeouts == 0
    # The booking is really in the database, under the number that called.
    with contextlib.closing(sqlite3.connect(databases / "front_desk.sqlite3")) as db:
        rows = db.execute("SELECT id, name, phone, day, start_min, party_size "
                          "FROM bookings").fetchall()
    assert rows == [(code, "Jane Doe", CALLER, day, 19 * 60 + 30, 2)]
    summary = ln.summary(result)
    assert summary.agent == "front_desk"
    assert summary.end_reason == "agent ended the call: caller said goodbye"
    assert result.closed_by_gateway and result.unplayed_at_close_ms == 0
    assert len(result.response_ms) == 4 and result.unanswered == 0


async def test_support_looks_up_orders_said_and_typed() -> None:
    turns = [
        {"reply": "agent_greeting", "reply_text": support.agent.greeting},
        {"caller_text": "Hi, where is my order one zero zero four two?",
         "reply": "agent_goodbye", "reply_text": "It shipped with DHL.",
         "tool_calls": [{"name": "lookup_order", "args": {"order_id": "10042"},
                         "id": "sp-1"}]},
        {"reply": "agent_goodbye", "reply_text": "Thanks, I have 10043.",
         "tool_calls": [{"name": "read_keypad", "id": "sp-2"}]},
        {"caller_text": "Yes, that one.", "reply": "agent_goodbye",
         "reply_text": "It is still being packed.",
         "tool_calls": [{"name": "lookup_order", "args": {"order_id": "10043"},
                         "id": "sp-3"}]},
    ]
    agents = discover_agents()
    async with line(turns, [agents["front_desk"], agents["support"]],
                    numbers=_bundled_registry_numbers()) as ln:
        result = await ln.call([say("caller_book_table"), Utterance(dtmf="10043#"),
                                say("caller_goodbye")],
                               parameters={"From": CALLER, "To": "+15550130"})
    session = ln.sim.sessions[0]
    got = {cid: r["response"] for cid, r in responses(session).items()}

    assert instruction(session) == support.agent.instructions
    assert session.texts == [support.agent.greeting_prompt(),
                             *(f"The caller pressed {k}." for k in "10043#")]
    assert got["sp-1"] == {"found": True, "order_id": "10042", "customer": "John Roe",
                           "items": "rain jacket (navy, M)", "status": "shipped",
                           "carrier": "DHL", "estimated_delivery": "2031-05-14"}
    assert got["sp-2"] == {"digits": "10043"}
    assert got["sp-3"]["status"] == "processing"
    assert got["sp-3"]["order_id"] == "10043"
    assert session.turns_completed == 4 and session.interruptions == 0
    assert result.dtmf_sent == 6 and result.unanswered == 0
    summary = ln.summary(result)
    assert summary.agent == "support"
    assert summary.end_reason == "caller hung up"


# -- the README's example agent ------------------------------------------------------------------


def readme_agent_block() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    _, found, section = text.partition("\n## Write your own agent\n")
    assert found, "README.md has no 'Write your own agent' section"
    section = section.split("\n## ", 1)[0]
    match = re.search(r"^```python\n(.*?)^```$", section, re.DOTALL | re.MULTILINE)
    assert match, "no python code block in 'Write your own agent'"
    return match.group(1)


def test_readme_example_is_the_tested_agent_file() -> None:
    example = ROOT / "tests" / "fixtures" / "agents" / "bistro.py"
    assert readme_agent_block().encode() == example.read_bytes()


async def test_readme_example_agent_in_a_whole_call() -> None:
    from tests.fixtures.agents import bistro  # the file, found as a dropped-in agent would be

    [agent] = bundled_agents("tests.fixtures.agents")
    assert agent is bistro.agent
    bistro.CALLBACKS.clear()
    turns = [
        {"reply": "agent_greeting", "reply_text": agent.greeting},
        {"caller_text": "Are you open on Monday? If not, can the manager call me? I'm Jane.",
         "reply": "agent_goodbye", "reply_text": "We're closed on Mondays; he'll call you.",
         "tool_calls": [{"name": "opening_hours", "args": {"day": "monday"}, "id": "b-1"},
                        {"name": "request_callback", "args": {"name": "Jane"}, "id": "b-2"}]},
        END_TURN,
    ]
    async with line(turns, [agent]) as ln:
        result = await ln.call([say("caller_book_table"), say("caller_goodbye")],
                               path="/media/bistro", tail_ms=10_000)
    session = ln.sim.sessions[0]

    # No REST credentials on this line, so no transfer: the model is not offered one.
    assert list(declared(session)) == ["opening_hours", "request_callback", "end_call"]
    assert {cid: r["response"] for cid, r in responses(session).items()} == {
        "b-1": {"result": "closed"},
        "b-2": {"result": "The manager will call Jane back today."},
        "end-1": {"result": "Hanging up after your last words. Say nothing more."},
    }
    assert bistro.CALLBACKS == [{"name": "Jane", "number": CALLER}]
    assert ln.summary(result).end_reason == "agent ended the call: caller said goodbye"
    assert result.closed_by_gateway and result.unplayed_at_close_ms == 0
