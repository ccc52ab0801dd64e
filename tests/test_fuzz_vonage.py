"""Fuzzing the Vonage stream parser: whatever a peer sends, out come neutral events or a
:class:`CarrierProtocolError`, never another exception.

Inputs are arbitrary text and bytes, and the documented messages mutated (values replaced by
JSON of any type, fields removed or added). The invariants are the ones the bridge relies on:
a rejected frame leaves the stream as it was, every event is well formed (audio of whole
samples within bounds, a start whose uuid can go into a REST path), and fields of unknown
names, which Vonage may add, change nothing.
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
from gateway.carriers.vonage import RATES, UUID_RE, VonageStream
from tests.fuzzing import json_values, mutated, scalars, unknown_names

CONNECTED: dict[str, Any] = {
    "event": "websocket:connected", "content-type": "audio/l16;rate=16000",
    "uuid": "63f61863-4a51-4f6b-86e1-46edebcf9356",
    "conversation_uuid": "CON-f972836a-550f-45fa-956c-12a2ab5b7d22",
    "from": "+447700900123", "to": "+447700900000", "voicegw_token": "tok"}
IN_CALL: list[dict[str, Any]] = [
    {"event": "websocket:dtmf", "digit": "5", "duration": 260},
    {"event": "websocket:notify", "payload": {"name": "0:200"}},
    {"event": "websocket:cleared"},
]

def check(event: CarrierEvent, stream: VonageStream) -> None:
    """Each event is one the bridge can use as it is."""
    match event:
        case Started():
            assert UUID_RE.match(event.call_id)
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


def feed(stream: VonageStream, frame: str | bytes) -> None:
    before = (stream.state, stream.call_id, stream.fmt)
    try:
        events = stream.receive(frame)
    except CarrierProtocolError:
        assert (stream.state, stream.call_id, stream.fmt) == before
        return
    for event in events:
        check(event, stream)


def started() -> VonageStream:
    stream = VonageStream()
    stream.receive(json.dumps(CONNECTED))
    return stream


@given(st.text(max_size=200) | st.binary(max_size=2000))
def test_any_frame_on_a_new_stream(frame: str | bytes) -> None:
    feed(VonageStream(), frame)


@given(st.lists(st.text(max_size=200) | st.binary(max_size=2000), max_size=5))
def test_any_frames_during_a_call(frames: list[str | bytes]) -> None:
    stream = started()
    for frame in frames:
        feed(stream, frame)
        assert stream.state is StreamState.STARTED


@given(mutated([CONNECTED]))
def test_mutated_openings(msg: Any) -> None:
    feed(VonageStream(), json.dumps(msg))


@given(mutated(IN_CALL))
def test_mutated_in_call_events(msg: Any) -> None:
    feed(started(), json.dumps(msg))


@given(st.sampled_from(IN_CALL), st.dictionaries(unknown_names, json_values, min_size=1,
                                                 max_size=3))
def test_unknown_fields_change_nothing(msg: dict[str, Any], extra: dict[str, Any]) -> None:
    plain = started().receive(json.dumps(msg))
    assert started().receive(json.dumps({**msg, **extra})) == plain


@given(st.dictionaries(unknown_names, scalars, min_size=1, max_size=3))
def test_unknown_headers_are_parameters_and_nothing_more(extra: dict[str, Any]) -> None:
    [plain] = VonageStream().receive(json.dumps(CONNECTED))
    [more] = VonageStream().receive(json.dumps({**CONNECTED, **extra}))
    assert isinstance(plain, Started) and isinstance(more, Started)
    assert (more.call_id, more.caller, more.callee, more.inbound) == (
        plain.call_id, plain.caller, plain.callee, plain.inbound)
    assert set(more.parameters) == set(plain.parameters) | set(extra)
