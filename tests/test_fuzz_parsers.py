"""Fuzzing the two protocol parsers: whatever a peer sends, out come typed events or the
project's protocol error for that peer, never another exception. (Each other carrier's parser
is fuzzed the same way in its own test file, with the helpers here.)

Inputs are arbitrary text and bytes, and, closer to what a buggy or hostile peer sends, the
recorded real messages (``tests/fixtures``) mutated: values replaced by JSON of any type,
fields removed, fields added, several times over. Beyond "no other exception", the checks
are the invariants the bridge relies on: a rejected carrier frame leaves the stream's state as
it was; every event is well formed (a media payload within bounds, PCM16 of whole samples);
unknown fields, which both services may add at any time, change nothing.

Two bugs these found are pinned below by name: JSON nested a few thousand deep made
``json.loads`` raise ``RecursionError`` (no ``ValueError``) in both parsers, and Live audio of
an odd number of bytes parsed fine but made the bridge's resampler raise mid-call.
"""

from __future__ import annotations

import copy
import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import jsonio, live
from gateway.carriers import core, twilio
from gateway.carriers.core import CarrierEvent, CarrierProtocolError, StreamState
from gateway.carriers.twilio import TwilioStream
from gateway.errors import LiveProtocolError
from tests.fuzzing import Path as NodePath
from tests.fuzzing import json_values, mutated, unknown_names, with_unknown_fields

FIXTURES = Path(__file__).parent / "fixtures"
TWILIO_CALL = (FIXTURES / "twilio_call.jsonl").read_text().splitlines()
LIVE_MESSAGES = (FIXTURES / "live_server_messages.jsonl").read_text().splitlines()

# One valid message of each Twilio kind, from the recorded call.
TWILIO_BY_EVENT: dict[str, dict[str, Any]] = {}
for _line in TWILIO_CALL:
    _msg = json.loads(_line)
    TWILIO_BY_EVENT.setdefault(_msg["event"], _msg)
TWILIO_BY_EVENT.setdefault("dtmf", {"event": "dtmf", "sequenceNumber": "4",
                                    "streamSid": TWILIO_BY_EVENT["start"]["streamSid"],
                                    "dtmf": {"track": "inbound_track", "digit": "5"}})
TWILIO_BY_EVENT.setdefault("mark", {"event": "mark", "sequenceNumber": "5",
                                    "streamSid": TWILIO_BY_EVENT["start"]["streamSid"],
                                    "mark": {"name": "0:200"}})
LIVE_CORPUS = [json.loads(line) for line in LIVE_MESSAGES]

def _dumps(value: Any) -> str:
    return json.dumps(value)


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _deepest_parseable() -> int:
    """The deepest nesting the gateway's JSON parser (orjson, capped) accepts."""
    lo, hi = 1, 100_000
    while lo < hi:
        mid = (lo + hi + 1) // 2
        try:
            jsonio.loads(_nested(mid))
            lo = mid
        except jsonio.JSONDecodeError:
            hi = mid - 1
    return lo


# -- Twilio --------------------------------------------------------------------------------


def _stream_in(state: StreamState) -> TwilioStream:
    s = TwilioStream()
    if state is StreamState.NEW:
        return s
    s.receive(_dumps(TWILIO_BY_EVENT["connected"]))
    if state is StreamState.CONNECTED:
        return s
    s.receive(_dumps(TWILIO_BY_EVENT["start"]))
    if state is StreamState.STOPPED:
        s.receive(_dumps(TWILIO_BY_EVENT["stop"]))
    return s


def _receive_checked(s: TwilioStream, frame: str | bytes) -> tuple[CarrierEvent, ...] | None:
    """Feed one frame; only neutral events or CarrierProtocolError, and a rejected frame
    changes nothing about the stream."""
    before = (s.state, s.call_sid, s.stream_sid)
    try:
        events = tuple(s.receive(frame))
    except CarrierProtocolError as exc:
        error = exc
    else:
        error = None
    if error is not None:
        assert (s.state, s.call_sid, s.stream_sid) == before
        assert str(error)  # it becomes a log line
        return None
    assert len(events) <= 1
    for event in events:
        match event:
            case core.Audio():
                assert 0 < len(event.payload) <= s.max_payload
            case core.Started():
                assert event.inbound == event.outbound == twilio.FORMAT
                assert s.call_sid == event.call_id and s.stream_sid == event.stream_id
                assert all(isinstance(v, str) for v in event.parameters.values())
            case core.Dtmf():
                assert event.digit in "0123456789*#ABCD" and len(event.digit) == 1
            case core.Played():
                assert isinstance(event.name, str)
            case core.Stopped():
                assert s.state is StreamState.STOPPED
            case _:
                raise AssertionError(f"Twilio sent no such event: {event!r}")
    return events


@settings(max_examples=300)
@given(st.sampled_from(list(StreamState)), st.binary(max_size=400) | st.text(max_size=400))
def test_twilio_arbitrary_frames_in_any_state(state: StreamState, frame: bytes | str) -> None:
    _receive_checked(_stream_in(state), frame)


@settings(max_examples=600)
@given(st.sampled_from(list(StreamState)), mutated(list(TWILIO_BY_EVENT.values())))
def test_twilio_mutated_messages_in_any_state(state: StreamState, msg: Any) -> None:
    _receive_checked(_stream_in(state), _dumps(msg))


@settings(max_examples=200)
@given(st.lists(st.sampled_from(list(TWILIO_BY_EVENT.values())).map(_dumps)
                | mutated(list(TWILIO_BY_EVENT.values())).map(_dumps), max_size=12))
def test_twilio_sequences_follow_the_state_machine(frames: list[str]) -> None:
    """Valid and mutated messages in any order: the state only moves by legal events."""
    s = TwilioStream()
    for frame in frames:
        before = s.state
        events = _receive_checked(s, frame)
        if events is not None:
            kind = json.loads(frame)["event"]
            assert kind in twilio._LEGAL[before]
            assert s.state is twilio._LEGAL[before][kind]


def _twilio_free_form(path: NodePath) -> bool:
    return path[:2] == ("start", "customParameters")  # <Parameter> names are data


@settings(max_examples=300)
@given(st.sampled_from(sorted(TWILIO_BY_EVENT)), st.data())
def test_twilio_ignores_fields_it_does_not_know(name: str, data: st.DataObject) -> None:
    msg = TWILIO_BY_EVENT[name]
    state = StreamState.NEW if name in ("connected", "start") else StreamState.STARTED
    extended = data.draw(with_unknown_fields(msg, _twilio_free_form))
    assert _stream_in(state).receive(_dumps(extended)) == _stream_in(state).receive(_dumps(msg))


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_json_numbers_are_protocol_errors(literal: str) -> None:
    with pytest.raises(CarrierProtocolError, match="not JSON"):
        _stream_in(StreamState.STARTED).receive(
            f'{{"event":"mark","streamSid":"{TWILIO_BY_EVENT["start"]["streamSid"]}","mark":{{"name":{literal}}}}}')
    with pytest.raises(LiveProtocolError, match="not JSON"):
        live.parse_server_message(f'{{"usageMetadata":{{"totalTokenCount":{literal}}}}}')


def test_twilio_deep_nesting_is_a_protocol_error_not_a_crash() -> None:
    deepest = _deepest_parseable()
    # Too deep to decode ...
    with pytest.raises(CarrierProtocolError, match="nested too deeply"):
        _stream_in(StreamState.STARTED).receive(_nested(deepest + 50))
    # ... and just deep enough to decode, in every place a value is read.
    start = copy.deepcopy(TWILIO_BY_EVENT["start"])
    start["start"]["customParameters"] = {"a": "BLOB"}
    templates = (_dumps(start), _dumps({"event": "connected", "protocol": "BLOB",
                                        "version": "BLOB"}),
                 _dumps({"event": "stop", "stop": {"callSid": "BLOB", "accountSid": "BLOB"}}))
    for depth in range(max(1, deepest - 40), deepest + 5):
        # Spliced in as text: the stdlib's encoder would hit Python's recursion limit first.
        blob = _nested(depth) if depth <= deepest - 10 else "[]"
        for frame in (*(t.replace('"BLOB"', blob) for t in templates), _nested(depth)):
            _receive_checked(_stream_in(StreamState.CONNECTED), frame)


def test_twilio_rejections_have_the_types_the_bridge_acts_on() -> None:
    def error(state: StreamState, msg: Any) -> CarrierProtocolError:
        with pytest.raises(CarrierProtocolError) as exc:
            _stream_in(state).receive(_dumps(msg))
        return exc.value

    start = TWILIO_BY_EVENT["start"]
    assert isinstance(error(StreamState.STARTED, {"event": "playAudio"}), core.UnknownEvent)
    second = error(StreamState.STARTED, start)
    assert isinstance(second, core.OutOfOrder) and second.role is core.EventRole.OPENS
    early = error(StreamState.CONNECTED, TWILIO_BY_EVENT["stop"])
    assert isinstance(early, core.OutOfOrder) and early.role is core.EventRole.ENDS
    fmt = copy.deepcopy(start)
    fmt["start"]["mediaFormat"]["sampleRate"] = 16000
    assert isinstance(error(StreamState.NEW, fmt), core.UnsupportedMediaFormat)
    broken = copy.deepcopy(start)
    del broken["start"]["callSid"]
    bad = error(StreamState.NEW, broken)
    assert type(bad) is core.BadStart and bad.field == "start.callSid"


# -- Live ----------------------------------------------------------------------------------


def _parse_checked(frame: str | bytes) -> tuple[live.LiveEvent, ...] | None:
    """Only events or LiveProtocolError; every event is one the bridge can act on."""
    try:
        events = live.parse_server_message(frame)
    except LiveProtocolError as exc:
        error = exc
    else:
        error = None
    if error is not None:
        assert str(error)  # it becomes a log line
        return None
    assert isinstance(events, tuple)
    for e in events:
        match e:
            case live.ModelAudio():
                assert len(e.pcm) % 2 == 0  # whole PCM16 samples
                assert 0 < e.rate < 10**6
            case live.GoAway() if e.time_left_s is not None:
                assert math.isfinite(e.time_left_s)
            case live.ToolCall():
                assert all(isinstance(c.name, str) and isinstance(c.id, str)
                           and isinstance(c.args, dict) for c in e.calls)
            case live.ToolCallCancellation():
                assert all(isinstance(i, str) for i in e.ids)
            case live.Usage():
                assert min(e.prompt_tokens, e.response_tokens, e.total_tokens) >= 0
            case live.InputTranscript() | live.OutputTranscript() | live.ModelText():
                assert isinstance(e.text, str)
            case live.Unknown():
                assert e.keys
            case _:
                pass
    return events


@settings(max_examples=300)
@given(st.binary(max_size=400) | st.text(max_size=400))
def test_live_arbitrary_frames(frame: bytes | str) -> None:
    _parse_checked(frame)


@settings(max_examples=800)
@given(mutated(LIVE_CORPUS))
def test_live_mutated_messages(msg: Any) -> None:
    _parse_checked(_dumps(msg))
    _parse_checked(_dumps(msg).encode())  # production sends binary frames


def _live_free_form(path: NodePath) -> bool:
    # Function arguments are the model's data; usage details are kept raw.
    return "args" in path or (bool(path) and path[0] in ("usageMetadata", "usage_metadata"))


def _comparable(events: tuple[live.LiveEvent, ...] | None) -> Any:
    # Usage keeps its raw object (unknown fields included) for logging; compare the counts.
    assert events is not None
    return [(e.prompt_tokens, e.response_tokens, e.total_tokens)
            if isinstance(e, live.Usage) else e for e in events]


# Messages of a known kind; one of only unknown kinds gets one more with a new key (tested
# below).
LIVE_KNOWN = [m for m in LIVE_CORPUS
              if any(not isinstance(e, live.Unknown) for e in live.parse_server_message(_dumps(m)))]


@settings(max_examples=400)
@given(st.sampled_from(LIVE_KNOWN), st.data())
def test_live_accepts_unknown_fields_anywhere(msg: dict[str, Any], data: st.DataObject) -> None:
    """The service adds fields without notice: any object may carry ones we do not know."""
    extended = data.draw(with_unknown_fields(msg, _live_free_form))
    assert _comparable(_parse_checked(_dumps(extended))) == \
        _comparable(_parse_checked(_dumps(msg)))


@given(st.dictionaries(unknown_names, json_values, min_size=1, max_size=4))
def test_live_message_of_unknown_kinds_is_reported_not_rejected(msg: dict[str, Any]) -> None:
    assert live.parse_server_message(_dumps(msg)) == (live.Unknown(tuple(msg)),)


def test_live_deep_nesting_is_a_protocol_error_not_a_crash() -> None:
    deepest = _deepest_parseable()
    with pytest.raises(LiveProtocolError, match="nested too deeply"):
        live.parse_server_message(_nested(deepest + 50))
    for depth in range(max(1, deepest - 40), deepest + 5):
        nested = _nested(depth)
        for frame in (nested, f'{{"toolCallCancellation":{{"ids":[{nested}]}}}}',
                      f'{{"toolCall":{{"functionCalls":[{{"name":"f","id":{nested}}}]}}}}',
                      f'{{"goAway":{{"timeLeft":{nested}}}}}',
                      f'{{"usageMetadata":{{"totalTokenCount":{nested}}}}}'):
            _parse_checked(frame)


def test_live_audio_of_half_a_sample_is_rejected() -> None:
    # Three bytes: the bridge's resampler raises on it, which ended the call as an internal
    # error; now it is one dropped message, counted as a protocol error.
    frame = _dumps({"serverContent": {"modelTurn": {"parts": [{"inlineData": {
        "mimeType": "audio/pcm;rate=24000", "data": "AAAA"}}]}}})
    with pytest.raises(LiveProtocolError, match="odd number of bytes") as exc:
        live.parse_server_message(frame)
    assert exc.value.field == "serverContent.modelTurn.parts.inlineData.data"


def test_recursion_limit_is_the_default() -> None:
    # The deep-nesting tests above find the limit themselves; this documents what they ran at.
    assert sys.getrecursionlimit() >= 1000
