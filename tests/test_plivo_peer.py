"""Plivo's side of a call in the rig: what it sends is what the gateway's core takes, and it
refuses what Plivo would refuse."""

from __future__ import annotations

import json
import urllib.parse

import pytest

from gateway.carriers.core import (
    TOKEN_PARAMETER,
    Audio,
    CarrierProtocolError,
    Cleared,
    Dtmf,
    Played,
    Started,
)
from gateway.carriers.hooks import StreamPlan, Verdict, WebhookRequest
from gateway.carriers.plivo import ContentType, PlivoStream
from gateway.carriers.plivo_hooks import PlivoHooks, PlivoSignature, stream_xml
from gateway.rig.peers import OutClear, OutMark, OutMedia
from gateway.rig.peers.plivo import PlivoPeer

SECRET = "peer-secret-0123456789"
PARAMS = {"From": "+14155551234", "To": "14155555678", TOKEN_PARAMETER: "1.2.3"}
PLAN = StreamPlan("wss://gw.example.com/plivo/media", PARAMS)


def test_the_peers_messages_are_what_the_core_takes() -> None:
    peer, core = PlivoPeer(custom_parameters={"From": "+1"}), PlivoStream()
    peer.stream_target(stream_xml(PLAN))
    [start] = core.receive(peer.opening()[0])
    assert isinstance(start, Started)
    assert (start.call_id, start.stream_id) == (peer.call_uuid, peer.stream_id)
    assert start.parameters == PARAMS  # the answer's, over the peer's own From
    assert core.receive(peer.media(b"\x01\x00" * 320)) == (Audio(b"\x01\x00" * 320),)
    assert peer.timestamp_ms == 20
    assert core.receive(peer.dtmf("7")[0]) == (Dtmf("7"),)
    assert core.receive(peer.played("0:200")[0]) == (Played("0:200"),)
    assert core.receive(peer.cleared()[0]) == (Cleared(),)
    assert peer.hang_up() == []  # Plivo just closes the socket
    assert not peer.echo_marks_on_clear


def test_an_edited_token_is_what_the_stream_carries() -> None:
    peer = PlivoPeer()
    peer.stream_target(stream_xml(PLAN))
    peer.custom_parameters[TOKEN_PARAMETER] = "forged"
    [start] = PlivoStream().receive(peer.opening()[0])
    assert isinstance(start, Started) and start.parameters[TOKEN_PARAMETER] == "forged"


def test_the_peers_requests_are_signed_as_the_gateway_checks() -> None:
    peer = PlivoPeer(custom_parameters=PARAMS)
    url = "https://gw.example.com/plivo/answer"
    hook = peer.webhook(url, SECRET)
    form = tuple(urllib.parse.parse_qsl(hook.body.decode(), keep_blank_values=True))
    request = WebhookRequest("POST", (url,), hook.headers, form=form)
    assert PlivoSignature(SECRET).verify(request) is Verdict.VALID
    assert PlivoHooks().call_info(request).call_id == peer.call_uuid
    socket = "wss://gw.example.com/plivo/media"
    upgrade = WebhookRequest("GET", (socket,), peer.upgrade_headers(socket, SECRET))
    assert PlivoSignature(SECRET, upgrade=True).verify(upgrade) is Verdict.VALID
    assert peer.upgrade_headers(socket, None) == {}


def test_the_peer_parses_what_the_gateway_sends() -> None:
    peer, core = PlivoPeer(), PlivoStream()
    core.receive(peer.start())
    assert peer.receive(core.play(b"\x01\x02")) == OutMedia(b"\x01\x02")
    assert peer.receive(core.mark("t1")) == OutMark("t1")
    assert peer.receive(core.clear()) == OutClear()


@pytest.mark.parametrize("bad", [
    {"event": "playAudio", "media": {"contentType": "audio/x-mulaw", "sampleRate": 16000,
                                     "payload": "AAA="}},
    {"event": "playAudio", "media": {"contentType": "audio/x-l16", "sampleRate": 8000,
                                     "payload": "AAA="}},
    {"event": "playAudio", "media": {"contentType": "audio/x-l16", "sampleRate": 16000,
                                     "payload": "AA=="}},  # half a sample
    {"event": "playAudio", "media": {"contentType": "audio/x-l16", "sampleRate": 16000,
                                     "payload": "UklGRg=="}},  # a WAV header
    {"event": "checkpoint", "streamId": "another", "name": "x"},
    {"event": "checkpoint", "name": "x"},
    {"event": "clearAudio", "streamId": "another"},
    {"event": "media", "media": {"payload": "AAA="}},
])
def test_the_peer_refuses_what_plivo_would(bad: dict[str, object]) -> None:
    with pytest.raises(CarrierProtocolError):
        PlivoPeer().receive(json.dumps(bad))
    with pytest.raises(CarrierProtocolError):
        PlivoPeer().receive(b"binary")


@pytest.mark.parametrize("document", [
    stream_xml(PLAN, ContentType.MULAW_8K),  # not this phone's audio
    stream_xml(PLAN).replace('bidirectional="true" ', ""),
    stream_xml(PLAN).replace("wss://", "https://"),
    stream_xml(PLAN).replace('extraHeaders="voicegw=', 'extraHeaders="voice_gw='),
    '<Response><Speak>hello</Speak></Response>',
])
def test_the_peer_refuses_an_answer_plivo_would_not_stream(document: str) -> None:
    with pytest.raises(CarrierProtocolError):
        PlivoPeer().stream_target(document)
