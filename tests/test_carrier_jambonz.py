"""The sans-I/O jambonz ``listen`` core: a whole call, every move of its state machine,
validation, and what it sends back."""

from __future__ import annotations

import json
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
from gateway.carriers.jambonz import CAPABILITIES, FORMAT, METADATA_KEY, JambonzStream

SID = "9f1c2b4e-7d0a-4c3e-8b51-2f6a1d9e0c47"
FRAME = b"\x01\x02" * 320  # 20 ms at 16 kHz


def metadata(**fields: Any) -> str:
    """The first frame as jambonz writes it: the call's attributes (camelCase), the stream's
    format, and the listen verb's metadata merged in."""
    msg: dict[str, Any] = {
        "sampleRate": 16000, "mixType": "mono", "callSid": SID, "direction": "inbound",
        "from": "+15550100", "to": "+15550199", "callId": "abc@10.0.0.1",
        "sipStatus": 200, "callStatus": "in-progress", "accountSid": "acc-1",
        "applicationSid": "app-1", "traceId": "0" * 32,
        METADATA_KEY: {"voicegw_token": "tok", "From": "+15550100", "To": "+15550199"}}
    msg.update(fields)
    return json.dumps({k: v for k, v in msg.items() if v is not None})


def dtmf(digit: Any = "5", **extra: Any) -> str:
    return json.dumps({"event": "dtmf", "dtmf": digit, "duration": 1600, **extra})


def mark(name: Any = "0:200", event: Any = "playout") -> str:
    return json.dumps({"type": "mark", "data": {"name": name, "event": event}})


def started(**fields: Any) -> JambonzStream:
    stream = JambonzStream()
    stream.receive(metadata(**fields))
    return stream


# -- a whole call --------------------------------------------------------------------------


def test_a_call_gives_its_events_in_order() -> None:
    stream = JambonzStream()
    frames: list[str | bytes] = [metadata(), FRAME, FRAME, dtmf("5"), FRAME, mark(),
                                 mark("0:400", "cleared"), FRAME, dtmf("#")]
    events = [e for frame in frames for e in stream.receive(frame)]
    assert [type(e).__name__ for e in events] == [
        "Started", "Audio", "Audio", "Dtmf", "Audio", "Played", "Cleared", "Audio", "Dtmf"]
    start = events[0]
    assert isinstance(start, Started)
    assert (start.call_id, start.stream_id, start.control) == (SID, SID, SID)
    assert (start.caller, start.callee) == ("+15550100", "+15550199")
    assert start.inbound == start.outbound == AudioFormat(Codec.L16, 16000)
    # What the answer document sent along, and only that, is the stream's parameters.
    assert dict(start.parameters) == {"voicegw_token": "tok", "From": "+15550100",
                                      "To": "+15550199"}
    assert [e.digit for e in events if isinstance(e, Dtmf)] == ["5", "#"]
    assert events[5] == Played("0:200")
    assert stream.state is StreamState.STARTED
    assert stream.call_id == SID


def test_capabilities() -> None:
    caps = JambonzStream().caps
    assert caps == CAPABILITIES
    assert (caps.clear, caps.marks, caps.dtmf, caps.hang_up, caps.transfer) == (True,) * 5
    assert caps.stop_event is False  # the socket's close is the hang-up
    assert caps.binary_audio is True
    assert (caps.chunking.multiple, caps.chunking.minimum, caps.chunking.maximum) == (640,) * 3


@pytest.mark.parametrize(("rate", "frame"), [(8000, 320), (16000, 640), (24000, 960)])
def test_the_declared_rate_sets_the_format_and_the_frame_size(rate: int, frame: int) -> None:
    stream = JambonzStream()
    [start] = stream.receive(metadata(sampleRate=rate))
    assert isinstance(start, Started)
    assert start.inbound == AudioFormat(Codec.L16, rate)
    # Every frame fits the 1024-byte pieces jambonz's module reads, so none is split.
    assert stream.caps.chunking.maximum == frame <= 1024
    chunker = Chunker(stream.caps.chunking, Codec.L16.silence)
    out = chunker.push(b"\x00" * (frame * 2 + 10)) + chunker.flush()
    assert [len(m) for m in out] == [frame, frame, frame]
    assert [stream.play(m) for m in out] == out


def test_a_rate_sent_as_text_is_read() -> None:
    [start] = JambonzStream().receive(metadata(sampleRate="8000"))
    assert isinstance(start, Started) and start.inbound.rate == 8000


# -- the opening ---------------------------------------------------------------------------


@pytest.mark.parametrize(("fields", "where"), [
    ({"sampleRate": 44100}, "sampleRate"), ({"sampleRate": 64000}, "sampleRate"),
    ({"mixType": "stereo"}, "mixType"), ({"mixType": "mixed"}, "mixType"),
])
def test_an_unsupported_format_is_refused(fields: dict[str, Any], where: str) -> None:
    stream = JambonzStream()
    with pytest.raises(UnsupportedMediaFormat) as info:
        stream.receive(metadata(**fields))
    assert info.value.field == where
    assert stream.state is StreamState.NEW


@pytest.mark.parametrize(("fields", "where"), [
    ({"sampleRate": None}, "sampleRate"),
    ({"sampleRate": "fast"}, "sampleRate"),
    ({"callSid": None}, "callSid"),
    ({"callSid": 7}, "callSid"),
    ({"callSid": "../../Calls"}, "callSid"),
    ({"callSid": "a" * 81}, "callSid"),
    ({METADATA_KEY: "tok"}, METADATA_KEY),
    ({METADATA_KEY: {"nested": {"x": 1}}}, METADATA_KEY),
    ({METADATA_KEY: {"list": [1]}}, METADATA_KEY),
])
def test_a_bad_opening_is_a_bad_start(fields: dict[str, Any], where: str) -> None:
    stream = JambonzStream()
    with pytest.raises(BadStart) as info:
        stream.receive(metadata(**fields))
    assert info.value.field == where
    assert stream.state is StreamState.NEW
    assert stream.call_id is None


def test_jambonz_fields_are_not_parameters_and_absent_numbers_fall_back() -> None:
    [start] = JambonzStream().receive(metadata(**{"from": None, "to": "", "customerData": {
        "x": {"deep": 1}}, METADATA_KEY: {"n": 7, "b": True, "To": "+15550188"}}))
    assert isinstance(start, Started)
    assert (start.caller, start.callee) == (None, "+15550188")
    assert dict(start.parameters) == {"n": "7", "b": "True", "To": "+15550188"}


def test_without_our_metadata_the_stream_starts_with_no_parameters() -> None:
    [start] = JambonzStream().receive(metadata(**{METADATA_KEY: None}))
    assert isinstance(start, Started)
    assert dict(start.parameters) == {}


def test_whatever_names_the_first_frame_uses_it_is_the_metadata() -> None:
    # An operator's own metadata may be called "type"; jambonz sends nothing else first.
    [start] = JambonzStream().receive(metadata(type="support", event="x"))
    assert isinstance(start, Started)


# -- the state machine ---------------------------------------------------------------------


def test_nothing_but_the_metadata_opens_a_stream() -> None:
    stream = JambonzStream()
    with pytest.raises(OutOfOrder) as info:
        stream.receive(FRAME)
    assert info.value.state is StreamState.NEW
    assert info.value.role is EventRole.OTHER  # one frame lost, not a reason to hang up
    stream.receive(metadata())  # the stream can still start
    assert stream.state is StreamState.STARTED


@pytest.mark.parametrize("frame", [dtmf(), mark()])
def test_an_event_first_is_a_bad_start(frame: str) -> None:
    stream = JambonzStream()
    with pytest.raises(BadStart):
        stream.receive(frame)
    assert stream.state is StreamState.NEW


def test_a_second_metadata_is_refused_as_a_second_start() -> None:
    stream = started()
    with pytest.raises(OutOfOrder) as info:
        stream.receive(metadata(callSid="another-call"))
    assert info.value.role is EventRole.OPENS
    assert stream.call_id == SID


@pytest.mark.parametrize("state", [StreamState.CONNECTED, StreamState.STOPPED])
def test_states_jambonz_never_enters_accept_nothing(state: StreamState) -> None:
    frames: list[str | bytes] = [FRAME, dtmf(), mark(), metadata()]
    for frame in frames:
        stream = JambonzStream()
        stream.state = state
        with pytest.raises(OutOfOrder):
            stream.receive(frame)


@pytest.mark.parametrize("frame", [
    json.dumps({"type": "playDone", "data": {"id": "x"}}), json.dumps({"event": "stop"}),
    json.dumps({"type": ""})])
def test_unknown_events_are_their_own_error(frame: str) -> None:
    stream = started()
    with pytest.raises(UnknownEvent):
        stream.receive(frame)
    assert stream.state is StreamState.STARTED


@pytest.mark.parametrize("frame", ["", "not json", "[]", '"event"',
                                   json.dumps({"type": 5}), json.dumps({"event": None}),
                                   "[" * 5000 + "]" * 5000])
def test_text_that_is_no_event_is_refused(frame: str) -> None:
    stream = started()
    with pytest.raises(CarrierProtocolError) as info:
        stream.receive(frame)
    assert not isinstance(info.value, UnknownEvent)
    assert stream.state is StreamState.STARTED


# -- audio, keys, marks ----------------------------------------------------------------------


@pytest.mark.parametrize("size", [2, 320, 640, 1280, 16000])
def test_audio_of_whole_samples_within_bounds_is_taken(size: int) -> None:
    assert started().receive(b"\x00" * size) == (Audio(b"\x00" * size),)


@pytest.mark.parametrize(("payload", "why"), [
    (b"", "empty"), (b"\x00" * 641, "whole 16-bit samples"), (b"\x00" * 16002, "larger")])
def test_bad_audio_is_refused(payload: bytes, why: str) -> None:
    with pytest.raises(CarrierProtocolError, match=why) as info:
        started().receive(payload)
    assert info.value.field == "audio"
    assert info.value.call_sid == SID


@pytest.mark.parametrize("digit", list("0123456789*#ABCD"))
def test_every_keypad_digit(digit: str) -> None:
    assert started().receive(dtmf(digit)) == (Dtmf(digit),)


def test_dtmf_without_duration_is_taken() -> None:
    assert started().receive(json.dumps({"event": "dtmf", "dtmf": "7"})) == (Dtmf("7"),)


@pytest.mark.parametrize("digit", ["55", "x", 5, None, {"digit": "5"}])
def test_bad_dtmf_is_refused(digit: Any) -> None:
    with pytest.raises(CarrierProtocolError) as info:
        started().receive(dtmf(digit))
    assert info.value.field == "dtmf"


@pytest.mark.parametrize(("frame", "where"), [
    (json.dumps({"type": "mark"}), "data"),
    (json.dumps({"type": "mark", "data": "0:200"}), "data"),
    (mark(name=None), "data.name"), (mark(name=7), "data.name"),
    (mark(event=None), "data.event"), (mark(event="played"), "data.event"),
])
def test_a_mark_must_carry_our_name_and_what_became_of_it(frame: str, where: str) -> None:
    with pytest.raises(CarrierProtocolError) as info:
        started().receive(frame)
    assert info.value.field == where


def test_a_cleared_mark_was_never_heard() -> None:
    stream = started()
    assert stream.receive(mark("call-control", "cleared")) == (Cleared(),)
    extra = json.dumps({"type": "mark", "data": {"name": "m", "event": "playout", "x": 1},
                        "x_new": {"a": 1}})
    assert stream.receive(extra) == (Played("m"),)


# -- what we send --------------------------------------------------------------------------


def test_outbound_messages() -> None:
    stream = started()
    assert stream.play(FRAME) == FRAME
    assert json.loads(stream.mark('turn "1"')) == {"type": "mark", "data": {"name": 'turn "1"'}}
    assert json.loads(stream.clear()) == {"type": "killAudio"}


def test_nothing_is_sent_before_the_stream_started() -> None:
    stream = JambonzStream()
    for send in (lambda: stream.play(FRAME), lambda: stream.mark("m"), stream.clear):
        with pytest.raises(CarrierProtocolError, match="before the stream has started"):
            send()


@pytest.mark.parametrize("size", [0, 320, 638, 642, 1280])
def test_only_whole_frames_are_played(size: int) -> None:
    with pytest.raises(ValueError, match="640 bytes"):
        started().play(b"\x00" * size)


@pytest.mark.parametrize("name", ["", "x" * 257])
def test_mark_names_are_bounded(name: str) -> None:
    with pytest.raises(ValueError, match="mark name"):
        started().mark(name)


def test_the_default_format_is_wideband() -> None:
    assert AudioFormat(Codec.L16, 16000) == FORMAT
    assert JambonzStream().caps.chunking.multiple == FORMAT.frame_bytes == 640
