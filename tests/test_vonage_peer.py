"""The rig's Vonage peer: it speaks to the gateway's own core as Vonage does, and refuses what
Vonage would not take from a gateway."""

from __future__ import annotations

import json
import urllib.parse

import pytest
from multidict import CIMultiDict
from vonage_jwt.verify_jwt import verify_signature

from gateway.carriers.core import (
    TOKEN_PARAMETER,
    Audio,
    CarrierProtocolError,
    Cleared,
    Dtmf,
    Played,
    Started,
    WrongFrameType,
)
from gateway.carriers.hooks import StreamPlan, Verdict, WebhookRequest
from gateway.carriers.vonage import VonageStream
from gateway.carriers.vonage_hooks import VonageHooks, VonageSignature
from gateway.rig.peers import OutClear, OutMark, OutMedia
from gateway.rig.peers.vonage import VonagePeer

SECRET = "vonage-signature-secret-0123456789abcdef"
URL = "https://gw.example.com/vonage/answer"


def as_request(peer: VonagePeer, secret: str | None = SECRET) -> WebhookRequest:
    sent = peer.webhook(URL, secret)
    parts = urllib.parse.urlsplit(sent.url)
    return WebhookRequest(sent.method, (URL,), CIMultiDict(sent.headers), body=sent.body,
                          query=tuple(urllib.parse.parse_qsl(parts.query)), now=peer.clock())


def answered(peer: VonagePeer) -> VonageStream:
    """The peer's call answered by the gateway's hooks, its stream opened on the core."""
    hooks = VonageHooks()
    call = hooks.call_info(as_request(peer))
    doc = hooks.answer(call, StreamPlan("wss://gw.example.com/vonage/media",
                                        {**call.forwarded, TOKEN_PARAMETER: "tok"}))
    peer.stream_target(doc.body)
    stream = VonageStream()
    [frame] = peer.opening()
    [start] = stream.receive(frame)
    assert isinstance(start, Started)
    return stream


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_its_webhook_is_signed_as_vonage_signs(method: str) -> None:
    peer = VonagePeer({"From": "+15550100"}, method=method)
    request = as_request(peer)
    assert VonageSignature(SECRET).verify(request) is Verdict.VALID
    token = request.headers["Authorization"].removeprefix("Bearer ")
    assert verify_signature(token, SECRET) is True
    assert VonageSignature("x" * 40).verify(request) is Verdict.INVALID
    assert VonageSignature(SECRET).verify(as_request(peer, None)) is Verdict.MISSING
    call = VonageHooks().call_info(request)
    assert (call.call_id, call.caller) == (peer.call_uuid, "+15550100")


def test_a_whole_exchange_with_the_gateways_core() -> None:
    peer = VonagePeer({"From": "+15550100", "To": "+15550199"})
    stream = answered(peer)
    assert stream.call_id == peer.call_id == peer.call_uuid
    assert stream.receive(peer.media(b"\x00" * 640)) == (Audio(b"\x00" * 640),)
    [key] = peer.dtmf("9")
    assert stream.receive(key) == (Dtmf("9"),)
    assert peer.receive(stream.play(b"\x01" * 640)) == OutMedia(b"\x01" * 640)
    mark = peer.receive(stream.mark("0:200"))
    assert mark == OutMark("0:200")
    [played] = peer.played("0:200")
    assert stream.receive(played) == (Played("0:200"),)
    assert peer.receive(stream.clear()) == OutClear()
    [cleared] = peer.cleared()
    assert stream.receive(cleared) == (Cleared(),)
    assert peer.hang_up() == []  # a normal close, nothing said


def test_a_notify_echoes_its_own_payload_and_a_clear_drops_the_pending_ones() -> None:
    peer = VonagePeer()
    assert peer.receive(json.dumps({"action": "notify", "payload": {"k": "v"}})) == OutMark(
        '{"k": "v"}')
    [echo] = peer.played('{"k": "v"}')
    assert json.loads(echo) == {"event": "websocket:notify", "payload": {"k": "v"}}
    peer.receive(json.dumps({"action": "notify", "payload": {"name": "m"}}))
    peer.cleared()
    assert peer._pending == {}
    assert peer.echo_marks_on_clear is False


def test_dialling_the_socket_directly_still_names_the_call() -> None:
    peer = VonagePeer({"From": "+15550100", "lang": "en"})
    [frame] = peer.opening()
    msg = json.loads(frame)
    assert msg["uuid"] == peer.call_uuid
    assert (msg["from"], msg["lang"]) == ("+15550100", "en")
    assert msg["content-type"] == "audio/l16;rate=16000"


@pytest.mark.parametrize(("frame", "error"), [
    (b"\x00" * 320, CarrierProtocolError),  # 10 ms: not a 20 ms frame at 16 kHz
    (b"\x00" * 1280, CarrierProtocolError),
    (b'{"action":"clear"}', WrongFrameType),  # control in a binary frame
    ("\x00\x01" * 320, WrongFrameType),  # audio in a text frame
    ("[]", CarrierProtocolError),
    (json.dumps({"action": "stream"}), CarrierProtocolError),
    (json.dumps({"event": "media"}), CarrierProtocolError),
    (json.dumps({"action": "notify", "payload": "x"}), CarrierProtocolError),
    (json.dumps({"action": "notify"}), CarrierProtocolError),
])
def test_what_vonage_would_not_take_is_refused(frame: str | bytes,
                                                error: type[Exception]) -> None:
    with pytest.raises(error):
        VonagePeer().receive(frame)


def test_a_binary_frame_of_the_wrong_kind_says_which() -> None:
    with pytest.raises(WrongFrameType) as info:
        VonagePeer().receive(b'{"action":"notify","payload":{}}')
    assert info.value.binary is True


@pytest.mark.parametrize("document", [
    "not json", "{}", "[]", json.dumps([{"action": "talk", "text": "hi"}]),
    json.dumps([{"action": "connect", "endpoint": [{"type": "phone", "number": "1"}]}]),
    json.dumps([{"action": "connect", "endpoint": [
        {"type": "websocket", "uri": "wss://x", "content-type": "audio/l16;rate=16000",
         "headers": {"n": 1}}]}]),
])
def test_an_answer_that_is_no_websocket_ncco_is_refused(document: str) -> None:
    with pytest.raises(CarrierProtocolError):
        VonagePeer().stream_target(document)


def test_the_ncco_rate_is_the_peers_rate() -> None:
    peer = VonagePeer()
    peer.stream_target(json.dumps([{"action": "connect", "endpoint": [
        {"type": "websocket", "uri": "wss://x", "content-type": "audio/l16;rate=8000",
         "headers": {"uuid": "u-1"}}]}]))
    assert peer.inbound.rate == peer.outbound.rate == 8000
    assert peer.call_id == "u-1"
    assert peer.receive(b"\x00" * 320) == OutMedia(b"\x00" * 320)
