"""The sans-I/O Twilio Media Streams core: recorded call, state machine, validation, builders.

It speaks the gateway's neutral events (``gateway.carriers.core``)."""

from __future__ import annotations

import base64
import contextlib
import json
from pathlib import Path
from typing import Any

import pybase64
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.audio import AudioFormat, Codec
from gateway.carriers.core import (
    Audio,
    CarrierEvent,
    CarrierProtocolError,
    Dtmf,
    EventRole,
    OutOfOrder,
    Played,
    Started,
    Stopped,
    StreamState,
    WrongFrameType,
)
from gateway.carriers.twilio import TwilioStream
from gateway.errors import ProtocolError

ULAW = AudioFormat(Codec.PCMU, 8000)


def one(events: Any) -> CarrierEvent:
    [event] = events
    return event  # type: ignore[no-any-return]

FIXTURE = Path(__file__).parent / "fixtures" / "twilio_call.jsonl"

ACCOUNT = "AC3f1c0e5b9a7d42e8b6c1f0a9d8e7c6b5"
CALL = "CA9b2d4f6a8c0e1357924680ace13579bd"
STREAM = "MZ18ad3ab5e4f1c9d27a6b0e3f5c8d1a2b"


def recorded() -> list[str]:
    return FIXTURE.read_text().splitlines()


def connected() -> str:
    return json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})


def start_msg(**start_overrides: Any) -> dict[str, Any]:
    start: dict[str, Any] = {
        "accountSid": ACCOUNT, "streamSid": STREAM, "callSid": CALL, "tracks": ["inbound"],
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        "customParameters": {"tenant": "acme"},
    }
    start.update(start_overrides)
    return {"event": "start", "sequenceNumber": "1", "start": start, "streamSid": STREAM}


def start(**start_overrides: Any) -> str:
    return json.dumps(start_msg(**start_overrides))


def media(payload: bytes | str = b"\xff" * 160, *, chunk: Any = "1", timestamp: Any = "5",
          stream_sid: str | None = STREAM, seq: str = "2") -> str:
    b64 = payload if isinstance(payload, str) else base64.b64encode(payload).decode()
    msg: dict[str, Any] = {"event": "media", "sequenceNumber": seq,
                           "media": {"track": "inbound", "chunk": chunk,
                                     "timestamp": timestamp, "payload": b64}}
    if stream_sid is not None:
        msg["streamSid"] = stream_sid
    return json.dumps(msg)


def mark(name: str = "utt-1") -> str:
    return json.dumps({"event": "mark", "sequenceNumber": "3", "streamSid": STREAM,
                       "mark": {"name": name}})


def dtmf(digit: Any = "1") -> str:
    return json.dumps({"event": "dtmf", "sequenceNumber": "4", "streamSid": STREAM,
                       "dtmf": {"track": "inbound_track", "digit": digit}})


def stop() -> str:
    return json.dumps({"event": "stop", "sequenceNumber": "9", "streamSid": STREAM,
                       "stop": {"accountSid": ACCOUNT, "callSid": CALL}})


def started(**kwargs: Any) -> TwilioStream:
    s = TwilioStream(**kwargs)
    s.receive(connected())
    s.receive(start())
    return s


# -- the recorded call ------------------------------------------------------------------


def test_recorded_call_is_in_twilio_documented_shape() -> None:
    # Guard the fixture itself: counters are strings, 160-byte frames, sids well formed.
    frames = [json.loads(line) for line in recorded()]
    assert frames[0] == {"event": "connected", "protocol": "Call", "version": "1.0.0"}
    assert [f["event"] for f in frames[1:]].count("start") == 1
    seqs = [int(f["sequenceNumber"]) for f in frames[1:]]
    assert seqs == list(range(1, len(frames)))
    medias = [f for f in frames if f["event"] == "media"]
    assert len(medias) == 50
    for i, f in enumerate(medias, start=1):
        assert isinstance(f["sequenceNumber"], str)
        assert f["media"]["chunk"] == str(i)
        assert isinstance(f["media"]["timestamp"], str)
        assert len(base64.b64decode(f["media"]["payload"], validate=True)) == 160
        assert f["streamSid"] == STREAM


def test_recorded_call_parses_into_neutral_events_in_order() -> None:
    s = TwilioStream()
    per_frame = [s.receive(line) for line in recorded()]

    assert per_frame[0] == ()  # `connected` only keeps the protocol going
    events = [e for frame in per_frame[1:] for e in frame]
    params = {"tenant": "acme", "lang": "en-US", "caller": "+15551234567"}
    assert events[0] == Started(call_id=CALL, stream_id=STREAM, caller=None, callee=None,
                                parameters=params, inbound=ULAW, outbound=ULAW)
    kinds = [type(e).__name__ for e in events]
    assert kinds == (["Started"] + ["Audio"] * 30 + ["Dtmf"] + ["Audio"] * 15
                     + ["Played"] + ["Audio"] * 5 + ["Stopped"])
    medias = [e for e in events if isinstance(e, Audio)]
    assert all(len(m.payload) == 160 for m in medias)
    # the payload is the decoded mu-law, byte for byte
    first = json.loads(recorded()[2])["media"]["payload"]
    assert medias[0].payload == base64.b64decode(first)
    assert events[31] == Dtmf(digit="7")
    assert events[47] == Played(name="utt-1")
    assert events[-1] == Stopped()
    assert s.state is StreamState.STOPPED
    assert (s.call_sid, s.stream_sid) == (CALL, STREAM)


def test_the_callers_numbers_come_from_the_answers_parameters() -> None:
    s = TwilioStream()
    ev = one(s.receive(start(customParameters={"From": "+15550100", "To": "+15550199"})))
    assert isinstance(ev, Started)
    assert (ev.caller, ev.callee, ev.control) == ("+15550100", "+15550199", CALL)


def test_binary_frames_are_refused_whatever_they_hold() -> None:
    s = started()
    for frame in (media().encode(), b"\x00\x01"):
        with pytest.raises(WrongFrameType, match="binary frames are not accepted") as exc:
            s.receive(frame)
        assert exc.value.call_sid == CALL
    assert s.state is StreamState.STARTED


def test_events_are_frozen() -> None:
    ev = one(TwilioStream().receive(start()))
    assert isinstance(ev, Started)
    with pytest.raises(AttributeError):
        ev.call_id = "x"  # type: ignore[misc]


# -- state machine ----------------------------------------------------------------------


@pytest.mark.parametrize("frame", [media(), mark(), dtmf(), stop()],
                         ids=["media", "mark", "dtmf", "stop"])
def test_only_connected_may_precede_start(frame: str) -> None:
    fresh = TwilioStream()
    with pytest.raises(CarrierProtocolError, match="not allowed in state 'new'") as e1:
        fresh.receive(frame)
    assert e1.value.field == "event"
    after_connected = TwilioStream()
    after_connected.receive(connected())
    with pytest.raises(CarrierProtocolError, match="not allowed in state 'connected'"):
        after_connected.receive(frame)
    # a rejected frame does not advance the machine
    assert after_connected.state is StreamState.CONNECTED
    after_connected.receive(start())
    assert after_connected.state.value == "started"


def test_connected_twice_rejected() -> None:
    s = TwilioStream()
    s.receive(connected())
    with pytest.raises(CarrierProtocolError, match="'connected' is not allowed"):
        s.receive(connected())


def test_start_without_connected_is_accepted() -> None:
    s = TwilioStream()
    assert isinstance(one(s.receive(start())), Started)
    assert s.state is StreamState.STARTED


def test_second_start_rejected_and_names_the_call() -> None:
    s = started()
    with pytest.raises(OutOfOrder) as exc:
        s.receive(start())
    assert exc.value.role is EventRole.OPENS
    assert exc.value.call_sid == CALL
    assert "'start' is not allowed in state 'started'" in str(exc.value)
    assert CALL in str(exc.value)
    assert s.stream_sid == STREAM


def test_connected_after_start_rejected() -> None:
    s = started()
    with pytest.raises(CarrierProtocolError, match="'connected'"):
        s.receive(connected())


@pytest.mark.parametrize("frame", [connected(), start(), media(), mark(), dtmf(), stop()],
                         ids=["connected", "start", "media", "mark", "dtmf", "stop"])
def test_nothing_after_stop(frame: str) -> None:
    s = started()
    s.receive(stop())
    assert s.state is StreamState.STOPPED
    with pytest.raises(CarrierProtocolError, match="state 'stopped'") as exc:
        s.receive(frame)
    assert exc.value.call_sid == CALL


def test_media_mark_dtmf_while_started() -> None:
    s = started()
    assert s.receive(media(b"\x01\x02")) == (Audio(b"\x01\x02"),)
    assert s.receive(mark("m-9")) == (Played("m-9"),)
    assert s.receive(dtmf("#")) == (Dtmf("#"),)
    assert s.state is StreamState.STARTED
    assert s.receive(stop()) == (Stopped(),)


def test_a_stop_before_start_says_it_ends_the_stream() -> None:
    with pytest.raises(OutOfOrder) as exc:
        TwilioStream().receive(stop())
    assert exc.value.role is EventRole.ENDS


@given(st.lists(st.sampled_from(["connected", "start", "media", "mark", "dtmf", "stop"]),
                max_size=12))
def test_state_machine_matches_the_protocol_model(seq: list[str]) -> None:
    """An independent model of the legal moves; every sequence agrees with it."""
    builders = {"connected": connected, "start": start, "media": media, "mark": mark,
                "dtmf": dtmf, "stop": stop}
    s = TwilioStream()
    state = "new"
    for ev in seq:
        legal = ((state == "new" and ev in ("connected", "start"))
                 or (state == "connected" and ev == "start")
                 or (state == "started" and ev in ("media", "mark", "dtmf", "stop")))
        if legal:
            s.receive(builders[ev]())
            state = {"connected": "connected", "start": "started", "stop": "stopped"}.get(
                ev, state)
        else:
            with pytest.raises(CarrierProtocolError):
                s.receive(builders[ev]())
        assert s.state.value == state


# -- strict validation ------------------------------------------------------------------


def _err(s: TwilioStream, frame: str | bytes) -> CarrierProtocolError:
    with pytest.raises(CarrierProtocolError) as exc:
        s.receive(frame)
    return exc.value


def test_error_is_a_peer_protocol_error() -> None:
    assert issubclass(CarrierProtocolError, ProtocolError)


@pytest.mark.parametrize("frame", ["not json", "{", "\udcff", ""])
def test_non_json_rejected(frame: str | bytes) -> None:
    e = _err(started(), frame)
    assert "not JSON" in e.message
    assert e.call_sid == CALL


@pytest.mark.parametrize("frame", ["[]", '"media"', "42", "null"])
def test_json_not_an_object_rejected(frame: str) -> None:
    e = _err(started(), frame)
    assert e.message == "frame is not a JSON object"
    assert CALL in str(e)


def test_unknown_event_rejected() -> None:
    e = _err(started(), json.dumps({"event": "playAudio", "streamSid": STREAM}))
    assert e.field == "event"
    assert "unknown event 'playAudio'" in str(e)
    assert e.call_sid == CALL


@pytest.mark.parametrize("msg", [{}, {"event": 1}, {"event": None}])
def test_missing_or_non_string_event_rejected(msg: dict[str, Any]) -> None:
    e = _err(TwilioStream(), json.dumps(msg))
    assert e.field == "event"


def test_unknown_event_name_is_truncated_in_the_message() -> None:
    e = _err(TwilioStream(), json.dumps({"event": "x" * 10_000}))
    assert len(str(e)) < 200


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda m: m.pop("start"), "start"),
        (lambda m: m.update(start="nope"), "start"),
        (lambda m: m["start"].pop("callSid"), "start.callSid"),
        (lambda m: m["start"].pop("streamSid"), "start.streamSid"),
        (lambda m: m["start"].pop("accountSid"), "start.accountSid"),
        (lambda m: m["start"].update(callSid=12), "start.callSid"),
        (lambda m: m["start"].pop("mediaFormat"), "start.mediaFormat"),
        (lambda m: m["start"]["mediaFormat"].pop("encoding"), "start.mediaFormat.encoding"),
        (lambda m: m["start"]["mediaFormat"].update(sampleRate="fast"),
         "start.mediaFormat.sampleRate"),
        (lambda m: m["start"]["mediaFormat"].update(channels=None),
         "start.mediaFormat.channels"),
        (lambda m: m["start"].update(tracks="inbound"), "start.tracks"),
        (lambda m: m["start"].update(tracks=[1]), "start.tracks"),
        (lambda m: m["start"].update(customParameters=["a"]), "start.customParameters"),
    ],
)
def test_start_missing_or_bad_fields_name_the_field(mutate: Any, field: str) -> None:
    msg = start_msg()
    mutate(msg)
    s = TwilioStream()
    e = _err(s, json.dumps(msg))
    assert e.field == field
    assert repr(field) in str(e)
    assert s.state is StreamState.NEW
    assert s.call_sid is None
    # once the call sid is known, it is named
    if field not in ("start", "start.callSid"):
        assert e.call_sid == CALL
        assert f"[call {CALL}]" in str(e)


@pytest.mark.parametrize(
    "fmt",
    [
        {"encoding": "audio/l16", "sampleRate": 8000, "channels": 1},
        {"encoding": "audio/x-mulaw", "sampleRate": 16000, "channels": 1},
        {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 2},
    ],
)
def test_wrong_media_format_rejected(fmt: dict[str, Any]) -> None:
    e = _err(TwilioStream(), start(mediaFormat=fmt))
    assert e.field == "start.mediaFormat"
    assert "unsupported media format" in e.message
    assert e.call_sid == CALL


def test_media_format_counters_as_strings_accepted() -> None:
    s = TwilioStream()
    ev = one(s.receive(start(mediaFormat={"encoding": "audio/x-mulaw", "sampleRate": "8000",
                                          "channels": "1"})))
    assert isinstance(ev, Started)
    assert ev.inbound == ev.outbound == ULAW


@pytest.mark.parametrize(
    ("key", "sid"),
    [
        ("callSid", "CA 123"),
        ("callSid", 'CA"},"x":"'),
        ("streamSid", "MZ\\u0000"),
        ("streamSid", "M"),
        ("streamSid", "MZ" + "a" * 100),
        ("streamSid", 'MZ"abc'),
        ("streamSid", "MZabc\n"),  # '$' would match before a trailing newline
        ("callSid", "CAabc\n"),
    ],
)
def test_malformed_sid_rejected(key: str, sid: str) -> None:
    e = _err(TwilioStream(), start(**{key: sid}))
    assert e.field == f"start.{key}"
    assert e.message == "malformed sid"
    if key == "streamSid":
        assert e.call_sid == CALL
    else:
        # a malformed call sid is not echoed into logs as if it named a call
        assert e.call_sid is None


def test_media_missing_fields() -> None:
    s = started()
    e = _err(s, json.dumps({"event": "media", "streamSid": STREAM}))
    assert (e.field, e.call_sid) == ("media", CALL)
    e = _err(s, json.dumps({"event": "media", "streamSid": STREAM, "media": {"chunk": "1"}}))
    assert (e.field, e.call_sid) == ("media.payload", CALL)
    assert f"(field 'media.payload') [call {CALL}]" in str(e)


@pytest.mark.parametrize("payload", ["!!!!", "AAA", "AA=A", "AAA=A", "AAAA\n", " AAAA", "////é"])
def test_bad_base64_rejected(payload: str) -> None:
    e = _err(started(), media(payload))
    assert e.field == "media.payload"
    assert e.call_sid == CALL


def test_urlsafe_alphabet_is_not_twilio_base64() -> None:
    # Twilio sends standard base64; '-' and '_' are not in its alphabet.
    e = _err(started(), media("-_-_"))
    assert e.field == "media.payload"


def test_empty_payload_rejected() -> None:
    e = _err(started(), media(""))
    assert (e.field, e.message) == ("media.payload", "payload is empty")


@pytest.mark.parametrize(("chunk", "timestamp"), [("x", "5"), ("1", "-5"), ("1", "1.5"),
                                                  ("²", "5"), ("1", "9" * 5000),
                                                  (True, "5")])
def test_bad_counters_rejected_as_protocol_errors(chunk: Any, timestamp: Any) -> None:
    # "²".isdigit() is True and int() of 5000 digits raises: both must stay protocol errors
    e = _err(started(), media(chunk=chunk, timestamp=timestamp))
    assert e.field in ("media.chunk", "media.timestamp")
    assert e.call_sid == CALL


def test_integer_counters_accepted() -> None:
    assert started().receive(media(chunk=7, timestamp=140)) == (Audio(b"\xff" * 160),)


def test_oversized_payload_rejected_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    s = started(max_payload=160)
    calls: list[object] = []
    real = pybase64.b64decode

    def spy(*args: Any, **kwargs: Any) -> bytes:
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr("gateway.carriers.twilio.pybase64.b64decode", spy)
    # 10 MB of base64 that would not even decode: it must be refused on length alone
    e = _err(s, media("A" * 10_000_000))
    assert e.field == "media.payload"
    assert "larger than 160 bytes" in e.message
    assert calls == []
    # a legal frame still goes through the decoder
    assert s.receive(media(b"\x00" * 160)) == (Audio(b"\x00" * 160),)
    assert len(calls) == 1


@pytest.mark.parametrize("size", [161, 162, 163])
def test_payload_just_over_the_limit_rejected(size: int) -> None:
    # base64 rounds up to 4-character quanta: 161..162 bytes encode to as many characters as
    # 160 does (216), so a length pre-check alone lets them through
    s = started(max_payload=160)
    e = _err(s, media(b"\x7f" * size))
    assert e.field == "media.payload"
    assert s.receive(media(b"\x7f" * 160)) == (Audio(b"\x7f" * 160),)


def test_mismatched_stream_sid_rejected() -> None:
    s = started()
    e = _err(s, media(stream_sid="MZ" + "0" * 32))
    assert (e.field, e.call_sid) == ("streamSid", CALL)
    e = _err(s, json.dumps({"event": "mark", "streamSid": "MZother", "mark": {"name": "a"}}))
    assert e.field == "streamSid"
    e = _err(s, json.dumps({"event": "stop", "streamSid": "MZother", "stop": {}}))
    assert e.field == "streamSid"
    assert s.state is StreamState.STARTED


def test_frame_without_stream_sid_tolerated() -> None:
    assert started().receive(media(stream_sid=None)) == (Audio(b"\xff" * 160),)


@pytest.mark.parametrize("digit", ["", "12", "x", "E", "a", " ", 1, None, "١"])
def test_bad_dtmf_digit_rejected(digit: Any) -> None:
    e = _err(started(), dtmf(digit))
    assert e.field == "dtmf.digit"
    assert e.call_sid == CALL


@pytest.mark.parametrize("digit", list("0123456789*#ABCD"))
def test_every_keypad_digit_accepted(digit: str) -> None:
    assert started().receive(dtmf(digit)) == (Dtmf(digit),)


def test_mark_without_name_rejected() -> None:
    s = started()
    e = _err(s, json.dumps({"event": "mark", "streamSid": STREAM, "mark": {}}))
    assert (e.field, e.call_sid) == ("mark.name", CALL)
    e = _err(s, json.dumps({"event": "mark", "streamSid": STREAM}))
    assert e.field == "mark"


def test_stop_without_body_still_ends_the_stream() -> None:
    s = started()
    assert s.receive(json.dumps({"event": "stop", "streamSid": STREAM})) == (Stopped(),)


@given(st.binary(max_size=2000) | st.text(max_size=300).map(str.encode))
def test_receive_never_raises_anything_but_protocol_errors(frame: bytes) -> None:
    s = started()
    with contextlib.suppress(CarrierProtocolError):
        s.receive(frame)


@given(st.dictionaries(st.sampled_from(["track", "chunk", "timestamp", "payload", "x"]),
                       st.none() | st.booleans() | st.integers() | st.text(max_size=20)
                       | st.lists(st.integers(), max_size=2)))
def test_arbitrary_media_bodies_raise_only_protocol_errors(body: dict[str, Any]) -> None:
    s = started()
    try:
        ev = one(s.receive(json.dumps({"event": "media", "streamSid": STREAM, "media": body})))
    except CarrierProtocolError:
        return
    assert isinstance(ev, Audio)
    assert 0 < len(ev.payload) <= s.max_payload


# -- builders -------------------------------------------------------------------------


def test_media_builder_exact_shape() -> None:
    s = started()
    ulaw = bytes(range(256)) * 2
    out = s.play(ulaw)
    msg = json.loads(out)
    assert msg == {"event": "media", "streamSid": STREAM,
                   "media": {"payload": base64.b64encode(ulaw).decode()}}
    assert list(msg) == ["event", "streamSid", "media"]
    assert base64.b64decode(msg["media"]["payload"], validate=True) == ulaw
    assert "\n" not in out


@given(st.binary(max_size=4000))
def test_media_builder_round_trips_any_bytes(ulaw: bytes) -> None:
    s = started()
    msg = json.loads(s.play(ulaw))
    assert msg["media"]["payload"] == base64.b64encode(ulaw).decode()


@given(st.from_regex(r"[A-Za-z0-9_\-]{2,64}", fullmatch=True))
def test_builders_are_valid_json_for_every_accepted_sid(sid: str) -> None:
    s = TwilioStream()
    s.receive(start(streamSid=sid))
    assert json.loads(s.play(b"\x00"))["streamSid"] == sid
    assert json.loads(s.clear()) == {"event": "clear", "streamSid": sid}
    assert json.loads(s.mark("m"))["streamSid"] == sid


def test_mark_builder_shape() -> None:
    s = started()
    assert json.loads(s.mark("utt-7")) == {"event": "mark", "streamSid": STREAM,
                                           "mark": {"name": "utt-7"}}
    # names are JSON-escaped, not spliced
    assert json.loads(s.mark('a"b\\c\n'))["mark"]["name"] == 'a"b\\c\n'


@pytest.mark.parametrize("name", ["", "x" * 257])
def test_mark_builder_rejects_bad_names(name: str) -> None:
    with pytest.raises(ValueError, match=r"1\.\.256"):
        started().mark(name)


def test_mark_name_of_256_characters_is_fine() -> None:
    assert json.loads(started().mark("x" * 256))["mark"]["name"] == "x" * 256


def test_clear_builder_shape() -> None:
    assert json.loads(started().clear()) == {"event": "clear", "streamSid": STREAM}


def test_mark_round_trip_through_the_echo() -> None:
    s = started()
    sent = json.loads(s.mark("utt-3"))
    echo = json.dumps({"event": "mark", "sequenceNumber": "40", **sent})
    assert s.receive(echo) == (Played("utt-3"),)


@pytest.mark.parametrize("build", [lambda s: s.play(b"\xff"), lambda s: s.mark("m"),
                                   lambda s: s.clear()], ids=["media", "mark", "clear"])
def test_sending_before_start_raises(build: Any) -> None:
    for s in (TwilioStream(), _connected_only()):
        with pytest.raises(CarrierProtocolError, match="before the stream has started"):
            build(s)


def _connected_only() -> TwilioStream:
    s = TwilioStream()
    s.receive(connected())
    return s
