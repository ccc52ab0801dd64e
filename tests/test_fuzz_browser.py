"""Fuzzing the browser stream parser: whatever a page (or anything pretending to be one)
sends, out come neutral events or a :class:`CarrierProtocolError`, never another exception.

Inputs are arbitrary text and bytes in either format, and the page's messages mutated
(values replaced by JSON of any type, fields removed or added). The invariants are the ones the
bridge relies on: a rejected frame leaves the stream as it was, every event is well formed
(audio of whole samples within bounds, the gateway's own call id, never a phone number), and
fields of unknown names change nothing.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from gateway.carriers.browser import BrowserFormat, BrowserStream
from gateway.carriers.core import (
    KEYPAD,
    Audio,
    CarrierEvent,
    CarrierProtocolError,
    Dtmf,
    Played,
    Started,
    Stopped,
    StreamState,
)
from tests.fuzzing import json_values, mutated, unknown_names

CALL_ID = "BR0123456789abcdef"
START: dict[str, Any] = {"event": "start"}
IN_CALL: list[dict[str, Any]] = [
    {"event": "mark", "name": "0:200"},
    {"event": "dtmf", "digit": "5"},
    {"event": "stop"},
]
formats = st.sampled_from(list(BrowserFormat))


def check(event: CarrierEvent, stream: BrowserStream) -> None:
    """Each event is one the bridge can use as it is."""
    match event:
        case Started():
            assert event.call_id == CALL_ID and event.caller is None and event.callee is None
            assert (event.inbound, event.outbound) == (stream.fmt.inbound, stream.fmt.outbound)
            assert not event.parameters
        case Audio():
            assert 0 < len(event.payload) <= stream.max_payload
            assert len(event.payload) % stream.fmt.inbound.codec.sample_bytes == 0
        case Dtmf():
            assert event.digit in KEYPAD
        case Played():
            assert isinstance(event.name, str) and 0 < len(event.name) <= 256
        case Stopped():
            assert stream.state is StreamState.STOPPED
        case _:
            raise AssertionError(f"unexpected event {event!r}")


def feed(stream: BrowserStream, frame: str | bytes) -> None:
    before = (stream.state, stream.call_id)
    try:
        events = stream.receive(frame)
    except CarrierProtocolError:
        assert (stream.state, stream.call_id) == before
        return
    for event in events:
        check(event, stream)


def started(fmt: BrowserFormat) -> BrowserStream:
    stream = BrowserStream(CALL_ID, fmt)
    stream.receive(json.dumps(START))
    return stream


@given(formats, st.text(max_size=200) | st.binary(max_size=8000))
def test_any_frame_on_a_new_stream(fmt: BrowserFormat, frame: str | bytes) -> None:
    feed(BrowserStream(CALL_ID, fmt), frame)


@given(formats, st.lists(st.text(max_size=200) | st.binary(max_size=8000), max_size=5))
def test_any_frames_during_a_call(fmt: BrowserFormat, frames: list[str | bytes]) -> None:
    stream = started(fmt)
    for frame in frames:
        feed(stream, frame)


@given(formats, mutated([START]))
def test_mutated_starts(fmt: BrowserFormat, msg: Any) -> None:
    feed(BrowserStream(CALL_ID, fmt), json.dumps(msg))


@given(formats, mutated(IN_CALL))
def test_mutated_in_call_events(fmt: BrowserFormat, msg: Any) -> None:
    feed(started(fmt), json.dumps(msg))


@given(formats, st.sampled_from([START, *IN_CALL]),
       st.dictionaries(unknown_names, json_values, min_size=1, max_size=3))
def test_unknown_fields_change_nothing(fmt: BrowserFormat, msg: dict[str, Any],
                                       extra: dict[str, Any]) -> None:
    def fresh() -> BrowserStream:
        return BrowserStream(CALL_ID, fmt) if msg is START else started(fmt)

    plain = fresh().receive(json.dumps(msg))
    assert fresh().receive(json.dumps({**msg, **extra})) == plain
