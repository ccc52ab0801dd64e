"""Fuzzing the Plivo stream parser: whatever arrives, out come neutral events or a
:class:`CarrierProtocolError`, never another exception.

Inputs are arbitrary text and bytes and, closer to what a buggy or hostile peer sends,
Plivo's documented messages mutated (values replaced by JSON of any type, fields removed or
added, several times over). Beyond "no other exception": a rejected frame leaves the stream
as it was; every event is well formed (audio within bounds and whole samples, a keypad
digit, a start whose formats Plivo streams); fields Plivo may add change nothing.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.carriers.core import (
    KEYPAD,
    TOKEN_PARAMETER,
    Audio,
    CarrierProtocolError,
    Cleared,
    Dtmf,
    Played,
    Started,
    Stopped,
    StreamState,
)
from gateway.carriers.plivo import (
    ContentType,
    PlivoStream,
    decode_parameters,
    encode_parameters,
)
from tests.fuzzing import json_values, mutated, with_unknown_fields
from tests.test_carrier_plivo import cleared, dtmf, media, played, start_msg, stop

CORPUS: dict[str, dict[str, Any]] = {
    "start": start_msg(), "media": json.loads(media()), "dtmf": json.loads(dtmf()),
    "playedStream": json.loads(played()), "clearedAudio": json.loads(cleared()),
    "stop": json.loads(stop()),
}
FORMATS = {c.format for c in ContentType}

def in_state(state: StreamState) -> PlivoStream:
    core = PlivoStream()
    if state in (StreamState.STARTED, StreamState.STOPPED):
        core.receive(json.dumps(CORPUS["start"]))
    if state is StreamState.STOPPED:
        core.receive(json.dumps(CORPUS["stop"]))
    return core


def checked(core: PlivoStream, frame: str | bytes) -> None:
    """Feed one frame: only neutral events or the carrier's protocol error, and a rejected
    frame changes nothing about the stream."""
    before = (core.state, core.call_id, core.stream_id, core.content)
    error: str | None = None
    try:
        events = core.receive(frame)
    except CarrierProtocolError as exc:
        error = str(exc)
    if error is not None:
        assert (core.state, core.call_id, core.stream_id, core.content) == before
        assert error  # it becomes a log line
        return
    for event in events:
        match event:
            case Audio():
                assert 0 < len(event.payload) <= core.max_payload
                assert len(event.payload) % core.content.format.codec.sample_bytes == 0
            case Started():
                assert event.inbound == event.outbound and event.inbound in FORMATS
                assert (core.call_id, core.stream_id) == (event.call_id, event.stream_id)
                assert all(isinstance(v, str) for v in event.parameters.values())
            case Dtmf():
                assert event.digit in KEYPAD and len(event.digit) == 1
            case Played():
                assert isinstance(event.name, str)
            case _:
                assert isinstance(event, Cleared | Stopped)


@settings(max_examples=300)
@given(st.sampled_from([StreamState.NEW, StreamState.STARTED, StreamState.STOPPED]),
       st.binary(max_size=300) | st.text(max_size=300))
def test_arbitrary_frames_in_any_state(state: StreamState, frame: bytes | str) -> None:
    checked(in_state(state), frame)


@settings(max_examples=600)
@given(st.sampled_from([StreamState.NEW, StreamState.STARTED]), mutated(list(CORPUS.values())))
def test_mutated_plivo_messages(state: StreamState, msg: Any) -> None:
    checked(in_state(state), json.dumps(msg))


@settings(max_examples=200)
@given(st.sampled_from(list(CORPUS)), st.data())
def test_fields_plivo_may_add_change_nothing(event: str, data: st.DataObject) -> None:
    msg = data.draw(with_unknown_fields(CORPUS[event]))
    state = StreamState.NEW if event == "start" else StreamState.STARTED
    plain, extended = in_state(state), in_state(state)
    assert plain.receive(json.dumps(CORPUS[event])) == extended.receive(json.dumps(msg))
    assert (plain.state, plain.call_id, plain.content) == \
        (extended.state, extended.call_id, extended.content)


@given(st.dictionaries(st.text(max_size=20), st.text(max_size=40), max_size=8))
def test_any_parameters_survive_the_trip(params: dict[str, str]) -> None:
    encoded = encode_parameters(params)
    assert encoded.startswith("voicegw=")
    assert encoded[8:].isalnum() or not params  # letters and digits only, as Plivo takes
    assert decode_parameters(encoded) == params
    # And through a whole start, token included.
    params = {**params, TOKEN_PARAMETER: "1.2.3"}
    [event] = PlivoStream().receive(json.dumps(start_msg(extra=encode_parameters(params))))
    assert isinstance(event, Started) and event.parameters == params


@given(st.text(max_size=600) | json_values)
def test_any_extra_headers_give_parameters_or_the_protocol_error(raw: Any) -> None:
    try:
        found = decode_parameters(raw)
    except CarrierProtocolError:
        return
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in found.items())
