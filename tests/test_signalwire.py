"""SignalWire's webhooks: its own signing key over Twilio's form scheme and its JSON scheme,
the legacy header, the cXML answer, transfer links, and ``from_env``.

The vectors were computed with SignalWire's own SDK (``signalwire`` 2.1.1,
``signalwire.request_validator.RequestValidator``). It pins an old ``twilio`` and ``aiohttp``,
so it cannot sit beside the test tools; the form scheme is also checked against Twilio's
validator, which SignalWire's extends.
"""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qsl, urlsplit

import pytest
from twilio.request_validator import RequestValidator

from gateway.callctl import CallController
from gateway.carrier_setup import signalwire as setup
from gateway.carriers.core import Carrier
from gateway.carriers.hooks import StreamPlan, Verdict, WebhookError, WebhookRequest
from gateway.carriers.signalwire import (
    COMPAT_HEADER,
    SIGNATURE_HEADER,
    SignalWireSignature,
    dial_cxml,
    json_signature,
    signalwire_hooks,
    transfer_links,
)
from gateway.errors import ConfigError

KEY = "PSK_test_signing_key_0123456789"
URL = "https://gw.example.com/signalwire/answer"
FORM = {"CallSid": "5a2e7b0c-1b7e-4c7e-9a51-0f5e5a1f2b3c",
        "AccountSid": "4b7ae78a-d02e-4889-a63b-08b156d5916e", "From": "+15550100",
        "To": "+15550199", "Direction": "inbound", "CallStatus": "ringing"}
FORM_SIGNATURE = "skN5gtPa1M6UeGjoZa1xd4la+ns="  # SignalWire's SDK, form scheme
BODY = b'{"call":{"call_id":"5a2e7b0c","from":"+15550100"},"vars":{}}'
BODY_SIGNATURE = "0eb31fc2b51ceda79451edd6bcfc51cb188ed94d"  # SignalWire's SDK, JSON scheme
PROJECT = "4b7ae78a-d02e-4889-a63b-08b156d5916e"
API_TOKEN = "PT-test-api-token"
PUBLIC = "https://gw.example.com"


def _form(headers: dict[str, str], form: dict[str, str] = FORM) -> WebhookRequest:
    return WebhookRequest("POST", (URL,), headers, form=tuple(form.items()))


def _json(headers: dict[str, str], body: bytes = BODY) -> WebhookRequest:
    return WebhookRequest("POST", (URL,), headers, body=body)


def test_the_sdks_vectors_for_both_schemes() -> None:
    verifier = SignalWireSignature(KEY)
    assert verifier.verify(_form({SIGNATURE_HEADER: FORM_SIGNATURE})) is Verdict.VALID
    assert json_signature(KEY, URL, BODY) == BODY_SIGNATURE
    assert verifier.verify(_json({SIGNATURE_HEADER: BODY_SIGNATURE})) is Verdict.VALID
    # SignalWire's form scheme is Twilio's, keyed by the signing key.
    assert RequestValidator(KEY).compute_signature(URL, FORM) == FORM_SIGNATURE


def test_the_legacy_header_is_accepted_and_the_own_header_wins() -> None:
    verifier = SignalWireSignature(KEY)
    assert verifier.verify(_form({COMPAT_HEADER: FORM_SIGNATURE})) is Verdict.VALID
    assert verifier.verify(_form({SIGNATURE_HEADER: FORM_SIGNATURE,
                                  COMPAT_HEADER: "forged"})) is Verdict.VALID


@pytest.mark.parametrize("request_", [
    _form({SIGNATURE_HEADER: FORM_SIGNATURE}, {**FORM, "To": "+15550000"}),  # tampered field
    _form({SIGNATURE_HEADER: FORM_SIGNATURE[:-2] + "A="}),  # forged
    _json({SIGNATURE_HEADER: BODY_SIGNATURE}, BODY.replace(b"0100", b"0101")),  # tampered
    _json({SIGNATURE_HEADER: BODY_SIGNATURE.upper()}),  # hex is compared exactly
    _json({SIGNATURE_HEADER: FORM_SIGNATURE}),  # a form signature on a JSON body
], ids=["form-tampered", "form-forged", "json-tampered", "json-case", "json-wrong-scheme"])
def test_forged_and_tampered_requests_are_invalid(request_: WebhookRequest) -> None:
    assert SignalWireSignature(KEY).verify(request_) is Verdict.INVALID


def test_a_missing_signature_or_another_key_is_refused() -> None:
    assert SignalWireSignature(KEY).verify(_form({})) is Verdict.MISSING
    assert SignalWireSignature(KEY).verify(_json({SIGNATURE_HEADER: ""})) is Verdict.MISSING
    other = SignalWireSignature("PSK_another_key")
    assert other.verify(_form({SIGNATURE_HEADER: FORM_SIGNATURE})) is Verdict.INVALID
    assert other.verify(_json({SIGNATURE_HEADER: BODY_SIGNATURE})) is Verdict.INVALID
    assert KEY not in repr(SignalWireSignature(KEY))


def test_the_answer_is_cxml_streaming_with_the_token_and_numbers() -> None:
    hooks = signalwire_hooks()
    call = hooks.call_info(_form({}))
    assert (call.call_id, call.caller, call.callee) == (FORM["CallSid"], "+15550100",
                                                        "+15550199")
    # What the stream carries on: the numbers and the call, never the account.
    assert "AccountSid" not in call.forwarded and call.forwarded["From"] == "+15550100"
    plan = StreamPlan("wss://gw.example.com/signalwire/media",
                      {"voicegw_token": "tok.en", "From": "+15550100"})
    doc = hooks.answer(call, plan)
    assert doc.content_type == "text/xml"
    assert '<Stream url="wss://gw.example.com/signalwire/media">' in doc.body
    assert '<Parameter name="voicegw_token" value="tok.en"' in doc.body
    assert "<Say" in hooks.busy().body and "<Hangup" in hooks.busy().body


def test_dial_takes_numbers_and_sip_addresses_escaped() -> None:
    assert "<Dial><Number>+15550111</Number></Dial>" in dial_cxml(" +15550111 ").body
    assert "<Sip>sip:desk@pbx.example.com?a=1&amp;b=2</Sip>" in \
        dial_cxml("sip:desk@pbx.example.com?a=1&b=2").body
    with pytest.raises(ValueError, match="empty"):
        dial_cxml("  ")


def _fetch(link: str, now: float) -> WebhookRequest:
    return WebhookRequest("POST", (link,), {}, query=tuple(parse_qsl(urlsplit(link).query)),
                          now=now)


def test_a_transfer_link_dials_its_number_until_it_expires() -> None:
    links = transfer_links(API_TOKEN, PUBLIC)
    now = time.time()
    link = links.link("+15550111", now)
    assert link.startswith(f"{PUBLIC}/signalwire/transfer?")
    assert links.dial(_fetch(link, now + 1)) == dial_cxml("+15550111")
    with pytest.raises(WebhookError, match="expired"):
        links.dial(_fetch(link, now + links.ttl_s + 2))
    with pytest.raises(WebhookError):
        links.dial(_fetch(link.replace("15550111", "15550666"), now))
    with pytest.raises(WebhookError):  # a link minted with another project's token
        transfer_links("PT-other", PUBLIC).dial(_fetch(link, now))


def test_from_env_signs_hangs_up_and_transfers_with_everything_set() -> None:
    env = {"SIGNALWIRE_SIGNING_KEY": KEY, "SIGNALWIRE_PROJECT_ID": PROJECT,
           "SIGNALWIRE_API_TOKEN": API_TOKEN, "SIGNALWIRE_SPACE_URL": "https://ex.signalwire.com/",
           "VOICEGW_PUBLIC_URL": PUBLIC}
    configured = setup.from_env(env)
    assert configured.carrier is Carrier.SIGNALWIRE
    assert configured.verify is not None
    rest = configured.call_control
    assert rest is not None and rest.transfers
    assert set(configured.extra_hooks) == {"transfer", "join"}
    # Without a public URL SignalWire has nowhere to fetch a transfer's cXML from: hang-ups
    # only, and the agent is not offered the transfer tool.
    no_url = setup.from_env({k: v for k, v in env.items() if k != "VOICEGW_PUBLIC_URL"})
    assert no_url.call_control is not None and not no_url.call_control.transfers
    assert not no_url.extra_hooks
    controller = CallController(no_url.call_control, "call", log=None, can_transfer=True)
    assert not controller.can_transfer


def test_from_env_signs_without_an_api_and_refuses_half_an_api() -> None:
    signing_only = setup.from_env({"SIGNALWIRE_SIGNING_KEY": KEY})
    assert signing_only.verify is not None and signing_only.call_control is None
    assert setup.from_env({}).verify is None
    with pytest.raises(ConfigError, match="SIGNALWIRE_SPACE_URL") as refused:
        setup.from_env({"SIGNALWIRE_PROJECT_ID": PROJECT, "SIGNALWIRE_API_TOKEN": API_TOKEN})
    assert API_TOKEN not in str(refused.value)


def test_a_json_call_webhook_is_accepted_on_either_url_form() -> None:
    body = json.dumps({"call": {"call_id": "c1"}}).encode()
    signed = json_signature(KEY, URL.replace("https://gw.example.com",
                                             "https://gw.example.com:443"), body)
    request = WebhookRequest("POST", (URL, URL.replace(".com/", ".com:443/")),
                             {SIGNATURE_HEADER: signed}, body=body)
    assert SignalWireSignature(KEY).verify(request) is Verdict.VALID
