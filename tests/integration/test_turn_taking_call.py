"""Turn-taking in whole calls over real loopback sockets: phone -> gateway -> simulator.

Local mode: the simulated Live server's own detection is off (the setup says so), so every
turn it answers, and the barge-in, come from the gateway's ``activityStart``/``activityEnd``,
placed by the gateway's detector on the caller's real speech. Service mode: the agent's
settings for the Live API's detection reach the setup as they were given.
"""

from __future__ import annotations

from gateway.agent import Agent
from gateway.rig.phone import When
from gateway.rig.simulator.speech import fixture
from gateway.turns import TurnTaking
from tests.integration.test_agents_call import line, say

TURNS = [{"caller_text": "A table for two", "reply": "agent_options"},
         {"caller_text": "Eight, please", "reply": "agent_moved"},
         {"caller_text": "Goodbye", "reply": "agent_goodbye"}]


async def test_in_local_mode_the_gateway_marks_every_turn_and_the_barge_in() -> None:
    agent = Agent(name="local", instructions="You take bookings.",
                  turn_taking=TurnTaking(mode="local", min_speech_ms=200,
                                         silence_duration_ms=500))
    script = [say("caller_book_table", When.START, 300),
              say("caller_barge_in", When.BARGE_IN, 1500),  # over the 8.7 s reply
              say("caller_goodbye")]
    async with line(TURNS, [agent]) as ln:
        result = await ln.call(script)
    [session] = ln.sim.sessions
    assert session.setup is not None
    assert session.setup["realtimeInputConfig"] == {
        "automaticActivityDetection": {"disabled": True},
        "activityHandling": "START_OF_ACTIVITY_INTERRUPTS",
        "turnCoverage": "TURN_INCLUDES_ALL_INPUT"}
    # One start and one end per utterance, in order: the server's detection was off, so
    # these are the only turn boundaries it had.
    kinds = [k for k, _at in session.activity_signals]
    assert kinds == ["start", "end"] * 3
    # Each turn spans its utterance: committed ~200 ms in, ended ~500 ms after the speech.
    for (_k1, began), (_k2, ended), name in zip(session.activity_signals[::2],
                                                session.activity_signals[1::2],
                                                ["caller_book_table", "caller_barge_in",
                                                 "caller_goodbye"], strict=True):
        assert fixture(name).duration_s - 0.8 <= ended - began <= fixture(name).duration_s + 0.8
    # The second start came while the first reply was playing: it cut the reply short.
    assert session.interruptions == 1
    assert result.clears >= 1 and len(result.barge_in_ms) == 1
    assert session.turns_completed == 3
    assert result.unanswered == 0
    summary = ln.summary(result)
    assert summary.stats.interruptions == 1


async def test_the_agents_settings_for_the_service_detection_reach_the_setup() -> None:
    agent = Agent(name="tuned", instructions="You take bookings.",
                  turn_taking=TurnTaking(start_sensitivity="low", end_sensitivity="high",
                                         prefix_padding_ms=40, silence_duration_ms=800))
    async with line(TURNS[2:], [agent]) as ln:
        result = await ln.call([say("caller_goodbye", When.START, 300)])
    [session] = ln.sim.sessions
    assert session.setup is not None
    assert session.setup["realtimeInputConfig"] == {
        "automaticActivityDetection": {
            "disabled": False, "startOfSpeechSensitivity": "START_SENSITIVITY_LOW",
            "endOfSpeechSensitivity": "END_SENSITIVITY_HIGH", "prefixPaddingMs": 40,
            "silenceDurationMs": 800},
        "activityHandling": "START_OF_ACTIVITY_INTERRUPTS"}
    # The service's own detection took the turn; the gateway sent no activity signals.
    assert session.activity_signals == []
    assert session.turns_completed == 1 and result.unanswered == 0
