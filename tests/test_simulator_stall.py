"""The simulated model that goes quiet (scenario ``stall``), driven sans-I/O on a fake clock."""

from __future__ import annotations

import pytest

from gateway.rig.simulator import ScenarioError, scenario_from_dict
from gateway.rig.simulator.record import HandleStore
from gateway.rig.simulator.scenario import Scenario, StallUntil, Turn
from gateway.rig.simulator.session import Phase
from tests.test_simulator import FULL_SETUP, MODEL, Driver, kinds

NUDGE = {"realtimeInput": {"text": "(The caller is waiting.)"}}


def stalling(until: StallUntil) -> Scenario:
    return Scenario(speed=20.0, turns=(Turn(reply="agent_goodbye"),
                                       Turn(reply="agent_moved", stall=until),
                                       Turn(reply="agent_options")))


def first_turn_done(d: Driver) -> None:
    d.send(FULL_SETUP)
    d.say("caller_book_table")
    d.settle()
    assert d.record.turns_completed == 1


def test_a_stalled_turn_sends_its_transcription_and_then_nothing() -> None:
    d = Driver(stalling(StallUntil.NUDGE))
    first_turn_done(d)
    d.say("caller_seven_thirty")
    assert kinds(d.settle()) == ["inputTranscription"]  # then silence: no turnComplete
    assert d.session.phase is Phase.STALLED and d.record.stalled_turns == [2]
    # "Hello?" into the silence, however long, wakes nothing.
    d.say("caller_goodbye")
    assert d.settle() == [] and d.record.turns_completed == 1
    assert d.advance(600.0) == []


@pytest.mark.parametrize("nudge", [
    NUDGE,
    {"clientContent": {"turns": [{"role": "user", "parts": [{"text": "go on"}]}],
                       "turnComplete": True}},
], ids=["realtime-text", "client-content"])
def test_stall_nudge_is_woken_by_a_text_input(nudge: dict[str, object]) -> None:
    d = Driver(stalling(StallUntil.NUDGE))
    first_turn_done(d)
    d.say("caller_seven_thirty")
    d.settle()
    d.send({"clientContent": {"turns": [{"role": "user", "parts": [{"text": "x"}]}],
                              "turnComplete": False}})
    assert d.settle() == []  # an unfinished client turn is not a prompt
    d.send(nudge)
    ks = kinds(d.settle())
    assert ks[0] == "audio" and "turnComplete" in ks and "inputTranscription" not in ks
    assert d.record.turns_completed == 2 and d.record.nudged == 1
    # The conversation goes on: the next turn is answered as usual.
    d.say("caller_goodbye")
    assert "turnComplete" in kinds(d.settle()) and d.record.turns_completed == 3


def test_stall_session_ignores_text_and_a_resumed_connection_answers() -> None:
    handles = HandleStore()
    sc = stalling(StallUntil.SESSION)
    d = Driver(sc, handles=handles)
    first_turn_done(d)
    handle = d.record.handles[-1]
    d.say("caller_seven_thirty")
    d.settle()
    d.send(NUDGE)
    assert d.settle() == [] and d.record.texts == [NUDGE["realtimeInput"]["text"]]
    assert d.session.phase is Phase.STALLED
    # A new connection resuming before the stall hears the caller's turn again: it answers.
    d2 = Driver(sc, handles=handles)
    d2.send({"setup": {**FULL_SETUP["setup"], "sessionResumption": {"handle": handle}}})
    d2.say("caller_seven_thirty")
    ks = kinds(d2.settle())
    assert ks[:2] == ["inputTranscription", "audio"] and "turnComplete" in ks
    assert d2.record.stalled_turns == [] and d2.record.turns_completed == 1
    d2.say("caller_goodbye")
    d2.settle()
    assert d2.record.turns_completed == 2


def test_a_fresh_session_is_a_new_conversation_and_stall_never_stalls_everywhere() -> None:
    handles = HandleStore()
    sc = stalling(StallUntil.NEVER)
    d = Driver(sc, handles=handles)
    first_turn_done(d)
    handle = d.record.handles[-1]
    d.say("caller_seven_thirty")
    d.settle()
    d.send(NUDGE)
    assert d.settle() == []
    d2 = Driver(sc, handles=handles)
    d2.send({"setup": {"model": MODEL, "inputAudioTranscription": {},
                       "sessionResumption": {"handle": handle}}})
    d2.say("caller_seven_thirty")
    assert kinds(d2.settle()) == ["inputTranscription"]
    assert d2.record.stalled_turns == [2]


def test_stall_is_validated() -> None:
    sc = scenario_from_dict({"turns": [{"stall": "session"}]})
    assert sc.turns[0].stall is StallUntil.SESSION
    with pytest.raises(ScenarioError, match=r"turns\[0\]\.stall.*nudge, session, never"):
        scenario_from_dict({"turns": [{"stall": "forever"}]})
    with pytest.raises(ScenarioError, match=r"turns\[0\]\.stall"):
        scenario_from_dict({"turns": [{"stall": True}]})
