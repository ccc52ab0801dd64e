"""The provider-side model: Twilio's inbound messages and its playback buffer."""

import json

import pytest

from gateway.errors import TwilioProtocolError
from gateway.carriers.twilio import Media, Start, Stop, TwilioStream
from gateway.rig.peers.twilio import OutClear, OutMark, OutMedia, PlaybackBuffer, TwilioPeer


def test_peer_messages_are_accepted_by_the_gateway_core() -> None:
    peer = TwilioPeer("CA" + "1" * 32, "MZ" + "2" * 32, custom_parameters={"From": "+1555"})
    core = TwilioStream()
    core.receive(peer.connected())
    start = core.receive(peer.start())
    assert isinstance(start, Start)
    assert start.custom_parameters == {"From": "+1555"}
    frames = [core.receive(peer.media(bytes([i]) * 160)) for i in range(3)]
    assert all(isinstance(f, Media) for f in frames)
    assert [f.timestamp_ms for f in frames if isinstance(f, Media)] == [0, 20, 40]
    assert [f.chunk for f in frames if isinstance(f, Media)] == [1, 2, 3]
    assert isinstance(core.receive(peer.stop()), Stop)
    # Twilio's counters are JSON strings.
    assert json.loads(peer.mark("x"))["sequenceNumber"] == "6"


def test_peer_parses_what_the_gateway_sends() -> None:
    core, peer = TwilioStream(), TwilioPeer("CA1", "MZ1")
    core.receive(peer.start())
    assert peer.receive(core.media(b"\x01\x02")) == OutMedia(b"\x01\x02")
    assert peer.receive(core.mark("t1")) == OutMark("t1")
    assert peer.receive(core.clear()) == OutClear()


@pytest.mark.parametrize("bad", [
    '{"event":"media","streamSid":"MZ1","media":{"payload":"UklGRg=="}}',  # WAV header
    '{"event":"media","streamSid":"MZ1","media":{}}',
    '{"event":"play","streamSid":"MZ1"}',
    '{"event":"clear","streamSid":"MZother"}',
    "not json",
])
def test_peer_rejects_what_twilio_would_reject(bad: str) -> None:
    with pytest.raises(TwilioProtocolError):
        TwilioPeer("CA1", "MZ1").receive(bad)


def test_playback_plays_in_order_and_echoes_marks_when_reached() -> None:
    buf = PlaybackBuffer()
    buf.push_audio(b"\x01" * 200)
    assert buf.push_mark("a") == []
    buf.push_audio(b"\x02" * 100)
    first = buf.play(160)
    assert first.audio == b"\x01" * 160 and first.marks == [] and first.had_audio
    second = buf.play(160)
    assert second.audio == b"\x01" * 40 + b"\x02" * 100 + b"\xff" * 20
    assert second.marks == ["a"] and second.underrun
    idle = buf.play(160)
    assert idle.audio == b"\xff" * 160 and not idle.had_audio
    # A mark with nothing queued ahead of it has already "played".
    assert buf.push_mark("b") == ["b"]


def test_clear_drops_audio_and_echoes_every_pending_mark() -> None:
    buf = PlaybackBuffer()
    for name in ("m1", "m2"):
        buf.push_audio(b"\x01" * 400)
        buf.push_mark(name)
    buf.play(160)
    assert buf.clear() == ["m1", "m2"]
    assert not buf.playing
    assert buf.play(160).audio == b"\xff" * 160


def test_playback_is_bounded() -> None:
    buf = PlaybackBuffer(max_bytes=1000)
    buf.push_audio(b"\x01" * 800)
    buf.push_audio(b"\x01" * 800)
    assert buf.queued_bytes == 1000
    assert buf.dropped_bytes == 600
