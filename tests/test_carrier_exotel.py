"""The sans-I/O Exotel Voicebot core: Exotel's documented messages, every legal and illegal
move, and what it sends back.

The fixtures are built from the message shapes in Exotel's AgentStream WebSocket protocol
reference (``connected``/``start``/``media``/``dtmf``/``mark``/``stop``, snake_case, counters
as strings).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from gateway.audio import AudioFormat, Codec
from gateway.carriers.core import (
    TOKEN_PARAMETER,
    Audio,
    BadStart,
    Chunker,
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
from gateway.carriers.exotel import CAPABILITIES, CHUNKING, DEFAULT_RATE, ExotelStream

CALL = "b6cfaf5f5cef3ca0fc937749ef960e25"
STREAM = "MZ18ad3ab5a668481ce02b83e7395059f0"
ACCOUNT = "exotelaccount1"
TOKEN = "1700000000.bm9uY2U.mac-_x"


def connected() -> str:
    return json.dumps({"event": "connected"})


def start_msg(rate: Any = "16000", encoding: Any = "audio/x-raw", bits: Any = "16",
              params: Any = None, **start: Any) -> dict[str, Any]:
    fmt: dict[str, Any] = {"encoding": encoding, "sample_rate": rate, "bit_rate": bits}
    body = {"stream_sid": STREAM, "call_sid": CALL, "account_sid": ACCOUNT,
            "from": "09876543210", "to": "08047491899",
            "custom_parameters": {TOKEN_PARAMETER: TOKEN, "sample-rate": "16000"}
            if params is None else params,
            "media_format": fmt, **start}
    return {"event": "start", "sequence_number": "1", "stream_sid": STREAM, "start": body}


def start(**kw: Any) -> str:
    return json.dumps(start_msg(**kw))


def media(payload: bytes | str = b"\x01\x02" * 1600, *, stream: str = STREAM,
          **extra: Any) -> str:
    b64 = payload if isinstance(payload, str) else base64.b64encode(payload).decode()
    body = {"chunk": "2", "timestamp": "200", "payload": b64, **extra}
    return json.dumps({"event": "media", "sequence_number": "3", "stream_sid": stream,
                       "media": body})


def dtmf(digit: Any = "5") -> str:
    return json.dumps({"event": "dtmf", "sequence_number": "7", "stream_sid": STREAM,
                       "dtmf": {"digit": digit, "duration": "100"}})


def mark(name: Any = "turn-1") -> str:
    return json.dumps({"event": "mark", "sequence_number": "15", "stream_sid": STREAM,
                       "mark": {"name": name}})


def stop() -> str:
    return json.dumps({"event": "stop", "sequence_number": "20", "stream_sid": STREAM,
                       "stop": {"call_sid": CALL, "account_sid": ACCOUNT,
                                "reason": "callended"}})


def started(**kw: Any) -> ExotelStream:
    core = ExotelStream()
    core.receive(connected())
    core.receive(start(**kw))
    return core


# -- start ---------------------------------------------------------------------------------


def test_start_names_the_call_its_numbers_and_the_urls_parameters() -> None:
    core = ExotelStream()
    assert core.receive(connected()) == ()
    assert core.state is StreamState.CONNECTED
    [event] = core.receive(start())
    fmt = AudioFormat(Codec.L16, 16000)
    # The rate the URL asked for is transport, not a parameter of the call.
    assert event == Started(call_id=CALL, stream_id=STREAM, caller="09876543210",
                            callee="08047491899", parameters={TOKEN_PARAMETER: TOKEN},
                            inbound=fmt, outbound=fmt)
    assert (core.state, core.call_id, core.rate) == (StreamState.STARTED, CALL, 16000)


@pytest.mark.parametrize(("rate", "encoding"), [
    ("8000", "audio/x-raw"), (16000, "audio/x-raw"), ("24000", "raw/slin"),
    ("16000", "Audio/L16;rate=16000")])
def test_each_rate_exotel_streams(rate: Any, encoding: str) -> None:
    [event] = ExotelStream().receive(start(rate=rate, encoding=encoding))
    assert isinstance(event, Started)
    assert event.inbound == event.outbound == AudioFormat(Codec.L16, int(rate))


@pytest.mark.parametrize(("rate", "encoding", "bits"), [
    ("44100", "audio/x-raw", "16"), ("8000", "audio/x-mulaw", "8"),
    ("16000", "audio/x-raw", "8"), ("16000", "opus", "16")])
def test_a_format_exotel_does_not_stream_is_refused(rate: str, encoding: str,
                                                    bits: str) -> None:
    core = ExotelStream()
    with pytest.raises(UnsupportedMediaFormat) as info:
        core.receive(start(rate=rate, encoding=encoding, bits=bits))
    assert info.value.field == "start.media_format"
    assert core.state is StreamState.NEW


def test_a_start_without_parameters_or_numbers_still_starts() -> None:
    msg = start_msg(params={})
    del msg["start"]["from"], msg["start"]["to"], msg["start"]["media_format"]["bit_rate"]
    [event] = ExotelStream().receive(json.dumps(msg))
    assert isinstance(event, Started)
    assert (event.caller, event.callee, event.parameters) == (None, None, {})


@pytest.mark.parametrize(("path", "value"), [
    (("start",), None), (("start", "call_sid"), None), (("start", "call_sid"), "x"),
    (("start", "call_sid"), 'a"b' * 3), (("start", "stream_sid"), "../../x"),
    (("stream_sid",), "MZ-another-stream"), (("start", "from"), 7),
    (("start", "custom_parameters"), {"a": {"b": "c"}}), (("start", "media_format"), "raw"),
    (("start", "media_format", "sample_rate"), 1.5),
    (("start", "media_format", "encoding"), None)])
def test_a_broken_start_is_a_bad_start(path: tuple[str, ...], value: Any) -> None:
    msg = start_msg()
    node = msg
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    core = ExotelStream()
    with pytest.raises(BadStart):
        core.receive(json.dumps(msg))
    assert core.state is StreamState.NEW


# -- after start ---------------------------------------------------------------------------


def test_media_dtmf_marks_and_stop_become_neutral_events() -> None:
    core = started()
    assert core.receive(media()) == (Audio(b"\x01\x02" * 1600),)
    assert core.receive(dtmf("#")) == (Dtmf("#"),)
    assert core.receive(mark("turn-1")) == (Played("turn-1"),)
    assert core.receive(stop()) == (Stopped(),)
    assert core.state is StreamState.STOPPED


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
        core.receive(media(stream="MZanother"))
    assert info.value.field == "stream_sid"
    with pytest.raises(Refused) as info:
        core.receive(media().replace('"sequence_number": "3"', '"sequence_number": "x"'))
    assert info.value.field == "sequence_number"
    assert core.state is StreamState.STARTED


@pytest.mark.parametrize("digit", ["55", "", "x", 5, None])
def test_a_digit_off_the_keypad_is_refused(digit: Any) -> None:
    with pytest.raises(Refused):
        started().receive(dtmf(digit))


def test_moves_the_state_does_not_allow() -> None:
    core = ExotelStream()
    with pytest.raises(OutOfOrder) as info:
        core.receive(media())
    assert info.value.state is StreamState.NEW
    core = started()
    with pytest.raises(OutOfOrder) as info:
        core.receive(start())
    assert info.value.role is EventRole.OPENS
    core.receive(stop())
    with pytest.raises(OutOfOrder) as info:
        core.receive(stop())
    assert info.value.role is EventRole.ENDS


def test_unknown_events_and_binary_frames() -> None:
    core = started()
    with pytest.raises(UnknownEvent):
        core.receive(json.dumps({"event": "transcript", "stream_sid": STREAM}))
    with pytest.raises(WrongFrameType):
        core.receive(b"\x00\x01")
    with pytest.raises(Refused):
        core.receive("[1, 2]")
    assert core.state is StreamState.STARTED


# -- what we send --------------------------------------------------------------------------


def test_play_mark_and_clear_are_exotels_messages() -> None:
    core = started()
    audio = b"\x10\x00" * 1600
    msg = json.loads(core.play(audio))
    assert msg == {"event": "media", "stream_sid": STREAM,
                   "media": {"payload": base64.b64encode(audio).decode()}}
    assert json.loads(core.mark("m1")) == {"event": "mark", "stream_sid": STREAM,
                                          "mark": {"name": "m1"}}
    assert json.loads(core.clear()) == {"event": "clear", "stream_sid": STREAM}
    with pytest.raises(ValueError, match="mark name"):
        core.mark("")


def test_nothing_is_sent_before_the_start() -> None:
    with pytest.raises(Refused):
        ExotelStream().play(b"\x00\x00")
    with pytest.raises(Refused):
        ExotelStream().clear()


def test_capabilities_say_no_rest_hang_up_and_no_transfer() -> None:
    assert (CAPABILITIES.clear, CAPABILITIES.marks, CAPABILITIES.dtmf) == (True, True, True)
    assert (CAPABILITIES.hang_up, CAPABILITIES.transfer) == (False, False)
    assert DEFAULT_RATE == 16000


@pytest.mark.parametrize("rate", [8000, 16000, 24000])
def test_the_chunker_cuts_what_exotel_plays_and_holds_back_one_message_at_most(
        rate: int) -> None:
    chunker = Chunker(CHUNKING, b"\x00\x00")
    out: list[bytes] = []
    for _ in range(50):  # 50 x 20 ms of reply audio, as the model's come
        out += chunker.push(b"\x01\x00" * (rate // 50))
        assert chunker.pending < CHUNKING.minimum  # never more than one message held
    out += chunker.flush()
    assert all(3200 <= len(m) <= 100_000 and len(m) % 320 == 0 for m in out)
    assert sum(len(m) for m in out) >= rate * 2  # the whole second, padded at most
    # The most it holds back, as audio: 3200 bytes of 16-bit PCM.
    assert {8000: 200.0, 16000: 100.0, 24000: 3200 / 48}[rate] == \
        AudioFormat(Codec.L16, rate).ms(CHUNKING.minimum)
