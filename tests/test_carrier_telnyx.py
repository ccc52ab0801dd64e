"""The sans-I/O Telnyx media-stream core: documented message shapes, the state machine, the
reorder window, validation, and the messages it builds."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from gateway.audio import AudioFormat, Codec
from gateway.carriers.core import (
    Audio,
    BadStart,
    CarrierProtocolError,
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
from gateway.carriers.telnyx import (
    CAPABILITIES,
    DEFAULT_FORMAT,
    FORMATS,
    REORDER_WINDOW,
    ReportedError,
    TelnyxStream,
    capabilities,
    texml_codec,
)

CONTROL = "v3:9X2vxPDFY2RHSJ1EdMS0RHRksMTg7ldNxdjWbVr9zBjbGjGsSe-aiQ"
STREAM = "32DE0DEA-53CB-4B21-89A4-9E1819C043BC"
USER = "3E6F995F-85F7-4705-9741-53B116D28237"
L16_20MS = bytes(range(256)) * 2 + bytes(128)  # 640 bytes: 20 ms of L16 at 16 kHz


# -- the documented messages, as Telnyx sends them ----------------------------------------


def connected() -> str:
    return json.dumps({"event": "connected", "version": "1.0.0"})


def start_msg(seq: Any = "1", **start_overrides: Any) -> dict[str, Any]:
    start: dict[str, Any] = {
        "user_id": USER, "call_control_id": CONTROL,
        "call_session_id": "ff55a038-6f5d-11ef-9692-02420aeffb1f",
        "from": "+13122010094", "to": "+13122123456", "tags": ["TAG1", "TAG2"],
        "client_state": "aGF2ZSBhIG5pY2UgZGF5ID1d",
        "custom_parameters": {"CallSid": CONTROL, "voicegw_token": "t0k"},
        "media_format": {"encoding": "L16", "sample_rate": 16000, "channels": 1},
    }
    start.update(start_overrides)
    return {"event": "start", "sequence_number": seq, "start": start, "stream_id": STREAM}


def start(seq: Any = "1", **start_overrides: Any) -> str:
    return json.dumps(start_msg(seq, **start_overrides))


def media(seq: Any, payload: bytes | str = L16_20MS, *, track: Any = "inbound",
          stream_id: Any = STREAM, **extra: Any) -> str:
    b64 = payload if isinstance(payload, str) else base64.b64encode(payload).decode()
    body: dict[str, Any] = {"track": track, "chunk": str(seq), "timestamp": "20",
                            "payload": b64, **extra}
    msg: dict[str, Any] = {"event": "media", "sequence_number": seq, "media": body,
                           "stream_id": stream_id}
    return json.dumps({k: v for k, v in msg.items() if v is not None})


def mark(seq: Any, name: str = "m1") -> str:
    return json.dumps({"event": "mark", "stream_id": STREAM, "sequence_number": seq,
                       "mark": {"name": name}})


def dtmf(seq: Any, digit: Any = "1") -> str:
    return json.dumps({"event": "dtmf", "stream_id": STREAM,
                       "occurred_at": "2025-06-05T08:54:19.698408Z", "sequence_number": seq,
                       "dtmf": {"digit": digit}})


def stop(seq: Any) -> str:
    return json.dumps({"event": "stop", "sequence_number": seq,
                       "stop": {"user_id": USER, "call_control_id": CONTROL},
                       "stream_id": STREAM})


def error(code: Any = 100003, title: Any = "malformed_frame") -> str:
    return json.dumps({"event": "error", "payload": {
        "code": code, "title": title, "detail": "Received frame was not formed correctly"},
        "stream_id": STREAM})


def started(**kw: Any) -> TelnyxStream:
    s = TelnyxStream(**kw)
    s.receive(connected())
    s.receive(start())
    return s


def rx(s: TelnyxStream, frame: str | bytes) -> list[Any]:
    return list(s.receive(frame))


def audio_of(events: Any) -> list[bytes]:
    return [e.payload for e in events if isinstance(e, Audio)]


def seq_payload(n: int) -> bytes:
    return n.to_bytes(2, "big") * 320  # 20 ms of L16 that says which frame it is


# -- a call ---------------------------------------------------------------------------------


def test_a_documented_call_from_start_to_stop() -> None:
    s = TelnyxStream()
    assert rx(s, connected()) == []
    assert s.state is StreamState.CONNECTED
    [ev] = s.receive(start())
    assert ev == Started(
        call_id=CONTROL, stream_id=STREAM, caller="+13122010094", callee="+13122123456",
        parameters={"CallSid": CONTROL, "voicegw_token": "t0k"},
        inbound=AudioFormat(Codec.L16_BE, 16000), outbound=DEFAULT_FORMAT, control_id=CONTROL)
    assert ev.control == CONTROL
    assert (s.call_id, s.control_id, s.stream_id) == (CONTROL, CONTROL, STREAM)
    assert rx(s, media("2")) == [Audio(L16_20MS)]
    assert rx(s, dtmf("3", "#")) == [Dtmf("#")]
    assert rx(s, mark("4", "7:120")) == [Played("7:120")]
    assert rx(s, stop("5")) == [Stopped()]
    assert s.state is StreamState.STOPPED


def test_the_call_id_is_the_callsid_the_answer_forwarded() -> None:
    # The token was minted for the webhook's CallSid; call control keeps call_control_id.
    s = TelnyxStream()
    [ev] = s.receive(start(custom_parameters={"CallSid": "v3:from-the-webhook"}))
    assert isinstance(ev, Started)
    assert (ev.call_id, ev.control_id, ev.control) == ("v3:from-the-webhook", CONTROL, CONTROL)
    [ev] = TelnyxStream().receive(start(custom_parameters={}))
    assert isinstance(ev, Started) and ev.call_id == CONTROL  # none forwarded


def test_caller_and_callee_fall_back_to_the_forwarded_parameters() -> None:
    msg = start_msg(custom_parameters={"From": "+15550100", "To": "+15550199"})
    del msg["start"]["from"], msg["start"]["to"]
    [ev] = TelnyxStream().receive(json.dumps(msg))
    assert isinstance(ev, Started) and (ev.caller, ev.callee) == ("+15550100", "+15550199")


@pytest.mark.parametrize(("encoding", "rate", "fmt"), [
    ("PCMU", 8000, AudioFormat(Codec.PCMU, 8000)),
    ("PCMA", 8000, AudioFormat(Codec.PCMA, 8000)),
    ("L16", 16000, AudioFormat(Codec.L16_BE, 16000)),
    ("L16", 8000, AudioFormat(Codec.L16_BE, 8000)),
    ("l16", "16000", AudioFormat(Codec.L16_BE, 16000)),
])
def test_the_inbound_format_is_what_start_declares(encoding: str, rate: Any,
                                                   fmt: AudioFormat) -> None:
    s = TelnyxStream(outbound=FORMATS["PCMU"])
    [ev] = s.receive(start(media_format={"encoding": encoding, "sample_rate": rate,
                                         "channels": 1}))
    assert isinstance(ev, Started)
    assert (ev.inbound, ev.outbound) == (fmt, FORMATS["PCMU"])


@pytest.mark.parametrize("fmt", [
    {"encoding": "G722", "sample_rate": 8000, "channels": 1},
    {"encoding": "OPUS", "sample_rate": 16000, "channels": 1},
    {"encoding": "PCMU", "sample_rate": 16000, "channels": 1},
    {"encoding": "L16", "sample_rate": 44100, "channels": 1},
    {"encoding": "L16", "sample_rate": 16000, "channels": 2},
])
def test_formats_the_gateway_cannot_decode_are_refused(fmt: dict[str, Any]) -> None:
    s = TelnyxStream()
    with pytest.raises(UnsupportedMediaFormat) as err:
        s.receive(start(media_format=fmt))
    assert err.value.field == "start.media_format"
    assert s.state is StreamState.NEW


@pytest.mark.parametrize(("overrides", "field"), [
    ({"call_control_id": None}, "start.call_control_id"),
    ({"call_control_id": "v3:../../hangup"}, "start.call_control_id"),
    ({"custom_parameters": {"CallSid": "has space"}}, "start.custom_parameters.CallSid"),
    ({"custom_parameters": {"x": {"nested": 1}}}, "start.custom_parameters"),
    ({"media_format": None}, "start.media_format"),
    ({"media_format": {"encoding": "L16", "sample_rate": "fast", "channels": 1}},
     "start.media_format.sample_rate"),
    ({"from": 15550100}, "start.from"),
])
def test_a_start_that_cannot_be_used_is_a_bad_start(overrides: dict[str, Any],
                                                    field: str) -> None:
    s = TelnyxStream()
    with pytest.raises(BadStart) as err:
        s.receive(start(**overrides))
    assert err.value.field == field
    assert (s.state, s.call_id) == (StreamState.NEW, None)


def test_a_start_without_a_stream_id_is_a_bad_start() -> None:
    msg = start_msg()
    del msg["stream_id"]
    with pytest.raises(BadStart, match="stream_id"):
        TelnyxStream().receive(json.dumps(msg))
    msg["start"]["stream_id"] = STREAM  # inside start is taken too
    [ev] = TelnyxStream().receive(json.dumps(msg))
    assert isinstance(ev, Started) and ev.stream_id == STREAM


# -- the state machine ------------------------------------------------------------------------


@pytest.mark.parametrize("frame", [media("2"), dtmf("2"), mark("2")])
def test_nothing_but_start_opens_a_stream(frame: str) -> None:
    s = TelnyxStream()
    with pytest.raises(OutOfOrder) as err:
        s.receive(frame)
    assert err.value.role is EventRole.OTHER and s.state is StreamState.NEW


def test_a_stop_before_start_and_a_second_start_have_roles() -> None:
    with pytest.raises(OutOfOrder) as err:
        TelnyxStream().receive(stop("1"))
    assert err.value.role is EventRole.ENDS
    s = started()
    with pytest.raises(OutOfOrder) as err:
        s.receive(start("9"))
    assert err.value.role is EventRole.OPENS
    with pytest.raises(OutOfOrder):
        s.receive(connected())


def test_nothing_is_taken_after_stop_but_late_frames_are_dropped() -> None:
    s = started()
    s.receive(stop("5"))
    assert rx(s, media("3")) == []  # sent before the stop, arrived after it
    assert s.dropped == 1
    with pytest.raises(OutOfOrder):
        s.receive(media("6"))
    with pytest.raises(OutOfOrder):
        s.receive(stop("7"))


def test_an_error_frame_is_reported_in_any_open_state() -> None:
    for s in (TelnyxStream(), started()):
        before = s.state
        with pytest.raises(ReportedError) as err:
            s.receive(error())
        assert (err.value.code, err.value.title) == ("100003", "malformed_frame")
        assert s.state is before
    with pytest.raises(ReportedError):  # however little it says
        TelnyxStream().receive('{"event":"error"}')


def test_unknown_events_and_binary_frames() -> None:
    s = started()
    with pytest.raises(UnknownEvent) as err:
        s.receive(json.dumps({"event": "transcription", "sequence_number": "2"}))
    assert err.value.event == "transcription"
    with pytest.raises(WrongFrameType):
        s.receive(b'{"event":"media"}')
    assert rx(s, media("2")) == [Audio(L16_20MS)]  # nothing was lost to either


@pytest.mark.parametrize(("frame", "field"), [
    (media("2", "not base64!"), "media.payload"),
    (media("2", b""), "media.payload"),
    (media("2", b"\x00" * 641), "media.payload"),  # half a sample of L16
    (media("2", b"\x00" * 16002), "media.payload"),  # over max_payload
    (media("2", chunk="two"), "media.chunk"),
    (media("2", track=7), "media.track"),
    (media("2", stream_id="another-stream"), "stream_id"),
    (media("two"), "sequence_number"),
    (dtmf("2", "x"), "dtmf.digit"),
    (dtmf("2", 5), "dtmf.digit"),
    (json.dumps({"event": "mark", "sequence_number": "2", "mark": {}}), "mark.name"),
])
def test_broken_frames_name_their_field_and_change_nothing(frame: str, field: str) -> None:
    s = started()
    with pytest.raises(CarrierProtocolError) as err:
        s.receive(frame)
    assert err.value.field == field and err.value.call_sid == CONTROL
    assert rx(s, media("2")) == [Audio(L16_20MS)]  # still expecting frame 2


def test_echoed_outbound_audio_is_not_the_callers() -> None:
    s = started()
    assert rx(s, media("2", track="outbound")) == []
    assert rx(s, media("3")) == [Audio(L16_20MS)]  # its number was used all the same


def test_g711_audio_of_any_length_is_whole_samples() -> None:
    s = TelnyxStream()
    s.receive(start(media_format={"encoding": "PCMU", "sample_rate": 8000, "channels": 1}))
    assert rx(s, media("2", b"\xff" * 161)) == [Audio(b"\xff" * 161)]


# -- order ----------------------------------------------------------------------------------------


def test_frames_are_released_in_sequence_order() -> None:
    s = started()
    assert rx(s, media("3", seq_payload(3))) == []  # held: 2 is due
    assert rx(s, dtmf("4", "9")) == []
    assert audio_of(rx(s, media("2", seq_payload(2)))) == [seq_payload(2), seq_payload(3)]
    assert rx(s, media("5", seq_payload(5))) == [Audio(seq_payload(5))]
    assert s.gaps == 0 and s.dropped == 0


def test_a_held_dtmf_comes_out_in_its_place() -> None:
    s = started()
    s.receive(dtmf("3", "9"))
    assert rx(s, media("2", seq_payload(2))) == [Audio(seq_payload(2)), Dtmf("9")]


def test_duplicates_and_frames_after_their_turn_are_dropped() -> None:
    s = started()
    assert rx(s, media("2")) == [Audio(L16_20MS)]
    assert rx(s, media("2")) == []  # a duplicate
    assert rx(s, media("4")) == []
    assert rx(s, media("4")) == []  # a duplicate of one held
    assert rx(s, media("1")) == []  # older than the start
    assert s.dropped == 3


def test_a_missing_frame_is_given_up_once_the_window_is_full() -> None:
    s = started()
    out = []
    for n in range(3, 3 + REORDER_WINDOW):  # 2 never comes
        out += s.receive(media(str(n), seq_payload(n)))
    assert out == []
    # One more than the window: frame 2 is lost, the held ones go on in order.
    out = s.receive(media(str(3 + REORDER_WINDOW), seq_payload(3 + REORDER_WINDOW)))
    assert audio_of(out) == [seq_payload(n) for n in range(3, 4 + REORDER_WINDOW)]
    assert s.gaps == 1
    assert rx(s, media("2")) == []  # too late now
    assert s.dropped == 1


def test_the_window_is_bounded_however_far_ahead_a_frame_claims_to_be() -> None:
    s = started(window=4)
    assert rx(s, media("1000000")) == []
    for n in range(3, 7):  # 2 is missing: the held frames reach the window
        s.receive(media(str(n), seq_payload(n)))
    assert len(s._held) <= 4
    assert s.gaps == 1
    assert audio_of(rx(s, media("7", seq_payload(7)))) == [seq_payload(7)]


def test_stop_releases_everything_held_in_order_then_ends() -> None:
    s = started()
    s.receive(media("4", seq_payload(4)))
    s.receive(media("3", seq_payload(3)))
    events = s.receive(stop("6"))  # 2 and 5 never came
    assert audio_of(events) == [seq_payload(3), seq_payload(4)]
    assert events[-1] == Stopped()


def test_unnumbered_frames_are_not_reordered() -> None:
    s = TelnyxStream()
    s.receive(start(seq=None))
    msg = json.loads(media("0"))
    del msg["sequence_number"]
    assert rx(s, json.dumps(msg)) == [Audio(L16_20MS)]
    assert rx(s, media("7", seq_payload(7))) == [Audio(seq_payload(7))]  # sets the count
    assert rx(s, media("8", seq_payload(8))) == [Audio(seq_payload(8))]


# -- what we send ----------------------------------------------------------------------------------


def test_outbound_messages_are_the_documented_ones() -> None:
    s = started()
    assert json.loads(s.play(b"\x01\x02" * 320)) == {
        "event": "media", "media": {"payload": base64.b64encode(b"\x01\x02" * 320).decode()}}
    assert json.loads(s.mark("7:120")) == {"event": "mark", "mark": {"name": "7:120"}}
    assert json.loads(s.clear()) == {"event": "clear"}


def test_nothing_is_sent_before_start_and_marks_are_named() -> None:
    s = TelnyxStream()
    for send in (lambda: s.play(b"\x00\x00"), lambda: s.mark("m"), s.clear):
        with pytest.raises(CarrierProtocolError):
            send()
    with pytest.raises(ValueError, match="characters"):
        started().mark("")
    with pytest.raises(ValueError, match="characters"):
        started().mark("m" * 257)


def test_capabilities_and_message_sizes_follow_the_outbound_format() -> None:
    assert capabilities(FORMATS["L16"]) == CAPABILITIES
    caps = TelnyxStream(outbound=FORMATS["PCMU"]).caps
    assert (caps.clear, caps.marks, caps.dtmf, caps.hang_up, caps.transfer,
            caps.stop_event, caps.binary_audio) == (True, True, True, True, True, True, False)
    # 20 ms to 30 s per message, whole samples.
    assert (caps.chunking.minimum, caps.chunking.multiple, caps.chunking.maximum) == \
        (160, 1, 240000)
    l16 = TelnyxStream().caps.chunking
    assert (l16.minimum, l16.multiple, l16.maximum) == (640, 2, 960000)
    chunker = Chunker(l16, b"\x00\x00")
    assert chunker.push(b"\x01" * 700) == [b"\x01" * 700]
    assert chunker.push(b"\x01" * 100) == []
    assert chunker.flush() == [b"\x01" * 100 + b"\x00" * 540]  # padded to 20 ms


def test_only_formats_telnyx_plays_back() -> None:
    assert [texml_codec(f) for f in FORMATS.values()] == ["L16", "PCMU", "PCMA"]
    with pytest.raises(ValueError, match="plays no"):
        TelnyxStream(outbound=AudioFormat(Codec.L16, 16000))  # little-endian: not RTP's
    with pytest.raises(ValueError, match="plays no"):
        texml_codec(AudioFormat(Codec.L16_BE, 24000))
