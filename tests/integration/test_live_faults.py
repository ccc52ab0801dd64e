"""Live API faults injected by the simulator, through real sockets: the call survives or
apologises, and no caller audio is lost across a reconnect.

Frame accounting used throughout: the gateway counts each caller frame once when it is first
written to a Live session (``frames_forwarded``) and again for every replay to a new session
(``live.frames_replayed``), and logs the frame each replay starts from; the simulator counts
what each session actually read. Together they show whether every frame the caller sent
reached the model, also those sent while no session was open or into a dying socket.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
import structlog
from websockets.asyncio.server import ServerConnection, serve

from gateway.bridge_config import CallServices
from gateway.carriers.core import Carrier
from gateway.config import Settings, custom_endpoint
from gateway.record import CallSummary
from gateway.registry import DEFAULT_AGENT, AgentRegistry
from gateway.rest.twilio import TwilioRest
from gateway.rig.phone import CallResult, Utterance, When, load_utterance, place_call
from gateway.rig.rest_fakes import Recorded
from gateway.rig.rest_fakes.twilio import fake_twilio
from gateway.rig.simulator import SimulatorServer
from gateway.rig.simulator.record import SessionRecord
from gateway.rig.simulator.scenario import scenario_from_dict
from gateway.rig.simulator.speech import speech_dir
from gateway.server import Gateway, load_prompt, running

SPEED = 8.0
ACCOUNT = "AC" + "1" * 32
TOKEN = "twilio-token-that-must-not-leak"
FALLBACK = "+15550199"
TURNS = [
    {"caller_text": "A table for two tomorrow, please.", "reply": "agent_options"},
    {"caller_text": "Seven thirty.", "reply": "agent_moved"},
    {"caller_text": "Thanks, goodbye.", "reply": "agent_goodbye"},
]
APOLOGY_MS = len(load_prompt().pcm) / 2 / 8  # played on a line of 8 kHz


def say(name: str, when: When = When.AFTER_REPLY, delay_ms: int = 600) -> Utterance:
    return Utterance(load_utterance(speech_dir() / f"{name}.wav"), when, delay_ms)


THREE_TURNS = [say("caller_book_table", When.START, 300), say("caller_seven_thirty"),
               say("caller_goodbye")]


@dataclass
class Outcome:
    result: CallResult
    summary: CallSummary
    sessions: list[SessionRecord]
    logs: list[dict[str, Any]] = field(default_factory=list)

    def events(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.logs if e.get("event") == name]


async def run_call(scenario: dict[str, Any], script: Sequence[Utterance], *,
                   rest: TwilioRest | None = None, api_key: str | None = None,
                   live_url: str | None = None, setup_timeout_s: float = 10.0,
                   fallback: str | None = None) -> Outcome:
    scenario = {"speed": SPEED, "turns": TURNS, **scenario}
    async with SimulatorServer(scenario_from_dict(scenario)) as sim:
        settings = Settings(endpoint=custom_endpoint(live_url or sim.url, "test-model",
                                                     api_key),
                            setup_timeout_s=setup_timeout_s, fallback_number=fallback)
        gateway = Gateway(settings, services=CallServices(
            agents=AgentRegistry(agents={DEFAULT_AGENT.name: DEFAULT_AGENT}),
            call_control={Carrier.TWILIO: rest} if rest else {},
            unavailable_prompt=load_prompt()))
        with structlog.testing.capture_logs() as logs:
            async with running(gateway) as port:
                result = await place_call(f"ws://127.0.0.1:{port}/media", list(script),
                                          speed=SPEED, max_s=120.0,
                                          parameters={"From": "+15550100"})
                await sim.wait_until(lambda: all(s.closed is not None for s in sim.sessions))
        [summary] = gateway.finished
        return Outcome(result, summary, list(sim.sessions), logs)


def assert_no_caller_audio_lost(out: Outcome) -> None:
    stats, live = out.summary.stats, out.summary.stats.live
    assert stats.frames_in == out.result.frames_sent
    assert stats.frames_forwarded == out.result.frames_sent  # each was written to a session
    assert live.frames_lost == 0
    # Each session reads what it is sent in the caller's order: the first from the call's
    # first frame, each later one from where the gateway began its replay. So the sessions
    # heard every frame if and only if each began no later than its predecessor stopped, and
    # the last heard the call's last frame.
    starts = [1] + [e["replay_from"] for e in out.events("live_reconnected")]
    assert len(starts) == len(out.sessions)
    heard_to = 0
    for start, session in zip(starts, out.sessions, strict=True):
        assert start <= heard_to + 1, f"frames {heard_to + 1}-{start - 1} reached no session"
        heard_to = start + session.audio_chunks - 1
    assert heard_to == out.result.frames_sent
    # The sessions read no more than was written to them: short only by frames written into
    # a going session's socket, which the next one was replayed.
    received = sum(s.audio_chunks for s in out.sessions)
    assert received <= stats.frames_forwarded + live.frames_replayed


def assert_resumed_with_newest_handle(out: Outcome) -> None:
    for old, new in zip(out.sessions, out.sessions[1:], strict=False):
        assert new.resumed
        assert new.setup is not None and old.handles
        assert new.setup["sessionResumption"] == {"handle": old.handles[-1]}


# -- recoverable: the call carries on -----------------------------------------------------


async def test_go_away_between_turns_swaps_at_the_turn_boundary() -> None:
    out = await run_call({"injections": [
        {"after_turn": 1, "go_away": {"time_left": "20s", "close": True}}]}, THREE_TURNS)
    live = out.summary.stats.live
    assert len(out.sessions) == 2 and live.swaps == 1 and live.reconnects == 1
    assert live.drops == 0  # the gateway left before the service cut the socket
    assert out.sessions[0].closed == (1000, "going away")
    assert_resumed_with_newest_handle(out)
    assert_no_caller_audio_lost(out)
    # The conversation went on where it was: the second session spoke turns 2 and 3.
    assert out.sessions[0].turns_completed == 1 and out.sessions[1].turns_completed == 2
    assert out.result.unanswered == 0 and len(out.result.response_ms) == 3
    assert out.result.clears == 0
    assert out.summary.end_reason == "caller hung up"
    [gap] = [e["gap_ms"] for e in out.events("live_reconnected")]
    assert gap > 0


async def test_go_away_mid_turn_with_little_time_left_swaps_before_the_cut() -> None:
    # 2 simulated seconds are 250 ms here: too little to wait for the 5 s reply to end.
    out = await run_call({"injections": [
        {"during_turn": 2, "offset_ms": 500, "go_away": {"time_left": "2s", "close": True}}]},
        THREE_TURNS)
    live = out.summary.stats.live
    assert live.swaps == 1 and live.drops == 0 and len(out.sessions) == 2
    assert out.events("live_swap_mid_turn")
    assert_resumed_with_newest_handle(out)
    assert_no_caller_audio_lost(out)
    # The new session heard the caller's second request again (replayed) and answered it.
    assert live.frames_replayed > 0
    assert out.result.unanswered == 0
    assert out.summary.end_reason == "caller hung up"


@pytest.mark.parametrize("fault", [
    {"drop": True},
    {"close": {"code": 1011, "reason": "Internal error occurred."}},
    {"close": {"code": 1011, "reason": "The service is currently unavailable."}},
    {"close": {"code": 1011, "reason": "Deadline expired before operation could complete."}},
    {"close": {"code": 1000}},
], ids=["drop-1006", "1011-internal", "1011-unavailable", "1011-deadline", "1000"])
async def test_a_dropped_session_mid_reply_is_resumed_and_the_call_continues(
        fault: dict[str, Any]) -> None:
    out = await run_call({"injections": [{"during_turn": 2, "offset_ms": 800, **fault}]},
                         THREE_TURNS)
    live = out.summary.stats.live
    assert len(out.sessions) == 2 and live.drops == 1 and live.reconnects == 1
    assert_resumed_with_newest_handle(out)
    # Frames written into the dying socket may be gone with it; all are replayed.
    assert_no_caller_audio_lost(out)
    assert live.frames_replayed > 0
    assert out.result.unanswered == 0
    assert out.summary.end_reason == "caller hung up"
    [lost] = out.events("live_session_lost")
    assert lost["retry"] is True


async def test_a_drop_between_turns_loses_nothing_the_caller_says_during_the_reconnect(
) -> None:
    # The caller starts speaking at once after the first reply, while the session is gone.
    script = [say("caller_book_table", When.START, 300),
              say("caller_seven_thirty", When.AFTER_REPLY, 0), say("caller_goodbye")]
    out = await run_call({"injections": [{"after_turn": 1, "drop": True}]}, script)
    live = out.summary.stats.live
    assert live.drops == 1 and len(out.sessions) == 2
    assert_resumed_with_newest_handle(out)
    assert_no_caller_audio_lost(out)
    assert out.result.unanswered == 0 and len(out.result.response_ms) == 3


async def test_a_stale_resumption_handle_falls_back_to_a_fresh_session() -> None:
    # The first resume finds its handle expired, as after the handle's lifetime. (The fresh
    # session is a new conversation to the simulator, so the drop fires once more there.)
    async with SimulatorServer(scenario_from_dict({
            "speed": SPEED, "turns": TURNS,
            "injections": [{"after_turn": 1, "drop": True}]})) as sim:
        resolve, forgotten = sim.handles.resolve, []

        def forget_once(handle: str) -> Any:
            if not forgotten:
                forgotten.append(handle)
                return None
            return resolve(handle)

        sim.handles.resolve = forget_once  # type: ignore[method-assign]
        gateway = Gateway(Settings(endpoint=custom_endpoint(sim.url, "test-model")))
        async with running(gateway) as port:
            result = await place_call(f"ws://127.0.0.1:{port}/media", THREE_TURNS,
                                      speed=SPEED, max_s=120.0)
            await sim.wait_until(lambda: all(s.closed is not None for s in sim.sessions))
    [summary] = gateway.finished
    sessions = sim.sessions
    assert [s.closed[0] if s.closed else None for s in sessions][:3] == [1006, 1008, 1006]
    assert summary.stats.live.stale_handles == 1
    assert sessions[1].setup["sessionResumption"] == {  # type: ignore[index]
        "handle": sessions[0].handles[-1]}
    assert sessions[2].setup["sessionResumption"] == {}  # type: ignore[index]
    assert sessions[3].resumed
    assert result.unanswered == 0 and summary.end_reason == "caller hung up"


# -- unrecoverable: an apology, never dead air ----------------------------------------------


@pytest.mark.parametrize(("scenario", "key", "fault"), [
    ({"required_key": "the-right-key"}, "a-wrong-key-that-must-not-leak", "credentials"),
    ({"known_models": ["some-other-model"]}, None, "model"),
], ids=["1007-bad-key", "1008-unknown-model"])
async def test_a_refused_setup_plays_the_apology_and_ends_the_call(
        scenario: dict[str, Any], key: str | None, fault: str) -> None:
    out = await run_call(scenario, THREE_TURNS[:1], api_key=key)
    assert len(out.sessions) == 1  # no retry can fix this: the service is not asked again
    assert out.summary.end_reason.startswith(f"live unavailable ({fault})")
    assert_heard_the_apology(out.result)
    [line] = out.events("live_unavailable")
    assert line["fault"] == fault and line["call_sid"] == out.result.call_sid
    if key:
        assert key not in repr(out.logs) and key not in out.summary.end_reason


async def test_quota_mid_call_apologises_after_what_was_said() -> None:
    out = await run_call({"injections": [{"after_turn": 1, "close": {
        "code": 1011, "reason": "You exceeded your current quota, please check your plan "
                                "and billing details."}}]}, THREE_TURNS)
    assert len(out.sessions) == 1
    assert out.summary.end_reason.startswith("live unavailable (quota)")
    assert len(out.result.response_ms) >= 1  # the first reply was heard, then the apology
    assert_heard_the_apology(out.result, earlier_ms=1)


@contextlib.asynccontextmanager
async def mute_live_server() -> AsyncIterator[str]:
    """Accepts the WebSocket and the setup, and never answers."""
    stop = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        with contextlib.suppress(Exception):
            await ws.recv()
            await stop.wait()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}/ws"
        stop.set()


async def test_setup_timeout_apologises_and_transfers_to_the_fallback_number(
        twilio: tuple[list[Recorded], TwilioRest]) -> None:
    requests, rest = twilio
    async with mute_live_server() as url:
        out = await run_call({}, THREE_TURNS[:1], live_url=url, setup_timeout_s=0.3,
                             rest=rest, fallback=FALLBACK)
    assert out.summary.end_reason.startswith("live unavailable (transient); transferred")
    assert_heard_the_apology(out.result)
    [req] = requests
    assert req.path.endswith(f"/Calls/{out.result.call_sid}.json")
    assert f"<Dial>{FALLBACK}</Dial>" in req.form["Twiml"]
    assert TOKEN not in repr(out.logs)


def assert_heard_the_apology(result: CallResult, *, earlier_ms: float = 0.0) -> None:
    """The recorded apology arrived in full, played out, and then the gateway hung up."""
    assert result.closed_by_gateway and result.unplayed_at_close_ms == 0
    if earlier_ms:
        assert result.audio_received_ms >= APOLOGY_MS + earlier_ms
    else:
        assert result.audio_received_ms == pytest.approx(APOLOGY_MS, abs=1)


@pytest.fixture
async def twilio() -> AsyncIterator[tuple[list[Recorded], TwilioRest]]:
    async with fake_twilio(ACCOUNT, TOKEN) as (fake, rest):
        yield fake.requests, rest


# -- a long call ----------------------------------------------------------------------------


LONG_SPEED = 60.0


async def test_a_30_minute_call_with_a_go_away_every_10_minutes_keeps_its_context() -> None:
    # The service's own rhythm: each connection lives 10 minutes and says goAway a minute
    # before the cut. The caller speaks about once a minute for half an hour.
    minute = [say("caller_book_table", When.AFTER_REPLY, 54_000),
              say("caller_seven_thirty", When.AFTER_REPLY, 54_000)]
    script = [say("caller_book_table", When.START, 300), *(minute * 15)][:30]
    scenario = scenario_from_dict({"speed": LONG_SPEED, "connection_lifetime_s": 600,
                                   "go_away_before_s": 60})
    async with SimulatorServer(scenario) as sim:
        gateway = Gateway(Settings(endpoint=custom_endpoint(sim.url, "test-model")))
        with structlog.testing.capture_logs() as logs:
            async with running(gateway) as port:
                result = await place_call(f"ws://127.0.0.1:{port}/media", script,
                                          speed=LONG_SPEED, max_s=2400.0)
                await sim.wait_until(lambda: all(s.closed is not None for s in sim.sessions))
    [summary] = gateway.finished
    out = Outcome(result, summary, list(sim.sessions), logs)
    call_minutes = result.frames_sent * 0.02 / 60
    assert call_minutes >= 30
    live = summary.stats.live
    assert live.swaps == 3 and live.drops == 0 and len(sim.sessions) == 4
    assert_resumed_with_newest_handle(out)
    assert_no_caller_audio_lost(out)
    assert result.unanswered == 0 and len(result.response_ms) == 30
    # One conversation: every reply was spoken once, across the four connections.
    assert sum(s.turns_completed for s in sim.sessions) == 30
    assert summary.end_reason == "caller hung up"
