"""The rig's Asterisk: what it sends the gateway's core is what the core reads, in both control
dialects, and what it refuses is what Asterisk would not take."""

from __future__ import annotations

import base64
import json

import pytest

from gateway.carriers.asterisk import AsteriskStream, Dialect
from gateway.carriers.core import CarrierProtocolError, Dtmf, Paused, Played, Resumed, Started
from gateway.rig.peers import DialsDirect, OutClear, OutIgnored, OutMark, OutMedia
from gateway.rig.peers.asterisk import AsteriskPeer, basic_credentials


@pytest.mark.parametrize("dialect", list(Dialect))
def test_the_gateways_core_reads_what_the_peer_sends(dialect: Dialect) -> None:
    peer = AsteriskPeer({"From": "+15550100", "agent": "desk"}, format_name="slin16",
                        dialect=dialect, channel_variables={"LANG": "en"})
    stream = AsteriskStream(query=peer.custom_parameters)
    [start] = [e for m in peer.opening() for e in stream.receive(m)]
    assert isinstance(start, Started)
    assert start.call_id == peer.call_id and start.caller == "+15550100"
    assert start.inbound == peer.inbound
    expected = {"From": "+15550100", "agent": "desk"}
    if dialect is Dialect.JSON:
        expected["LANG"] = "en"  # channel variables travel only in JSON
    assert start.parameters == expected
    assert stream.dialect is dialect
    assert [e for m in peer.dtmf("9") for e in stream.receive(m)] == [Dtmf("9")]
    assert [e for m in peer.played("0:end") for e in stream.receive(m)] == [Played("0:end")]
    assert stream.receive(peer.xoff()) == (Paused(),)
    assert stream.receive(peer.xon()) == (Resumed(),)
    # ...and the peer reads what the core sends, in the stream's dialect.
    assert peer.receive(stream.mark("0:200")) == OutMark("0:200")
    assert peer.receive(stream.clear()) == OutClear()
    assert peer.receive(stream.hang_up()) == OutIgnored()
    assert peer.hangups == 1
    frame = b"\x00\x01" * 320
    assert peer.receive(stream.play(frame * 3)) == OutMedia(frame * 3)


def test_it_dials_the_socket_with_its_parameters_and_credentials() -> None:
    peer = AsteriskPeer({"From": "+15550100", "agent": "front desk"})
    assert isinstance(peer, DialsDirect)
    assert peer.media_url("ws://gw/asterisk/media?x=1") == (
        "ws://gw/asterisk/media?x=1&From=%2B15550100&agent=front+desk")
    assert AsteriskPeer().media_url("ws://gw/asterisk/media") == "ws://gw/asterisk/media"
    auth = peer.upgrade_headers("ws://gw/asterisk/media", "pbx:s3cret")["Authorization"]
    assert base64.b64decode(auth.removeprefix("Basic ")) == b"pbx:s3cret"
    assert basic_credentials("s3cret") == "Basic " + base64.b64encode(b"asterisk:s3cret").decode()
    assert peer.upgrade_headers("ws://gw/asterisk/media", None) == {}
    with pytest.raises(CarrierProtocolError):
        peer.webhook("http://gw/asterisk/answer", None)


@pytest.mark.parametrize(("dialect", "frame"), [
    (Dialect.PLAIN, b"\xff" * 100),  # not whole 160-byte frames
    (Dialect.PLAIN, b""),
    (Dialect.PLAIN, b"\xff" * 65600),  # over Asterisk's message limit
    (Dialect.PLAIN, '{"command":"FLUSH_MEDIA"}'),  # JSON on a plain-text stream
    (Dialect.JSON, "FLUSH_MEDIA"),  # plain text on a JSON stream
    (Dialect.JSON, '{"correlation_id":"a"}'),
    (Dialect.PLAIN, "MARK_MEDIA"),  # a mark without an id
    (Dialect.PLAIN, "flush_media"),  # commands are case-sensitive
    (Dialect.PLAIN, "MARK_MEDIA " + "x" * 130),  # over 128 bytes: Asterisk ignores it
])
def test_it_refuses_what_asterisk_would_not_take(dialect: Dialect, frame: str | bytes) -> None:
    with pytest.raises(CarrierProtocolError):
        AsteriskPeer(dialect=dialect).receive(frame)


def test_commands_that_change_nothing_it_plays_are_taken() -> None:
    peer = AsteriskPeer(dialect=Dialect.JSON)
    assert peer.receive(json.dumps({"command": "GET_STATUS"})) == OutIgnored()
    assert peer.receive(json.dumps({"command": "ANSWER"})) == OutIgnored()
