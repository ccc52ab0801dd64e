"""Telnyx's webhooks: Ed25519 signatures checked against the official SDK's verifier (and
signed independently with PyNaCl), the TeXML answer parsed back, and the setup from the
environment."""

from __future__ import annotations

import base64
import time
import urllib.parse
from typing import Any
from xml.etree import ElementTree

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict
from nacl.signing import SigningKey
from telnyx.lib.webhook_verification import WebhookVerificationError, verify_webhook_signature

from gateway.carrier_setup import all_setups
from gateway.carrier_setup.telnyx import audio_format, from_env
from gateway.carriers.core import TOKEN_PARAMETER, Carrier, CarrierProtocolError
from gateway.carriers.hooks import BUSY_TEXT, CallInfo, StreamPlan, Verdict, WebhookError
from gateway.carriers.hooks import WebhookRequest as Request
from gateway.carriers.telnyx import FORMATS, TelnyxStream
from gateway.carriers.telnyx_hooks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    TelnyxHooks,
    TelnyxSignature,
    public_key,
)
from gateway.errors import ConfigError
from gateway.log import scrub
from gateway.rest.telnyx import TelnyxRest
from gateway.rig.peers import registry
from gateway.rig.peers.telnyx import TelnyxPeer, new_key_pair, sign

SEED = bytes(range(32))
TELNYX = SigningKey(SEED)  # stands in for Telnyx's signing key
PUBLIC = base64.b64encode(bytes(TELNYX.verify_key)).decode()
OTHER = SigningKey(bytes(range(1, 33)))
CALL = "v3:9X2vxPDFY2RHSJ1EdMS0RHRksMTg7ldNxdjWbVr9zBjbGjGsSe-aiQ"
BODY = urllib.parse.urlencode({
    "AccountSid": "f5586561-8ff0-4291-a51b-c7dfe4139ff9", "CallSid": CALL,
    "CallStatus": "ringing", "From": "+35319605860", "To": "+13129457420"}).encode()


def nacl_headers(body: bytes, timestamp: str, key: SigningKey = TELNYX) -> dict[str, str]:
    """Headers signed as Telnyx signs, by PyNaCl rather than the code under test."""
    signature = key.sign(timestamp.encode() + b"|" + body).signature
    return {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: base64.b64encode(signature).decode()}


def request(headers: dict[str, str], body: bytes = BODY, now: float | None = None) -> Request:
    return Request(method="POST", urls=("https://gw.example.com/telnyx/answer",),
                   headers=headers, body=body, now=time.time() if now is None else now)


def sdk_accepts(body: bytes, headers: dict[str, str], key: str = PUBLIC) -> bool:
    try:
        verify_webhook_signature(body, headers, key)
    except WebhookVerificationError:
        return False
    return True


CHECK = TelnyxSignature(public_key(PUBLIC))


# -- signatures -------------------------------------------------------------------------------


def test_a_webhook_telnyx_signed_is_valid() -> None:
    headers = nacl_headers(BODY, str(int(time.time())))
    assert sdk_accepts(BODY, headers)
    assert CHECK.verify(request(headers)) is Verdict.VALID


@given(body=st.text(max_size=200).map(str.encode),
       offset=st.integers(-900, 900).filter(lambda d: not 295 <= abs(d) <= 305),
       signer=st.sampled_from(["telnyx", "other"]),
       tamper=st.sampled_from(["none", "body", "timestamp", "signature"]))
def test_the_verdict_agrees_with_telnyx_sdk(body: bytes, offset: int, signer: str,
                                           tamper: str) -> None:
    now = int(time.time())
    headers = nacl_headers(body, str(now + offset), TELNYX if signer == "telnyx" else OTHER)
    if tamper == "body":
        body += b"&Digits=1"
    elif tamper == "timestamp":
        headers[TIMESTAMP_HEADER] = str(now + offset + 1)
    elif tamper == "signature":
        raw = bytearray(base64.b64decode(headers[SIGNATURE_HEADER]))
        raw[7] ^= 0x40
        headers[SIGNATURE_HEADER] = base64.b64encode(raw).decode()
    verdict = CHECK.verify(request(headers, body, now=now))
    assert (verdict is Verdict.VALID) == sdk_accepts(body, headers)
    genuine = signer == "telnyx" and tamper == "none"
    if genuine and abs(offset) > 300:
        assert verdict is Verdict.STALE  # Telnyx's own signature, replayed
    elif not genuine:
        assert verdict is Verdict.INVALID


@pytest.mark.parametrize("offset", [-301, 301, -86400])
def test_a_replayed_or_future_dated_webhook_is_stale(offset: int) -> None:
    now = int(time.time())
    headers = nacl_headers(BODY, str(now + offset))
    with pytest.raises(WebhookVerificationError, match="too old or too new"):
        verify_webhook_signature(BODY, headers, PUBLIC)
    assert CHECK.verify(request(headers, now=now)) is Verdict.STALE
    assert CHECK.verify(request(headers, now=now + offset)) is Verdict.VALID  # in its time


def test_missing_and_malformed_headers() -> None:
    good = nacl_headers(BODY, str(int(time.time())))
    assert CHECK.verify(request({})) is Verdict.MISSING
    assert CHECK.verify(request({TIMESTAMP_HEADER: good[TIMESTAMP_HEADER]})) is Verdict.MISSING
    no_time = {SIGNATURE_HEADER: good[SIGNATURE_HEADER]}
    assert not sdk_accepts(BODY, no_time)
    assert CHECK.verify(request(no_time)) is Verdict.INVALID
    for signature in ("not base64!", base64.b64encode(b"short").decode(), "é" * 88):
        headers = {**good, SIGNATURE_HEADER: signature}
        assert CHECK.verify(request(headers)) is Verdict.INVALID
    # int() would read these as the same time; Telnyx sends digits, and so must a signer.
    for stamp in ("+" + good[TIMESTAMP_HEADER], " " + good[TIMESTAMP_HEADER], "1e9", ""):
        headers = nacl_headers(BODY, stamp)
        assert CHECK.verify(request(headers)) is Verdict.INVALID


def test_case_of_header_names_does_not_matter() -> None:
    good = nacl_headers(BODY, str(int(time.time())))
    shouted = CIMultiDict({k.title(): v for k, v in good.items()})
    assert CHECK.verify(request(shouted)) is Verdict.VALID  # type: ignore[arg-type]


def test_the_public_key_is_checked_at_start_up() -> None:
    with pytest.raises(ConfigError, match="not base64"):
        public_key("not a key!")
    with pytest.raises(ConfigError, match="31 bytes"):
        public_key(base64.b64encode(bytes(31)).decode())
    assert public_key(f"  {PUBLIC}\n")  # as pasted from the portal


def test_the_peer_signs_as_telnyx_does() -> None:
    public, private = new_key_pair()
    hook = TelnyxPeer().webhook("https://gw.example.com/telnyx/answer", private)
    headers = dict(hook.headers)
    assert sdk_accepts(hook.body, headers, public)
    assert TelnyxSignature(public_key(public)).verify(request(headers, hook.body)) \
        is Verdict.VALID
    assert sign(private, "1", b"x") != sign("not-the-key", "1", b"x")
    forged = TelnyxPeer().webhook("https://gw.example.com/telnyx/answer", "not-the-key")
    assert not sdk_accepts(forged.body, dict(forged.headers), public)
    env, secret = registry.test_credentials(Carrier.TELNYX)
    signed = TelnyxPeer().webhook("https://gw.example.com/telnyx/answer", secret)
    assert sdk_accepts(signed.body, dict(signed.headers), env["TELNYX_PUBLIC_KEY"])


# -- the answer --------------------------------------------------------------------------------


PLAN = StreamPlan("wss://gw.example.com/telnyx/media/desk?a=1&b=2",
                  {"From": "+15550100", "CallSid": "v3:abc", TOKEN_PARAMETER: 'x"<&>y'})


def _stream(document: str) -> ElementTree.Element:
    root = ElementTree.fromstring(document)
    assert root.tag == "Response"
    assert [c.tag for c in root] == ["Connect", "Hangup"]  # the call ends with the stream
    [stream] = root.findall("./Connect/Stream")
    return stream


def test_the_answer_streams_l16_both_ways_with_the_parameters() -> None:
    doc = TelnyxHooks().answer(CallInfo("v3:abc"), PLAN)
    assert doc.content_type == "text/xml"
    stream = _stream(doc.body)
    assert stream.attrib == {"url": PLAN.url, "bidirectionalMode": "rtp", "codec": "L16",
                             "bidirectionalCodec": "L16", "bidirectionalSamplingRate": "16000"}
    assert {p.get("name"): p.get("value") for p in stream.findall("Parameter")} == \
        dict(PLAN.parameters)


@pytest.mark.parametrize("name", ["PCMU", "PCMA"])
def test_a_g711_answer(name: str) -> None:
    stream = _stream(TelnyxHooks(FORMATS[name]).answer(CallInfo("v3:abc"), PLAN).body)
    assert (stream.get("codec"), stream.get("bidirectionalCodec"),
            stream.get("bidirectionalSamplingRate")) == (name, name, "8000")


def test_the_peer_takes_the_answer_and_refuses_what_telnyx_would() -> None:
    peer = TelnyxPeer(custom_parameters={"From": "+15550100"})
    target = peer.stream_target(TelnyxHooks().answer(CallInfo("v3:abc"), PLAN).body)
    assert target.url == PLAN.url and peer.custom_parameters[TOKEN_PARAMETER] == 'x"<&>y'
    with pytest.raises(CarrierProtocolError, match="PCMU/8000/PCMU"):
        peer.stream_target(TelnyxHooks(FORMATS["PCMU"]).answer(CallInfo("v3:abc"), PLAN).body)
    mp3 = TelnyxHooks().answer(CallInfo("v3:abc"), PLAN).body.replace('"rtp"', '"mp3"')
    with pytest.raises(CarrierProtocolError, match="rtp mode"):
        peer.stream_target(mp3)


def test_busy_says_so_and_hangs_up() -> None:
    root = ElementTree.fromstring(TelnyxHooks().busy().body)
    assert [(c.tag, c.text) for c in root] == [("Say", BUSY_TEXT), ("Hangup", None)]


def _webhook(**kw: Any) -> Request:
    return Request(method="POST", urls=("https://gw.example.com/telnyx/answer",), headers={},
                   **kw)


def test_call_info_reads_the_texml_fields() -> None:
    form = tuple(urllib.parse.parse_qsl(BODY.decode()))
    call = TelnyxHooks().call_info(_webhook(body=BODY, form=form))
    assert call == CallInfo(CALL, "+35319605860", "+13129457420",
                            {"From": "+35319605860", "To": "+13129457420", "CallSid": CALL})
    by_get = TelnyxHooks().call_info(_webhook(query=(("CallSid", "v3:q"),)))
    assert by_get.call_id == "v3:q" and by_get.caller is None
    with pytest.raises(WebhookError, match="CallSid"):
        TelnyxHooks().call_info(_webhook(form=(("From", "+1555"),)))
    assert TelnyxHooks.answer_methods == ("POST", "GET")


# -- setup -------------------------------------------------------------------------------------


def test_setup_from_the_environment() -> None:
    setup = from_env({"TELNYX_PUBLIC_KEY": PUBLIC, "TELNYX_API_KEY": "KEY-telnyx-secret-77"})
    assert setup.carrier is Carrier.TELNYX and setup.signed
    assert setup.verify_upgrade is None  # Telnyx signs no upgrade: the stream token guards it
    assert isinstance(setup.call_control, TelnyxRest)
    assert scrub("key KEY-telnyx-secret-77") == "key ***"
    stream = setup.new_stream()
    assert isinstance(stream, TelnyxStream) and stream.outbound == FORMATS["L16"]
    unsigned = from_env({"VOICEGW_TELNYX_CODEC": "pcmu"})
    assert unsigned.verify is None and unsigned.call_control is None
    assert unsigned.new_stream().caps.chunking.minimum == 160
    assert _stream(unsigned.hooks.answer(CallInfo("v3:abc"), PLAN).body).get("codec") == "PCMU"
    assert Carrier.TELNYX in all_setups({})


def test_setup_refuses_what_it_cannot_use() -> None:
    with pytest.raises(ConfigError, match="L16, PCMU, PCMA"):
        audio_format({"VOICEGW_TELNYX_CODEC": "G722"})
    with pytest.raises(ConfigError, match="TELNYX_PUBLIC_KEY"):
        from_env({"TELNYX_PUBLIC_KEY": "secret-ish-but-not-a-key"})
    assert audio_format({}) == FORMATS["L16"]
