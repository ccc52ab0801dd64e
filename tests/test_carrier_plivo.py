"""The sans-I/O Plivo audio-stream core: Plivo's documented messages, every legal and illegal
move, and what it sends back.

The fixtures are built from the message shapes in Plivo's Audio Streaming Protocol Reference
(``start``/``media``/``dtmf``/``playedStream``/``clearedAudio``) and its stream SDKs.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest

from gateway.audio import AudioFormat, Codec
from gateway.carriers.core import (
    TOKEN_PARAMETER,
    Audio,
    BadStart,
    Chunking,
    Cleared,
    Dtmf,
    EventRole,
    OutOfOrder,
    Played,
    Started,
    Stopped,
    StreamState,
    UnknownEvent,
    UnsupportedMediaFormat,
    WrongFrameType,
)
from gateway.carriers.core import CarrierProtocolError as Refused
from gateway.carriers.plivo import (
    MAX_PLAY_BYTES,
    ContentType,
    PlivoStream,
    decode_parameters,
    encode_parameters,
)

CALL = "12345678-1234-1234-1234-123456789abc"
STREAM = "87654321-4321-4321-4321-cba987654321"
ACCOUNT = "MAXXXXXXXXXXXXXXXXXX"
PARAMS = {TOKEN_PARAMETER: "1700000000.bm9uY2U.mac-_x", "From": "+15550100", "To": "15550199"}
EXTRA = encode_parameters(PARAMS)


def start_msg(encoding: str = "audio/x-l16", rate: Any = 16000,
              extra: Any = EXTRA, **start: Any) -> dict[str, Any]:
    body = {"callId": CALL, "streamId": STREAM, "accountId": ACCOUNT, "tracks": ["inbound"],
            "mediaFormat": {"encoding": encoding, "sampleRate": rate}, **start}
    return {"event": "start", "sequenceNumber": 1, "start": body, "extra_headers": extra}


def start(**kw: Any) -> str:
    return json.dumps(start_msg(**kw))


def media(payload: bytes | str = b"\x00\x01" * 320, *, track: str = "inbound",
          stream: str = STREAM, **extra: Any) -> str:
    b64 = payload if isinstance(payload, str) else base64.b64encode(payload).decode()
    body = {"track": track, "timestamp": "1705312200000", "chunk": 41, "payload": b64, **extra}
    return json.dumps({"event": "media", "sequenceNumber": 42, "streamId": stream,
                       "media": body, "extra_headers": "userId=12345;sessionId=abc-xyz"})


def dtmf(digit: Any = "5") -> str:
    return json.dumps({"event": "dtmf", "sequenceNumber": 50, "streamId": STREAM,
                       "dtmf": {"track": "inbound", "digit": digit,
                                "timestamp": "1705312250000"}})


def played(name: Any = "greeting-complete", event: str = "playedStream") -> str:
    return json.dumps({"event": event, "sequenceNumber": 75, "streamId": STREAM, "name": name})


def cleared() -> str:
    return json.dumps({"event": "clearedAudio", "sequenceNumber": 80, "streamId": STREAM})


def stop() -> str:
    return json.dumps({"event": "stop", "sequenceNumber": 81, "streamId": STREAM,
                       "reason": "call ended"})


def started(**kw: Any) -> PlivoStream:
    core = PlivoStream()
    core.receive(start(**kw))
    return core


# -- start ---------------------------------------------------------------------------------


def test_start_names_the_call_and_carries_the_answers_parameters() -> None:
    core = PlivoStream()
    [event] = core.receive(start())
    assert event == Started(call_id=CALL, stream_id=STREAM, caller="+15550100",
                            callee="15550199", parameters=PARAMS,
                            inbound=AudioFormat(Codec.L16, 16000),
                            outbound=AudioFormat(Codec.L16, 16000))
    assert event.control == CALL
    assert (core.state, core.call_id, core.stream_id) == (StreamState.STARTED, CALL, STREAM)


@pytest.mark.parametrize(("encoding", "rate", "fmt"), [
    ("audio/x-mulaw", 8000, AudioFormat(Codec.PCMU, 8000)),  # the documented example
    ("audio/x-l16", 8000, AudioFormat(Codec.L16, 8000)),
    ("audio/x-l16", "16000", AudioFormat(Codec.L16, 16000)),
    ("Audio/X-L16;rate=16000", 16000, AudioFormat(Codec.L16, 16000)),
])
def test_each_content_type_plivo_streams(encoding: str, rate: Any, fmt: AudioFormat) -> None:
    core = PlivoStream(content=ContentType.MULAW_8K)
    [event] = core.receive(start(encoding=encoding, rate=rate))
    assert isinstance(event, Started)
    assert event.inbound == event.outbound == fmt
    sample = fmt.codec.sample_bytes
    assert core.caps.chunking == Chunking(multiple=sample, minimum=sample,
                                          maximum=MAX_PLAY_BYTES)


@pytest.mark.parametrize(("encoding", "rate"), [
    ("audio/x-mulaw", 16000), ("audio/x-alaw", 8000), ("audio/x-l16", 24000), ("opus", 48000)])
def test_a_format_plivo_does_not_stream_is_refused(encoding: str, rate: int) -> None:
    core = PlivoStream()
    with pytest.raises(UnsupportedMediaFormat) as info:
        core.receive(start(encoding=encoding, rate=rate))
    assert info.value.field == "start.mediaFormat"
    assert core.state is StreamState.NEW


@pytest.mark.parametrize("extra", [
    "userId=12345;sessionId=abc-xyz",  # the documented example: not ours
    "", None, {}, '{"userId": "1"}'])
def test_extra_headers_without_ours_carry_no_parameters(extra: Any) -> None:
    [event] = PlivoStream().receive(start(extra=extra))
    assert isinstance(event, Started)
    assert (event.parameters, event.caller, event.callee) == ({}, None, None)


@pytest.mark.parametrize("extra", [
    encode_parameters(PARAMS),
    f"userId=12345;{encode_parameters(PARAMS)},sessionId=abc",  # either separator
    f" {encode_parameters(PARAMS).upper().replace('VOICEGW', 'VoiceGW')} ",  # case
    json.dumps({"voicegw": encode_parameters(PARAMS).partition("=")[2]}),  # a JSON string
    {"voicegw": encode_parameters(PARAMS).partition("=")[2], "x": "1"},  # an object
])
def test_our_parameters_are_read_however_plivo_echoes_them(extra: Any) -> None:
    [event] = PlivoStream().receive(start(extra=extra))
    assert isinstance(event, Started)
    assert event.parameters == PARAMS


@pytest.mark.parametrize("extra", [
    "voicegw=zz", "voicegw=abc", "voicegw=ff", "voicegw=" + b"a=1&&b".hex(),
    "voicegw=" + "aa" * 3000, 42, ["voicegw=00"], {"voicegw": {"a": "b"}}, "{not json",
    "voicegw=" + "&".join(f"k{i}=v" for i in range(40)).encode().hex()])
def test_parameters_that_are_not_ours_end_the_stream(extra: Any) -> None:
    core = PlivoStream()
    with pytest.raises(BadStart) as info:
        core.receive(start(extra=extra))
    assert info.value.field == "extra_headers"
    assert core.state is StreamState.NEW


def test_parameters_round_trip_through_extra_headers() -> None:
    odd = {"k y": "v=1&2", "ünï": "☎", TOKEN_PARAMETER: ""}
    encoded = encode_parameters(odd)
    assert encoded.startswith("voicegw=") and encoded[8:].isalnum()
    assert decode_parameters(encoded) == odd


@pytest.mark.parametrize(("path", "value"), [
    (("start",), None), (("start", "callId"), None), (("start", "callId"), "x"),
    (("start", "callId"), 'a"b' * 3), (("start", "streamId"), "../../x"),
    (("start", "accountId"), 7), (("start", "tracks"), "inbound"),
    (("start", "mediaFormat"), "audio/x-l16"), (("start", "mediaFormat", "sampleRate"), 1.5),
    (("start", "mediaFormat", "encoding"), None)])
def test_a_broken_start_is_a_bad_start(path: tuple[str, ...], value: Any) -> None:
    msg = start_msg()
    node = msg
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    core = PlivoStream()
    with pytest.raises(BadStart):
        core.receive(json.dumps(msg))
    assert core.state is StreamState.NEW


# -- after start ---------------------------------------------------------------------------


def test_media_dtmf_checkpoints_and_clears_become_neutral_events() -> None:
    core = started()
    assert core.receive(media(b"\x01\x02" * 320)) == (Audio(b"\x01\x02" * 320),)
    assert core.receive(dtmf("#")) == (Dtmf("#"),)
    assert core.receive(played("0:200")) == (Played("0:200"),)
    assert core.receive(played("0:end", event="played")) == (Played("0:end"),)
    assert core.receive(cleared()) == (Cleared(),)
    assert core.receive(stop()) == (Stopped(),)
    assert core.state is StreamState.STOPPED


def test_the_other_track_is_not_the_callers_audio() -> None:
    assert started().receive(media(track="outbound")) == ()


def test_media_fields_are_checked() -> None:
    core = started()
    with pytest.raises(Refused, match="16-bit samples"):
        core.receive(media(b"\x00" * 3))
    with pytest.raises(Refused, match="larger than"):
        core.receive(media(b"\x00" * 32_002))
    with pytest.raises(Refused, match="not base64"):
        core.receive(media("!!!!"))
    with pytest.raises(Refused) as info:
        core.receive(media(chunk="x"))
    assert info.value.field == "media.chunk"
    with pytest.raises(Refused) as info:
        core.receive(media(stream="another-stream"))
    assert info.value.field == "streamId"
    # mu-law takes any number of bytes.
    mulaw = started(encoding="audio/x-mulaw", rate=8000)
    assert mulaw.receive(media(b"\xff" * 161)) == (Audio(b"\xff" * 161),)


@pytest.mark.parametrize("frame", [dtmf("E"), dtmf(5), dtmf(""), played(None), played(3),
                                   json.dumps({"event": "dtmf", "streamId": STREAM})])
def test_malformed_events_are_refused_and_the_call_goes_on(frame: str) -> None:
    core = started()
    with pytest.raises(Refused):
        core.receive(frame)
    assert core.state is StreamState.STARTED
    assert core.receive(dtmf("1")) == (Dtmf("1"),)


# -- the state table -----------------------------------------------------------------------

FRAMES = {"start": start, "media": media, "dtmf": dtmf, "playedStream": played,
          "clearedAudio": cleared, "stop": stop}
LEGAL = {
    StreamState.NEW: {"start"},
    StreamState.STARTED: {"media", "dtmf", "playedStream", "clearedAudio", "stop"},
    StreamState.STOPPED: set(),
}


def in_state(state: StreamState) -> PlivoStream:
    core = PlivoStream()
    if state is not StreamState.NEW:
        core.receive(start())
    if state is StreamState.STOPPED:
        core.receive(stop())
    assert core.state is state
    return core


@pytest.mark.parametrize("state", list(LEGAL))
@pytest.mark.parametrize("event", list(FRAMES))
def test_every_move(state: StreamState, event: str) -> None:
    core = in_state(state)
    if event in LEGAL[state]:
        assert core.receive(FRAMES[event]())
        return
    with pytest.raises(OutOfOrder) as info:
        core.receive(FRAMES[event]())
    expected = {"start": EventRole.OPENS, "stop": EventRole.ENDS}.get(event, EventRole.OTHER)
    assert (info.value.event, info.value.state, info.value.role) == (event, state, expected)
    assert core.state is state


@pytest.mark.parametrize(("frame", "error"), [
    (b'{"event":"start"}', WrongFrameType), ("[]", Refused), ("not json", Refused),
    ('{"event":7}', Refused), ('{"event":"connected"}', UnknownEvent),
    ('{"event":"mark","mark":{"name":"x"}}', UnknownEvent)])
def test_frames_that_are_not_plivos(frame: str | bytes, error: type[Exception]) -> None:
    for core in (PlivoStream(), started()):
        state = core.state
        with pytest.raises(error):
            core.receive(frame)
        assert core.state is state


# -- outbound ------------------------------------------------------------------------------


def test_play_checkpoint_and_clear_are_plivos_messages() -> None:
    core = started()
    assert json.loads(core.play(b"\x01\x00\x02\x00")) == {
        "event": "playAudio", "media": {"contentType": "audio/x-l16", "sampleRate": 16000,
                                        "payload": base64.b64encode(b"\x01\x00\x02\x00").decode()}}
    assert json.loads(core.mark('1:"quoted"')) == {
        "event": "checkpoint", "streamId": STREAM, "name": '1:"quoted"'}
    assert json.loads(core.clear()) == {"event": "clearAudio", "streamId": STREAM}
    mulaw = started(encoding="audio/x-mulaw", rate=8000)
    assert json.loads(mulaw.play(b"\xff"))["media"] == {
        "contentType": "audio/x-mulaw", "sampleRate": 8000, "payload": "/w=="}


def test_nothing_goes_out_before_start_and_checkpoint_names_are_bounded() -> None:
    core = PlivoStream()
    sends: list[Callable[[], str]] = [lambda: core.play(b"\x00\x00"), lambda: core.mark("m"),
                                      core.clear]
    for send in sends:
        with pytest.raises(Refused, match="before the stream has started"):
            send()
    core.receive(start())
    for name in ("", "x" * 257):
        with pytest.raises(ValueError, match=r"1\.\.256"):
            core.mark(name)


def test_capabilities() -> None:
    caps = PlivoStream().caps
    assert (caps.clear, caps.marks, caps.dtmf, caps.hang_up, caps.transfer) == (True,) * 5
    assert not caps.stop_event  # Plivo closes the socket; the protocol has no end message
    assert not caps.binary_audio
