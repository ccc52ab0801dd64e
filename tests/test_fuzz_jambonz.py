"""Fuzzing the jambonz ``listen`` parser: whatever a peer sends, out come neutral events or a
:class:`CarrierProtocolError`, never another exception.

Inputs are arbitrary text and bytes, and the documented messages mutated (values replaced by
JSON of any type, fields removed or added). The invariants are the ones the bridge relies on:
a rejected frame leaves the stream as it was, every event is well formed (audio of whole
samples within bounds, a start whose call sid can go into a REST path), and fields of unknown
names, which jambonz may add, change nothing.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from gateway.carriers.core import (
    Audio,
    CarrierEvent,
    CarrierProtocolError,
    Cleared,
    Dtmf,
    Played,
    Started,
    StreamState,
)
from gateway.carriers.jambonz import METADATA_KEY, RATES, SID_RE, JambonzStream
from tests.fuzzing import json_values, mutated, scalars, unknown_names

METADATA: dict[str, Any] = {
    "sampleRate": 16000, "mixType": "mono", "callSid": "9f1c2b4e-7d0a-4c3e-8b51-2f6a1d9e0c47",
    "direction": "inbound", "from": "+15550100", "to": "+15550199", "callId": "abc@10.0.0.1",
    "sipStatus": 200, "callStatus": "in-progress", "accountSid": "acc-1",
    METADATA_KEY: {"voicegw_token": "tok", "From": "+15550100", "To": "+15550199"}}
IN_CALL: list[dict[str, Any]] = [
    {"event": "dtmf", "dtmf": "5", "duration": 1600},
    {"type": "mark", "data": {"name": "0:200", "event": "playout"}},
    {"type": "mark", "data": {"name": "0:400", "event": "cleared"}},
]


def check(event: CarrierEvent, stream: JambonzStream) -> None:
    """Each event is one the bridge can use as it is."""
    match event:
        case Started():
            assert SID_RE.match(event.call_id)
            assert event.inbound.rate in RATES and event.inbound == event.outbound
            assert all(isinstance(v, str) for v in event.parameters.values())
        case Audio():
            assert 0 < len(event.payload) <= stream.max_payload
            assert len(event.payload) % 2 == 0
        case Dtmf():
            assert len(event.digit) == 1
        case Played():
            assert isinstance(event.name, str)
        case Cleared():
            pass
        case _:
            raise AssertionError(f"unexpected event {event!r}")


def feed(stream: JambonzStream, frame: str | bytes) -> None:
    before = (stream.state, stream.call_id, stream.fmt)
    try:
        events = stream.receive(frame)
    except CarrierProtocolError:
        assert (stream.state, stream.call_id, stream.fmt) == before
        return
    for event in events:
        check(event, stream)


def started() -> JambonzStream:
    stream = JambonzStream()
    stream.receive(json.dumps(METADATA))
    return stream


@given(st.text(max_size=200) | st.binary(max_size=2000))
def test_any_frame_on_a_new_stream(frame: str | bytes) -> None:
    feed(JambonzStream(), frame)


@given(st.lists(st.text(max_size=200) | st.binary(max_size=2000), max_size=5))
def test_any_frames_during_a_call(frames: list[str | bytes]) -> None:
    stream = started()
    for frame in frames:
        feed(stream, frame)
        assert stream.state is StreamState.STARTED


@given(mutated([METADATA]))
def test_mutated_openings(msg: Any) -> None:
    feed(JambonzStream(), json.dumps(msg))


@given(mutated(IN_CALL))
def test_mutated_in_call_events(msg: Any) -> None:
    feed(started(), json.dumps(msg))


@given(st.sampled_from(IN_CALL), st.dictionaries(unknown_names, json_values, min_size=1,
                                                 max_size=3))
def test_unknown_fields_change_nothing(msg: dict[str, Any], extra: dict[str, Any]) -> None:
    plain = started().receive(json.dumps(msg))
    assert started().receive(json.dumps({**msg, **extra})) == plain


@given(st.dictionaries(unknown_names, json_values, min_size=1, max_size=3),
       st.dictionaries(unknown_names, scalars, min_size=1, max_size=3))
def test_jambonz_fields_change_nothing_and_ours_are_parameters(
        theirs: dict[str, Any], ours: dict[str, Any]) -> None:
    [plain] = JambonzStream().receive(json.dumps(METADATA))
    more_metadata = {**METADATA, **theirs,
                     METADATA_KEY: {**METADATA[METADATA_KEY], **ours}}
    [more] = JambonzStream().receive(json.dumps(more_metadata))
    assert isinstance(plain, Started) and isinstance(more, Started)
    assert (more.call_id, more.caller, more.callee, more.inbound) == (
        plain.call_id, plain.caller, plain.callee, plain.inbound)
    assert set(more.parameters) == set(plain.parameters) | set(ours)
