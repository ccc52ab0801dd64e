"""The rig's jambonz peer: it speaks to the gateway's own core as jambonz does, and refuses
what jambonz would not take from a gateway."""

from __future__ import annotations

import json

import pytest
from multidict import CIMultiDict

from gateway.carriers.basic_auth import BasicAuthCheck
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
from gateway.carriers.jambonz import JambonzStream
from gateway.carriers.jambonz_hooks import JambonzHooks, JambonzSignature, WsAuth
from gateway.rig.peers import OutClear, OutMark, OutMedia
from gateway.rig.peers.jambonz import JambonzPeer

SECRET = "jambonz-webhook-secret-0123456789abcdef"
URL = "https://gw.example.com/jambonz/answer"


def as_request(peer: JambonzPeer, secret: str | None = SECRET) -> WebhookRequest:
    sent = peer.webhook(URL, secret)
    return WebhookRequest(sent.method, (URL,), CIMultiDict(sent.headers), body=sent.body,
                          now=peer.clock())


def answered(peer: JambonzPeer, hooks: JambonzHooks | None = None) -> JambonzStream:
    """The peer's call answered by the gateway's hooks, its stream opened on the core."""
    hooks = hooks or JambonzHooks()
    call = hooks.call_info(as_request(peer))
    doc = hooks.answer(call, StreamPlan("wss://gw.example.com/jambonz/media",
                                        {**call.forwarded, TOKEN_PARAMETER: "tok"}))
    peer.stream_target(doc.body)
    stream = JambonzStream()
    [frame] = peer.opening()
    [start] = stream.receive(frame)
    assert isinstance(start, Started)
    assert start.parameters[TOKEN_PARAMETER] == "tok"
    return stream


def test_its_webhook_is_signed_as_jambonz_signs() -> None:
    peer = JambonzPeer({"From": "+15550100"})
    request = as_request(peer)
    assert JambonzSignature(SECRET).verify(request) is Verdict.VALID
    assert JambonzSignature("x" * 40).verify(request) is Verdict.INVALID
    assert JambonzSignature(SECRET).verify(as_request(peer, None)) is Verdict.MISSING
    call = JambonzHooks().call_info(request)
    assert (call.call_id, call.caller) == (peer.call_sid, "+15550100")


def test_a_whole_exchange_with_the_gateways_core() -> None:
    peer = JambonzPeer({"From": "+15550100", "To": "+15550199"})
    stream = answered(peer)
    assert stream.call_id == peer.call_id == peer.call_sid
    assert peer.upgrade_headers(URL, SECRET) == {}  # no wsAuth in this answer
    assert stream.receive(peer.media(b"\x00" * 640)) == (Audio(b"\x00" * 640),)
    [key] = peer.dtmf("9")
    assert stream.receive(key) == (Dtmf("9"),)
    assert peer.receive(stream.play(b"\x01" * 640)) == OutMedia(b"\x01" * 640)
    assert peer.receive(stream.mark("0:200")) == OutMark("0:200")
    [played] = peer.played("0:200")
    assert stream.receive(played) == (Played("0:200"),)
    # A killAudio: the marks still waiting come back "cleared", never played.
    assert peer.receive(stream.mark("0:400")) == OutMark("0:400")
    assert peer.receive(stream.mark("0:600")) == OutMark("0:600")
    assert peer.receive(stream.clear()) == OutClear()
    cleared = peer.cleared()
    assert [json.loads(c)["data"] for c in cleared] == [
        {"name": "0:400", "event": "cleared"}, {"name": "0:600", "event": "cleared"}]
    assert [e for c in cleared for e in stream.receive(c)] == [Cleared(), Cleared()]
    assert peer.cleared() == []
    assert peer.hang_up() == []  # the socket's close, nothing said


def test_ws_auth_in_the_answer_is_sent_on_the_upgrade() -> None:
    peer = JambonzPeer()
    answered(peer, JambonzHooks(ws_auth=WsAuth("gw", "pw")))
    headers = CIMultiDict(peer.upgrade_headers(URL, None))
    upgrade = WebhookRequest("GET", (URL,), headers)
    assert BasicAuthCheck("gw", "pw").verify(upgrade) is Verdict.VALID


def test_dialling_the_socket_directly_still_names_the_call() -> None:
    peer = JambonzPeer({"From": "+15550100", "lang": "en"})
    [frame] = peer.opening()
    msg = json.loads(frame)
    assert (msg["callSid"], msg["from"], msg["sampleRate"]) == (peer.call_sid, "+15550100",
                                                                16000)
    assert msg["voicegw"] == {"From": "+15550100", "lang": "en"}


@pytest.mark.parametrize(("frame", "error"), [
    (b"\x00" * 320, CarrierProtocolError),  # 10 ms: not a 20 ms frame at 16 kHz
    (b'{"type":"killAudio"}', WrongFrameType),  # a command in a binary frame
    ("\x00\x01" * 320, WrongFrameType),  # audio in a text frame
    ("[]", WrongFrameType),
    (json.dumps({"type": "playAudio", "data": {}}), CarrierProtocolError),  # not streaming
    (json.dumps({"action": "clear"}), CarrierProtocolError),
    (json.dumps({"type": "mark", "data": {}}), CarrierProtocolError),
    (json.dumps({"type": "mark", "data": "m"}), CarrierProtocolError),
])
def test_what_jambonz_would_not_take_is_refused(frame: str | bytes,
                                                 error: type[Exception]) -> None:
    with pytest.raises(error):
        JambonzPeer().receive(frame)


def _listen(**fields: object) -> str:
    verb = {"verb": "listen", "url": "wss://x", "sampleRate": 16000, "mixType": "mono",
            "bidirectionalAudio": {"enabled": True, "streaming": True, "sampleRate": 16000},
            "metadata": {"voicegw": {"call_sid": "c-1"}}}
    verb.update(fields)
    return json.dumps([verb])


@pytest.mark.parametrize("document", [
    "not json", "{}", "[]", json.dumps([{"verb": "say", "text": "hi"}]),
    _listen(url=None), _listen(sampleRate=44100), _listen(mixType="stereo"),
    _listen(bidirectionalAudio={"enabled": True}),  # jambonz would send nothing back
    _listen(bidirectionalAudio={"enabled": True, "streaming": True, "sampleRate": 8000}),
    _listen(metadata={"voicegw": {"n": 1}}), _listen(wsAuth={"username": "u"}),
])
def test_an_answer_that_is_no_bidirectional_listen_is_refused(document: str) -> None:
    with pytest.raises(CarrierProtocolError):
        JambonzPeer().stream_target(document)


def test_the_verbs_rate_is_the_peers_rate() -> None:
    peer = JambonzPeer()
    peer.stream_target(_listen(sampleRate=8000, bidirectionalAudio={
        "enabled": True, "streaming": True, "sampleRate": 8000}))
    assert peer.inbound.rate == peer.outbound.rate == 8000
    assert peer.call_id == "c-1"
    assert peer.receive(b"\x00" * 320) == OutMedia(b"\x00" * 320)
