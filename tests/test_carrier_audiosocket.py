"""The AudioSocket core: its framing, its state table, each kind's checks, the routes a
dialplan registers, and the rig's Asterisk peer against the core."""

from __future__ import annotations

import uuid

import pytest

from gateway.audio import AudioFormat, Codec
from gateway.carriers.audiosocket import (
    HANGUP_FRAME,
    AudioSocketStream,
    FrameReader,
    Kind,
    Route,
    frame,
    read_uuid,
    uuid_frame,
)
from gateway.carriers.audiosocket_routes import RouteBook, canonical_uuid, route_from_fields
from gateway.carriers.core import (
    Audio,
    BadStart,
    CarrierProtocolError,
    Dtmf,
    FrameTooLarge,
    OutOfOrder,
    Started,
    Stopped,
    StreamState,
    UnknownEvent,
    UnsupportedMediaFormat,
)
from gateway.carriers.hooks import WebhookError, WebhookRequest
from gateway.rig.peers import OutIgnored, OutMedia
from gateway.rig.peers.audiosocket import AudioSocketPeer

CALL = uuid.UUID("a0b1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4d")
SILENCE = b"\x00\x00" * 160


def started(route: Route | None = None, kind: Kind = Kind.AUDIO) -> AudioSocketStream:
    stream = AudioSocketStream(route)
    assert stream.receive(uuid_frame(CALL)) == ()
    stream.receive(frame(kind, SILENCE if kind is Kind.AUDIO else SILENCE * 2))
    return stream


def test_a_call_starts_with_its_first_audio_which_says_the_rate() -> None:
    route = Route(agent="desk", caller="+15550100", callee="2001", parameters={"a": "1"})
    stream = AudioSocketStream(route)
    assert stream.receive(uuid_frame(CALL)) == ()
    assert stream.state is StreamState.CONNECTED and stream.call_id == str(CALL)
    start, audio = stream.receive(frame(Kind.AUDIO, SILENCE))
    assert isinstance(start, Started)
    assert (start.call_id, start.caller, start.callee) == (str(CALL), "+15550100", "2001")
    assert start.parameters == {"a": "1"}
    assert start.inbound == start.outbound == AudioFormat(Codec.L16, 8000)
    assert audio == Audio(SILENCE)
    assert stream.caps.chunking.multiple == stream.caps.chunking.maximum == 320
    assert not stream.caps.clear and not stream.caps.marks and stream.caps.stop_event


def test_a_16k_call_is_answered_in_its_own_kind() -> None:
    stream = started(kind=Kind.AUDIO_16K)
    assert stream.fmt == AudioFormat(Codec.L16, 16000)
    assert stream.play(SILENCE * 2)[:1] == bytes([Kind.AUDIO_16K])
    with pytest.raises(CarrierProtocolError, match="changed rate"):
        stream.receive(frame(Kind.AUDIO, SILENCE))


def test_a_digit_before_any_audio_starts_the_call_at_8k() -> None:
    stream = AudioSocketStream()
    stream.receive(uuid_frame(CALL))
    start, digit = stream.receive(frame(Kind.DTMF, b"#"))
    assert isinstance(start, Started) and start.inbound.rate == 8000
    assert digit == Dtmf("#")


@pytest.mark.parametrize(("payload", "stopped"), [
    (None, Stopped()), (b"\x01", Stopped()), (b"\x02", Stopped(fault="frame forwarding error")),
    (b"\x04", Stopped(fault="out of memory")), (b"\x09", Stopped(fault="unknown error")),
    (b"", Stopped(fault="unknown error"))])
def test_hang_up_and_errors_end_the_stream(payload: bytes | None, stopped: Stopped) -> None:
    stream = started()
    message = HANGUP_FRAME if payload is None else frame(Kind.ERROR, payload)
    assert stream.receive(message) == (stopped,)
    assert stream.state is StreamState.STOPPED
    with pytest.raises(OutOfOrder):
        stream.receive(frame(Kind.AUDIO, SILENCE))


@pytest.mark.parametrize(("message", "error"), [
    (frame(Kind.AUDIO, SILENCE), OutOfOrder),  # before the UUID
    (frame(Kind.DTMF, b"1"), OutOfOrder),
    (frame(Kind.UUID, b"short"), BadStart),
    ("text", CarrierProtocolError),
    (b"\x10\x00", CarrierProtocolError),  # shorter than a header
    (b"\x10\x00\x04\x00\x00", CarrierProtocolError),  # length says 4, has 2
    (frame(Kind(0x10), b"\x00" * 9000), FrameTooLarge),
    (frame(Kind.UUID, CALL.bytes)[:3] + b"\x00" * 15, CarrierProtocolError),
])
def test_what_cannot_open_a_stream_is_refused(message: str | bytes,
                                              error: type[Exception]) -> None:
    stream = AudioSocketStream()
    with pytest.raises(error):
        stream.receive(message)
    assert stream.state is StreamState.NEW


@pytest.mark.parametrize(("message", "error"), [
    (frame(Kind.AUDIO, b"\x00" * 3), CarrierProtocolError),  # half a sample
    (frame(Kind.DTMF, b"x"), CarrierProtocolError),
    (frame(Kind.DTMF, b"12"), CarrierProtocolError),
    (frame(Kind.DTMF, b"\xff"), CarrierProtocolError),
    (uuid_frame(CALL), OutOfOrder),  # a second UUID
    (bytes([0x42, 0, 0]), UnknownEvent),
])
def test_a_broken_message_mid_call_leaves_the_stream_as_it_was(
        message: bytes, error: type[Exception]) -> None:
    stream = started()
    with pytest.raises(error):
        stream.receive(message)
    assert stream.state is StreamState.STARTED
    assert stream.receive(frame(Kind.AUDIO, SILENCE)) == (Audio(SILENCE),)


def test_an_audio_kind_the_gateway_does_not_take_is_an_unsupported_format() -> None:
    stream = AudioSocketStream()
    stream.receive(uuid_frame(CALL))
    with pytest.raises(UnsupportedMediaFormat):
        stream.receive(bytes([0x16, 0, 2, 0, 0]))  # 48 kHz


def test_what_the_gateway_sends() -> None:
    stream = started()
    assert stream.play(SILENCE) == b"\x10\x01\x40" + SILENCE
    with pytest.raises(ValueError, match="320 bytes"):
        stream.play(SILENCE[:100])
    with pytest.raises(CarrierProtocolError):
        stream.clear()
    with pytest.raises(CarrierProtocolError):
        stream.mark("x")
    assert stream.hang_up() == b"\x00\x00\x00"
    with pytest.raises(CarrierProtocolError):
        AudioSocketStream().play(SILENCE)


def test_the_reader_cuts_a_byte_stream_into_messages_however_it_arrives() -> None:
    wire = uuid_frame(CALL) + frame(Kind.AUDIO, SILENCE) + frame(Kind.DTMF, b"5") + HANGUP_FRAME
    reader = FrameReader()
    got = [m for i in range(0, len(wire), 7) for m in reader.feed(wire[i:i + 7])]
    assert got == [uuid_frame(CALL), frame(Kind.AUDIO, SILENCE), frame(Kind.DTMF, b"5"),
                   HANGUP_FRAME]
    assert reader.pending == 0
    with pytest.raises(FrameTooLarge):
        FrameReader(max_payload=100).feed(b"\x10\x01\x00")  # refused from the header alone


def test_read_uuid_only_reads_a_uuid_message() -> None:
    assert read_uuid(uuid_frame(CALL)) == str(CALL)
    assert read_uuid(frame(Kind.AUDIO, b"\x00" * 16)) is None
    assert read_uuid(b"\x01\x00\x10") is None


# -- routes ----------------------------------------------------------------------------------


def registration(**fields: str) -> WebhookRequest:
    return WebhookRequest(method="POST", urls=("http://gw/audiosocket/calls",), headers={},
                          form=tuple(fields.items()), now=1000.0)


def test_a_registered_route_is_taken_once_within_its_time() -> None:
    book = RouteBook(ttl_s=60)
    book.hook(registration(uuid=str(CALL).upper(), agent="desk", **{"from": "+15550100"},
                           account="42"))
    assert book.take(str(CALL), 1001.0) == Route(agent="desk", caller="+15550100",
                                                 parameters={"account": "42"})
    assert book.take(str(CALL), 1001.0) is None
    book.hook(registration(uuid=str(CALL)))
    assert book.take(str(CALL), 1061.0) is None  # expired


def test_a_full_book_refuses_rather_than_forgets() -> None:
    book = RouteBook(max_routes=2)
    for _ in range(2):
        book.register(str(uuid.uuid4()), Route(), 0.0)
    with pytest.raises(WebhookError, match="too many"):
        book.register(str(uuid.uuid4()), Route(), 1.0)
    book.register(str(uuid.uuid4()), Route(), 200.0)  # the others expired meanwhile
    assert len(book) == 1


@pytest.mark.parametrize("fields", [
    {"uuid": "not-a-uuid"}, {"agent": "desk"},
    {"uuid": str(CALL), "agent": "../etc"},
    {"uuid": str(CALL), "bad name": "x"},
    {"uuid": str(CALL), "p": "x" * 300},
])
def test_a_registration_that_cannot_be_used_is_refused(fields: dict[str, str]) -> None:
    with pytest.raises(WebhookError):
        RouteBook().hook(registration(**fields))


def test_a_lookup_answer_may_nest_its_parameters() -> None:
    route = route_from_fields({"agent": "desk", "parameters": {"n": 1, "b": True}}, "lookup")
    assert route.parameters == {"n": "1", "b": "True"}
    with pytest.raises(WebhookError):
        route_from_fields({"parameters": [1]}, "lookup")
    assert canonical_uuid(" A0B1C2D3-E4F5-4A6B-8C7D-9E0F1A2B3C4D ") == str(CALL)


# -- the rig's Asterisk against the core -----------------------------------------------------


def test_the_peer_and_the_core_agree() -> None:
    peer = AudioSocketPeer({"From": "+15550100", "agent": "desk"}, call=CALL)
    stream = AudioSocketStream()
    events = [e for m in (*peer.opening(), peer.media(SILENCE), *peer.dtmf("7"))
              for e in stream.receive(m)]
    assert peer.receive(stream.play(SILENCE)) == OutMedia(SILENCE)
    events += [e for m in peer.hang_up() for e in stream.receive(m)]
    assert [type(e) for e in events] == [Started, Audio, Dtmf, Stopped]
    assert peer.receive(stream.hang_up()) == OutIgnored() and peer.hung_up_by_gateway
    with pytest.raises(CarrierProtocolError):
        peer.receive(frame(Kind.ERROR, b"\x02"))  # Asterisk takes only audio and hang-up
    request = peer.webhook("http://gw/audiosocket/calls", "pbx:pw")
    assert request.headers["Authorization"] == "Basic cGJ4OnB3"
