"""Fuzzing the parser of Asterisk's WebSocket channel driver: whatever a peer sends, in either
control dialect, out come neutral events or a :class:`CarrierProtocolError`, never another
exception.

Inputs are arbitrary text and bytes, the documented JSON messages mutated (values replaced by
JSON of any type, fields removed or added), and the plain-text messages with words dropped,
duplicated or rewritten. The invariants are the ones the bridge relies on: a rejected frame
leaves the stream as it was, every event is well formed (a start in a format the gateway
takes, with a printable channel id; audio of whole samples within bounds), and fields of
unknown names, which Asterisk may add, change nothing.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from gateway.carriers.asterisk import FORMATS, AsteriskStream
from gateway.carriers.core import (
    Audio,
    CarrierEvent,
    CarrierProtocolError,
    Dtmf,
    Paused,
    Played,
    Resumed,
    Started,
    StreamState,
)
from tests.fuzzing import json_values, mutated, unknown_names

CHANNEL_ID = "pbx1-1712345678.42"
START: dict[str, Any] = {
    "event": "MEDIA_START", "connection_id": "media_connection1",
    "channel": "WebSocket/media_connection1/0x7f1c2c0012a0", "channel_id": CHANNEL_ID,
    "format": "ulaw", "optimal_frame_size": 160, "ptime": 20,
    "channel_variables": {"agent": "desk", "MEDIA_WEBSOCKET_OPTIMAL_FRAME_SIZE": "160"}}
IN_CALL: list[dict[str, Any]] = [
    {"event": "DTMF_END", "channel_id": CHANNEL_ID, "digit": "5"},
    {"event": "MEDIA_MARK_PROCESSED", "channel_id": CHANNEL_ID, "correlation_id": "0:200"},
    {"event": "MEDIA_XOFF", "channel_id": CHANNEL_ID},
    {"event": "MEDIA_XON", "channel_id": CHANNEL_ID},
    {"event": "QUEUE_DRAINED", "channel_id": CHANNEL_ID},
]
PLAIN_START = [f"{k}:{v}" for k, v in START.items()
               if k not in ("event", "channel_variables")]
PLAIN_IN_CALL = ["DTMF_END digit:5", "MEDIA_MARK_PROCESSED 0:200", "MEDIA_XOFF", "MEDIA_XON",
                 "MEDIA_BUFFERING_COMPLETED", "QUEUE_DRAINED"]


def check(event: CarrierEvent, stream: AsteriskStream) -> None:
    """Each event is one the bridge can use as it is."""
    match event:
        case Started():
            assert event.inbound in FORMATS.values() and event.inbound == event.outbound
            assert event.call_id and event.call_id.isprintable() and " " not in event.call_id
            assert all(isinstance(v, str) for v in event.parameters.values())
            assert stream.caps.chunking.multiple == stream.frame_bytes > 0
        case Audio():
            assert 0 < len(event.payload) <= stream.max_payload
            assert len(event.payload) % stream.fmt.codec.sample_bytes == 0
        case Dtmf():
            assert len(event.digit) == 1
        case Played():
            assert event.name
        case Paused() | Resumed():
            pass
        case _:
            raise AssertionError(f"unexpected event {event!r}")


def feed(stream: AsteriskStream, frame: str | bytes) -> None:
    before = (stream.state, stream.call_id, stream.fmt, stream.dialect)
    try:
        events = stream.receive(frame)
    except CarrierProtocolError:
        assert (stream.state, stream.call_id, stream.fmt, stream.dialect) == before
        return
    for event in events:
        check(event, stream)


def started(dialect: str) -> AsteriskStream:
    stream = AsteriskStream()
    stream.receive(json.dumps(START) if dialect == "json"
                   else "MEDIA_START " + " ".join(PLAIN_START))
    return stream


frames = st.text(max_size=200) | st.binary(max_size=2000)
dialects = st.sampled_from(["json", "plain"])


@given(frames)
def test_any_frame_on_a_new_stream(frame: str | bytes) -> None:
    feed(AsteriskStream(), frame)


@given(dialects, st.lists(frames, max_size=5))
def test_any_frames_during_a_call(dialect: str, sent: list[str | bytes]) -> None:
    stream = started(dialect)
    for frame in sent:
        feed(stream, frame)
        assert stream.state is StreamState.STARTED


@given(mutated([START]))
def test_mutated_json_starts(msg: Any) -> None:
    feed(AsteriskStream(), json.dumps(msg))


@given(mutated(IN_CALL))
def test_mutated_json_events(msg: Any) -> None:
    feed(started("json"), json.dumps(msg))


@given(st.lists(st.sampled_from(PLAIN_START) | st.text(max_size=20), max_size=8))
def test_plain_starts_with_words_dropped_duplicated_or_rewritten(words: list[str]) -> None:
    feed(AsteriskStream(), "MEDIA_START " + " ".join(words))


@given(st.sampled_from(PLAIN_IN_CALL), st.text(max_size=30))
def test_plain_events_with_anything_after_them(message: str, tail: str) -> None:
    feed(started("plain"), f"{message} {tail}")


@given(st.sampled_from(IN_CALL), st.dictionaries(unknown_names, json_values, min_size=1,
                                                 max_size=3))
def test_unknown_fields_change_nothing(msg: dict[str, Any], extra: dict[str, Any]) -> None:
    plain = started("json").receive(json.dumps(msg))
    assert started("json").receive(json.dumps({**msg, **extra})) == plain
