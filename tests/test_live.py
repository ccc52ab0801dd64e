"""The sans-I/O Live API core.

Client messages are checked three ways: against the documented camelCase shape, against the
official ``google-genai`` pydantic types (an oracle we did not write) with a strict walker
that rejects any key or enum value the SDK does not know, and, for ``setup``, against what
the SDK's own converter puts on the wire for the same configuration.
Server messages come from a recorded fixture and are cross-checked against the SDK's parse.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import enum
import json
import re
import types as pytypes
import typing
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydantic
import pytest
from google import genai
from google.genai import _common
from google.genai import _live_converters as sdk_converters
from google.genai import types as gt
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import LiveProtocolError, ProtocolError
from gateway.live import (
    INPUT_RATE,
    OUTPUT_RATE,
    EndSensitivity,
    FunctionCall,
    FunctionResponse,
    GenerationComplete,
    GoAway,
    InputTranscript,
    Interrupted,
    ModelAudio,
    ModelText,
    OutputTranscript,
    ResumptionUpdate,
    SessionConfig,
    SetupComplete,
    StartSensitivity,
    ToolCall,
    ToolCallCancellation,
    TurnComplete,
    TurnCoverage,
    Unknown,
    Usage,
    VadConfig,
    activity_end,
    activity_start,
    audio_message,
    audio_stream_end,
    build_setup,
    decode_b64,
    parse_duration,
    parse_server_message,
    text_message,
    tool_response,
)

FIXTURE = Path(__file__).parent / "fixtures" / "live_server_messages.jsonl"
MODEL = "models/gemini-2.5-flash-native-audio-preview-12-2025"

END_CALL: dict[str, Any] = {
    "name": "end_call",
    "description": "Hang up",
    "behavior": "NON_BLOCKING",
    "parameters": {"type": "OBJECT", "properties": {"reason": {"type": "STRING"}},
                   "required": ["reason"]},
}
LOOKUP: dict[str, Any] = {
    "name": "lookup_order",
    "description": "Find an order by id",
    "parameters": {"type": "OBJECT",
                   "properties": {"order_id": {"type": "STRING", "description": "e.g. A-1"},
                                  "items": {"type": "ARRAY", "items": {"type": "INTEGER"}}},
                   "required": ["order_id"]},
}
LOW_VAD = VadConfig(start_sensitivity=StartSensitivity.LOW,
                    end_sensitivity=EndSensitivity.LOW,
                    prefix_padding_ms=20, silence_duration_ms=500)


def full_config(**overrides: Any) -> SessionConfig:
    kwargs: dict[str, Any] = {
        "model": MODEL, "voice": "Kore", "language": "en-US",
        "system_instruction": "You are a phone agent.", "tools": (END_CALL, LOOKUP),
        "vad": LOW_VAD, "resumption_handle": "prev-handle", "temperature": 0.7,
    }
    kwargs.update(overrides)
    return SessionConfig(**kwargs)


# -- setup: the documented shape --------------------------------------------------------


def test_minimal_setup_exact_shape() -> None:
    out = build_setup(SessionConfig(model=MODEL))
    assert json.loads(out) == {"setup": {
        "model": MODEL,
        "generationConfig": {"responseModalities": ["AUDIO"]},
        "realtimeInputConfig": {"automaticActivityDetection": {"disabled": False},
                                "activityHandling": "START_OF_ACTIVITY_INTERRUPTS"},
        "inputAudioTranscription": {},
        "outputAudioTranscription": {},
        "sessionResumption": {},
        "contextWindowCompression": {"triggerTokens": 25600,
                                     "slidingWindow": {"targetTokens": 12800}},
    }}


def test_full_setup_exact_shape() -> None:
    out = build_setup(full_config())
    assert json.loads(out) == {"setup": {
        "model": MODEL,
        "generationConfig": {
            "responseModalities": ["AUDIO"],
            "temperature": 0.7,
            "speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Kore"}},
                             "languageCode": "en-US"},
        },
        "systemInstruction": {"role": "user", "parts": [{"text": "You are a phone agent."}]},
        "tools": [{"functionDeclarations": [END_CALL, LOOKUP]}],
        "realtimeInputConfig": {
            "automaticActivityDetection": {
                "disabled": False,
                "startOfSpeechSensitivity": "START_SENSITIVITY_LOW",
                "endOfSpeechSensitivity": "END_SENSITIVITY_LOW",
                "prefixPaddingMs": 20, "silenceDurationMs": 500},
            "activityHandling": "START_OF_ACTIVITY_INTERRUPTS"},
        "inputAudioTranscription": {},
        "outputAudioTranscription": {},
        "sessionResumption": {"handle": "prev-handle"},
        "contextWindowCompression": {"triggerTokens": 25600,
                                     "slidingWindow": {"targetTokens": 12800}},
    }}


def test_setup_is_a_single_top_level_key_on_one_line() -> None:
    out = build_setup(full_config())
    assert list(json.loads(out)) == ["setup"]
    assert "\n" not in out
    assert '"config"' not in out


def test_model_name_used_exactly_as_given() -> None:
    for model in ("models/x", "projects/p/locations/l/publishers/google/models/x", "bare"):
        assert json.loads(build_setup(SessionConfig(model=model)))["setup"]["model"] == model


def test_voice_without_language_and_language_without_voice() -> None:
    g = json.loads(build_setup(SessionConfig(model=MODEL, voice="Puck")))["setup"][
        "generationConfig"]
    assert g["speechConfig"] == {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Puck"}}}
    g = json.loads(build_setup(SessionConfig(model=MODEL, language="de-DE")))["setup"][
        "generationConfig"]
    assert g["speechConfig"] == {"languageCode": "de-DE"}


def test_session_resumption_with_and_without_handle_and_off() -> None:
    def sr(**kw: Any) -> Any:
        return json.loads(build_setup(SessionConfig(model=MODEL, **kw)))["setup"].get(
            "sessionResumption", "absent")

    assert sr() == {}
    assert sr(resumption_handle="h-1") == {"handle": "h-1"}
    assert sr(resumption_handle="") == {}
    assert sr(session_resumption=False) == "absent"


def test_context_window_compression_variants() -> None:
    def cwc(**kw: Any) -> Any:
        return json.loads(build_setup(SessionConfig(model=MODEL, **kw)))["setup"].get(
            "contextWindowCompression", "absent")

    assert cwc(compression_trigger_tokens=1000, compression_target_tokens=500) == {
        "triggerTokens": 1000, "slidingWindow": {"targetTokens": 500}}
    assert cwc(compression_target_tokens=None) == {"triggerTokens": 25600, "slidingWindow": {}}
    assert cwc(compression_trigger_tokens=None) == "absent"


def test_transcriptions_and_barge_in_can_be_turned_off() -> None:
    setup = json.loads(build_setup(SessionConfig(
        model=MODEL, input_transcription=False, output_transcription=False,
        vad=VadConfig(interrupts=False))))["setup"]
    assert "inputAudioTranscription" not in setup
    assert "outputAudioTranscription" not in setup
    assert setup["realtimeInputConfig"]["activityHandling"] == "NO_INTERRUPTION"


def test_client_activity_disables_the_service_detector_and_sends_none_of_its_settings(
        ) -> None:
    ric = json.loads(build_setup(full_config(vad=dataclasses.replace(
        LOW_VAD, automatic=False, turn_coverage=TurnCoverage.ALL_INPUT))))["setup"][
        "realtimeInputConfig"]
    assert ric == {"automaticActivityDetection": {"disabled": True},
                   "activityHandling": "START_OF_ACTIVITY_INTERRUPTS",
                   "turnCoverage": "TURN_INCLUDES_ALL_INPUT"}
    assert json.loads(activity_start()) == {"realtimeInput": {"activityStart": {}}}
    assert json.loads(activity_end()) == {"realtimeInput": {"activityEnd": {}}}


def test_system_instruction_is_json_escaped() -> None:
    text = 'Say "hi"\nthen \\ wait \u00e9'
    setup = json.loads(build_setup(SessionConfig(model=MODEL, system_instruction=text)))
    assert setup["setup"]["systemInstruction"]["parts"][0]["text"] == text


# -- client messages: shapes ------------------------------------------------------------


def test_audio_message_exact_shape() -> None:
    pcm = bytes(range(256)) * 4
    msg = json.loads(audio_message(pcm))
    assert msg == {"realtimeInput": {"audio": {
        "mimeType": f"audio/pcm;rate={INPUT_RATE}", "data": base64.b64encode(pcm).decode()}}}
    assert json.loads(audio_message(b"\x00\x01", rate=8000))["realtimeInput"]["audio"][
        "mimeType"] == "audio/pcm;rate=8000"


@given(st.binary(max_size=3000), st.sampled_from([8000, 16000, 24000]))
def test_audio_message_round_trips(pcm: bytes, rate: int) -> None:
    audio = json.loads(audio_message(pcm, rate))["realtimeInput"]["audio"]
    assert base64.b64decode(audio["data"], validate=True) == pcm
    assert audio["mimeType"] == f"audio/pcm;rate={rate}"


def test_text_and_stream_end_shapes() -> None:
    assert json.loads(text_message('caller pressed "5"\n')) == {
        "realtimeInput": {"text": 'caller pressed "5"\n'}}
    assert json.loads(audio_stream_end()) == {"realtimeInput": {"audioStreamEnd": True}}


def test_tool_response_shape() -> None:
    out = tool_response([
        FunctionResponse("call-1", "end_call", {"result": "ok"}, scheduling="WHEN_IDLE"),
        FunctionResponse("call-2", "lookup_order", {"status": "shipped", "n": [1, 2]}),
    ])
    assert json.loads(out) == {"toolResponse": {"functionResponses": [
        {"id": "call-1", "name": "end_call", "response": {"result": "ok"},
         "scheduling": "WHEN_IDLE"},
        {"id": "call-2", "name": "lookup_order", "response": {"status": "shipped",
                                                              "n": [1, 2]}},
    ]}}


@pytest.mark.parametrize("bad", [{"x": float("nan")}, {"x": {1, 2}}, {"x": object()}])
def test_tool_response_rejects_non_json(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        tool_response([FunctionResponse("c", "n", bad)])


# -- client messages: the SDK's pydantic types as an oracle -----------------------------


def _field_table(model: type[pydantic.BaseModel]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        table[name] = info
        if info.alias:
            table[info.alias] = info
    return table


def _check_value(ann: Any, value: Any, path: str) -> None:
    origin = typing.get_origin(ann)
    args = typing.get_args(ann)
    if origin is typing.Annotated:
        if args[0] is list and any(getattr(m, "func", None) is gt._validate_tool_list
                                   for m in args[1:]):
            # ``tools`` is a bare ``list`` whose validator turns each dict into a ``Tool``
            _check_value(list[gt.Tool], value, path)
        else:
            _check_value(args[0], value, path)
        return
    if origin in (typing.Union, pytypes.UnionType):
        if value is None and type(None) in args:
            return
        problems = []
        for option in (a for a in args if a is not type(None)):
            try:
                _check_value(option, value, path)
            except AssertionError as exc:
                problems.append(str(exc))
            else:
                return
        raise AssertionError(f"{path}: {value!r} fits none of {args}: {problems}")
    if ann is Any:
        return
    if origin is typing.Literal:
        assert value in args, f"{path}: {value!r} not one of {args}"
        return
    if origin is list:
        assert isinstance(value, list), f"{path}: expected a list, got {value!r}"
        for i, item in enumerate(value):
            _check_value(args[0], item, f"{path}[{i}]")
        return
    if origin is dict:
        assert isinstance(value, dict), f"{path}: expected an object, got {value!r}"
        for k, item in value.items():
            _check_value(args[1], item, f"{path}.{k}")
        return
    if isinstance(ann, type) and issubclass(ann, pydantic.BaseModel):
        strict_check(ann, value, path)
        return
    if isinstance(ann, type) and issubclass(ann, enum.Enum):
        # The SDK's enums accept unknown values with only a warning; we do not.
        allowed = {m.value for m in ann}
        assert value in allowed, f"{path}: {value!r} is not a {ann.__name__}"
        return
    if ann is bool:
        assert isinstance(value, bool), f"{path}: {value!r} is not a bool"
        return
    if ann is int:
        assert isinstance(value, int) and not isinstance(value, bool), (
            f"{path}: {value!r} is not an int")
        return
    if ann is float:
        assert isinstance(value, int | float) and not isinstance(value, bool), (
            f"{path}: {value!r} is not a number")
        return
    if ann is str:
        assert isinstance(value, str), f"{path}: {value!r} is not a string"
        return
    if ann is bytes:
        assert isinstance(value, str), f"{path}: bytes must be base64 text"
        try:
            binascii.a2b_base64(value, strict_mode=True)  # our messages: standard alphabet
        except binascii.Error as exc:
            raise AssertionError(f"{path}: not base64: {exc}") from exc
        return
    raise AssertionError(f"{path}: the strict checker does not handle {ann!r}")


def strict_check(model: type[pydantic.BaseModel], data: Any, path: str = "$") -> None:
    """Every key must be a field of ``model`` (by alias or name), recursively, with a value
    of the field's type and, for enums, one of its declared values."""
    model.model_rebuild()
    assert isinstance(data, dict), f"{path}: expected an object for {model.__name__}"
    table = _field_table(model)
    for key, value in data.items():
        assert key in table, f"{path}.{key} is not a field of {model.__name__}"
        _check_value(table[key].annotation, value, f"{path}.{key}")


def sdk_validate(text: str | bytes) -> gt.LiveClientMessage:
    """Validate one client message against ``google.genai.types``; fail on any doubt.

    SDK 3.4's ``LiveClientSetup`` has no ``realtimeInputConfig`` although its own converter
    sends ``setup.realtimeInputConfig`` (asserted in ``test_sdk_sends_realtime_input_config
    _inside_setup``), so that one member is validated against ``RealtimeInputConfig``.
    """
    msg = json.loads(text)
    assert isinstance(msg, dict)
    assert len(msg) == 1, f"one top-level key per client message, got {list(msg)}"
    if "setup" in msg:
        msg = {"setup": dict(msg["setup"])}
        ric = msg["setup"].pop("realtimeInputConfig", None)
        if ric is not None:
            strict_check(gt.RealtimeInputConfig, ric, "$.setup.realtimeInputConfig")
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                gt.RealtimeInputConfig.model_validate(ric)
    strict_check(gt.LiveClientMessage, msg)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an unknown enum value only warns in the SDK
        return gt.LiveClientMessage.model_validate_json(json.dumps(msg))


CLIENT_MESSAGES: dict[str, Callable[[], str]] = {
    "setup-minimal": lambda: build_setup(SessionConfig(model=MODEL)),
    "setup-full": lambda: build_setup(full_config()),
    "setup-no-handle": lambda: build_setup(full_config(resumption_handle=None)),
    "setup-no-barge-in": lambda: build_setup(full_config(vad=VadConfig(
        start_sensitivity=StartSensitivity.HIGH, end_sensitivity=EndSensitivity.HIGH,
        interrupts=False))),
    # Local turn-taking: the gateway's own detector marks each turn.
    "setup-client-activity": lambda: build_setup(full_config(vad=VadConfig(
        automatic=False, turn_coverage=TurnCoverage.ALL_INPUT))),
    "activity-start": activity_start,
    "activity-end": activity_end,
    "setup-no-target": lambda: build_setup(full_config(compression_target_tokens=None)),
    "audio": lambda: audio_message(b"\xff\xfe" * 160, 8000),
    "audio-empty": lambda: audio_message(b""),
    "text": lambda: text_message("the caller pressed 5"),
    "audio-stream-end": audio_stream_end,
    "tool-response": lambda: tool_response([
        FunctionResponse("call-1", "end_call", {"result": "ok"}, scheduling="WHEN_IDLE"),
        FunctionResponse("call-2", "lookup_order", {"status": "shipped"},
                         scheduling="INTERRUPT"),
        FunctionResponse("call-3", "note", {}, scheduling="SILENT"),
        FunctionResponse("call-4", "plain", {"n": 1}),
    ]),
}


@pytest.mark.parametrize("name", list(CLIENT_MESSAGES))
def test_client_messages_validate_against_the_sdk_types(name: str) -> None:
    sdk_validate(CLIENT_MESSAGES[name]())


def test_sdk_reads_our_setup_back_field_by_field() -> None:
    msg = sdk_validate(build_setup(full_config()))
    setup = msg.setup
    assert setup is not None
    assert setup.model == MODEL
    gc = setup.generation_config
    assert gc is not None
    assert gc.response_modalities == [gt.Modality.AUDIO]
    assert gc.temperature == 0.7
    assert gc.speech_config is not None
    assert gc.speech_config.language_code == "en-US"
    vc = gc.speech_config.voice_config
    assert vc is not None and vc.prebuilt_voice_config is not None
    assert vc.prebuilt_voice_config.voice_name == "Kore"
    assert isinstance(setup.system_instruction, gt.Content)
    assert setup.system_instruction.role == "user"
    assert setup.system_instruction.parts is not None
    assert setup.system_instruction.parts[0].text == "You are a phone agent."
    assert setup.tools is not None
    tool = setup.tools[0]
    assert isinstance(tool, gt.Tool) and tool.function_declarations is not None
    decls = tool.function_declarations
    assert [d.name for d in decls] == ["end_call", "lookup_order"]
    assert decls[0].behavior == gt.Behavior.NON_BLOCKING
    assert decls[0].parameters is not None
    assert decls[0].parameters.type == gt.Type.OBJECT
    assert decls[0].parameters.required == ["reason"]
    assert setup.session_resumption is not None
    assert setup.session_resumption.handle == "prev-handle"
    assert setup.input_audio_transcription is not None
    assert setup.output_audio_transcription is not None
    cwc = setup.context_window_compression
    assert cwc is not None and cwc.sliding_window is not None
    assert (cwc.trigger_tokens, cwc.sliding_window.target_tokens) == (25600, 12800)


def test_sdk_reads_our_realtime_input_config() -> None:
    ric = gt.RealtimeInputConfig.model_validate(
        json.loads(build_setup(full_config()))["setup"]["realtimeInputConfig"])
    aad = ric.automatic_activity_detection
    assert aad is not None
    assert aad.disabled is False
    assert aad.start_of_speech_sensitivity == gt.StartSensitivity.START_SENSITIVITY_LOW
    assert aad.end_of_speech_sensitivity == gt.EndSensitivity.END_SENSITIVITY_LOW
    assert (aad.prefix_padding_ms, aad.silence_duration_ms) == (20, 500)
    assert ric.activity_handling == gt.ActivityHandling.START_OF_ACTIVITY_INTERRUPTS


@given(st.binary(max_size=2000))
def test_sdk_decodes_our_audio_to_the_same_bytes(pcm: bytes) -> None:
    msg = gt.LiveClientMessage.model_validate_json(audio_message(pcm, 8000))
    assert msg.realtime_input is not None and msg.realtime_input.audio is not None
    assert msg.realtime_input.audio.data == pcm
    assert msg.realtime_input.audio.mime_type == "audio/pcm;rate=8000"


def test_sdk_reads_our_other_realtime_inputs_and_tool_response() -> None:
    text = sdk_validate(text_message("hello")).realtime_input
    assert text is not None and text.text == "hello"
    end = sdk_validate(audio_stream_end()).realtime_input
    assert end is not None and end.audio_stream_end is True
    tr = sdk_validate(CLIENT_MESSAGES["tool-response"]()).tool_response
    assert tr is not None and tr.function_responses is not None
    first = tr.function_responses[0]
    assert (first.id, first.name, first.response) == ("call-1", "end_call", {"result": "ok"})
    assert [r.scheduling for r in tr.function_responses] == [
        gt.FunctionResponseScheduling.WHEN_IDLE, gt.FunctionResponseScheduling.INTERRUPT,
        gt.FunctionResponseScheduling.SILENT, None]


# The oracle must be able to fail: typos and wrong types in otherwise-valid messages.

def _mutated_setup(path: list[str], value: Any, *, rename: str | None = None) -> str:
    msg = json.loads(build_setup(full_config()))
    node = msg
    for key in path[:-1]:
        node = node[int(key)] if key.isdigit() else node[key]
    if rename is not None:
        node[rename] = node.pop(path[-1])
    else:
        node[path[-1]] = value
    return json.dumps(msg)


NEGATIVE: dict[str, str] = {
    "typo-top-level": _mutated_setup(["setup", "generationConfig"], None,
                                     rename="generationConfg"),
    "typo-nested": _mutated_setup(
        ["setup", "generationConfig", "speechConfig", "voiceConfig"], None,
        rename="voiceConf"),
    "typo-in-vad": _mutated_setup(
        ["setup", "realtimeInputConfig", "automaticActivityDetection", "prefixPaddingMs"],
        None, rename="prefixPadingMs"),
    "typo-in-tool": _mutated_setup(["setup", "tools", "0", "functionDeclarations", "0",
                                    "description"], None, rename="descripton"),
    "wrong-type-int": _mutated_setup(
        ["setup", "realtimeInputConfig", "automaticActivityDetection", "silenceDurationMs"],
        "five hundred"),
    "numeric-string-int": _mutated_setup(
        ["setup", "realtimeInputConfig", "automaticActivityDetection", "silenceDurationMs"],
        "500"),
    "wrong-type-list": _mutated_setup(["setup", "generationConfig", "responseModalities"],
                                      "AUDIO"),
    "bad-enum-modality": _mutated_setup(["setup", "generationConfig", "responseModalities"],
                                        ["AUDIOS"]),
    "bad-enum-sensitivity": _mutated_setup(
        ["setup", "realtimeInputConfig", "automaticActivityDetection",
         "startOfSpeechSensitivity"], "START_SENSITIVITY_LO"),
    "bad-enum-activity-handling": _mutated_setup(
        ["setup", "realtimeInputConfig", "activityHandling"], "INTERRUPTS"),
    "unknown-setup-field": _mutated_setup(["setup", "config"], {}),
    "realtime-typo": '{"realtimeInput":{"audio":{"mimeTyp":"audio/pcm;rate=16000","data":""}}}',
    "realtime-bad-base64": '{"realtimeInput":{"audio":{"mimeType":"audio/pcm","data":"@@@@"}}}',
    "realtime-typo-key": '{"realtimeInputs":{"text":"hi"}}',
    "stream-end-string": '{"realtimeInput":{"audioStreamEnd":"yes"}}',
    "tool-bad-scheduling": json.dumps({"toolResponse": {"functionResponses": [
        {"id": "c", "name": "n", "response": {}, "scheduling": "LATER"}]}}),
    "tool-typo": json.dumps({"toolResponse": {"functionResponse": [
        {"id": "c", "name": "n", "response": {}}]}}),
    "tool-response-not-object": json.dumps({"toolResponse": {"functionResponses": [
        {"id": "c", "name": "n", "response": "ok"}]}}),
    "two-top-level-keys": json.dumps({"realtimeInput": {"text": "a"},
                                      "toolResponse": {"functionResponses": []}}),
}


@pytest.mark.parametrize("name", list(NEGATIVE))
def test_oracle_rejects_typos_and_wrong_types(name: str) -> None:
    with pytest.raises((AssertionError, pydantic.ValidationError, UserWarning)):
        sdk_validate(NEGATIVE[name])


@pytest.mark.parametrize("name", ["typo-top-level", "typo-nested", "typo-in-tool",
                                  "realtime-typo", "realtime-bad-base64", "tool-typo",
                                  "tool-response-not-object", "unknown-setup-field"])
def test_sdk_itself_forbids_unknown_fields_and_bad_types(name: str) -> None:
    """The SDK's models have ``extra='forbid'``: pydantic alone catches these."""
    assert _common.BaseModel.model_config.get("extra") == "forbid"
    msg = json.loads(NEGATIVE[name])
    msg.get("setup", {}).pop("realtimeInputConfig", None)
    with pytest.raises(pydantic.ValidationError):
        gt.LiveClientMessage.model_validate(msg)


@pytest.mark.parametrize("name", ["typo-in-vad", "wrong-type-int"])
def test_sdk_realtime_input_config_forbids_typos_and_bad_types(name: str) -> None:
    ric = json.loads(NEGATIVE[name])["setup"]["realtimeInputConfig"]
    with pytest.raises(pydantic.ValidationError):
        gt.RealtimeInputConfig.model_validate(ric)


def test_sdk_coerces_yes_to_true_so_the_strict_walker_is_needed() -> None:
    msg = json.loads(NEGATIVE["stream-end-string"])
    parsed = gt.LiveClientMessage.model_validate(msg)
    assert parsed.realtime_input is not None
    assert parsed.realtime_input.audio_stream_end is True
    with pytest.raises(AssertionError, match="is not a bool"):
        strict_check(gt.LiveClientMessage, msg)


def test_sdk_enums_only_warn_so_the_strict_walker_is_needed() -> None:
    bad = {"automaticActivityDetection": {"startOfSpeechSensitivity": "START_SENSITIVITY_LO"}}
    with pytest.warns(UserWarning, match="not a valid StartSensitivity"):
        gt.RealtimeInputConfig.model_validate(bad)
    with pytest.raises(AssertionError, match="is not a StartSensitivity"):
        strict_check(gt.RealtimeInputConfig, bad)


def test_sdk_coerces_numeric_strings_so_the_strict_walker_is_needed() -> None:
    lax = {"automaticActivityDetection": {"silenceDurationMs": "500"}}
    parsed = gt.RealtimeInputConfig.model_validate(lax)
    assert parsed.automatic_activity_detection is not None
    assert parsed.automatic_activity_detection.silence_duration_ms == 500
    with pytest.raises(AssertionError, match="is not an int"):
        strict_check(gt.RealtimeInputConfig, lax)


# -- setup: compared with what the SDK itself sends ------------------------------------


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def _normalise(value: Any) -> Any:
    if isinstance(value, dict):
        return {_snake(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    return value


def _sdk_setup(config: gt.LiveConnectConfig, model: str) -> dict[str, Any]:
    """The ``setup`` message google-genai 3.x puts on the wire (mirrors AsyncLive.connect)."""
    client = genai.Client(api_key="test-key",
                          http_options=gt.HttpOptions(api_version="v1beta"))
    request = _common.convert_to_dict(sdk_converters._LiveConnectParameters_to_mldev(
        api_client=client._api_client,
        from_object=gt.LiveConnectParameters(model=model, config=config).model_dump(
            exclude_none=True)))
    del request["config"]
    result: dict[str, Any] = _common.encode_unserializable_types(request)
    return result


def test_setup_matches_what_the_sdk_sends_for_the_same_config() -> None:
    sdk = _sdk_setup(gt.LiveConnectConfig(
        response_modalities=[gt.Modality.AUDIO],
        temperature=0.7,
        speech_config=gt.SpeechConfig(
            voice_config=gt.VoiceConfig(
                prebuilt_voice_config=gt.PrebuiltVoiceConfig(voice_name="Kore")),
            language_code="en-US"),
        system_instruction="You are a phone agent.",
        tools=[gt.Tool(function_declarations=[gt.FunctionDeclaration.model_validate(END_CALL),
                                              gt.FunctionDeclaration.model_validate(LOOKUP)])],
        realtime_input_config=gt.RealtimeInputConfig(
            automatic_activity_detection=gt.AutomaticActivityDetection(
                disabled=False,
                start_of_speech_sensitivity=gt.StartSensitivity.START_SENSITIVITY_LOW,
                end_of_speech_sensitivity=gt.EndSensitivity.END_SENSITIVITY_LOW,
                prefix_padding_ms=20, silence_duration_ms=500),
            activity_handling=gt.ActivityHandling.START_OF_ACTIVITY_INTERRUPTS),
        input_audio_transcription=gt.AudioTranscriptionConfig(),
        output_audio_transcription=gt.AudioTranscriptionConfig(),
        session_resumption=gt.SessionResumptionConfig(handle="prev-handle"),
        context_window_compression=gt.ContextWindowCompressionConfig(
            trigger_tokens=25600, sliding_window=gt.SlidingWindow(target_tokens=12800)),
    ), MODEL)
    ours = json.loads(build_setup(full_config()))
    # same members at the top of setup, spelled the same (the SDK mixes cases below that)
    assert set(ours["setup"]) == set(sdk["setup"])
    assert _normalise(ours) == _normalise(sdk)


def test_minimal_setup_matches_the_sdk() -> None:
    sdk = _sdk_setup(gt.LiveConnectConfig(
        response_modalities=[gt.Modality.AUDIO],
        realtime_input_config=gt.RealtimeInputConfig(
            automatic_activity_detection=gt.AutomaticActivityDetection(disabled=False),
            activity_handling=gt.ActivityHandling.START_OF_ACTIVITY_INTERRUPTS),
        input_audio_transcription=gt.AudioTranscriptionConfig(),
        output_audio_transcription=gt.AudioTranscriptionConfig(),
        session_resumption=gt.SessionResumptionConfig(),
        context_window_compression=gt.ContextWindowCompressionConfig(
            trigger_tokens=25600, sliding_window=gt.SlidingWindow(target_tokens=12800)),
    ), MODEL)
    assert _normalise(json.loads(build_setup(SessionConfig(model=MODEL)))) == _normalise(sdk)


def test_sdk_sends_realtime_input_config_inside_setup() -> None:
    sdk = _sdk_setup(gt.LiveConnectConfig(realtime_input_config=gt.RealtimeInputConfig(
        activity_handling=gt.ActivityHandling.NO_INTERRUPTION)), MODEL)
    assert sdk["setup"]["realtimeInputConfig"] == {"activity_handling": "NO_INTERRUPTION"}


# -- server messages: the recorded fixture ----------------------------------------------


def fixture_lines() -> list[str]:
    return FIXTURE.read_text().splitlines()


PCM_STD = bytes([0xFB, 0xFF, 0xBF]) * 160 + bytes(range(240))
PCM_URL = bytes([0xFB, 0xFF, 0xBF]) * 160

EXPECTED: list[tuple[Any, ...]] = [
    (SetupComplete(None),),
    (SetupComplete("sess-4f2a"),),
    (ModelAudio(PCM_STD, 24000),),
    (ModelAudio(PCM_URL, 16000),),
    (ModelText("Thanks for calling Acme."),),
    (InputTranscript("I'd like to check my order"),),
    (OutputTranscript("Sure, one moment.", finished=True),),
    (InputTranscript(" status please"),),
    (Interrupted(),),
    (GenerationComplete(),),
    (TurnComplete(None),),
    (TurnComplete("NEED_MORE_INPUT"), Usage(412, 96, 508, raw={})),
    (ToolCall((FunctionCall("function-call-1342", "lookup_order",
                            {"order_id": "A-1001", "verbose": False}),)),),
    (ToolCall((FunctionCall("fc-2", "end_call", {"reason": "done"}),
               FunctionCall("fc-3", "noop", {}))),),
    (ToolCallCancellation(("function-call-1342",)),),
    (GoAway(50.0),),
    (GoAway(1.5),),
    (ResumptionUpdate("Cg1oYW5kbGUtMDAwMDE", True),),
    (ResumptionUpdate(None, False),),
    (Usage(10, 5, 15, raw={}),),
    (),  # voiceActivityDetectionSignal: known, nothing to act on
    (ModelText("ok"),),  # unknown fields inside known messages are tolerated
    (Unknown(("someFutureMessage", "anotherOne")),),
]


def _comparable(events: tuple[Any, ...]) -> tuple[Any, ...]:
    # Usage.raw and FunctionCall.args are excluded from == (hash=False only affects hash),
    # so compare raw separately; here blank it out.
    return tuple(Usage(e.prompt_tokens, e.response_tokens, e.total_tokens, raw={})
                 if isinstance(e, Usage) else e for e in events)


def test_fixture_has_every_kind_and_both_spellings() -> None:
    lines = fixture_lines()
    assert len(lines) == len(EXPECTED)
    top = {k for line in lines for k in json.loads(line)}
    for camel, snake in [("setupComplete", "setup_complete"),
                         ("serverContent", "server_content"), ("toolCall", "tool_call"),
                         ("goAway", "go_away"), ("usageMetadata", "usage_metadata")]:
        assert {camel, snake} <= top
    assert {"toolCallCancellation", "sessionResumptionUpdate"} <= top


@pytest.mark.parametrize("index", range(len(EXPECTED)))
def test_fixture_message_parses_to_expected_events(index: int) -> None:
    line = fixture_lines()[index]
    got = parse_server_message(line)
    assert _comparable(got) == EXPECTED[index]
    # binary frames (what production sends) and pretty-printed JSON parse the same
    assert parse_server_message(line.encode()) == got
    pretty = (json.dumps(json.loads(line), indent=2) + "\n").encode()
    assert parse_server_message(pretty) == got


def test_fixture_audio_uses_both_base64_alphabets() -> None:
    std = json.loads(fixture_lines()[2])["serverContent"]["modelTurn"]["parts"][0]
    url = json.loads(fixture_lines()[3])["server_content"]["model_turn"]["parts"][0]
    assert "+" in std["inlineData"]["data"] and "/" in std["inlineData"]["data"]
    assert "-" in url["inline_data"]["data"] and "_" in url["inline_data"]["data"]


def test_usage_keeps_raw_details() -> None:
    events = parse_server_message(fixture_lines()[11])
    usage = events[1]
    assert isinstance(usage, Usage)
    assert usage.raw["responseTokensDetails"] == [{"modality": "AUDIO", "tokenCount": 96}]


def test_tool_call_args_are_compared_exactly() -> None:
    (tc,) = parse_server_message(fixture_lines()[12])
    assert isinstance(tc, ToolCall)
    assert dict(tc.calls[0].args) == {"order_id": "A-1001", "verbose": False}


SDK_UNKNOWN = {21, 22}  # lines with fields/kinds the SDK's models do not have


@pytest.mark.parametrize("index", range(len(EXPECTED)))
def test_fixture_is_what_the_sdk_accepts(index: int) -> None:
    """The fixture itself is checked against the SDK's server types (extra='forbid')."""
    line = fixture_lines()[index]
    if index in SDK_UNKNOWN:
        with pytest.raises(pydantic.ValidationError, match="Extra inputs are not permitted"):
            gt.LiveServerMessage.model_validate_json(line)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gt.LiveServerMessage.model_validate_json(line)


@pytest.mark.parametrize("index", sorted(set(range(len(EXPECTED))) - SDK_UNKNOWN))
def test_our_parse_agrees_with_the_sdk_parse(index: int) -> None:
    line = fixture_lines()[index]
    sdk = gt.LiveServerMessage.model_validate_json(line)
    ours = parse_server_message(line)
    sc = sdk.server_content
    audio = [e for e in ours if isinstance(e, ModelAudio)]
    sdk_audio = [p.inline_data for p in (sc.model_turn.parts or [])
                 if p.inline_data] if sc and sc.model_turn else []
    assert [a.pcm for a in audio] == [b.data for b in sdk_audio]
    texts = [e.text for e in ours if isinstance(e, ModelText)]
    sdk_texts = [p.text for p in (sc.model_turn.parts or [])
                 if p.text] if sc and sc.model_turn else []
    assert texts == sdk_texts
    ins = [e.text for e in ours if isinstance(e, InputTranscript)]
    assert ins == ([sc.input_transcription.text] if sc and sc.input_transcription else [])
    outs = [e.text for e in ours if isinstance(e, OutputTranscript)]
    assert outs == ([sc.output_transcription.text] if sc and sc.output_transcription else [])
    assert any(isinstance(e, Interrupted) for e in ours) == bool(sc and sc.interrupted)
    assert any(isinstance(e, TurnComplete) for e in ours) == bool(sc and sc.turn_complete)
    assert any(isinstance(e, GenerationComplete) for e in ours) == bool(
        sc and sc.generation_complete)
    calls = [c for e in ours if isinstance(e, ToolCall) for c in e.calls]
    sdk_calls = sdk.tool_call.function_calls or [] if sdk.tool_call else []
    assert [(c.id, c.name, dict(c.args)) for c in calls] == [
        (c.id, c.name, c.args or {}) for c in sdk_calls]
    go = [e for e in ours if isinstance(e, GoAway)]
    assert bool(go) == (sdk.go_away is not None)
    if sdk.go_away is not None and sdk.go_away.time_left is not None:
        assert go[0].time_left_s == float(sdk.go_away.time_left.rstrip("s"))
    ru = [e for e in ours if isinstance(e, ResumptionUpdate)]
    if sdk.session_resumption_update is not None:
        assert ru[0].handle == (sdk.session_resumption_update.new_handle or None)
        assert ru[0].resumable == bool(sdk.session_resumption_update.resumable)
    usage = [e for e in ours if isinstance(e, Usage)]
    if sdk.usage_metadata is not None:
        assert (usage[0].prompt_tokens, usage[0].response_tokens, usage[0].total_tokens) == (
            sdk.usage_metadata.prompt_token_count, sdk.usage_metadata.response_token_count,
            sdk.usage_metadata.total_token_count)
    else:
        assert usage == []


# -- server messages: details -----------------------------------------------------------


def _audio(mime: str | None, data: str) -> str:
    inline: dict[str, Any] = {"data": data}
    if mime is not None:
        inline["mimeType"] = mime
    return json.dumps({"serverContent": {"modelTurn": {"parts": [{"inlineData": inline}]}}})


def test_audio_rate_from_mime_type_and_default() -> None:
    assert parse_server_message(_audio("audio/pcm;rate=8000", "AAAAAA==")) == (
        ModelAudio(b"\x00\x00\x00\x00", 8000),)
    assert parse_server_message(_audio("audio/pcm", "AAAAAA==")) == (
        ModelAudio(b"\x00\x00\x00\x00", OUTPUT_RATE),)
    assert parse_server_message(_audio(None, "AAAAAA==")) == (
        ModelAudio(b"\x00\x00\x00\x00", OUTPUT_RATE),)


def test_non_audio_inline_data_is_skipped() -> None:
    assert parse_server_message(_audio("image/png", "AAAA")) == ()


def test_unpadded_urlsafe_audio_decodes() -> None:
    pcm = b"\xfb\xff\xbf\xfe"
    data = base64.urlsafe_b64encode(pcm).decode().rstrip("=")
    assert parse_server_message(_audio("audio/pcm;rate=24000", data)) == (
        ModelAudio(pcm, 24000),)


def test_one_message_can_carry_audio_transcript_and_turn_complete_in_order() -> None:
    frame = json.dumps({"serverContent": {
        "modelTurn": {"parts": [{"inlineData": {"mimeType": "audio/pcm;rate=24000",
                                                "data": "AAA="}},
                                {"text": "hi", "thought": True},
                                {"text": "hello"}]},
        "outputTranscription": {"text": "hello"},
        "generationComplete": True, "turnComplete": True}, "usageMetadata": {
            "promptTokenCount": "7", "candidatesTokenCount": 3, "totalTokenCount": 10}})
    assert _comparable(parse_server_message(frame)) == (
        ModelAudio(b"\x00\x00", 24000), ModelText("hello"), OutputTranscript("hello"),
        GenerationComplete(), TurnComplete(None), Usage(7, 3, 10, raw={}))


def test_setup_complete_with_usage_riding_along() -> None:
    events = parse_server_message('{"setupComplete":{},"usageMetadata":{"totalTokenCount":1}}')
    assert _comparable(events) == (SetupComplete(None), Usage(0, 0, 1, raw={}))


def test_false_flags_produce_no_events() -> None:
    frame = json.dumps({"serverContent": {"interrupted": False, "turnComplete": False,
                                          "generationComplete": False}})
    assert parse_server_message(frame) == ()


def test_empty_and_null_sections() -> None:
    assert parse_server_message("{}") == ()
    assert parse_server_message('{"serverContent": null}') == ()
    assert parse_server_message('{"serverContent": {}}') == ()


@pytest.mark.parametrize(("value", "seconds"), [
    ("50s", 50.0), ("1.5s", 1.5), ("0s", 0.0), ("0.000000001s", 1e-9),
    ({"seconds": 50, "nanos": 500_000_000}, 50.5), ({"seconds": "3"}, 3.0),
    ("50", None), ("abc", None), ("nans", None), ("infs", None), ("1e400s", None),
    (50, None), (None, None), ({"seconds": 10**400}, None), ({"seconds": [1]}, None),
    ({"seconds": "nan"}, None),
])
def test_parse_duration(value: Any, seconds: float | None) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("data", ["AAAA", "AAA", "AA", "+/+/", "-_-_", "-_8=", ""])
def test_decode_b64_accepts_both_alphabets_with_or_without_padding(data: str) -> None:
    std = data.replace("-", "+").replace("_", "/")
    assert decode_b64(data, "x") == base64.b64decode(std + "=" * (-len(std) % 4))


@pytest.mark.parametrize("data", ["@@@@", "A", "AAAA!", "AA AA", "AAAA\n", "AAA\u00e9",
                                  "AA=A", "AAA=A"])
def test_decode_b64_rejects_garbage(data: str) -> None:
    with pytest.raises(LiveProtocolError) as exc:
        decode_b64(data, "serverContent.x")
    assert exc.value.field == "serverContent.x"


def test_usage_counts_tolerate_odd_values() -> None:
    frame = json.dumps({"usageMetadata": {"promptTokenCount": "²", "responseTokenCount": -4,
                                          "totalTokenCount": "9" * 5000}})
    (usage,) = parse_server_message(frame)
    assert isinstance(usage, Usage)
    assert (usage.prompt_tokens, usage.response_tokens, usage.total_tokens) == (0, 0, 0)


def test_resumption_update_string_index_tolerated() -> None:
    frame = json.dumps({"sessionResumptionUpdate": {
        "newHandle": "h", "resumable": True, "lastConsumedClientMessageIndex": "12"}})
    assert parse_server_message(frame) == (ResumptionUpdate("h", True),)


@pytest.mark.parametrize(("frame", "field"), [
    ("not json", None),
    (b"\xff\xfe\xfa", None),
    ("[1, 2]", None),
    ('"setupComplete"', None),
    ('{"serverContent": "oops"}', "serverContent"),
    ('{"serverContent": []}', "serverContent"),
    ('{"setupComplete": true}', "setupComplete"),
    ('{"toolCall": []}', "toolCall"),
    ('{"goAway": "50s"}', "goAway"),
    ('{"usageMetadata": 5}', "usageMetadata"),
    ('{"sessionResumptionUpdate": "h"}', "sessionResumptionUpdate"),
    ('{"toolCallCancellation": ["a"]}', "toolCallCancellation"),
    ('{"serverContent": {"modelTurn": "x"}}', "serverContent.modelTurn"),
    ('{"serverContent": {"inputTranscription": "x"}}', "serverContent.inputTranscription"),
    ('{"serverContent": {"modelTurn": {"parts": {"text": "x"}}}}',
     "serverContent.modelTurn.parts"),
    ('{"serverContent": {"modelTurn": {"parts": [{"inlineData": {"mimeType": "audio/pcm"}}]}}}',
     "serverContent.modelTurn.parts.inlineData.data"),
    ('{"serverContent": {"modelTurn": {"parts": [{"inlineData": {"data": 5}}]}}}',
     "serverContent.modelTurn.parts.inlineData.data"),
    (_audio("audio/pcm;rate=24000", "@@@@"), "serverContent.modelTurn.parts.inlineData.data"),
    (_audio("audio/pcm;rate=24000", "AAAA!"), "serverContent.modelTurn.parts.inlineData.data"),
    (_audio("audio/pcm;rate=0", "AAAA"), "serverContent.modelTurn.parts.inlineData.mimeType"),
    (_audio("audio/pcm;rate=" + "9" * 5000, "AAAA"),
     "serverContent.modelTurn.parts.inlineData.mimeType"),
    ('{"toolCall": {"functionCalls": {}}}', "toolCall.functionCalls"),
    ('{"toolCall": {"functionCalls": [{"id": "1"}]}}', "toolCall.functionCalls[0]"),
    ('{"toolCall": {"functionCalls": ["x"]}}', "toolCall.functionCalls[0]"),
    ('{"toolCall": {"functionCalls": [{"name": "f", "args": [1]}]}}',
     "toolCall.functionCalls[0].args"),
])
def test_malformed_known_fields_raise(frame: str | bytes, field: str | None) -> None:
    with pytest.raises(LiveProtocolError) as exc:
        parse_server_message(frame)
    assert exc.value.field == field
    assert isinstance(exc.value, ProtocolError)


def test_unknown_kind_alongside_a_known_empty_one() -> None:
    assert parse_server_message('{"voiceActivity": {}, "brandNew": 1}') == (
        Unknown(("brandNew",)),)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=12)
_KEYS = ["setupComplete", "serverContent", "modelTurn", "parts", "inlineData", "mimeType",
         "data", "text", "inputTranscription", "outputTranscription", "interrupted",
         "turnComplete", "turnCompleteReason", "generationComplete", "toolCall",
         "functionCalls", "id", "name", "args", "toolCallCancellation", "ids", "goAway",
         "timeLeft", "sessionResumptionUpdate", "newHandle", "resumable", "usageMetadata",
         "promptTokenCount", "totalTokenCount", "seconds", "nanos", "finished", "thought",
         "server_content", "model_turn", "inline_data"]
_shaped = st.recursive(
    _json,
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.sampled_from(_KEYS), children, max_size=4),
    max_leaves=25)


@given(st.dictionaries(st.sampled_from(_KEYS), _shaped, max_size=4))
def test_parser_raises_only_live_protocol_errors(msg: dict[str, Any]) -> None:
    try:
        events = parse_server_message(json.dumps(msg))
    except LiveProtocolError:
        return
    assert isinstance(events, tuple)
    for e in events:
        if isinstance(e, ModelAudio):
            assert e.rate > 0
        if isinstance(e, GoAway) and e.time_left_s is not None:
            assert e.time_left_s == e.time_left_s  # not NaN


@given(st.binary(max_size=300))
def test_parser_on_random_bytes(frame: bytes) -> None:
    with contextlib.suppress(LiveProtocolError):
        parse_server_message(frame)
