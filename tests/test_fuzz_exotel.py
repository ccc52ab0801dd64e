"""Fuzzing the Exotel Voicebot parser: whatever arrives, out come neutral events or a
:class:`CarrierProtocolError`, never another exception.

Inputs are arbitrary text and bytes and Exotel's documented messages mutated (values replaced
by JSON of any type, fields removed or added, several times over). Beyond "no other
exception": a rejected frame leaves the stream as it was; every event is well formed (audio
within bounds and whole samples, a keypad digit, a start at a rate Exotel streams); fields
Exotel may add change nothing.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.carriers.core import (
    KEYPAD,
    Audio,
    CarrierProtocolError,
    Dtmf,
    Played,
    Started,
    Stopped,
    StreamState,
)
from gateway.carriers.exotel import RATES, ExotelStream, audio_format
from tests.fuzzing import mutated, with_unknown_fields
from tests.test_carrier_exotel import connected, dtmf, mark, media, start_msg, stop

CORPUS: dict[str, dict[str, Any]] = {
    "connected": json.loads(connected()), "start": start_msg(), "media": json.loads(media()),
    "dtmf": json.loads(dtmf()), "mark": json.loads(mark()), "stop": json.loads(stop()),
}
FORMATS = {audio_format(rate) for rate in RATES}


def in_state(state: StreamState) -> ExotelStream:
    core = ExotelStream()
    if state in (StreamState.STARTED, StreamState.STOPPED):
        core.receive(json.dumps(CORPUS["start"]))
    if state is StreamState.STOPPED:
        core.receive(json.dumps(CORPUS["stop"]))
    return core


def checked(core: ExotelStream, frame: str | bytes) -> None:
    """Feed one frame: only neutral events or the carrier's protocol error, and a rejected
    frame changes nothing about the stream."""
    before = (core.state, core.call_id, core.stream_sid, core.rate)
    error: str | None = None
    try:
        events = core.receive(frame)
    except CarrierProtocolError as exc:
        error = str(exc)
    if error is not None:
        assert (core.state, core.call_id, core.stream_sid, core.rate) == before
        assert error  # it becomes a log line
        return
    for event in events:
        match event:
            case Audio():
                assert 0 < len(event.payload) <= core.max_payload
                assert len(event.payload) % 2 == 0
            case Started():
                assert event.inbound == event.outbound and event.inbound in FORMATS
                assert (core.call_id, core.stream_sid) == (event.call_id, event.stream_id)
                assert all(isinstance(v, str) for v in event.parameters.values())
            case Dtmf():
                assert event.digit in KEYPAD and len(event.digit) == 1
            case Played():
                assert isinstance(event.name, str)
            case _:
                assert isinstance(event, Stopped)


@settings(max_examples=300)
@given(st.sampled_from([StreamState.NEW, StreamState.STARTED, StreamState.STOPPED]),
       st.binary(max_size=300) | st.text(max_size=300))
def test_arbitrary_frames_in_any_state(state: StreamState, frame: bytes | str) -> None:
    checked(in_state(state), frame)


@settings(max_examples=600)
@given(st.sampled_from([StreamState.NEW, StreamState.STARTED]), mutated(list(CORPUS.values())))
def test_mutated_exotel_messages(state: StreamState, msg: Any) -> None:
    checked(in_state(state), json.dumps(msg))


@settings(max_examples=200)
@given(st.sampled_from(list(CORPUS)), st.data())
def test_fields_exotel_may_add_change_nothing(event: str, data: st.DataObject) -> None:
    # custom_parameters is the URL's query: any key there is data, not a field.
    msg = data.draw(with_unknown_fields(CORPUS[event],
                                        lambda path: path[-1:] == ("custom_parameters",)))
    state = StreamState.NEW if event in ("start", "connected") else StreamState.STARTED
    plain, extended = in_state(state), in_state(state)
    assert plain.receive(json.dumps(CORPUS[event])) == extended.receive(json.dumps(msg))
    assert (plain.state, plain.call_id, plain.rate) == \
        (extended.state, extended.call_id, extended.rate)
