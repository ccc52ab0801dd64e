"""The sans-I/O Vonage WebSocket core: a recorded-style call, every move of its state machine,
validation, and what it sends back."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from gateway.audio import AudioFormat, Codec
from gateway.carriers.core import (
    Audio,
    BadStart,
    CarrierProtocolError,
    Chunker,
    Cleared,
    Dtmf,
    EventRole,
    OutOfOrder,
    Played,
    Started,
    StreamState,
    UnknownEvent,
    UnsupportedMediaFormat,
)
from gateway.carriers.vonage import CAPABILITIES, FORMAT, VonageStream

FIXTURE = Path(__file__).parent / "fixtures" / "vonage_call.jsonl"
UUID = "63f61863-4a51-4f6b-86e1-46edebcf9356"
CONVERSATION = "CON-f972836a-550f-45fa-956c-12a2ab5b7d22"
FRAME = b"\x01\x02" * 320  # 20 ms at 16 kHz


def recorded() -> list[str | bytes]:
    """The fixture's frames: text frames as str, binary frames as bytes."""
    frames: list[str | bytes] = []
    for line in FIXTURE.read_text().splitlines():
        item = json.loads(line)
        frames.append(item["text"] if "text" in item else base64.b64decode(item["binary"]))
    return frames


def connected(**fields: Any) -> str:
    msg: dict[str, Any] = {"event": "websocket:connected", "content-type": "audio/l16;rate=16000",
                           "uuid": UUID, "conversation_uuid": CONVERSATION,
                           "from": "+447700900123", "to": "+447700900000",
                           "voicegw_token": "tok"}
    msg.update(fields)
    return json.dumps({k: v for k, v in msg.items() if v is not None})


def dtmf(digit: Any = "5", **extra: Any) -> str:
    return json.dumps({"event": "websocket:dtmf", "digit": digit, "duration": 260, **extra})


def notify(payload: Any = None) -> str:
    return json.dumps({"event": "websocket:notify",
                       "payload": {"name": "0:200"} if payload is None else payload})


CLEARED = json.dumps({"event": "websocket:cleared"})


def started(**fields: Any) -> VonageStream:
    stream = VonageStream()
    stream.receive(connected(**fields))
    return stream


# -- a whole call --------------------------------------------------------------------------


def test_a_recorded_call_gives_its_events_in_order() -> None:
    stream = VonageStream()
    events = [e for frame in recorded() for e in stream.receive(frame)]
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["Started", "Audio", "Audio", "Audio", "Dtmf", "Audio", "Played",
                     "Cleared", "Audio", "Dtmf"]
    start = events[0]
    assert isinstance(start, Started)
    assert (start.call_id, start.stream_id, start.control) == (UUID, CONVERSATION, UUID)
    assert (start.caller, start.callee) == ("+447700900123", "+447700900000")
    assert start.inbound == start.outbound == AudioFormat(Codec.L16, 16000)
    # The headers, and only they, are the stream's parameters (the token among them).
    assert set(start.parameters) == {"uuid", "conversation_uuid", "from", "to",
                                     "voicegw_token"}
    assert all(len(e.payload) == 640 for e in events if isinstance(e, Audio))
    assert [e.digit for e in events if isinstance(e, Dtmf)] == ["5", "#"]
    assert events[6] == Played("0:200")
    assert events[7] == Cleared()
    assert stream.state is StreamState.STARTED
    assert stream.call_id == UUID


def test_capabilities() -> None:
    caps = VonageStream().caps
    assert caps == CAPABILITIES
    assert (caps.clear, caps.marks, caps.dtmf, caps.hang_up, caps.transfer) == (True,) * 5
    assert caps.stop_event is False  # the socket's normal close is the hang-up
    assert caps.binary_audio is True
    assert (caps.chunking.multiple, caps.chunking.minimum, caps.chunking.maximum) == (640,) * 3


@pytest.mark.parametrize(("rate", "frame"), [(8000, 320), (16000, 640), (24000, 960)])
def test_the_declared_rate_sets_the_format_and_the_frame_size(rate: int, frame: int) -> None:
    stream = VonageStream()
    [start] = stream.receive(connected(**{"content-type": f"audio/L16; rate={rate}"}))
    assert isinstance(start, Started)
    assert start.inbound == AudioFormat(Codec.L16, rate)
    assert stream.caps.chunking.multiple == stream.caps.chunking.maximum == frame
    # The playout's chunker, with these caps, sends exactly one frame per message.
    chunker = Chunker(stream.caps.chunking, Codec.L16.silence)
    out = chunker.push(b"\x00" * (frame * 2 + 10)) + chunker.flush()
    assert [len(m) for m in out] == [frame, frame, frame]
    assert [stream.play(m) for m in out] == out


# -- the opening ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["audio/l16;rate=44100", "audio/pcmu;rate=8000", "audio/l16",
                                  "audio/l16;rate=16000;x", ""])
def test_an_unsupported_format_is_refused(kind: str) -> None:
    stream = VonageStream()
    with pytest.raises(UnsupportedMediaFormat) as info:
        stream.receive(connected(**{"content-type": kind}))
    assert info.value.field == "content-type"
    assert stream.state is StreamState.NEW


@pytest.mark.parametrize(("fields", "where"), [
    ({"content-type": None}, "content-type"),
    ({"content-type": 16000}, "content-type"),
    ({"uuid": None}, "uuid"),
    ({"uuid": "../../calls"}, "uuid"),
    ({"uuid": "a" * 81}, "uuid"),
    ({"conversation_uuid": "CON/1"}, "conversation_uuid"),
    ({"extra": {"nested": "header"}}, "headers"),
    ({"extra": ["list"]}, "headers"),
])
def test_a_bad_opening_is_a_bad_start(fields: dict[str, Any], where: str) -> None:
    stream = VonageStream()
    with pytest.raises(BadStart) as info:
        stream.receive(connected(**fields))
    assert info.value.field == where
    assert stream.state is StreamState.NEW
    assert stream.call_id is None


def test_scalar_headers_become_text_and_absent_numbers_none() -> None:
    [start] = VonageStream().receive(connected(**{"from": None, "to": "", "n": 7, "b": True}))
    assert isinstance(start, Started)
    assert (start.caller, start.callee) == (None, None)
    assert start.parameters["n"] == "7"
    assert start.stream_id == CONVERSATION


def test_without_a_conversation_the_uuid_names_the_stream() -> None:
    [start] = VonageStream().receive(connected(conversation_uuid=None))
    assert isinstance(start, Started)
    assert start.stream_id == UUID


# -- the state machine ---------------------------------------------------------------------


BEFORE_START: list[str | bytes] = [FRAME, dtmf(), notify(), CLEARED]


@pytest.mark.parametrize("frame", BEFORE_START, ids=["audio", "dtmf", "notify", "cleared"])
def test_nothing_but_connected_opens_a_stream(frame: str | bytes) -> None:
    stream = VonageStream()
    with pytest.raises(OutOfOrder) as info:
        stream.receive(frame)
    assert info.value.state is StreamState.NEW
    assert info.value.role is EventRole.OTHER  # one frame lost, not a reason to hang up
    assert stream.state is StreamState.NEW
    stream.receive(connected())  # the stream can still start
    assert stream.state is StreamState.STARTED


def test_a_second_connected_is_refused_as_a_second_start() -> None:
    stream = started()
    with pytest.raises(OutOfOrder) as info:
        stream.receive(connected(uuid="another-call"))
    assert info.value.role is EventRole.OPENS
    assert stream.call_id == UUID


@pytest.mark.parametrize("state", [StreamState.CONNECTED, StreamState.STOPPED])
def test_states_vonage_never_enters_accept_nothing(state: StreamState) -> None:
    for frame in [connected(), *BEFORE_START]:
        stream = VonageStream()
        stream.state = state
        with pytest.raises(OutOfOrder):
            stream.receive(frame)


@pytest.mark.parametrize("frame", [
    json.dumps({"event": "websocket:media"}), json.dumps({"event": "stop"}),
    json.dumps({"event": ""})])
def test_unknown_events_are_their_own_error_in_any_state(frame: str) -> None:
    for stream in (VonageStream(), started()):
        before = stream.state
        with pytest.raises(UnknownEvent):
            stream.receive(frame)
        assert stream.state is before


@pytest.mark.parametrize("frame", ["", "not json", "[]", '"event"', "{}",
                                   json.dumps({"event": 5}), json.dumps({"event": None}),
                                   "[" * 5000 + "]" * 5000])
def test_text_that_is_no_event_is_refused(frame: str) -> None:
    stream = started()
    with pytest.raises(CarrierProtocolError) as info:
        stream.receive(frame)
    assert not isinstance(info.value, UnknownEvent)
    assert stream.state is StreamState.STARTED


# -- audio, keys, notify, cleared ----------------------------------------------------------


@pytest.mark.parametrize("size", [2, 320, 640, 1280, 16000])
def test_audio_of_whole_samples_within_bounds_is_taken(size: int) -> None:
    assert started().receive(b"\x00" * size) == (Audio(b"\x00" * size),)


@pytest.mark.parametrize(("payload", "why"), [
    (b"", "empty"), (b"\x00" * 641, "whole 16-bit samples"), (b"\x00" * 16002, "larger")])
def test_bad_audio_is_refused(payload: bytes, why: str) -> None:
    stream = started()
    with pytest.raises(CarrierProtocolError, match=why) as info:
        stream.receive(payload)
    assert info.value.field == "audio"
    assert info.value.call_sid == UUID


@pytest.mark.parametrize("digit", list("0123456789*#ABCD"))
def test_every_keypad_digit(digit: str) -> None:
    assert started().receive(dtmf(digit)) == (Dtmf(digit),)


def test_dtmf_without_duration_is_taken() -> None:
    msg = json.dumps({"event": "websocket:dtmf", "digit": "7"})
    assert started().receive(msg) == (Dtmf("7"),)


@pytest.mark.parametrize(("frame", "where"), [
    (dtmf("55"), "digit"), (dtmf("x"), "digit"), (dtmf(5), "digit"), (dtmf(None), "digit"),
    (dtmf("5", duration="long"), "duration"), (dtmf("5", duration=-1), "duration"),
    (json.dumps({"event": "websocket:dtmf", "dtmf": {"digit": "5"}}), "digit"),
])
def test_bad_dtmf_is_refused(frame: str, where: str) -> None:
    with pytest.raises(CarrierProtocolError) as info:
        started().receive(frame)
    assert info.value.field == where


@pytest.mark.parametrize(("payload", "where"), [
    ("0:200", "payload"), ([], "payload"), ({}, "payload.name"), ({"name": 7}, "payload.name"),
])
def test_a_notify_must_carry_our_mark_name(payload: Any, where: str) -> None:
    with pytest.raises(CarrierProtocolError) as info:
        started().receive(notify(payload))
    assert info.value.field == where


def test_a_notify_gives_back_the_mark_and_extra_fields_change_nothing() -> None:
    stream = started()
    assert stream.receive(notify({"name": "call-control", "x": 1})) == (Played("call-control"),)
    extra = json.dumps({"event": "websocket:cleared", "x_new": {"a": 1}})
    assert stream.receive(extra) == (Cleared(),)


# -- what we send --------------------------------------------------------------------------


def test_outbound_messages() -> None:
    stream = started()
    assert stream.play(FRAME) == FRAME
    assert json.loads(stream.mark('turn "1"')) == {"action": "notify",
                                                   "payload": {"name": 'turn "1"'}}
    assert json.loads(stream.clear()) == {"action": "clear"}


def test_nothing_is_sent_before_the_stream_started() -> None:
    stream = VonageStream()
    for send in (lambda: stream.play(FRAME), lambda: stream.mark("m"), stream.clear):
        with pytest.raises(CarrierProtocolError, match="before the stream has started"):
            send()


@pytest.mark.parametrize("size", [0, 320, 638, 642, 1280])
def test_only_whole_frames_are_played(size: int) -> None:
    with pytest.raises(ValueError, match="640 bytes"):
        started().play(b"\x00" * size)


def test_at_8khz_a_frame_is_320_bytes() -> None:
    stream = started(**{"content-type": "audio/l16;rate=8000"})
    assert stream.play(b"\x00" * 320) == b"\x00" * 320
    with pytest.raises(ValueError, match="320 bytes"):
        stream.play(FRAME)


@pytest.mark.parametrize("name", ["", "x" * 257])
def test_mark_names_are_bounded(name: str) -> None:
    with pytest.raises(ValueError, match="mark name"):
        started().mark(name)


def test_the_default_format_is_wideband() -> None:
    assert AudioFormat(Codec.L16, 16000) == FORMAT
    assert VonageStream().caps.chunking.multiple == FORMAT.frame_bytes == 640
