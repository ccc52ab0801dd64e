"""The sans-I/O core of Asterisk's WebSocket channel driver: both control dialects, every move
of its state machine, validation, and what it sends back in the stream's own dialect."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.audio import AudioFormat, Codec
from gateway.carriers.asterisk import FORMATS, AsteriskStream, Dialect, parse_plain
from gateway.carriers.core import (
    Audio,
    BadStart,
    CarrierProtocolError,
    Chunker,
    Dtmf,
    EventRole,
    HangsUpInBand,
    OutOfOrder,
    Paused,
    Played,
    Resumed,
    Started,
    StreamState,
    UnknownEvent,
    UnsupportedMediaFormat,
)

CHANNEL_ID = "pbx1-1712345678.42"
CHANNEL = "WebSocket/media_connection1/0x7f1c2c0012a0"
PLAIN_START = (f"MEDIA_START connection_id:media_connection1 channel:{CHANNEL} "
               f"channel_id:{CHANNEL_ID} format:ulaw optimal_frame_size:160 ptime:20")
OLDEST_START = (f"MEDIA_START connection_id:e226e283-c90a-4ea9-9e37-389000b9ef47 "
                f"channel:{CHANNEL} format:ulaw optimal_frame_size:160")


def json_start(**over: Any) -> str:
    msg = {"event": "MEDIA_START", "connection_id": "media_connection1", "channel": CHANNEL,
           "channel_id": CHANNEL_ID, "format": "slin16", "optimal_frame_size": 640,
           "ptime": 20, "channel_variables": {
               "MEDIA_WEBSOCKET_OPTIMAL_FRAME_SIZE": "640",
               "MEDIA_WEBSOCKET_CONNECTION_ID": "media_connection1", "agent": "desk"}}
    msg.update(over)
    return json.dumps({k: v for k, v in msg.items() if v is not None})


def started(start: str = PLAIN_START, **kw: Any) -> AsteriskStream:
    stream = AsteriskStream(**kw)
    stream.receive(start)
    return stream


def test_a_plain_text_call_names_its_channel_and_takes_the_dial_strings_parameters() -> None:
    stream = AsteriskStream(query={"From": "+15550100", "To": "+15550199", "agent": "desk"})
    [start] = stream.receive(PLAIN_START)
    assert isinstance(start, Started)
    assert (start.call_id, start.stream_id) == (CHANNEL_ID, CHANNEL)
    assert (start.caller, start.callee) == ("+15550100", "+15550199")
    assert start.parameters == {"From": "+15550100", "To": "+15550199", "agent": "desk"}
    assert start.inbound == start.outbound == AudioFormat(Codec.PCMU, 8000)
    assert stream.dialect is Dialect.PLAIN and stream.call_id == CHANNEL_ID
    assert stream.receive(b"\xff" * 160) == (Audio(b"\xff" * 160),)
    assert stream.receive(f"DTMF_END digit:# channel_id:{CHANNEL_ID}") == (Dtmf("#"),)
    assert stream.receive("MEDIA_MARK_PROCESSED 0:200") == (Played("0:200"),)
    assert stream.receive("MEDIA_XOFF") == (Paused(),)
    assert stream.receive("MEDIA_XON") == (Resumed(),)
    for notice in ("QUEUE_DRAINED", "MEDIA_BUFFERING_COMPLETED", "MEDIA_BUFFERING_COMPLETED x1",
                   f"STATUS channel_id:{CHANNEL_ID} queue_length:43 xon_level:800 "
                   "xoff_level:900 queue_full:false bulk_media:true media_paused:false",
                   f"ERROR channel_id:{CHANNEL_ID} error_text:Unable to parse: a thing"):
        assert stream.receive(notice) == ()
    assert stream.state is StreamState.STARTED


def test_the_oldest_releases_start_names_the_channel_by_its_name() -> None:
    [start] = AsteriskStream().receive(OLDEST_START)
    assert isinstance(start, Started)
    assert start.call_id == start.stream_id == CHANNEL


def test_a_json_call_carries_the_channels_variables_and_the_query_wins() -> None:
    stream = AsteriskStream(query={"agent": "sales"})
    [start] = stream.receive(json_start(channel_variables={"agent": "desk", "LANG": "en",
                                                           "MEDIA_WEBSOCKET_CONNECTION_ID": "c"}))
    assert isinstance(start, Started)
    assert start.call_id == CHANNEL_ID
    assert start.parameters == {"agent": "sales", "LANG": "en"}  # the driver's own are not
    assert start.inbound == AudioFormat(Codec.L16, 16000)
    assert stream.dialect is Dialect.JSON
    assert stream.receive(json.dumps({"event": "DTMF_END", "channel_id": CHANNEL_ID,
                                      "digit": "7"})) == (Dtmf("7"),)
    assert stream.receive(json.dumps({"event": "MEDIA_MARK_PROCESSED", "channel_id": CHANNEL_ID,
                                      "correlation_id": "1:end"})) == (Played("1:end"),)
    xoff = json.dumps({"event": "MEDIA_XOFF", "channel_id": CHANNEL_ID})
    assert stream.receive(xoff) == (Paused(),)
    assert stream.receive(json.dumps({"event": "STATUS", "channel_id": CHANNEL_ID,
                                      "queue_full": True})) == ()


@pytest.mark.parametrize(("name", "fmt", "frame"), [
    ("ulaw", AudioFormat(Codec.PCMU, 8000), 160), ("alaw", AudioFormat(Codec.PCMA, 8000), 160),
    ("slin", AudioFormat(Codec.L16, 8000), 320), ("slin16", AudioFormat(Codec.L16, 16000), 640),
    ("slin24", AudioFormat(Codec.L16, 24000), 960)])
def test_each_format_and_its_frame(name: str, fmt: AudioFormat, frame: int) -> None:
    stream = AsteriskStream()
    [start] = stream.receive(json_start(format=name, optimal_frame_size=frame))
    assert isinstance(start, Started) and start.inbound == fmt == FORMATS[name]
    chunking = stream.caps.chunking
    assert (chunking.multiple, chunking.minimum) == (frame, frame)
    assert chunking.maximum % frame == 0


@pytest.mark.parametrize("start", [
    json_start(format="opus", optimal_frame_size=0), json_start(format="g722"),
    PLAIN_START.replace("ulaw", "gsm")])
def test_a_codec_the_gateway_does_not_take_is_refused(start: str) -> None:
    stream = AsteriskStream()
    with pytest.raises(UnsupportedMediaFormat):
        stream.receive(start)
    assert stream.state is StreamState.NEW


@pytest.mark.parametrize("start", [
    json_start(optimal_frame_size=160),  # not 20 ms of slin16
    json_start(optimal_frame_size="big"), json_start(optimal_frame_size=None),
    json_start(ptime=0), json_start(channel=None, channel_id=None),
    json_start(channel_id="has space"), json_start(channel_id="x" * 200),
    json_start(channel_variables={"nested": {"a": 1}}), json_start(channel_variables=[1]),
    PLAIN_START.replace("channel:", "channel"),
])
def test_a_broken_start_is_a_bad_start(start: str) -> None:
    stream = AsteriskStream()
    with pytest.raises(BadStart):
        stream.receive(start)
    assert stream.state is StreamState.NEW and stream.call_id is None


def test_too_many_uri_parameters_are_a_bad_start() -> None:
    with pytest.raises(BadStart):
        AsteriskStream(query={f"p{i}": "v" for i in range(40)}).receive(PLAIN_START)


def test_nothing_but_the_start_opens_a_stream() -> None:
    for frame in (b"\xff" * 160, "DTMF_END digit:1", "MEDIA_XOFF", "MEDIA_MARK_PROCESSED a"):
        stream = AsteriskStream()
        with pytest.raises(OutOfOrder):
            stream.receive(frame)
    stream = started()
    with pytest.raises(OutOfOrder) as info:
        stream.receive(PLAIN_START)
    assert info.value.role is EventRole.OPENS


def test_unknown_events_are_tolerated_and_leave_the_stream_as_it_was() -> None:
    stream = started()
    with pytest.raises(UnknownEvent):
        stream.receive("MEDIA_SOMETHING_NEW key:value")
    with pytest.raises(UnknownEvent):
        started(json_start()).receive('{"event":"SOMETHING_NEW"}')
    assert stream.state is StreamState.STARTED


@pytest.mark.parametrize("frame", [
    "", "   ", "garbage", "dtmf_end digit:1", "DTMF_END digit:55", "DTMF_END digit:x",
    "DTMF_END", "MEDIA_MARK_PROCESSED",
    '{"event":"MEDIA_XOFF"}',  # JSON on a plain-text stream
    "DTMF_END digit:1 channel_id:other-channel",  # another channel's message
    b"", b"\x00" * 20000,
])
def test_broken_frames_are_protocol_errors(frame: str | bytes) -> None:
    stream = started()
    with pytest.raises(CarrierProtocolError):
        stream.receive(frame)
    assert stream.state is StreamState.STARTED


def test_odd_bytes_of_linear_audio_are_refused() -> None:
    stream = started(json_start())
    with pytest.raises(CarrierProtocolError):
        stream.receive(b"\x00" * 641)
    with pytest.raises(CarrierProtocolError):
        stream.receive("MEDIA_XOFF")  # plain text on a JSON stream
    with pytest.raises(CarrierProtocolError):
        stream.receive('{"event":"DTMF_END","channel_id":"another","digit":"1"}')


def test_what_the_gateway_sends_is_in_the_streams_dialect() -> None:
    plain, js = started(), started(json_start())
    assert isinstance(plain, HangsUpInBand)
    assert (plain.mark("0:200"), plain.clear(), plain.hang_up()) == (
        "MARK_MEDIA 0:200", "FLUSH_MEDIA", "HANGUP")
    assert json.loads(js.mark("0:200")) == {"command": "MARK_MEDIA", "correlation_id": "0:200"}
    assert json.loads(js.clear()) == {"command": "FLUSH_MEDIA"}
    assert json.loads(js.hang_up()) == {"command": "HANGUP"}
    assert plain.play(b"\xff" * 320) == b"\xff" * 320
    for bad in (b"", b"\xff" * 100, b"\xff" * 170):
        with pytest.raises(ValueError, match="whole number"):
            plain.play(bad)
    for name in ("", "has space", "x" * 65, 'quo"te', "back\\slash"):
        with pytest.raises(ValueError, match="mark name"):
            plain.mark(name)
    # Asterisk ignores a control message over 128 bytes.
    assert len(js.mark("m" * 64).encode()) <= 128


def test_nothing_is_sent_before_the_start() -> None:
    stream = AsteriskStream()
    for send in (stream.clear, stream.hang_up, lambda: stream.mark("a"),
                 lambda: stream.play(b"\xff" * 160)):
        with pytest.raises(CarrierProtocolError):
            send()


def test_the_chunker_cuts_replies_into_whole_frames() -> None:
    stream = started()
    chunker = Chunker(stream.caps.chunking, b"\xff")
    out = chunker.push(b"\x01" * 1000) + chunker.flush()
    assert all(len(c) % 160 == 0 and 0 < len(c) <= 4000 for c in out)
    assert sum(len(c) for c in out) == 1120  # the tail padded to a whole frame


def test_marks_can_be_left_to_the_gateways_clock() -> None:
    assert started(marks=False).caps.marks is False
    caps = started().caps
    assert (caps.clear, caps.marks, caps.dtmf, caps.transfer, caps.stop_event) == (
        True, True, True, False, False)


def test_plain_messages_split_into_words() -> None:
    assert parse_plain("MEDIA_MARK_PROCESSED  a:b ", None) == (
        "MEDIA_MARK_PROCESSED", {"correlation_id": "a:b"})
    assert parse_plain("MEDIA_XON", None) == ("MEDIA_XON", {})
