"""Exotel's side of a call in the rig: what it sends is what the gateway's core takes, its
requests carry what the gateway checks, and it refuses what Exotel would refuse (or play
badly)."""

from __future__ import annotations

import base64
import json
import urllib.parse

import pytest

from gateway.carriers.basic_auth import BasicAuthCheck
from gateway.carriers.core import (
    TOKEN_PARAMETER,
    Audio,
    CarrierProtocolError,
    Dtmf,
    Played,
    Started,
    Stopped,
)
from gateway.carriers.exotel import ExotelStream
from gateway.carriers.exotel_hooks import ExotelHooks
from gateway.carriers.hooks import StreamPlan, Verdict, WebhookRequest
from gateway.rig.peers import OutClear, OutMark, OutMedia
from gateway.rig.peers.exotel import ExotelPeer

USER, PASSWORD = "voicegw", "peer-password-0123"
PLAN = StreamPlan("wss://gw.example.com/exotel/media", {TOKEN_PARAMETER: "1.2.3"})
CHECK = BasicAuthCheck(USER, PASSWORD)


def answered(peer: ExotelPeer) -> str:
    doc = ExotelHooks((USER, PASSWORD)).answer(ExotelHooks().call_info(
        WebhookRequest("GET", (), {}, query=(("CallSid", peer.call_sid),))), PLAN)
    return peer.stream_target(doc.body).url


def test_the_peers_messages_are_what_the_core_takes() -> None:
    peer, core = ExotelPeer(custom_parameters={"From": "+1", "To": "+2", "k": "v"}), \
        ExotelStream()
    answered(peer)
    [connected, opening] = peer.opening()
    assert core.receive(connected) == ()
    [start] = core.receive(opening)
    assert isinstance(start, Started)
    assert (start.call_id, start.stream_id, start.caller, start.callee) == \
        (peer.call_sid, peer.stream_sid, "+1", "+2")
    assert start.parameters == {TOKEN_PARAMETER: "1.2.3", "k": "v"}
    audio = b"\x01\x00" * 1600  # 100 ms at 16 kHz, as Exotel sends
    assert core.receive(peer.media(audio)) == (Audio(audio),)
    assert peer.timestamp_ms == 100
    assert core.receive(peer.dtmf("7")[0]) == (Dtmf("7"),)
    assert core.receive(peer.played("m1")[0]) == (Played("m1"),)
    assert peer.cleared() == [] and not peer.echo_marks_on_clear
    assert core.receive(peer.hang_up()[0]) == (Stopped(),)


def test_the_peers_requests_carry_the_credentials_the_gateway_checks() -> None:
    peer = ExotelPeer()
    hook = peer.webhook("https://gw.example.com/exotel/answer", f"{USER}:{PASSWORD}")
    query = tuple(urllib.parse.parse_qsl(urllib.parse.urlsplit(hook.url).query))
    assert ("CallSid", peer.call_sid) in query and hook.method == "GET"
    assert CHECK.verify(WebhookRequest("GET", (hook.url,), hook.headers, query=query)) is \
        Verdict.VALID
    # On the upgrade, what the answer's URL carries in its userinfo.
    headers = peer.upgrade_headers(answered(peer), None)
    assert CHECK.verify(WebhookRequest("GET", (), headers)) is Verdict.VALID
    assert peer.upgrade_headers("wss://gw.example.com/exotel/media", None) == {}


@pytest.mark.parametrize("document", [
    "not json", json.dumps({"url": "https://gw/exotel/media"}), json.dumps(["wss://x"]),
    json.dumps({"url": "wss://gw/m?a=1&b=2&c=3&d=4"}),
    json.dumps({"url": "wss://gw/m?sample-rate=16000&x=" + "y" * 300}),
    json.dumps({"url": "wss://gw/m?sample-rate=8000"}),  # not this phone's rate
    json.dumps({"url": "wss://gw/m"}),  # Exotel's default: 8 kHz
])
def test_answers_exotel_would_refuse(document: str) -> None:
    with pytest.raises(CarrierProtocolError):
        ExotelPeer().stream_target(document)


def test_what_the_gateway_sends_is_checked_as_exotel_plays_it() -> None:
    peer = ExotelPeer()
    core = ExotelStream()
    core.receive(peer.opening()[1])
    assert peer.receive(core.play(b"\x00" * 3200)) == OutMedia(b"\x00" * 3200)
    assert peer.receive(core.mark("m")) == OutMark("m")
    assert peer.receive(core.clear()) == OutClear()
    for size in (320, 3210, 100_160):  # too small, not whole 320s, too large
        with pytest.raises(CarrierProtocolError, match="3200 to 100000"):
            peer.receive(core.play(b"\x00" * size))
    wav = b"RIFF" + b"\x00" * 3196
    with pytest.raises(CarrierProtocolError, match="WAV"):
        peer.receive(core.play(wav))
    other = json.dumps({"event": "clear", "stream_sid": "MZother"})
    with pytest.raises(CarrierProtocolError, match="stream_sid"):
        peer.receive(other)
    with pytest.raises(CarrierProtocolError, match="not one Exotel accepts"):
        peer.receive(json.dumps({"event": "playAudio", "stream_sid": peer.stream_sid}))
    bad = json.dumps({"event": "media", "stream_sid": peer.stream_sid,
                      "media": {"payload": base64.b64encode(b"x").decode() + "!"}})
    with pytest.raises(CarrierProtocolError, match="base64"):
        peer.receive(bad)
