"""Gemini Live API (BidiGenerateContent) messages, sans-I/O.

Client messages are built as JSON text (:func:`build_setup`, :func:`audio_message`, ...).
Server messages (text or binary frames) go into :func:`parse_server_message`, which returns a
tuple of small frozen events; one message can carry several (audio plus ``turnComplete``, or
``usageMetadata`` riding along with anything). Unknown fields are ignored, unknown message kinds
become :class:`Unknown` so the caller can log them, and only malformed JSON or a malformed known
field raises :class:`LiveProtocolError`.

The service speaks camelCase; snake_case spellings are accepted too, since proto3 JSON parsers
(and Google's own SDK) treat both as the same field.
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import pybase64

from gateway.errors import LiveProtocolError
from gateway.jsonio import JSONDecodeError, json_error, loads

INPUT_RATE: Final = 16000
OUTPUT_RATE: Final = 24000
_RATE_RE: Final = re.compile(r"rate=([0-9]+)")
_DURATION_RE: Final = re.compile(r"-?[0-9]{1,12}(\.[0-9]{1,9})?s")


# -- client -> server -------------------------------------------------------------------


class StartSensitivity(enum.StrEnum):
    """How readily the service's detector commits to the start of speech."""

    HIGH = "START_SENSITIVITY_HIGH"
    LOW = "START_SENSITIVITY_LOW"


class EndSensitivity(enum.StrEnum):
    """How readily the service's detector commits to the end of speech."""

    HIGH = "END_SENSITIVITY_HIGH"
    LOW = "END_SENSITIVITY_LOW"


class TurnCoverage(enum.StrEnum):
    """Which input the caller's turn is made of."""

    ONLY_ACTIVITY = "TURN_INCLUDES_ONLY_ACTIVITY"  # the service's default
    ALL_INPUT = "TURN_INCLUDES_ALL_INPUT"  # silence and all since the last turn


@dataclass(frozen=True, slots=True)
class VadConfig:
    """``realtimeInputConfig``: who detects the caller's activity, and what it does.

    ``automatic=False`` disables the service's detector; the client then marks each turn
    with :func:`activity_start` and :func:`activity_end` (the sensitivities and durations
    belong to the service's detector and are not sent then).
    """

    start_sensitivity: StartSensitivity | None = None
    end_sensitivity: EndSensitivity | None = None
    prefix_padding_ms: int | None = None
    silence_duration_ms: int | None = None
    interrupts: bool = True  # START_OF_ACTIVITY_INTERRUPTS, i.e. barge-in
    automatic: bool = True
    turn_coverage: TurnCoverage | None = None  # None: the service's default


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """Everything that goes into one ``setup`` message."""

    model: str
    voice: str | None = None
    language: str | None = None
    system_instruction: str | None = None
    tools: tuple[Mapping[str, Any], ...] = ()  # functionDeclarations
    input_transcription: bool = True
    output_transcription: bool = True
    vad: VadConfig = field(default_factory=VadConfig)
    session_resumption: bool = True
    resumption_handle: str | None = None
    compression_trigger_tokens: int | None = 25600
    compression_target_tokens: int | None = 12800
    temperature: float | None = None


def build_setup(cfg: SessionConfig) -> str:
    """The first message of a session; the model name is used exactly as given."""
    return json.dumps({"setup": setup_object(cfg)}, separators=(",", ":"))


def setup_object(cfg: SessionConfig) -> dict[str, Any]:
    """The value of the ``setup`` message (also what an ephemeral token locks)."""
    generation: dict[str, Any] = {"responseModalities": ["AUDIO"]}
    if cfg.temperature is not None:
        generation["temperature"] = cfg.temperature
    speech: dict[str, Any] = {}
    if cfg.voice:
        speech["voiceConfig"] = {"prebuiltVoiceConfig": {"voiceName": cfg.voice}}
    if cfg.language:
        speech["languageCode"] = cfg.language
    if speech:
        generation["speechConfig"] = speech
    setup: dict[str, Any] = {"model": cfg.model, "generationConfig": generation}
    if cfg.system_instruction:
        setup["systemInstruction"] = {"role": "user",
                                      "parts": [{"text": cfg.system_instruction}]}
    if cfg.tools:
        setup["tools"] = [{"functionDeclarations": [dict(t) for t in cfg.tools]}]
    setup["realtimeInputConfig"] = _realtime_input_config(cfg.vad)
    if cfg.input_transcription:
        setup["inputAudioTranscription"] = {}
    if cfg.output_transcription:
        setup["outputAudioTranscription"] = {}
    if cfg.session_resumption:
        setup["sessionResumption"] = (
            {"handle": cfg.resumption_handle} if cfg.resumption_handle else {}
        )
    if cfg.compression_trigger_tokens is not None:
        window: dict[str, Any] = {"triggerTokens": cfg.compression_trigger_tokens,
                                  "slidingWindow": {}}
        if cfg.compression_target_tokens is not None:
            window["slidingWindow"]["targetTokens"] = cfg.compression_target_tokens
        setup["contextWindowCompression"] = window
    return setup


def _realtime_input_config(v: VadConfig) -> dict[str, Any]:
    aad: dict[str, Any] = {"disabled": not v.automatic}
    if v.automatic:
        for key, value in (("startOfSpeechSensitivity", v.start_sensitivity),
                           ("endOfSpeechSensitivity", v.end_sensitivity),
                           ("prefixPaddingMs", v.prefix_padding_ms),
                           ("silenceDurationMs", v.silence_duration_ms)):
            if value is not None:
                aad[key] = str(value) if isinstance(value, enum.Enum) else value
    ric: dict[str, Any] = {
        "automaticActivityDetection": aad,
        "activityHandling": "START_OF_ACTIVITY_INTERRUPTS" if v.interrupts
        else "NO_INTERRUPTION",
    }
    if v.turn_coverage is not None:
        ric["turnCoverage"] = str(v.turn_coverage)
    return ric


def activity_start() -> str:
    """``realtimeInput.activityStart``: the caller started speaking (automatic detection off);
    with START_OF_ACTIVITY_INTERRUPTS it cuts the model's reply short."""
    return '{"realtimeInput":{"activityStart":{}}}'


def activity_end() -> str:
    """``realtimeInput.activityEnd``: the caller's turn is over; the model answers it."""
    return '{"realtimeInput":{"activityEnd":{}}}'


def audio_message(pcm16: bytes, rate: int = INPUT_RATE) -> bytes:
    """``realtimeInput.audio``: PCM16 LE mono, rate declared in the MIME type.

    The UTF-8 text the socket sends, as bytes: no str in between on the per-frame path.
    """
    # A bytes template rather than json.dumps: this runs every 20 ms per call, and base64
    # and an integer never need escaping.
    data = pybase64.b64encode(pcm16)
    return b'{"realtimeInput":{"audio":{"mimeType":"audio/pcm;rate=%d","data":"%s"}}}' % (
        int(rate), data)


def text_message(text: str) -> str:
    """``realtimeInput.text``: typed or synthesised input (keypad digits, notices)."""
    return json.dumps({"realtimeInput": {"text": text}}, separators=(",", ":"))


def audio_stream_end() -> str:
    """Tells automatic activity detection that the audio stream paused (flushes a turn)."""
    return '{"realtimeInput":{"audioStreamEnd":true}}'


@dataclass(frozen=True, slots=True)
class FunctionResponse:
    id: str
    name: str
    response: Mapping[str, Any]
    scheduling: str | None = None  # SILENT | WHEN_IDLE | INTERRUPT, NON_BLOCKING tools only


def tool_response(responses: Iterable[FunctionResponse]) -> str:
    """``toolResponse``: results must be JSON-serialisable (checked here, not at the peer)."""
    items: list[dict[str, Any]] = []
    for r in responses:
        item: dict[str, Any] = {"id": r.id, "name": r.name, "response": dict(r.response)}
        if r.scheduling is not None:
            item["scheduling"] = r.scheduling
        items.append(item)
    try:
        return json.dumps({"toolResponse": {"functionResponses": items}},
                          separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"tool response is not JSON-serialisable: {exc}") from exc


# -- server -> client -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SetupComplete:
    session_id: str | None


@dataclass(frozen=True, slots=True)
class ModelAudio:
    pcm: bytes
    rate: int


@dataclass(frozen=True, slots=True)
class ModelText:
    text: str


@dataclass(frozen=True, slots=True)
class Interrupted:
    pass


@dataclass(frozen=True, slots=True)
class GenerationComplete:
    pass


@dataclass(frozen=True, slots=True)
class TurnComplete:
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class InputTranscript:
    text: str
    finished: bool = False


@dataclass(frozen=True, slots=True)
class OutputTranscript:
    text: str
    finished: bool = False


@dataclass(frozen=True, slots=True)
class FunctionCall:
    id: str
    name: str
    args: Mapping[str, Any] = field(hash=False)


@dataclass(frozen=True, slots=True)
class ToolCall:
    calls: tuple[FunctionCall, ...]


@dataclass(frozen=True, slots=True)
class ToolCallCancellation:
    ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GoAway:
    time_left_s: float | None


@dataclass(frozen=True, slots=True)
class ResumptionUpdate:
    handle: str | None
    resumable: bool


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    response_tokens: int
    total_tokens: int
    raw: Mapping[str, Any] = field(hash=False)


@dataclass(frozen=True, slots=True)
class Unknown:
    keys: tuple[str, ...]


LiveEvent = (SetupComplete | ModelAudio | ModelText | Interrupted | GenerationComplete
             | TurnComplete | InputTranscript | OutputTranscript | ToolCall
             | ToolCallCancellation | GoAway | ResumptionUpdate | Usage | Unknown)


def _get(obj: Mapping[str, Any], camel: str, snake: str) -> Any:
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def _section(obj: Mapping[str, Any], camel: str, snake: str,
             path: str = "") -> Mapping[str, Any] | None:
    """A known object-valued field: absent/null gives None, anything but an object raises."""
    value = _get(obj, camel, snake)
    if value is None or isinstance(value, Mapping):
        return value
    raise LiveProtocolError("not an object", field=f"{path}{camel}")


def decode_b64(data: str, where: str) -> bytes:
    """Standard or URL-safe base64 (proto3 JSON parsers accept both)."""
    raw = data.encode("ascii", "replace")
    altchars = b"-_" if b"-" in raw or b"_" in raw else None
    if len(raw) % 4:
        raw += b"=" * (-len(raw) % 4)
    try:
        # Validating: a lenient decoder silently drops non-alphabet bytes, turning garbage
        # into (shorter, wrong) audio instead of an error. pybase64 (SIMD) decodes a reply
        # chunk about 8x faster than binascii, which was a third of the outbound path.
        return pybase64.b64decode(raw, altchars=altchars, validate=True)
    except ValueError as exc:  # binascii.Error is one
        raise LiveProtocolError("not base64", field=where) from exc


def _rate(mime: Any) -> int:
    if isinstance(mime, str):
        m = _RATE_RE.search(mime)
        if m:
            digits = m.group(1)
            # 0 would divide by zero in the resampler; 4300+ digits would make int() raise
            if len(digits) > 6 or int(digits) == 0:
                raise LiveProtocolError(f"bad sample rate in {mime[:60]!r}",
                                        field="serverContent.modelTurn.parts.inlineData.mimeType")
            return int(digits)
    return OUTPUT_RATE


def parse_duration(value: Any) -> float | None:
    """A protobuf Duration in JSON (``"50s"``, ``"1.5s"``) as seconds."""
    # Only the proto3 JSON form; float() alone would also take "nans", "infs" and "1e400s".
    if isinstance(value, str) and _DURATION_RE.fullmatch(value):
        return float(value[:-1])
    if isinstance(value, Mapping):  # {"seconds": 50, "nanos": 0} from some encoders
        try:
            seconds = float(value.get("seconds", 0)) + float(value.get("nanos", 0)) / 1e9
        except (TypeError, ValueError, OverflowError):  # float() of a 400-digit int overflows
            return None
        return seconds if math.isfinite(seconds) else None
    return None


def _server_content(sc: Mapping[str, Any], out: list[LiveEvent]) -> None:
    turn = _section(sc, "modelTurn", "model_turn", "serverContent.")
    if turn is not None:
        parts = turn.get("parts")
        if parts is None:
            parts = []
        if not isinstance(parts, list):  # ``or ()`` above would let {} and "" through
            raise LiveProtocolError("not a list", field="serverContent.modelTurn.parts")
        for part in parts:
            if not isinstance(part, Mapping):
                continue
            inline = _get(part, "inlineData", "inline_data")
            if isinstance(inline, Mapping):
                data = inline.get("data")
                if not isinstance(data, str):
                    raise LiveProtocolError(
                        "missing", field="serverContent.modelTurn.parts.inlineData.data")
                mime = _get(inline, "mimeType", "mime_type")
                if isinstance(mime, str) and not mime.startswith("audio/pcm"):
                    continue  # not audio we can play; ignore rather than garble the call
                rate = _rate(mime)
                pcm = decode_b64(data, "serverContent.modelTurn.parts.inlineData.data")
                if len(pcm) % 2:  # half a sample: the bridge's resampler would raise mid-call
                    raise LiveProtocolError(
                        "PCM16 audio with an odd number of bytes",
                        field="serverContent.modelTurn.parts.inlineData.data")
                out.append(ModelAudio(pcm=pcm, rate=rate))
            elif isinstance(part.get("text"), str) and not part.get("thought"):
                out.append(ModelText(part["text"]))
    for key, snake, cls in (("inputTranscription", "input_transcription", InputTranscript),
                            ("outputTranscription", "output_transcription", OutputTranscript)):
        tr = _section(sc, key, snake, "serverContent.")
        if tr is not None and isinstance(tr.get("text"), str):
            out.append(cls(tr["text"], bool(tr.get("finished", False))))
    if sc.get("interrupted"):
        out.append(Interrupted())
    if _get(sc, "generationComplete", "generation_complete"):
        out.append(GenerationComplete())
    if _get(sc, "turnComplete", "turn_complete"):
        reason = _get(sc, "turnCompleteReason", "turn_complete_reason")
        out.append(TurnComplete(reason if isinstance(reason, str) else None))


def _tool_call(tc: Mapping[str, Any]) -> ToolCall:
    calls_raw = _get(tc, "functionCalls", "function_calls")
    if calls_raw is None:
        calls_raw = []
    if not isinstance(calls_raw, list):
        raise LiveProtocolError("not a list", field="toolCall.functionCalls")
    calls: list[FunctionCall] = []
    for i, c in enumerate(calls_raw):
        if not isinstance(c, Mapping) or not isinstance(c.get("name"), str):
            raise LiveProtocolError("call without a name", field=f"toolCall.functionCalls[{i}]")
        args = c.get("args") or {}
        if not isinstance(args, Mapping):
            raise LiveProtocolError("not an object", field=f"toolCall.functionCalls[{i}].args")
        calls.append(FunctionCall(id=_id(c.get("id")), name=c["name"], args=dict(args)))
    return ToolCall(tuple(calls))


def _id(value: Any) -> str:
    """A call id as text. Ids are strings; numbers are tolerated, anything else is no id (and
    str() of a list nested ~1000 deep can itself hit the recursion limit)."""
    return str(value) if isinstance(value, str | int | float) else ""


def _usage(u: Mapping[str, Any]) -> Usage:
    def count(camel: str, snake: str) -> int:
        v = _get(u, camel, snake)
        if isinstance(v, bool) or not isinstance(v, int | str):
            return 0
        s = str(v)  # int64 counts may arrive as JSON strings; ASCII digits only ("²" is a digit)
        return int(s) if s.isascii() and s.isdigit() and len(s) <= 18 else 0

    response = count("responseTokenCount", "response_token_count") or count(
        "candidatesTokenCount", "candidates_token_count")  # Vertex's name for the same count
    return Usage(prompt_tokens=count("promptTokenCount", "prompt_token_count"),
                 response_tokens=response,
                 total_tokens=count("totalTokenCount", "total_token_count"), raw=dict(u))


_KNOWN: Final = frozenset({
    "setupComplete", "setup_complete", "serverContent", "server_content", "toolCall",
    "tool_call", "toolCallCancellation", "tool_call_cancellation", "goAway", "go_away",
    "sessionResumptionUpdate", "session_resumption_update", "usageMetadata", "usage_metadata",
    "voiceActivity", "voice_activity", "voiceActivityDetectionSignal",
    "voice_activity_detection_signal",
})


def parse_server_message(frame: str | bytes) -> tuple[LiveEvent, ...]:
    """Turn one server frame into events, in the order a client should act on them."""
    try:
        msg = loads(frame)
    except JSONDecodeError as exc:
        raise LiveProtocolError(json_error(exc)) from exc
    if not isinstance(msg, dict):
        raise LiveProtocolError("frame is not a JSON object")
    out: list[LiveEvent] = []
    sc = _section(msg, "setupComplete", "setup_complete")
    if sc is not None:
        sid = _get(sc, "sessionId", "session_id")
        out.append(SetupComplete(sid if isinstance(sid, str) else None))
    content = _section(msg, "serverContent", "server_content")
    if content is not None:
        _server_content(content, out)
    tc = _section(msg, "toolCall", "tool_call")
    if tc is not None:
        out.append(_tool_call(tc))
    cancel = _section(msg, "toolCallCancellation", "tool_call_cancellation")
    if cancel is not None:
        ids = cancel.get("ids") or []
        out.append(ToolCallCancellation(tuple(_id(i) for i in ids)
                                        if isinstance(ids, list) else ()))
    go = _section(msg, "goAway", "go_away")
    if go is not None:
        out.append(GoAway(parse_duration(_get(go, "timeLeft", "time_left"))))
    ru = _section(msg, "sessionResumptionUpdate", "session_resumption_update")
    if ru is not None:
        handle = _get(ru, "newHandle", "new_handle")
        out.append(ResumptionUpdate(handle if isinstance(handle, str) and handle else None,
                                    bool(ru.get("resumable", False))))
    usage = _section(msg, "usageMetadata", "usage_metadata")
    if usage is not None:
        out.append(_usage(usage))
    if not out:
        unknown = tuple(k for k in msg if k not in _KNOWN)
        if unknown:
            out.append(Unknown(unknown))
    return tuple(out)
