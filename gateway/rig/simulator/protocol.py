"""Server side of the Live API (BidiGenerateContent) wire protocol, for the *simulated* server.

This is test and demo tooling: it parses what a Live *client* sends (the mirror image of
:mod:`gateway.live`) and builds what the service sends back. Parsing follows proto3 JSON rules
the way the production service evidently does: camelCase and snake_case spellings of every
field are the same field, base64 may use either alphabet, frames may be text or binary.
Outgoing JSON is encoded for *binary* frames, as production does.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from gateway.errors import ProtocolError
from gateway.jsonio import JSONDecodeError, json_error, loads
from gateway.live import INPUT_RATE, decode_b64

_RATE_RE: Final = re.compile(r"rate=(\d+)")
_CAMEL_HUMP: Final = re.compile(r"(?<!^)(?=[A-Z])")


class ClientProtocolError(ProtocolError):
    """A Live *client* sent something the service would reject (close 1007)."""


@functools.cache  # a handful of field names, looked up for every frame
def snake(name: str) -> str:
    """``"mimeType"`` -> ``"mime_type"``."""
    return _CAMEL_HUMP.sub("_", name).lower()


def get(obj: Mapping[str, Any], camel: str) -> Any:
    """Field ``camel`` of a proto3 JSON object, under either spelling."""
    value = obj.get(camel)
    return obj.get(snake(camel)) if value is None else value


def _obj(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ClientProtocolError("not an object", field=where)
    return value


# -- client -> server events -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Setup:
    raw: Mapping[str, Any] = field(hash=False)
    model: str
    modalities: tuple[str, ...]
    input_transcription: bool
    output_transcription: bool
    resumption: bool  # sessionResumption present: the client wants handles
    handle: str | None  # sessionResumption.handle: resume that session
    auto_vad: bool  # automaticActivityDetection not disabled
    silence_duration_ms: int | None
    interrupts: bool  # activityHandling != NO_INTERRUPTION
    non_blocking: frozenset[str] = frozenset()  # functions declared behavior NON_BLOCKING


@dataclass(frozen=True, slots=True)
class AudioIn:
    pcm: bytes
    rate: int
    mime_type: str


@dataclass(frozen=True, slots=True)
class TextIn:
    text: str


@dataclass(frozen=True, slots=True)
class ActivityStart:
    pass


@dataclass(frozen=True, slots=True)
class ActivityEnd:
    pass


@dataclass(frozen=True, slots=True)
class AudioStreamEnd:
    pass


@dataclass(frozen=True, slots=True)
class ClientContent:
    texts: tuple[str, ...]  # text parts of the user turns
    turn_complete: bool


@dataclass(frozen=True, slots=True)
class ToolResponse:
    responses: tuple[Mapping[str, Any], ...] = field(hash=False)


@dataclass(frozen=True, slots=True)
class Ignored:
    """A message the simulator accepts but does nothing with (video, contextUpdate...)."""

    keys: tuple[str, ...]


ClientEvent = (Setup | AudioIn | TextIn | ActivityStart | ActivityEnd | AudioStreamEnd
               | ClientContent | ToolResponse | Ignored)


def _rate(mime: str) -> int:
    m = _RATE_RE.search(mime)
    return int(m.group(1)) if m else INPUT_RATE


def parse_setup(s: Mapping[str, Any]) -> Setup:
    """A ``setup`` object (the message's value); raises :class:`ClientProtocolError`."""
    model = s.get("model")
    if not isinstance(model, str) or not model:
        raise ClientProtocolError("missing model", field="setup.model")
    gen = _obj(get(s, "generationConfig"), "setup.generationConfig")
    modalities = get(gen, "responseModalities") or ["AUDIO"]
    if not isinstance(modalities, list):
        raise ClientProtocolError("not a list", field="setup.generationConfig.responseModalities")
    resumption = get(s, "sessionResumption")
    res = _obj(resumption, "setup.sessionResumption")
    handle = res.get("handle")
    ric = _obj(get(s, "realtimeInputConfig"), "setup.realtimeInputConfig")
    aad = _obj(get(ric, "automaticActivityDetection"),
               "setup.realtimeInputConfig.automaticActivityDetection")
    silence = get(aad, "silenceDurationMs")
    return Setup(
        raw=s, model=model, modalities=tuple(str(m).upper() for m in modalities),
        input_transcription=get(s, "inputAudioTranscription") is not None,
        output_transcription=get(s, "outputAudioTranscription") is not None,
        resumption=resumption is not None,
        handle=handle if isinstance(handle, str) and handle else None,
        auto_vad=not aad.get("disabled", False),
        silence_duration_ms=int(silence) if isinstance(silence, int | str)
        and str(silence).isdigit() else None,
        interrupts=get(ric, "activityHandling") != "NO_INTERRUPTION",
        non_blocking=_non_blocking(s.get("tools")),
    )


def _non_blocking(tools: Any) -> frozenset[str]:
    """Names of the functions declared ``behavior: NON_BLOCKING`` in ``setup.tools``."""
    if not isinstance(tools, list):
        return frozenset()
    names = set()
    for t in tools:
        decls = get(t, "functionDeclarations") if isinstance(t, Mapping) else None
        for d in decls if isinstance(decls, list) else ():
            if isinstance(d, Mapping) and d.get("behavior") == "NON_BLOCKING" \
                    and isinstance(d.get("name"), str):
                names.add(d["name"])
    return frozenset(names)


def _blob(blob: Any, where: str) -> AudioIn | None:
    b = _obj(blob, where)
    data = b.get("data")
    if not isinstance(data, str):
        raise ClientProtocolError("missing data", field=f"{where}.data")
    mime = get(b, "mimeType")
    mime = mime if isinstance(mime, str) else ""
    if not mime.startswith("audio/"):
        return None  # video frames and the like: accepted, not simulated
    return AudioIn(decode_b64(data, f"{where}.data"), _rate(mime), mime)


def _realtime(ri: Mapping[str, Any], out: list[ClientEvent]) -> None:
    audio = get(ri, "audio")
    if audio is not None:
        a = _blob(audio, "realtimeInput.audio")
        if a is not None:
            out.append(a)
    chunks = get(ri, "mediaChunks")
    if chunks is not None:
        if not isinstance(chunks, list):
            raise ClientProtocolError("not a list", field="realtimeInput.mediaChunks")
        for i, chunk in enumerate(chunks):
            a = _blob(chunk, f"realtimeInput.mediaChunks[{i}]")
            if a is not None:
                out.append(a)
    text = ri.get("text")
    if isinstance(text, str):
        out.append(TextIn(text))
    if get(ri, "activityStart") is not None:
        out.append(ActivityStart())
    if get(ri, "activityEnd") is not None:
        out.append(ActivityEnd())
    if get(ri, "audioStreamEnd"):
        out.append(AudioStreamEnd())
    if not out:
        out.append(Ignored(tuple(ri)))


def _client_content(cc: Mapping[str, Any]) -> ClientContent:
    turns = cc.get("turns") or []
    if not isinstance(turns, list):
        raise ClientProtocolError("not a list", field="clientContent.turns")
    texts: list[str] = []
    for i, turn in enumerate(turns):
        parts = _obj(turn, f"clientContent.turns[{i}]").get("parts") or []
        if not isinstance(parts, list):
            raise ClientProtocolError("not a list", field=f"clientContent.turns[{i}].parts")
        texts.extend(p["text"] for p in parts
                     if isinstance(p, Mapping) and isinstance(p.get("text"), str))
    return ClientContent(tuple(texts), bool(get(cc, "turnComplete")))


def _tool_response(tr: Mapping[str, Any]) -> ToolResponse:
    items = get(tr, "functionResponses") or []
    if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
        raise ClientProtocolError("not a list of objects",
                                  field="toolResponse.functionResponses")
    return ToolResponse(tuple(dict(i) for i in items))


def parse_client_message(frame: str | bytes) -> tuple[ClientEvent, ...]:
    """One client frame (text or binary) -> events; raises :class:`ClientProtocolError`."""
    try:
        msg = loads(frame)
    except JSONDecodeError as exc:
        raise ClientProtocolError(json_error(exc)) from exc
    if not isinstance(msg, dict):
        raise ClientProtocolError("frame is not a JSON object")
    out: list[ClientEvent] = []
    setup = get(msg, "setup")
    if setup is not None:
        out.append(parse_setup(_obj(setup, "setup")))
    ri = get(msg, "realtimeInput")
    if ri is not None:
        _realtime(_obj(ri, "realtimeInput"), out)
    cc = get(msg, "clientContent")
    if cc is not None:
        out.append(_client_content(_obj(cc, "clientContent")))
    tr = get(msg, "toolResponse")
    if tr is not None:
        out.append(_tool_response(_obj(tr, "toolResponse")))
    if not out:
        out.append(Ignored(tuple(msg)))
    return tuple(out)


# -- server -> client messages ------------------------------------------------------------

Message = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``message`` (as a binary frame); ``kind`` names it in records and logs."""

    kind: str
    message: Message = field(hash=False, repr=False)
    # For traces: the session's model turn (1, 2...) an audio/interrupted/turnComplete
    # message belongs to; for audio the turn's reply audio so far, this chunk included, and
    # when the pacing wanted it sent (monotonic; 0: not paced).
    turn: int = 0
    audio_ms: float = 0.0
    due: float = 0.0

    def frame(self) -> bytes:
        return encode(self.message)


@dataclass(frozen=True, slots=True)
class Close:
    """Close the WebSocket with this code and reason."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Drop:
    """Abort the TCP connection without a close frame (the client sees 1006)."""


Action = Send | Close | Drop


def encode(message: Message) -> bytes:
    """JSON for a binary frame, as production sends."""
    return orjson.dumps(message)


def setup_complete() -> Message:
    return {"setupComplete": {}}


def model_audio(b64: str, rate: int) -> Message:
    return {"serverContent": {"modelTurn": {"parts": [
        {"inlineData": {"mimeType": f"audio/pcm;rate={rate}", "data": b64}}]}}}


def model_text(text: str) -> Message:
    return {"serverContent": {"modelTurn": {"parts": [{"text": text}]}}}


def input_transcription(text: str) -> Message:
    return {"serverContent": {"inputTranscription": {"text": text}}}


def output_transcription(text: str) -> Message:
    return {"serverContent": {"outputTranscription": {"text": text}}}


def interrupted() -> Message:
    return {"serverContent": {"interrupted": True}}


def generation_complete() -> Message:
    return {"serverContent": {"generationComplete": True}}


def turn_complete() -> Message:
    return {"serverContent": {"turnComplete": True}}


def tool_call(calls: list[Message]) -> Message:
    return {"toolCall": {"functionCalls": calls}}


def tool_call_cancellation(ids: list[str]) -> Message:
    return {"toolCallCancellation": {"ids": ids}}


def go_away(time_left: str) -> Message:
    return {"goAway": {"timeLeft": time_left}}


def resumption_update(handle: str, resumable: bool) -> Message:
    return {"sessionResumptionUpdate": {"newHandle": handle, "resumable": resumable}}


def usage(prompt_tokens: int, response_tokens: int, modality: str = "AUDIO") -> Message:
    return {"usageMetadata": {
        "promptTokenCount": prompt_tokens,
        "responseTokenCount": response_tokens,
        "totalTokenCount": prompt_tokens + response_tokens,
        "promptTokensDetails": [{"modality": "AUDIO", "tokenCount": prompt_tokens}],
        "responseTokensDetails": [{"modality": modality, "tokenCount": response_tokens}],
    }}
