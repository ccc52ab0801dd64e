"""The provider-side model: Twilio's inbound messages and its playback buffer."""

import json

import pytest

from gateway.carriers.core import Audio, CarrierProtocolError, Started, Stopped
from gateway.carriers.twilio import TwilioStream
from gateway.rig.peers import OutClear, OutMark, OutMedia, PlaybackBuffer
from gateway.rig.peers.twilio import TwilioPeer

SILENCE = b"\xff"


def test_peer_messages_are_accepted_by_the_gateway_core() -> None:
    peer = TwilioPeer("CA" + "1" * 32, "MZ" + "2" * 32, custom_parameters={"From": "+1555"})
    core = TwilioStream()
    [opening, start_frame] = peer.opening()
    assert core.receive(opening) == ()
    [start] = core.receive(start_frame)
    assert isinstance(start, Started)
    assert start.parameters == {"From": "+1555"}
    frames = [core.receive(peer.media(bytes([i]) * 160)) for i in range(3)]
    assert frames == [(Audio(bytes([i]) * 160),) for i in range(3)]
    assert [json.loads(peer.media(b"\x01" * 160))["media"]["timestamp"]] == ["60"]
    assert core.receive(peer.stop()) == (Stopped(),)
    # Twilio's counters are JSON strings.
    assert json.loads(peer.mark("x"))["sequenceNumber"] == "7"


def test_peer_parses_what_the_gateway_sends() -> None:
    core, peer = TwilioStream(), TwilioPeer("CA1", "MZ1")
    core.receive(peer.start())
    assert peer.receive(core.play(b"\x01\x02")) == OutMedia(b"\x01\x02")
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
    with pytest.raises(CarrierProtocolError):
        TwilioPeer("CA1", "MZ1").receive(bad)


def test_playback_plays_in_order_and_echoes_marks_when_reached() -> None:
    buf = PlaybackBuffer(max_bytes=8000 * 120, silence=SILENCE)
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
    buf = PlaybackBuffer(max_bytes=8000 * 120, silence=SILENCE)
    for name in ("m1", "m2"):
        buf.push_audio(b"\x01" * 400)
        buf.push_mark(name)
    buf.play(160)
    assert buf.clear() == ["m1", "m2"]
    assert not buf.playing
    assert buf.play(160).audio == b"\xff" * 160


def test_playback_is_bounded() -> None:
    buf = PlaybackBuffer(max_bytes=1000, silence=SILENCE)
    buf.push_audio(b"\x01" * 800)
    buf.push_audio(b"\x01" * 800)
    assert buf.queued_bytes == 1000
    assert buf.dropped_bytes == 600


def test_the_peer_answers_as_twilio_and_signs_what_it_sends() -> None:
    from twilio.request_validator import RequestValidator

    peer = TwilioPeer("CA" + "1" * 32, "MZ" + "2" * 32, custom_parameters={"From": "+1555"})
    request = peer.webhook("https://gw.example.com/twilio/answer", "tok")
    form = dict(pair.split("=") for pair in request.body.decode().split("&"))
    assert form["CallSid"] == peer.call_sid
    assert RequestValidator("tok").validate("https://gw.example.com/twilio/answer",
                                            {k: v.replace("%2B", "+") for k, v in form.items()},
                                            request.headers["X-Twilio-Signature"])
    target = peer.stream_target(
        '<?xml version="1.0"?><Response><Connect><Stream url="wss://gw/twilio/media">'
        '<Parameter name="voicegw_token" value="t1"/></Stream></Connect></Response>')
    assert target.url == "wss://gw/twilio/media"
    assert peer.custom_parameters == {"voicegw_token": "t1", "From": "+1555"}
    signature = peer.upgrade_headers(target.url, "tok")["X-Twilio-Signature"]
    assert RequestValidator("tok").validate(target.url, {}, signature)
