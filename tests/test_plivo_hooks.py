"""Plivo's webhooks: V3 signatures checked against Plivo's own SDK, the answer XML read back
(and compared with what Plivo's XML builder makes), transfer links, and the set-up.

The oracle is ``plivo.utils.signature_v3.validate_v3_signature`` from the official ``plivo``
package: these tests check that the gateway agrees with Plivo, not with itself.
"""

from __future__ import annotations

import urllib.parse
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from plivo import plivoxml
from plivo.utils.signature_v3 import validate_v3_signature

from gateway.carrier_setup import all_setups
from gateway.carrier_setup import plivo as setup
from gateway.carriers.core import TOKEN_PARAMETER, Carrier
from gateway.carriers.hooks import StreamPlan, Verdict, WebhookError, WebhookRequest
from gateway.carriers.plivo import ContentType, decode_parameters
from gateway.carriers.plivo_hooks import (
    MAIN_SIGNATURE_HEADER,
    NONCE_HEADER,
    SIGNATURE_HEADER,
    PlivoHooks,
    PlivoSignature,
    busy_xml,
    compute_signature,
    dial_xml,
    fit_parameters,
    stream_xml,
    transfer_links,
)
from gateway.errors import ConfigError

TOKEN = "MzUxNDk0ZGUtNWQ4Yy00N2Rh"
URL = "https://gw.example.com/plivo/answer?tenant=acme&b=2"
FORM = (("CallUUID", "3a2e4c90-dcee-4931-8a59-f123ab507e60"), ("From", "14155551234"),
        ("To", "14155555678"), ("Direction", "inbound"), ("CallerName", ""),
        ("Event", "StartApp"))
NONCE = "05429567804466091622"
TOKEN_VALUE = "1700000000.bm9uY2U.bWFj"


def oracle(method: str, url: str, nonce: str, signature: str,
           params: tuple[tuple[str, str], ...] = (), token: str = TOKEN) -> bool:
    grouped: dict[str, list[str]] = {}
    for k, v in params:
        grouped.setdefault(k, []).append(v)
    # As a web framework hands them to the SDK: a repeated field as a list.
    fields: dict[str, Any] = {k: v if len(v) > 1 else v[0] for k, v in grouped.items()}
    return bool(validate_v3_signature(method, url, nonce, token, signature, fields))


def request(method: str = "POST", url: str = URL, form: tuple[tuple[str, str], ...] = FORM,
            headers: dict[str, str] | None = None, now: float = 0.0) -> WebhookRequest:
    query = tuple(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    return WebhookRequest(method, (url,), headers or {}, form=form, query=query, now=now)


def signed(method: str = "POST", url: str = URL, form: tuple[tuple[str, str], ...] = FORM,
           token: str = TOKEN, header: str = SIGNATURE_HEADER) -> dict[str, str]:
    return {header: compute_signature(token, method, url, NONCE, form), NONCE_HEADER: NONCE}


# -- signatures ----------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "url", "form"), [
    ("POST", URL, FORM), ("POST", "https://gw.example.com/plivo/answer", FORM),
    ("POST", "https://gw.example.com/plivo/answer", ()), ("POST", URL, ()),
    ("GET", "https://gw.example.com/plivo/answer?CallUUID=3a2e&From=%2B1415&To=1&a=&a=z", ()),
    ("GET", "https://gw.example.com:8443/plivo/media", ()),
    ("POST", URL, (("Digits", "1"), ("Digits", "0"), ("Name", "José é"))),
])
def test_signatures_agree_with_plivos_validator(method: str, url: str,
                                                form: tuple[tuple[str, str], ...]) -> None:
    signature = compute_signature(TOKEN, method, url, NONCE, form)
    assert oracle(method, url, NONCE, signature, form)
    headers = {SIGNATURE_HEADER: signature, NONCE_HEADER: NONCE}
    body = form if method == "POST" else ()
    assert PlivoSignature(TOKEN).verify(request(method, url, body, headers)) is Verdict.VALID


names = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)
values = st.text(max_size=12).filter(lambda v: "\x00" not in v)


@given(method=st.sampled_from(["GET", "POST"]),
       path=st.text("abcdefghijklmnopqrstuvwxyz/-", max_size=16),
       query=st.lists(st.tuples(names, st.text("abc123 +%=", max_size=6)), max_size=3),
       form=st.lists(st.tuples(names, values), max_size=4),
       nonce=st.text("0123456789", min_size=1, max_size=20),
       token=st.text("abcdefABCDEF0123456789", min_size=8, max_size=32))
def test_any_request_is_signed_as_plivos_sdk_signs_it(
        method: str, path: str, query: list[tuple[str, str]], form: list[tuple[str, str]],
        nonce: str, token: str) -> None:
    url = f"https://gw.example.com/{path}"
    if query:
        url += "?" + urllib.parse.urlencode(query)
    body = tuple(form) if method == "POST" else ()
    signature = compute_signature(token, method, url, nonce, body)
    assert oracle(method, url, nonce, signature, body, token=token)
    assert not oracle(method, url, nonce + "1", signature, body, token=token)


def test_forged_tampered_and_missing_signatures_are_refused() -> None:
    verify = PlivoSignature(TOKEN).verify
    assert verify(request(headers=signed())) is Verdict.VALID
    assert verify(request(headers=signed(token="not-the-token"))) is Verdict.INVALID
    tampered = ((*FORM[:1], ("From", "19005550000"), *FORM[2:]))
    assert verify(request(form=tampered, headers=signed())) is Verdict.INVALID
    assert verify(request(url=URL + "&x=1", headers=signed())) is Verdict.INVALID
    assert verify(request(headers={**signed(), NONCE_HEADER: "1"})) is Verdict.INVALID
    assert verify(request(headers={SIGNATURE_HEADER: signed()[SIGNATURE_HEADER]})) \
        is Verdict.INVALID  # no nonce: it cannot be checked
    assert verify(request(headers={NONCE_HEADER: NONCE})) is Verdict.MISSING
    assert verify(request()) is Verdict.MISSING
    odd = {SIGNATURE_HEADER: "é" + signed()[SIGNATURE_HEADER][1:], NONCE_HEADER: NONCE}
    assert verify(request(headers=odd)) is Verdict.INVALID


def test_a_list_of_signatures_and_the_main_accounts_header() -> None:
    verify = PlivoSignature(TOKEN).verify
    good = signed()[SIGNATURE_HEADER]
    listed = {SIGNATURE_HEADER: f"c29tZXRoaW5nIGVsc2U=,{good}", NONCE_HEADER: NONCE}
    assert oracle("POST", URL, NONCE, listed[SIGNATURE_HEADER], FORM)
    assert verify(request(headers=listed)) is Verdict.VALID
    # A subaccount's call: V3 is the subaccount's, Ma-V3 the main account's (our token).
    both = {**signed(token="the-subaccount-token"), **signed(header=MAIN_SIGNATURE_HEADER)}
    assert verify(request(headers=both)) is Verdict.VALID


def test_the_upgrade_is_signed_as_either_of_plivos_stream_sdks_checks_it() -> None:
    verify = PlivoSignature(TOKEN, upgrade=True).verify
    socket = "wss://gw.example.com/plivo/media/desk"

    def upgrade(signed_url: str, token: str = TOKEN) -> WebhookRequest:
        headers = {SIGNATURE_HEADER: compute_signature(token, "GET", signed_url, NONCE),
                   NONCE_HEADER: NONCE}
        return WebhookRequest("GET", (socket, socket.replace("wss:", "https:")), headers)

    node = "https://gw.example.com/plivo/media/desk"  # plivo-stream-sdk-node
    python = "http://gw.example.com/plivo/media/desk/websocket"  # plivo-stream-sdk (Python)
    for url in (node, python):  # Plivo's validator takes only http(s) URLs
        assert oracle("GET", url, NONCE, upgrade(url).headers[SIGNATURE_HEADER])
    for url in (socket, node, python):
        assert verify(upgrade(url)) is Verdict.VALID
    assert verify(upgrade(node, token="another")) is Verdict.INVALID
    assert verify(upgrade("https://gw.example.com/plivo/media/other")) is Verdict.INVALID
    assert verify(WebhookRequest("GET", (socket,), {})) is Verdict.MISSING


# -- the answer ----------------------------------------------------------------------------

PLAN = StreamPlan("wss://gw.example.com/plivo/media/desk?x=1&y=2",
                  {"From": "+14155551234", "To": "14155555678", "Direction": "inbound",
                   TOKEN_PARAMETER: TOKEN_VALUE})


def test_the_answer_streams_both_ways_with_the_token_and_the_numbers() -> None:
    root = ET.fromstring(stream_xml(PLAN))
    [stream] = list(root)
    assert (root.tag, stream.tag, stream.text) == ("Response", "Stream", PLAN.url)
    assert stream.attrib["bidirectional"] == stream.attrib["keepCallAlive"] == "true"
    assert stream.attrib["contentType"] == "audio/x-l16;rate=16000"
    extra = stream.attrib["extraHeaders"]
    assert extra.replace("=", "").isalnum() and len(extra) <= 512  # what Plivo allows
    assert decode_parameters(extra) == PLAN.parameters


def test_the_answer_is_what_plivos_own_xml_builder_makes() -> None:
    ours = ET.fromstring(stream_xml(PLAN, ContentType.MULAW_8K))
    response = plivoxml.ResponseElement()
    response.add(plivoxml.StreamElement(
        PLAN.url, bidirectional=True, keepCallAlive=True, contentType="audio/x-mulaw;rate=8000",
        extraHeaders=fit_parameters(PLAN.parameters)))
    theirs = ET.fromstring(response.to_string())
    assert [(e.tag, e.attrib, (e.text or "").strip()) for e in ours.iter()] == \
        [(e.tag, e.attrib, (e.text or "").strip()) for e in theirs.iter()]


def test_what_does_not_fit_in_512_bytes_is_left_out_token_first() -> None:
    long = {"Direction": "inbound", "From": "sip:" + "a" * 250 + "@example.com",
            "To": "14155555678", TOKEN_PARAMETER: TOKEN_VALUE}
    kept = decode_parameters(fit_parameters(long))
    assert kept == {TOKEN_PARAMETER: TOKEN_VALUE, "To": "14155555678", "Direction": "inbound"}
    assert len(fit_parameters(long)) <= 512
    assert fit_parameters({}) == ""
    assert "extraHeaders" not in stream_xml(StreamPlan("wss://gw/plivo/media", {}))
    with pytest.raises(ValueError, match="token"):
        fit_parameters({TOKEN_PARAMETER: "x" * 400})


def test_busy_speaks_and_hangs_up() -> None:
    root = ET.fromstring(busy_xml())
    assert [e.tag for e in root] == ["Speak", "Hangup"]
    assert "busy" in (root[0].text or "")


def test_dial_numbers_and_sip_addresses_escaped() -> None:
    number = ET.fromstring(dial_xml(" +15550111 "))
    assert (number[0].tag, number[0][0].tag, number[0][0].text) == ("Dial", "Number",
                                                                    "+15550111")
    assert ET.fromstring(dial_xml("sip:desk@pbx.example.com"))[0][0].tag == "User"
    assert ET.fromstring(dial_xml("<Hangup/>&"))[0][0].text == "<Hangup/>&"
    with pytest.raises(ValueError, match="empty"):
        dial_xml(" ")


def test_call_info_reads_the_answer_urls_fields() -> None:
    hooks = PlivoHooks()
    info = hooks.call_info(request())
    assert (info.call_id, info.caller, info.callee) == (FORM[0][1], "14155551234",
                                                        "14155555678")
    assert info.forwarded == {"From": "14155551234", "To": "14155555678",
                              "Direction": "inbound"}
    get = request("GET", "https://gw/plivo/answer?CallUUID=abc-1&From=1", ())
    assert hooks.call_info(get).call_id == "abc-1"
    with pytest.raises(WebhookError, match="CallUUID"):
        hooks.call_info(request(form=FORM[1:]))
    assert hooks.answer(info, PLAN).content_type == "application/xml"


# -- transfer links ------------------------------------------------------------------------

PUBLIC = "https://gw.example.com/voice/"


def fetch(link: str, now: float = 1000.0) -> WebhookRequest:
    return request(url=link, form=FORM, now=now)  # Plivo POSTs the call's fields there


def test_a_link_dials_its_number_and_nothing_else() -> None:
    links = transfer_links(TOKEN, PUBLIC)
    link = links.link("+15550111", now=1000.0)
    assert link.startswith("https://gw.example.com/voice/plivo/transfer?number=%2B15550111&")
    assert links.dial(fetch(link)).body == dial_xml("+15550111")
    # Another replica, the same token: the same key.
    assert transfer_links(TOKEN, PUBLIC).dial(fetch(link)).body == dial_xml("+15550111")
    forged = link.replace("%2B15550111", "%2B19005550000")
    for bad in (forged, link + "&number=%2B1900", link.split("&sig=")[0],
                link.replace("expires=", "expires=9"), "https://gw/plivo/transfer?number=1"):
        with pytest.raises(WebhookError, match="not a transfer link"):
            links.dial(fetch(bad))
    with pytest.raises(WebhookError, match="not a transfer link"):
        transfer_links("another-token", PUBLIC).dial(fetch(link))
    with pytest.raises(WebhookError, match="expired"):
        links.dial(fetch(link, now=1000.0 + links.ttl_s + 1))
    with pytest.raises(ValueError, match="empty"):
        links.link(" ", now=0)


def test_links_use_the_http_form_of_the_public_url() -> None:
    assert transfer_links(TOKEN, "wss://gw.example.com").url == \
        "https://gw.example.com/plivo/transfer"
    assert TOKEN not in repr(transfer_links(TOKEN, PUBLIC))


# -- set-up ----------------------------------------------------------------------------------

AUTH_ID = "MA" + "7" * 18


def test_from_env_signs_hangs_up_and_transfers_with_everything_set() -> None:
    env = {"PLIVO_AUTH_ID": AUTH_ID, "PLIVO_AUTH_TOKEN": TOKEN, "VOICEGW_PUBLIC_URL": PUBLIC}
    plivo = all_setups(env)[Carrier.PLIVO]
    assert plivo.signed and plivo.verify_upgrade is not None
    assert plivo.call_control is not None and set(plivo.extra_hooks) == {"transfer", "join"}
    stream = plivo.new_stream()
    assert stream.caps.transfer and stream.carrier is Carrier.PLIVO
    assert plivo.call_control.transfers
    assert TOKEN not in repr(plivo)


def test_from_env_without_a_public_url_or_credentials() -> None:
    no_url = setup.from_env({"PLIVO_AUTH_ID": AUTH_ID, "PLIVO_AUTH_TOKEN": TOKEN})
    assert no_url.call_control is not None and not no_url.extra_hooks
    # Plivo can transfer, but this gateway has no URL to give it: the REST client says so,
    # and the agent is not offered the tool.
    assert not no_url.call_control.transfers
    unsigned = setup.from_env({})
    assert not unsigned.signed and unsigned.call_control is None
    off = setup.from_env({"PLIVO_AUTH_TOKEN": TOKEN, "VOICEGW_PLIVO_CHECK_UPGRADE": "off"})
    assert off.signed and off.verify_upgrade is None
    with pytest.raises(ConfigError, match="PLIVO_AUTH_TOKEN"):
        setup.from_env({"PLIVO_AUTH_ID": AUTH_ID})
    with pytest.raises(ConfigError, match="Auth ID"):
        setup.from_env({"PLIVO_AUTH_ID": "AC123", "PLIVO_AUTH_TOKEN": TOKEN})


@pytest.mark.parametrize(("value", "content"), [
    ("", ContentType.L16_16K), ("audio/x-mulaw;rate=8000", ContentType.MULAW_8K),
    (" Audio/X-L16; rate=8000 ", ContentType.L16_8K)])
def test_the_content_type_is_configurable(value: str, content: ContentType) -> None:
    plivo = setup.from_env({"VOICEGW_PLIVO_CONTENT_TYPE": value})
    assert setup.content_type({"VOICEGW_PLIVO_CONTENT_TYPE": value}) is content
    document = plivo.hooks.answer(PlivoHooks().call_info(request()), PLAN).body
    assert ET.fromstring(document)[0].attrib["contentType"] == content.value


def test_an_unknown_content_type_is_refused_at_start_up() -> None:
    with pytest.raises(ConfigError, match="VOICEGW_PLIVO_CONTENT_TYPE"):
        setup.from_env({"VOICEGW_PLIVO_CONTENT_TYPE": "audio/x-alaw;rate=8000"})
