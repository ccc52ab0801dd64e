"""The simulated Live server's sans-I/O core, driven with synthetic messages (no sockets)."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest

from gateway.live import OUTPUT_RATE, ModelAudio, OutputTranscript, parse_server_message
from gateway.rig.simulator import Scenario, ScenarioError, load_scenario, scenario_from_dict, speech
from gateway.rig.simulator import protocol as p
from gateway.rig.simulator.protocol import Action, Close, Drop, Send
from gateway.rig.simulator.record import HandleStore, SessionRecord
from gateway.rig.simulator.scenario import Injection, ToolCallSpec, Turn, bundled_scenario
from gateway.rig.simulator.session import (
    BAD_KEY,
    INVALID_ARGUMENT,
    SESSION_NOT_FOUND,
    LiveSession,
    Phase,
)
from gateway.rig.simulator.vad import EnergyVad, SpeechEnded, SpeechStarted

MODEL = "models/gemini-2.5-flash-native-audio-preview-12-2025"
FULL_SETUP = {"setup": {"model": MODEL, "inputAudioTranscription": {},
                        "outputAudioTranscription": {}, "sessionResumption": {}}}


class Driver:
    """A LiveSession on a fake clock."""

    def __init__(self, scenario: Scenario | None = None, *, handles: HandleStore | None = None,
                 api_key: str | None = None) -> None:
        self.record = SessionRecord()
        self.session = LiveSession(scenario or Scenario(), self.record,
                                   handles=handles or HandleStore(), api_key=api_key)
        self.now = 100.0
        self.actions: list[Action] = []

    def send(self, msg: dict[str, Any] | str | bytes) -> list[Action]:
        frame = json.dumps(msg) if isinstance(msg, dict) else msg
        out = self.session.receive(frame, self.now)
        self.actions += out
        return out

    def advance(self, seconds: float) -> list[Action]:
        """Let ``seconds`` of wall-clock pass, running timers at their due times."""
        end = self.now + seconds
        out: list[Action] = []
        while (d := self.session.deadline) is not None and d <= end:
            self.now = max(self.now, d)
            out += self.session.tick(self.now)
        self.now = end
        self.actions += out
        return out

    def settle(self, limit: float = 120.0) -> list[Action]:
        """Run timers until nothing is scheduled (or ``limit`` seconds passed)."""
        out: list[Action] = []
        end = self.now + limit
        while (d := self.session.deadline) is not None and d <= end:
            self.now = max(self.now, d)
            out += self.session.tick(self.now)
        self.actions += out
        return out

    def audio(self, pcm: bytes, rate: int = 8000, ms: int = 20, urlsafe: bool = False,
              snake: bool = False) -> list[Action]:
        step = 2 * rate * ms // 1000
        out: list[Action] = []
        enc = base64.urlsafe_b64encode if urlsafe else base64.b64encode
        for i in range(0, len(pcm), step):
            blob = {("mime_type" if snake else "mimeType"): f"audio/pcm;rate={rate}",
                    "data": enc(pcm[i:i + step]).decode()}
            out += self.send({("realtime_input" if snake else "realtimeInput"): {"audio": blob}})
        return out

    def say(self, name: str = "caller_book_table", silence_ms: int = 700) -> list[Action]:
        return self.audio(speech.caller_pcm16(name) + speech.silence_pcm16(silence_ms))


def kinds(actions: list[Action]) -> list[str]:
    return [a.kind if isinstance(a, Send) else type(a).__name__ for a in actions]


def closes(actions: list[Action]) -> list[tuple[int, str]]:
    return [(a.code, a.reason) for a in actions if isinstance(a, Close)]


# -- fixtures ------------------------------------------------------------------------------


def test_fixtures_are_indexed_small_and_loadable() -> None:
    names = {f.name for f in speech.fixtures()}
    assert {"caller_book_table", "caller_seven_thirty", "caller_barge_in", "caller_goodbye",
            "agent_greeting", "agent_options", "agent_moved", "agent_goodbye"} <= names
    total = 0
    for f in speech.fixtures():
        total += f.path.stat().st_size
        pcm, rate = speech.load_pcm_wav(f.path)
        assert rate == (8000 if f.role == "caller" else 24000) == f.sample_rate
        assert len(pcm) / 2 / rate == pytest.approx(f.duration_s, abs=0.01)
        assert f.text
    assert total < 1_500_000
    assert speech.fixture("agent_options").duration_s >= 4.0
    with pytest.raises(ValueError, match="8 kHz"):
        speech.caller_pcm16("agent_greeting")


def test_vad_works_in_audio_time() -> None:
    vad = EnergyVad(threshold=400, onset_ms=60, silence_ms=500)
    loud = (b"\x00\x10" * 80)  # 10 ms of constant 4096 at 8 kHz
    events = []
    for _ in range(4):  # 40 ms: not yet speech
        events += vad.feed(loud, 8000)
    assert events == []
    events += vad.feed(loud * 96, 8000)  # to 1 s, however it is chunked
    assert events == [SpeechStarted(0.0)]
    events += vad.feed(speech.silence_pcm16(480), 8000)
    assert len(events) == 1  # 480 ms of silence: not yet the end
    events += vad.feed(speech.silence_pcm16(20), 8000)
    assert len(events) == 2 and isinstance(events[1], SpeechEnded)
    assert events[1].duration_s == pytest.approx(1.0)
    assert vad.audio_s == pytest.approx(1.5)


# -- setup ---------------------------------------------------------------------------------


def test_setup_camel_and_snake_are_the_same() -> None:
    camel = {"setup": {"model": MODEL, "generationConfig": {"responseModalities": ["AUDIO"]},
                       "inputAudioTranscription": {}, "sessionResumption": {"handle": "h"},
                       "realtimeInputConfig": {"automaticActivityDetection": {
                           "disabled": False, "silenceDurationMs": 300},
                           "activityHandling": "NO_INTERRUPTION"}}}
    snake = {"setup": {"model": MODEL, "generation_config": {"response_modalities": ["AUDIO"]},
                       "input_audio_transcription": {}, "session_resumption": {"handle": "h"},
                       "realtime_input_config": {"automatic_activity_detection": {
                           "disabled": False, "silence_duration_ms": 300},
                           "activity_handling": "NO_INTERRUPTION"}}}
    a, b = p.parse_client_message(json.dumps(camel)), p.parse_client_message(json.dumps(snake))
    assert isinstance(a[0], p.Setup) and isinstance(b[0], p.Setup)
    fields = ("model", "modalities", "input_transcription", "output_transcription",
              "resumption", "handle", "auto_vad", "silence_duration_ms", "interrupts")
    assert [getattr(a[0], f) for f in fields] == [getattr(b[0], f) for f in fields]
    assert a[0].silence_duration_ms == 300 and a[0].handle == "h" and not a[0].interrupts


@pytest.mark.parametrize("frame", [json.dumps(FULL_SETUP), json.dumps(FULL_SETUP).encode()])
def test_setup_complete_text_or_binary(frame: str | bytes) -> None:
    d = Driver()
    out = d.send(frame)
    # Resumption was asked for: a first handle comes at once, before any turn.
    assert kinds(out) == ["setupComplete", "sessionResumptionUpdate"]
    assert isinstance(out[0], Send) and out[0].frame() == b'{"setupComplete":{}}'
    assert kinds(Driver().send({"setup": {"model": MODEL}})) == ["setupComplete"]
    assert d.record.setup is not None and d.record.model == MODEL


@pytest.mark.parametrize("first", [
    {"realtimeInput": {"text": "hi"}}, {"config": {"model": MODEL}}, "not json", "[1]",
    {"setup": {"generationConfig": {}}}, {"setup": {"model": "gemini-2.5-flash"}},
])
def test_first_message_must_be_a_valid_setup(first: dict[str, Any] | str) -> None:
    d = Driver()
    assert closes(d.send(first)) == [(1007, INVALID_ARGUMENT)]
    assert d.session.closed and d.send(FULL_SETUP) == []


def test_second_setup_and_bad_base64_are_invalid() -> None:
    d = Driver()
    d.send(FULL_SETUP)
    assert closes(d.send({"realtimeInput": {"audio": {"mimeType": "audio/pcm", "data": 5}}})) \
        == [(1007, INVALID_ARGUMENT)]
    d = Driver()
    d.send(FULL_SETUP)
    assert closes(d.send(FULL_SETUP)) == [(1007, INVALID_ARGUMENT)]


def test_api_key_and_model_checks() -> None:
    sc = Scenario(required_key="sekrit-key", known_models=("gemini-live-x",))
    assert closes(Driver(sc, api_key="wrong").send(FULL_SETUP)) == [(1007, BAD_KEY)]
    assert closes(Driver(sc).send(FULL_SETUP)) == [(1007, BAD_KEY)]
    d = Driver(sc, api_key="sekrit-key")
    assert closes(d.send(FULL_SETUP)) == [(1008, f"{MODEL} is not found for API version "
                                                 "v1beta, or is not supported for "
                                                 "bidiGenerateContent. Call ListModels")]
    d = Driver(sc, api_key="sekrit-key")
    assert kinds(d.send({"setup": {"model": "models/gemini-live-x"}})) == ["setupComplete"]
    vertex = "projects/p/locations/us-central1/publishers/google/models/gemini-live-x"
    assert kinds(Driver(sc, api_key="sekrit-key").send({"setup": {"model": vertex}})) \
        == ["setupComplete"]


# -- a turn --------------------------------------------------------------------------------


def test_end_of_speech_then_reply_in_order() -> None:
    sc = Scenario(turns=(Turn(caller_text="book a table", reply="agent_greeting"),))
    d = Driver(sc)
    d.send(FULL_SETUP)
    caller = speech.caller_pcm16("caller_book_table")
    assert d.audio(caller) == []  # still talking, or not yet 500 ms of silence
    assert d.audio(speech.silence_pcm16(400)) == []
    assert d.session.phase is Phase.IDLE
    d.audio(speech.silence_pcm16(200))  # 600 ms of silence: end of speech
    assert d.session.phase.value == "pending"
    assert d.advance(0.29) == []  # response_delay_ms = 300
    out = d.advance(0.02)
    assert kinds(out)[:3] == ["inputTranscription", "audio", "outputTranscription"]
    out += d.settle()
    ks = kinds(out)
    first_audio = ks.index("audio")
    assert ks[ks.index("generationComplete"):] == [
        "generationComplete", "turnComplete", "sessionResumptionUpdate", "usageMetadata"]
    assert set(ks[first_audio:ks.index("generationComplete")]) == {"audio",
                                                                   "outputTranscription"}
    events = [e for a in out if isinstance(a, Send) for e in parse_server_message(a.frame())]
    pcm = b"".join(e.pcm for e in events if isinstance(e, ModelAudio))
    assert all(e.rate == OUTPUT_RATE for e in events if isinstance(e, ModelAudio))
    assert pcm == speech.load_pcm_wav(speech.fixture("agent_greeting").path)[0]
    text = "".join(e.text for e in events if isinstance(e, OutputTranscript))
    assert text == speech.fixture("agent_greeting").text
    assert d.record.turns_completed == 1 and d.record.reply_chunks == [ks.count("audio")]
    assert d.record.speech_segments[0] == pytest.approx(
        speech.fixture("caller_book_table").duration_s, abs=0.3)
    assert d.record.audio_rates == {8000}
    assert d.record.audio_bytes == len(caller) + 2 * 8000 * 600 // 1000


def test_reply_is_paced_by_speed() -> None:
    d = Driver(Scenario(speed=4.0, chunk_ms=100))
    d.send(FULL_SETUP)
    d.say()
    d.advance(0.3 / 4 + 0.001)  # the response delay is scaled too
    assert kinds(d.actions).count("audio") == 1
    d.advance(1.0 / 4)  # one second of audio in a quarter second
    assert kinds(d.actions).count("audio") == 11
    duration = speech.fixture("agent_greeting").duration_s
    chunks = -(-duration // 0.1)
    d.advance((chunks - 1) * 0.1 / 4 - 1.0 / 4)  # the last chunk is due
    assert kinds(d.actions).count("audio") == chunks
    assert kinds(d.actions)[-1] == "generationComplete"  # but it is still playing
    d.advance(duration / 4 - (chunks - 1) * 0.1 / 4 - 0.002)
    assert "turnComplete" not in kinds(d.actions)
    d.advance(0.002)
    assert "turnComplete" in kinds(d.actions)


def test_no_transcriptions_unless_asked_and_placeholder_text() -> None:
    d = Driver()
    d.send({"setup": {"model": MODEL}})
    d.say()
    ks = kinds(d.settle())
    assert "inputTranscription" not in ks and "outputTranscription" not in ks
    assert "sessionResumptionUpdate" not in ks and ks[-2:] == ["turnComplete", "usageMetadata"]
    d = Driver()
    d.send({"setup": {"model": MODEL, "input_audio_transcription": {}}})
    d.say("caller_goodbye")
    first = d.settle()[0]
    assert isinstance(first, Send) and first.kind == "inputTranscription"
    assert first.message["serverContent"]["inputTranscription"]["text"].startswith(
        "(caller speech ")


def test_default_replies_cycle_through_bundled_agent_lines() -> None:
    d = Driver(Scenario(speed=50.0))
    d.send(FULL_SETUP)
    agents = speech.fixtures("agent")
    chunks = []
    for _ in range(len(agents) + 1):
        d.say("caller_goodbye")
        d.settle()
        chunks.append(d.record.reply_chunks[-1])
    step = 2 * OUTPUT_RATE * 80 // 1000
    expected = [-(-len(speech.load_pcm_wav(f.path)[0]) // step) for f in agents]
    assert chunks == [*expected, expected[0]]


def test_both_base64_alphabets() -> None:
    pcm = bytes([0xFB, 0xFF, 0xBF, 0xFE]) * 40  # encodes to '+' and '/' or '-' and '_'
    assert "+" in base64.b64encode(pcm).decode() and "_" in base64.urlsafe_b64encode(pcm).decode()
    d = Driver()
    d.send(FULL_SETUP)
    d.audio(pcm, rate=16000)
    d.audio(pcm, rate=16000, urlsafe=True, snake=True)
    assert d.record.audio_bytes == 2 * len(pcm) and d.record.audio_rates == {16000}
    events = p.parse_client_message(json.dumps(
        {"realtime_input": {"audio": {"mime_type": "audio/pcm;rate=16000",
                                      "data": base64.urlsafe_b64encode(pcm).decode()}}}))
    assert events == (p.AudioIn(pcm, 16000, "audio/pcm;rate=16000"),)


def test_media_chunks_and_counting() -> None:
    d = Driver()
    d.send(FULL_SETUP)
    blob = {"mime_type": "audio/pcm;rate=24000", "data": base64.b64encode(b"\0" * 480).decode()}
    d.send({"realtimeInput": {"mediaChunks": [blob, blob]}})
    d.send({"realtimeInput": {"video": {"mimeType": "image/jpeg", "data": "AAAA"}}})
    assert (d.record.audio_chunks, d.record.audio_bytes) == (2, 960)
    assert d.record.audio_rates == {24000}


def test_the_caller_s_audio_is_kept_as_far_as_the_scenario_says() -> None:
    pcm = bytes(range(256)) * 10  # 80 ms at 16 kHz
    d = Driver()
    d.send(FULL_SETUP)
    d.audio(pcm, rate=16000)
    assert d.record.audio == b""  # none by default: a load test's sessions hold no audio
    d = Driver(scenario_from_dict({"keep_audio_s": 0.05}))
    d.send(FULL_SETUP)
    d.audio(pcm, rate=16000)
    assert d.record.audio == pcm[:1600]  # 50 ms, in the order it came
    with pytest.raises(ScenarioError, match="keep_audio_s"):
        scenario_from_dict({"keep_audio_s": -1})


# -- barge-in ------------------------------------------------------------------------------


def test_barge_in_interrupts_and_becomes_next_turn() -> None:
    sc = scenario_from_dict({"turns": [{"reply": "agent_greeting"}, {"reply": "agent_options"},
                                       {"reply": "agent_moved", "caller_text": "eight?"}]})
    d = Driver(sc)
    d.send(FULL_SETUP)
    d.say()
    d.settle()
    d.say("caller_seven_thirty")
    d.advance(0.3 + 1.0)  # a second into the long reply
    mark = len(d.actions)
    out = d.audio(speech.caller_pcm16("caller_barge_in")[:3200])  # first 200 ms
    assert kinds(out) == ["interrupted", "turnComplete", "sessionResumptionUpdate",
                          "usageMetadata"]
    assert d.record.interruptions == 1 and d.record.interrupted_at == [d.now]
    assert d.settle() == []  # nothing more streams for the cut-short turn
    assert d.record.reply_chunks[1] < 20
    d.audio(speech.caller_pcm16("caller_barge_in")[3200:] + speech.silence_pcm16(700))
    out = d.settle()
    assert kinds(out)[0] == "inputTranscription"
    assert isinstance(out[0], Send)
    assert out[0].message["serverContent"]["inputTranscription"]["text"] == "eight?"
    assert "generationComplete" in kinds(out)
    assert d.record.turns_completed == 3 and d.record.interruptions == 1
    turn2 = kinds(d.actions[:mark])[kinds(d.actions[:mark]).index("turnComplete") + 1:]
    assert "generationComplete" not in turn2


def test_speech_during_response_delay_continues_the_same_turn() -> None:
    d = Driver()
    d.send(FULL_SETUP)
    d.say()
    d.advance(0.1)
    d.say("caller_goodbye")
    d.settle()
    assert d.record.interruptions == 0 and d.record.turns_completed == 1
    assert kinds(d.actions).count("inputTranscription") == 1


def test_no_interruption_mode_queues_the_next_turn() -> None:
    d = Driver()
    d.send({"setup": {"model": MODEL, "realtime_input_config": {
        "activity_handling": "NO_INTERRUPTION"}}})
    d.say()
    d.advance(1.0)
    d.say("caller_goodbye")
    d.settle()
    assert d.record.interruptions == 0 and d.record.turns_completed == 2


def test_manual_activity_signals() -> None:
    d = Driver()
    d.send({"setup": {"model": MODEL, "realtimeInputConfig": {
        "automaticActivityDetection": {"disabled": True}}}})
    d.audio(speech.caller_pcm16("caller_goodbye") + speech.silence_pcm16(1000))
    assert d.settle() == []  # no automatic detection
    d.send({"realtimeInput": {"activityStart": {}}})
    d.audio(speech.caller_pcm16("caller_goodbye"))
    d.send({"realtime_input": {"activityEnd": {}}})
    assert "turnComplete" in kinds(d.settle())


CLIENT_ACTIVITY = {"setup": {"model": MODEL, "realtimeInputConfig": {
    "automaticActivityDetection": {"disabled": True},
    "turnCoverage": "TURN_INCLUDES_ALL_INPUT"}}}


def test_with_client_activity_a_turn_ends_at_activity_end_not_at_silence() -> None:
    d = Driver()
    d.send(CLIENT_ACTIVITY)
    d.send({"realtimeInput": {"activityStart": {}}})
    d.audio(speech.caller_pcm16("caller_goodbye") + speech.silence_pcm16(2000))
    assert "inputTranscription" not in kinds(d.settle())  # 2 s of silence end nothing
    d.send({"realtimeInput": {"activityEnd": {}}})
    assert "turnComplete" in kinds(d.settle())
    assert [k for k, _at in d.record.activity_signals] == ["start", "end"]


def test_activity_start_during_a_reply_barges_in() -> None:
    d = Driver()
    d.send(CLIENT_ACTIVITY)
    d.send({"realtimeInput": {"activityStart": {}}})
    d.audio(speech.caller_pcm16("caller_goodbye"))
    d.send({"realtimeInput": {"activityEnd": {}}})
    d.advance(1.0)  # the reply is streaming
    assert d.session.phase is Phase.STREAMING
    out = d.send({"realtimeInput": {"activityStart": {}}})
    assert kinds(out)[:2] == ["interrupted", "turnComplete"]
    assert d.record.interruptions == 1


def test_activity_start_does_not_barge_in_with_no_interruption() -> None:
    d = Driver()
    d.send({"setup": {"model": MODEL, "realtimeInputConfig": {
        "automaticActivityDetection": {"disabled": True},
        "activityHandling": "NO_INTERRUPTION"}}})
    d.send({"realtimeInput": {"activityStart": {}}})
    d.send({"realtimeInput": {"activityEnd": {}}})
    d.advance(1.0)
    d.send({"realtimeInput": {"activityStart": {}}})
    d.send({"realtimeInput": {"activityEnd": {}}})
    d.settle()
    assert d.record.interruptions == 0 and d.record.turns_completed == 2


def test_stray_activity_signals_change_nothing() -> None:
    d = Driver()
    d.send(CLIENT_ACTIVITY)
    d.send({"realtimeInput": {"activityEnd": {}}})  # no start: no turn
    assert d.settle() == []
    d.send({"realtimeInput": {"activityStart": {}}})
    d.send({"realtimeInput": {"activityStart": {}}})  # a repeat is not a second start
    d.send({"realtimeInput": {"activityEnd": {}}})
    d.settle()
    assert d.record.turns_completed == 1
    assert [k for k, _at in d.record.activity_signals] == ["start", "end"]


# -- text input ----------------------------------------------------------------------------


def test_text_input_and_client_content_trigger_turns() -> None:
    d = Driver(Scenario(speed=20.0))
    d.send({"setup": {"model": MODEL, "inputAudioTranscription": {},
                      "generationConfig": {"responseModalities": ["TEXT"]}}})
    d.send({"realtime_input": {"text": "hello"}})
    ks = kinds(d.settle())
    assert "inputTranscription" not in ks and "audio" not in ks and "text" in ks
    d.send({"client_content": {"turns": [{"role": "user", "parts": [{"text": "a"}]}],
                               "turn_complete": False}})
    assert d.settle() == []
    d.send({"clientContent": {"turns": [{"role": "user", "parts": [{"text": "b"}]}],
                              "turnComplete": True}})
    assert "turnComplete" in kinds(d.settle())
    assert d.record.texts == ["hello", "a", "b"] and d.record.turns_completed == 2


# -- tools ---------------------------------------------------------------------------------


def tool_scenario(**turn: Any) -> Scenario:
    return Scenario(tool_timeout_ms=5000, turns=(
        Turn(reply="agent_moved", tool_calls=(ToolCallSpec("update_booking", {"time": "20:00"},
                                                           "call-1"),), **turn),))


def test_tool_call_waits_for_tool_response() -> None:
    d = Driver(tool_scenario())
    d.send(FULL_SETUP)
    d.say()
    out = d.advance(0.31)
    assert kinds(out) == ["inputTranscription", "toolCall"]
    assert isinstance(out[1], Send)
    assert out[1].message == {"toolCall": {"functionCalls": [
        {"id": "call-1", "name": "update_booking", "args": {"time": "20:00"}}]}}
    assert d.advance(4.0) == [] and d.session.phase is Phase.TOOL_WAIT
    out = d.send({"tool_response": {"functionResponses": [
        {"id": "call-1", "name": "update_booking", "response": {"ok": True},
         "scheduling": "WHEN_IDLE"}]}})
    assert kinds(out)[0] == "audio"
    assert d.record.tool_responses == [{"id": "call-1", "name": "update_booking",
                                        "response": {"ok": True}, "scheduling": "WHEN_IDLE"}]
    d.settle()
    assert d.record.turns_completed == 1 and d.record.tool_timeouts == 0


def test_tool_call_timeout_then_speaks() -> None:
    d = Driver(tool_scenario())
    d.send(FULL_SETUP)
    d.say()
    d.advance(0.31)
    out = d.advance(5.0)
    assert kinds(out)[0] == "audio" and d.record.tool_timeouts == 1


def test_barge_in_during_tool_wait_cancels() -> None:
    d = Driver(tool_scenario(cancel=True))
    d.send(FULL_SETUP)
    d.say()
    d.advance(0.5)
    out = d.audio(speech.caller_pcm16("caller_barge_in")[:3200])
    assert kinds(out)[:3] == ["toolCallCancellation", "interrupted", "turnComplete"]
    assert isinstance(out[0], Send)
    assert out[0].message == {"toolCallCancellation": {"ids": ["call-1"]}}


# -- resumption and injections -------------------------------------------------------------


def test_resumption_continues_the_scenario_and_unknown_handles_fail() -> None:
    sc = Scenario(speed=50.0, turns=(Turn(reply="agent_goodbye"), Turn(reply="agent_moved")))
    handles = HandleStore()
    d = Driver(sc, handles=handles)
    d.send(FULL_SETUP)
    d.say()
    d.settle()
    handle = d.record.handles[-1]
    update = [a for a in d.actions if isinstance(a, Send)
              and a.kind == "sessionResumptionUpdate"][-1]
    assert update.message == {"sessionResumptionUpdate": {"newHandle": handle,
                                                          "resumable": True}}
    d2 = Driver(sc, handles=handles)
    assert kinds(d2.send({"setup": {"model": MODEL, "session_resumption": {
        "handle": handle}}})) == ["setupComplete", "sessionResumptionUpdate"]
    assert d2.record.resumed
    d2.say()
    d2.settle()
    assert d2.record.reply_chunks == [-(-speech.fixture("agent_moved").duration_s // 0.08)]
    d3 = Driver(sc, handles=handles)
    assert closes(d3.send({"setup": {"model": MODEL, "sessionResumption": {
        "handle": "nope"}}})) == [(1008, SESSION_NOT_FOUND)]


def test_connection_lifetime_sends_go_away_then_cuts_the_connection() -> None:
    d = Driver(Scenario(speed=10.0, connection_lifetime_s=600, go_away_before_s=60))
    out = d.send(FULL_SETUP)
    assert kinds(out) == ["setupComplete", "sessionResumptionUpdate"]
    start = d.now
    out = d.settle(limit=54.05)  # 540 simulated seconds are 54 s at 10x
    assert kinds(out) == ["goAway"] and d.now == pytest.approx(start + 54)
    assert out[0] == Send("goAway", {"goAway": {"timeLeft": "6.000s"}})
    assert closes(d.settle(limit=6.1)) == [(1011, "Deadline expired before operation could "
                                                  "complete.")]
    assert d.now == pytest.approx(start + 60)


def test_injections_go_away_close_and_drop() -> None:
    sc = Scenario(speed=10.0, injections=(
        Injection("after_setup", "go_away", time_left="50s"),
        Injection("during_turn", "drop", turn=2, offset_ms=1000)))
    d = Driver(sc)
    out = d.send(FULL_SETUP)
    assert kinds(out) == ["setupComplete", "sessionResumptionUpdate", "goAway"]
    # At 10x speed, 50 simulated seconds are 5 wall-clock seconds for the client.
    assert isinstance(out[2], Send) and out[2].message == {"goAway": {"timeLeft": "5.000s"}}
    d.say()
    d.settle(limit=1.0)
    assert d.record.turns_completed == 1
    d.say()
    out = d.settle()
    assert kinds(out)[-1] == "Drop" and 12 <= kinds(out).count("audio") <= 14
    assert d.record.closed == (1006, "dropped by scenario")

    d = Driver(Scenario(speed=10.0, injections=(Injection("after_setup", "go_away"),)))
    d.send(FULL_SETUP)
    d.say()
    assert closes(d.settle())[0][0] == 1011  # 10 s (1 s at speed 10) later

    d = Driver(scenario_from_dict({"speed": 50, "injections": [
        {"after_turn": 1, "close": {"code": 1008}}]}))
    d.send(FULL_SETUP)
    d.say()
    assert kinds(d.settle())[-4:] == ["turnComplete", "sessionResumptionUpdate",
                                      "usageMetadata", "Close"]
    assert d.record.closed == (1008, "Operation is not implemented, or supported, or enabled.")


def test_injections_fire_once_per_conversation() -> None:
    sc = scenario_from_dict({"speed": 50, "injections": [
        {"during_turn": 1, "offset_ms": 500, "close": {"code": 1011}}]})
    handles = HandleStore()
    d = Driver(sc, handles=handles)
    d.send(FULL_SETUP)
    d2 = Driver(sc, handles=handles)
    d.send({"realtimeInput": {"text": "x"}})
    d.advance(0.01)
    out = d.send({"realtimeInput": {"activityStart": {}}})  # ignored: auto VAD is on
    assert closes(d.settle()) == [(1011, "Internal error occurred.")] and not out
    handle = handles.issue(d.session._conversation, 0)
    d2.send({"setup": {"model": MODEL, "sessionResumption": {"handle": handle}}})
    d2.send({"realtimeInput": {"text": "x"}})
    assert "turnComplete" in kinds(d2.settle())


# -- scenarios -----------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "where"), [
    ({"speed": "fast"}, "speed"),
    ({"speed": 0}, "speed"),
    ({"sped": 2}, "sped"),
    ({"turns": {"reply": "x"}}, "turns"),
    ({"turns": [{"reply": "agent_nope"}]}, "turns[0].reply"),
    ({"turns": [{"reply": "caller_goodbye"}]}, "turns[0].reply"),
    ({"turns": [{}, {"tool_calls": [{"args": {}}]}]}, "turns[1].tool_calls[0].name"),
    ({"turns": [{"cancel": "yes"}]}, "turns[0].cancel"),
    ({"injections": [{"after_turn": 0, "drop": True}]}, "injections[0].after_turn"),
    ({"injections": [{"after_turn": 1}]}, "injections[0]"),
    ({"injections": [{"after_setup": True, "close": {"code": 1006}}]},
     "injections[0].close.code"),
    ({"injections": [{"after_setup": True, "go_away": {"time_left": "soon"}}]},
     "injections[0].go_away.time_left"),
    ({"injections": [{"after_setup": True, "offset_ms": 5, "drop": True}]},
     "injections[0].offset_ms"),
    ({"known_models": "x"}, "known_models"),
    ({"response_delay_ms": True}, "response_delay_ms"),
])
def test_scenario_validation_names_the_field(data: dict[str, Any], where: str) -> None:
    with pytest.raises(ScenarioError, match=re.escape(f"'{where}'")):
        scenario_from_dict(data)


def test_scenario_files_json_and_yaml(tmp_path: Path) -> None:
    wav = tmp_path / "mine.wav"
    wav.write_bytes(speech.fixture("agent_goodbye").path.read_bytes())
    (tmp_path / "s.json").write_text(json.dumps(
        {"speed": 2, "turns": [{"reply": "mine.wav", "reply_text": "bye"}]}))
    sc = load_scenario(tmp_path / "s.json")
    assert sc.speed == 2 and sc.resolve_reply(sc.turns[0]).path == wav
    (tmp_path / "s.yaml").write_text("turns:\n  - reply: agent_moved\n"
                                     "injections:\n  - after_turn: 1\n    drop: true\n")
    sc = load_scenario(tmp_path / "s.yaml")
    assert sc.injections == (Injection("after_turn", "drop", turn=1),)
    (tmp_path / "bad.yaml").write_text("turns: [\n")
    with pytest.raises(ScenarioError, match=r"bad\.yaml"):
        load_scenario(tmp_path / "bad.yaml")
    (tmp_path / "bad2.yaml").write_text("turns:\n  - reply: 8k.wav\n")
    with pytest.raises(ScenarioError, match=r"bad2.yaml: .*'turns\[0\].reply'"):
        load_scenario(tmp_path / "bad2.yaml")


def test_bundled_demo_scenario_matches_the_fixtures() -> None:
    sc = load_scenario(bundled_scenario("demo"))
    replies = [sc.resolve_reply(t).path.stem for t in sc.turns]
    assert replies == ["agent_greeting", "agent_options", "agent_moved", "agent_goodbye"]
    callers = [f.text for f in speech.fixtures("caller")]
    assert [t.caller_text for t in sc.turns] == callers


def test_drop_action_type() -> None:
    d = Driver(Scenario(injections=(Injection("after_setup", "drop"),)))
    assert isinstance(d.send(FULL_SETUP)[-1], Drop)
