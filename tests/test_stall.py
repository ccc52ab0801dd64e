"""The stall watch's core (sans-I/O, on a fake clock) and the stall on the stored record."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from gateway.agent import Agent, ToolDefinitionError
from gateway.config import load_settings
from gateway.errors import ConfigError, GatewayError
from gateway.stall import (
    StallOutcome,
    StallRecord,
    StallStats,
    StallTimes,
    StallTrigger,
    StallWatch,
    Step,
    Watch,
)
from gateway.store.sqlite import SqliteStore
from gateway.watchdog import times_for
from tests.store_data import record

TIMES = StallTimes(timeout_s=2.0, step_s=1.0, min_speech_s=0.2, speech_gap_s=0.6,
                   echo_tail_s=0.3)
FRAME = 0.02


def watch() -> StallWatch:
    return StallWatch(TIMES, StallStats(), t0=0.0)


def state(w: StallWatch) -> Watch:
    return w.state  # read afresh: each step moves it


def speak(w: StallWatch, start: float, seconds: float, *, audible: bool = False) -> float:
    """Speech frames every 20 ms from ``start``; returns the last frame's time."""
    at = start
    for i in range(round(seconds / FRAME)):
        at = start + i * FRAME
        w.caller_speech(at, audible)
    return at


def test_the_end_of_the_caller_s_speech_arms_it_and_the_clock_runs_from_there() -> None:
    w = watch()
    last = speak(w, 10.0, 1.5)
    assert state(w) is Watch.ARMED and w.deadline == pytest.approx(last + 2.0)
    assert w.due(last + 1.99) is None
    assert w.due(last + 2.0) is Step.NUDGE and state(w) is Watch.NUDGED


def test_a_click_is_not_a_turn_and_a_pause_starts_a_new_utterance() -> None:
    w = watch()
    speak(w, 10.0, 0.1)  # 100 ms: under min_speech_s
    speak(w, 11.0, 0.1)  # after a pause longer than speech_gap_s: counted afresh
    assert state(w) is Watch.IDLE and w.deadline is None


def test_speech_while_the_agent_is_heard_and_its_echo_tail_owe_nothing() -> None:
    w = watch()
    last = speak(w, 10.0, 3.0, audible=True)  # talking over the agent, or its echo
    assert state(w) is Watch.IDLE
    speak(w, last + FRAME, 0.25)  # the echo's tail, just after the agent stopped
    assert state(w) is Watch.IDLE
    speak(w, last + 0.5, 0.5)  # the caller's own turn
    assert state(w) is Watch.ARMED


def test_reply_audio_disarms_and_a_stall_ends_by_the_step_it_reached() -> None:
    w = watch()
    last = speak(w, 10.0, 1.0)
    assert w.model_answered(last + 0.8) is None and state(w) is Watch.IDLE  # no stall
    last = speak(w, 20.0, 1.0)
    assert w.due(last + 2.0) is Step.NUDGE
    done = w.model_answered(last + 2.4)
    assert done is not None
    assert (done.at_s, done.trigger, done.outcome) == (
        round(last + 2.0, 3), StallTrigger.CALLER, StallOutcome.NUDGED)
    assert done.quiet_ms == pytest.approx(2400.0)
    last = speak(w, 30.0, 1.0)
    assert w.due(last + 2.0) is Step.NUDGE
    assert w.due(last + 3.0) is Step.RESUME and state(w) is Watch.RESUMING
    w.caller_speech(last + 3.2, False)  # "hello?": a recovery step does not wait for it
    assert w.deadline == pytest.approx(last + 4.0)
    resumed = w.model_answered(last + 3.5)
    assert resumed is not None and resumed.outcome is StallOutcome.RESUMED
    assert w.stats.counts == {StallOutcome.NUDGED: 1, StallOutcome.RESUMED: 1,
                              StallOutcome.APOLOGISED: 0, StallOutcome.ABANDONED: 0}


def test_nothing_answers_the_apology_is_the_last_step() -> None:
    w = watch()
    w.asked(5.0, StallTrigger.TOOL_RESPONSE)
    assert [w.due(t) for t in (7.0, 8.0, 9.0)] == [Step.NUDGE, Step.RESUME, Step.APOLOGISE]
    assert state(w) is Watch.APOLOGISING and w.deadline is None
    [rec] = w.stats.records
    assert (rec.trigger, rec.outcome, rec.quiet_ms) == (
        StallTrigger.TOOL_RESPONSE, StallOutcome.APOLOGISED, 4000.0)
    assert w.model_answered(9.5) is None  # too late: the call is ending
    assert w.ended(10.0) is None and w.stats.total == 1


def test_a_call_ending_during_a_stall_abandons_it_once() -> None:
    w = watch()
    w.asked(0.0, StallTrigger.INTERRUPTED)
    assert w.due(2.0) is Step.NUDGE
    abandoned = w.ended(2.5)
    assert abandoned is not None and abandoned.outcome is StallOutcome.ABANDONED
    assert w.ended(2.6) is None and w.stats.total == 1


def test_waiting_on_the_gateway_postpones_and_a_new_session_gets_a_step() -> None:
    w = watch()
    w.asked(0.0, StallTrigger.PROMPTED)
    w.postpone(2.0)  # a tool runs, or no session is open: not the model's silence
    assert state(w) is Watch.ARMED and w.deadline == 3.0
    assert w.due(3.0) is Step.NUDGE
    w.session_opened(3.5)  # e.g. a drop and reconnect: it deserves its own time
    assert w.due(4.0) is None and w.deadline == 4.5


def test_transcribed_words_arm_an_idle_watch_only_when_the_agent_is_not_heard() -> None:
    w = watch()
    w.heard_caller(5.0, audible=True)
    assert state(w) is Watch.IDLE
    w.heard_caller(6.0, audible=False)
    assert state(w) is Watch.ARMED and w.deadline == 8.0
    w.heard_caller(7.0, audible=False)  # sent late by the service: never moves the clock
    assert w.deadline == 8.0


def test_the_table_of_moves_is_enforced() -> None:
    w = watch()
    with pytest.raises(GatewayError, match="idle -> nudged"):
        w._move(Watch.NUDGED)


def test_settings_are_checked_and_an_agent_s_timeout_wins() -> None:
    with pytest.raises(ValueError, match="step_s"):
        StallTimes(step_s=0)
    with pytest.raises(ValueError, match="timeout_s"):
        StallTimes(timeout_s=float("nan"))
    assert not StallTimes(timeout_s=0).enabled
    gateway = StallTimes(timeout_s=2.0, step_s=0.5)
    assert times_for(gateway, None) is gateway
    assert times_for(gateway, 4.0) == dataclasses.replace(gateway, timeout_s=4.0)
    assert not times_for(gateway, 0.0).enabled


async def test_stalls_are_stored_and_read_back(tmp_path: Path) -> None:
    stalls = (StallRecord(3.2, StallTrigger.CALLER, StallOutcome.NUDGED, 2300.5),
              StallRecord(9.0, StallTrigger.TOOL_RESPONSE, StallOutcome.RESUMED, 3400.0))
    call = dataclasses.replace(record("CAstall"), stalls=stalls)
    store = SqliteStore(tmp_path / "calls.db")
    await store.open()
    try:
        await store.write([call])
        got = await store.get_call("CAstall")
    finally:
        await store.aclose()
    assert got is not None and got.stalls == stalls


def test_the_gateway_s_setting_comes_from_the_environment_and_agents_are_checked() -> None:
    env = {"GEMINI_API_KEY": "k" * 39}
    default = load_settings(env=env)
    assert (default.stall_timeout_s, default.stall_step_s) == (2.0, 1.0)
    tuned = load_settings(env={**env, "VOICEGW_STALL_TIMEOUT_S": "3.5",
                               "VOICEGW_STALL_STEP_S": "0.8"})
    assert (tuned.stall_timeout_s, tuned.stall_step_s) == (3.5, 0.8)
    assert load_settings(env={**env, "VOICEGW_STALL_TIMEOUT_S": "0"}).stall_timeout_s == 0
    with pytest.raises(ConfigError, match="VOICEGW_STALL_TIMEOUT_S"):
        load_settings(env={**env, "VOICEGW_STALL_TIMEOUT_S": "-1"})
    with pytest.raises(ToolDefinitionError, match="stall_timeout_s"):
        Agent(name="a", instructions="x", stall_timeout_s=-1.0)
    assert Agent(name="a", instructions="x", stall_timeout_s=0.0).stall_timeout_s == 0.0
