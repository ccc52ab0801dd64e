"""Turn-taking: the agent's settings, the turn state machine, and the detectors on real speech."""

from __future__ import annotations

import json

import pytest

from gateway import live
from gateway.agent import Agent
from gateway.audio import Resampler
from gateway.rig.simulator.speech import caller_pcm16, silence_pcm16
from gateway.turns import (
    _MOVES,
    Detector,
    LocalTurns,
    SpeechEnded,
    SpeechStarted,
    TurnEvent,
    TurnMode,
    TurnState,
    TurnTaking,
    TurnTakingError,
    TurnTracker,
)
from gateway.vad_detectors import SileroDetector, WebRtcDetector, make_detector

FRAME = 640  # 20 ms at 16 kHz


class Scripted:
    """A detector that reads its verdict from the frame: first byte 1 = speech."""

    frame_bytes = FRAME

    def is_speech(self, frame: bytes) -> bool:
        return frame[0] == 1


def frames(pattern: str) -> bytes:
    """'S' = a 20 ms speech frame, '.' = a silent one."""
    return b"".join((b"\x01" if c == "S" else b"\x00") * FRAME for c in pattern)


def state(t: TurnTracker) -> TurnState:
    return t.state  # read afresh: mypy would keep an earlier assert's narrowing


def track(pattern: str, **kw: int) -> tuple[TurnTracker, list[TurnEvent]]:
    t = TurnTracker(Scripted(), **kw)
    return t, t.feed(frames(pattern))


# -- the state machine ---------------------------------------------------------------------


def test_speech_counts_only_after_the_minimum_duration() -> None:
    t, events = track("S" * 9, min_speech_ms=200)
    assert events == [] and t.state is TurnState.MAYBE_SPEECH
    assert t.feed(frames("S")) == [SpeechStarted(0.0)]  # 10 frames: 200 ms
    assert state(t) is TurnState.SPEECH


def test_a_click_shorter_than_the_minimum_is_forgotten() -> None:
    t, events = track("SSS....", min_speech_ms=200, onset_gap_ms=60)
    assert events == [] and t.state is TurnState.SILENT


def test_a_missed_frame_inside_the_onset_does_not_reset_it() -> None:
    _t, events = track("...SSSSS.SSSSS", min_speech_ms=200, onset_gap_ms=60)
    assert events == [SpeechStarted(60.0)]  # where the speech began, not where it counted


def test_a_pause_shorter_than_the_silence_keeps_the_turn() -> None:
    t, events = track("S" * 10 + "." * 20 + "S" * 5 + "." * 24, silence_ms=500)
    assert events == [SpeechStarted(0.0)] and t.state is TurnState.HANGOVER
    assert t.feed(frames(".")) == [SpeechEnded(700.0)]  # 500 ms after the last speech
    assert state(t) is TurnState.SILENT


def test_frames_of_any_size_give_the_same_boundaries() -> None:
    pcm = frames("..." + "S" * 15 + "." * 30 + "S" * 12 + "." * 30)
    whole = TurnTracker(Scripted()).feed(pcm)
    t = TurnTracker(Scripted())
    pieces = [e for at in range(0, len(pcm), 333) for e in t.feed(pcm[at:at + 333])]
    assert pieces == whole == [SpeechStarted(60.0), SpeechEnded(360.0),
                               SpeechStarted(960.0), SpeechEnded(1200.0)]


def test_the_move_table_covers_every_state_and_refuses_the_rest() -> None:
    assert set(_MOVES) == set(TurnState)
    t = TurnTracker(Scripted())
    with pytest.raises(Exception, match="illegal turn move silent -> hangover"):
        t._move(TurnState.HANGOVER)


# -- the agent's settings --------------------------------------------------------------------


def ric(agent: Agent) -> dict[str, object]:
    cfg = agent.session_config(live.SessionConfig(model="models/m"))
    setup: dict[str, dict[str, object]] = json.loads(live.build_setup(cfg))["setup"]
    return setup["realtimeInputConfig"]


def test_service_settings_reach_the_setup() -> None:
    agent = Agent(name="a", instructions="x", turn_taking=TurnTaking(
        start_sensitivity="low", end_sensitivity="END_SENSITIVITY_HIGH",
        prefix_padding_ms=40, silence_duration_ms=700, barge_in=False))
    assert ric(agent) == {
        "automaticActivityDetection": {
            "disabled": False, "startOfSpeechSensitivity": "START_SENSITIVITY_LOW",
            "endOfSpeechSensitivity": "END_SENSITIVITY_HIGH", "prefixPaddingMs": 40,
            "silenceDurationMs": 700},
        "activityHandling": "NO_INTERRUPTION"}


def test_the_default_leaves_the_service_to_its_defaults() -> None:
    assert ric(Agent(name="a", instructions="x")) == {
        "automaticActivityDetection": {"disabled": False},
        "activityHandling": "START_OF_ACTIVITY_INTERRUPTS"}


def test_local_mode_disables_the_service_detector() -> None:
    tt = TurnTaking(mode="local", min_speech_ms=150, silence_duration_ms=600)
    assert tt.mode is TurnMode.LOCAL and tt.detector is Detector.WEBRTC
    assert ric(Agent(name="a", instructions="x", turn_taking=tt)) == {
        "automaticActivityDetection": {"disabled": True},
        "activityHandling": "START_OF_ACTIVITY_INTERRUPTS",
        "turnCoverage": "TURN_INCLUDES_ALL_INPUT"}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"mode": "manual"}, r"turn_taking.mode: 'manual' is not one of 'service', 'local'"),
    ({"start_sensitivity": "medium"}, r"turn_taking.start_sensitivity: 'medium'"),
    ({"end_sensitivity": 3}, r"turn_taking.end_sensitivity: 3"),
    ({"silence_duration_ms": 0}, r"silence_duration_ms: 0 is not a whole number"),
    ({"prefix_padding_ms": 20_000}, r"prefix_padding_ms: 20000 .* from 0 to 10000"),
    ({"min_speech_ms": 12.5}, r"min_speech_ms: 12.5"),
    ({"min_speech_ms": True}, r"min_speech_ms: True"),
    ({"aggressiveness": 4}, r"aggressiveness: 4 is not 0, 1, 2 or 3"),
    ({"detector": "energy"}, r"detector: 'energy' is not one of 'webrtc', 'silero'"),
    ({"barge_in": "no"}, r"barge_in: 'no' is not a bool"),
    ({"mode": "local", "start_sensitivity": "high"},
     r"start_sensitivity tunes the Live API's own detection; .* mode='local'"),
])
def test_bad_settings_are_refused_naming_the_field(kwargs: dict[str, object],
                                                   message: str) -> None:
    with pytest.raises(TurnTakingError, match=message):
        TurnTaking(**kwargs)  # type: ignore[arg-type]


def test_an_agent_refuses_turn_taking_that_is_not_one() -> None:
    with pytest.raises(Exception, match="turn_taking must be a TurnTaking"):
        Agent(name="a", instructions="x", turn_taking={"mode": "local"})  # type: ignore[arg-type]


# -- the detectors, on real speech -------------------------------------------------------------


def line(*parts: bytes) -> bytes:
    """8 kHz caller audio as the bridge forwards it: resampled to 16 kHz."""
    return Resampler(8000, 16000).process(b"".join(parts))


@pytest.mark.parametrize("detector", ["webrtc", "silero"])
def test_one_utterance_is_one_turn(detector: str) -> None:
    tt = TurnTaking(mode="local", detector=detector)
    tracker = TurnTracker(make_detector(tt), min_speech_ms=200, silence_ms=500)
    pcm = line(silence_pcm16(1000), caller_pcm16("caller_book_table"), silence_pcm16(1500))
    events = [e for at in range(0, len(pcm), FRAME) for e in tracker.feed(pcm[at:at + FRAME])]
    assert [type(e) for e in events] == [SpeechStarted, SpeechEnded]
    start, end = events
    assert 950 <= start.at_ms <= 1400  # the recording's speech starts ~1.1 s in
    assert 3700 <= end.at_ms <= 4400  # and ends before its 3.2 s are over


def test_the_detectors_take_frames_of_their_own_size() -> None:
    assert WebRtcDetector().frame_bytes == 640
    assert SileroDetector().frame_bytes == 1024
    assert not WebRtcDetector().is_speech(b"\x00" * 640)


async def test_local_turns_send_activity_start_and_end() -> None:
    sent: list[tuple[str, bool]] = []

    async def send(text: str, *, opens: bool) -> None:
        sent.append((text, opens))

    turns = LocalTurns.for_agent(TurnTaking(mode="local"), make_detector, send)
    assert turns is not None
    pcm = line(silence_pcm16(500), caller_pcm16("caller_goodbye"), silence_pcm16(1000))
    for at in range(0, len(pcm), FRAME):
        await turns.heard(pcm[at:at + FRAME])
    assert sent == [(live.activity_start(), True), (live.activity_end(), False)]
    assert (turns.stats.starts, turns.stats.ends) == (1, 1)
    assert LocalTurns.for_agent(TurnTaking(), make_detector, send) is None
