"""Fuzzing the AudioSocket parser: whatever bytes a peer sends, cut however TCP delivers them,
out come whole messages and neutral events or a :class:`CarrierProtocolError`, never another
exception.

Inputs are arbitrary bytes, and well-formed messages of every kind with arbitrary payloads.
The invariants are the bridge's: a rejected message leaves the stream as it was, every event
is well formed (audio of whole samples within bounds, a digit from the keypad, a start whose
call id is a UUID), and the reader never holds more than one message's worth of bytes.
"""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from gateway.carriers.audiosocket import (
    HEADER,
    AudioSocketStream,
    FrameReader,
    Kind,
    frame,
    uuid_frame,
)
from gateway.carriers.core import (
    KEYPAD,
    Audio,
    CarrierEvent,
    CarrierProtocolError,
    Dtmf,
    Started,
    Stopped,
    StreamState,
)

MAX = 4096
CALL = uuid.UUID("a0b1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4d")


def check(event: CarrierEvent, stream: AudioSocketStream) -> None:
    match event:
        case Started():
            assert str(uuid.UUID(event.call_id)) == event.call_id
            assert event.inbound == event.outbound and event.inbound.rate in (8000, 16000)
        case Audio():
            assert 0 < len(event.payload) <= stream.max_payload
            assert len(event.payload) % 2 == 0
        case Dtmf():
            assert event.digit in KEYPAD
        case Stopped():
            assert stream.state is StreamState.STOPPED
        case _:
            raise AssertionError(f"unexpected event {event!r}")


def feed(stream: AudioSocketStream, message: bytes) -> None:
    before = (stream.state, stream.call_id, stream.fmt, stream.kind)
    try:
        events = stream.receive(message)
    except CarrierProtocolError:
        assert (stream.state, stream.call_id, stream.fmt, stream.kind) == before
        return
    for event in events:
        check(event, stream)


# Well framed, of any kind (known or not) and any payload.
messages = st.builds(lambda kind, payload: HEADER.pack(kind, len(payload)) + payload,
                     st.integers(0, 255), st.binary(max_size=700))


@given(st.binary(max_size=3000), st.lists(st.integers(1, 64), min_size=1, max_size=20))
def test_any_bytes_cut_anyhow(data: bytes, cuts: list[int]) -> None:
    reader, stream = FrameReader(max_payload=MAX), AudioSocketStream(max_payload=MAX)
    at = 0
    try:
        for n in cuts * (len(data) // max(sum(cuts), 1) + 1):
            for message in reader.feed(data[at:at + n]):
                feed(stream, message)
            at += n
            assert reader.pending <= HEADER.size + MAX
    except CarrierProtocolError:
        return  # an oversized header: the socket is closed, nothing read


@given(st.lists(messages, max_size=8))
def test_any_messages_on_a_new_stream(batch: list[bytes]) -> None:
    stream = AudioSocketStream(max_payload=MAX)
    for message in batch:
        feed(stream, message)


@given(st.lists(messages, max_size=8))
def test_any_messages_during_a_call(batch: list[bytes]) -> None:
    stream = AudioSocketStream(max_payload=MAX)
    stream.receive(uuid_frame(CALL))
    stream.receive(frame(Kind.AUDIO, b"\x00\x00" * 160))
    for message in batch:
        feed(stream, message)
        assert stream.state in (StreamState.STARTED, StreamState.STOPPED)
