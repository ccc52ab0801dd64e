"""The browser carrier's stream core and the talk page's rig peer, frame by frame."""

from __future__ import annotations

import json

import pytest

from gateway.audio import AudioFormat, Codec
from gateway.carriers.browser import (
    BrowserFormat,
    BrowserStream,
    monitor_message,
    started_message,
)
from gateway.carriers.core import (
    Audio,
    CarrierProtocolError,
    Dtmf,
    EventRole,
    OutOfOrder,
    Played,
    SaysWhyItEnded,
    Started,
    Stopped,
    StreamState,
    UnknownEvent,
)
from gateway.ending import EndKind, EndReason
from gateway.faults import caller_fault_close
from gateway.rig.peers import OutClear, OutIgnored, OutMark, OutMedia
from gateway.rig.peers.browser import BrowserPeer

PCM16, MULAW = BrowserFormat.PCM16, BrowserFormat.MULAW8K


def started(fmt: BrowserFormat = PCM16) -> BrowserStream:
    stream = BrowserStream("BR1", fmt)
    stream.receive('{"event":"start"}')
    return stream


def test_the_start_names_the_gateways_call_in_the_format_the_url_chose() -> None:
    for fmt, inbound, outbound in ((PCM16, AudioFormat(Codec.L16, 16000),
                                    AudioFormat(Codec.L16, 24000)),
                                   (MULAW, AudioFormat(Codec.PCMU, 8000),
                                    AudioFormat(Codec.PCMU, 8000))):
        stream = BrowserStream("BR1", fmt)
        assert stream.call_id is None
        [event] = stream.receive('{"event":"start","x_future":1}')
        assert event == Started("BR1", "BR1", None, None, {}, inbound, outbound)
        assert stream.call_id == "BR1" and stream.state is StreamState.STARTED
    assert BrowserFormat.parse(None) is PCM16 and BrowserFormat.parse("mulaw8k") is MULAW
    with pytest.raises(ValueError, match="pcm16, mulaw8k"):
        BrowserFormat.parse("opus")


def test_in_call_messages_become_neutral_events() -> None:
    stream = started()
    assert stream.receive(bytes(640)) == (Audio(bytes(640)),)
    assert stream.receive('{"event":"mark","name":"0:200"}') == (Played("0:200"),)
    assert stream.receive('{"event":"dtmf","digit":"#"}') == (Dtmf("#"),)
    assert stream.receive('{"event":"stop"}') == (Stopped(),)
    assert stream.state is StreamState.STOPPED
    assert started(MULAW).receive(bytes(161)) == (Audio(bytes(161)),)  # one byte a sample


@pytest.mark.parametrize(("fmt", "frame", "why"), [
    (PCM16, "not json {", "JSON"),
    (PCM16, '["event"]', "not a JSON object"),
    (PCM16, '{"event":5}', "not a string"),
    (PCM16, b"", "empty audio"),
    (PCM16, bytes(641), "whole 16-bit samples"),
    (PCM16, bytes(6402), "larger than 6400"),  # 200 ms at 16 kHz
    (MULAW, bytes(1602), "larger than 1600"),
    (PCM16, '{"event":"mark","name":""}', "1..256"),
    (PCM16, '{"event":"mark"}', "not a string"),
    (PCM16, '{"event":"dtmf","digit":"55"}', "keypad"),
])
def test_broken_frames_raise_and_leave_the_stream_as_it_was(
        fmt: BrowserFormat, frame: str | bytes, why: str) -> None:
    stream = started(fmt)
    with pytest.raises(CarrierProtocolError, match=why) as raised:
        stream.receive(frame)
    assert stream.state is StreamState.STARTED
    assert caller_fault_close(raised.value, 1, 50) is None  # dropped and counted


def test_order_is_enforced_by_the_table() -> None:
    fresh = BrowserStream("BR1")
    for frame in (bytes(640), '{"event":"mark","name":"a"}', '{"event":"dtmf","digit":"1"}'):
        with pytest.raises(OutOfOrder):
            fresh.receive(frame)
    with pytest.raises(OutOfOrder) as stop:
        fresh.receive('{"event":"stop"}')
    assert caller_fault_close(stop.value, 1, 50) == (1000, "stop before start")
    with pytest.raises(OutOfOrder) as again:
        started().receive('{"event":"start"}')
    assert again.value.role is EventRole.OPENS
    assert caller_fault_close(again.value, 1, 50) == (1008, "second start on one stream")
    with pytest.raises(UnknownEvent):
        started().receive('{"event":"x_new"}')


def test_what_the_gateway_sends() -> None:
    with pytest.raises(CarrierProtocolError):
        BrowserStream("BR1").play(bytes(2))
    stream = started()
    assert stream.play(b"\x01\x02") == b"\x01\x02"  # untouched, any whole length
    assert json.loads(stream.mark("0:200")) == {"event": "mark", "name": "0:200"}
    assert json.loads(stream.clear()) == {"event": "clear"}
    assert isinstance(stream, SaysWhyItEnded)
    ended = stream.ended(EndReason(EndKind.AGENT_ENDED, "agent ended the call: bye"))
    assert json.loads(ended) == {"event": "ended", "end_kind": "agent_ended",
                                 "end_reason": "agent ended the call: bye"}
    assert stream.state is StreamState.STOPPED  # nothing after it
    assert json.loads(started_message("BR1", "desk", MULAW)) == {
        "event": "started", "call_id": "BR1", "agent": "desk",
        "format": {"encoding": "mulaw", "sample_rate": 8000}}
    assert json.loads(monitor_message({"type": "lagged"})) == {
        "event": "monitor", "data": {"type": "lagged"}}


def test_the_peer_speaks_as_the_page_and_refuses_what_the_page_would() -> None:
    peer = BrowserPeer(fmt=MULAW, agent="desk")
    assert peer.media_url("ws://h/browser/media?x=1") == \
        "ws://h/browser/media/desk?x=1&format=mulaw8k"
    assert peer.media_url("ws://h/browser/media/other") == \
        "ws://h/browser/media/other?format=mulaw8k"
    assert peer.upgrade_headers("ws://h", "tok") == {"Authorization": "Bearer tok"}
    assert peer.opening() == ['{"event":"start"}']
    assert peer.hang_up() == ['{"event":"stop"}']
    with pytest.raises(CarrierProtocolError, match="before started"):
        peer.receive(bytes(160))
    with pytest.raises(CarrierProtocolError, match="format"):
        BrowserPeer().receive(started_message("BR1", "desk", MULAW))
    assert isinstance(peer.receive(started_message("BR1", "desk", MULAW)), OutIgnored)
    assert peer.call_id == "BR1"
    assert peer.receive(bytes(160)) == OutMedia(bytes(160))
    assert peer.receive('{"event":"mark","name":"0:200"}') == OutMark("0:200")
    assert peer.receive('{"event":"clear"}') == OutClear()
    assert isinstance(peer.receive(monitor_message({"type": "call"})), OutIgnored)
    assert peer.monitor == [{"type": "call"}]
    for bad in ("not json", '{"event":"play"}', '{"event":"monitor","data":1}'):
        with pytest.raises(CarrierProtocolError):
            peer.receive(bad)
    with pytest.raises(CarrierProtocolError, match="whole samples"):
        _pcm_peer().receive(bytes(3))
    peer.receive('{"event":"ended","end_kind":"agent_ended","end_reason":"bye"}')
    with pytest.raises(CarrierProtocolError, match="after ended"):
        peer.receive(bytes(160))


def _pcm_peer() -> BrowserPeer:
    peer = BrowserPeer()
    peer.receive(started_message("BR2", "assistant", PCM16))
    return peer
