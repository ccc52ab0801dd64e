"""jambonz's webhooks: ``Jambonz-Signature`` (computed here by hand, as jambonz's own
``verifyJambonzSignature`` computes it: hex HMAC-SHA256 of ``<t>.<JSON body>``), the listen
answer, the busy and transfer verbs, and the carrier's setup from the environment."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict

from gateway.carrier_setup.jambonz import from_env
from gateway.carriers.basic_auth import BasicAuthCheck
from gateway.carriers.core import TOKEN_PARAMETER
from gateway.carriers.hooks import BUSY_TEXT, StreamPlan, Verdict, WebhookError, WebhookRequest
from gateway.carriers.jambonz import METADATA_KEY, SUBPROTOCOLS
from gateway.carriers.jambonz_hooks import (
    MAX_FORWARDED_CHARS,
    TOLERANCE_S,
    JambonzHooks,
    JambonzSignature,
    WsAuth,
    dial_verbs,
    parse_header,
)
from gateway.errors import ConfigError
from gateway.rest.jambonz import JambonzRest

SECRET = "jambonz-webhook-secret-0123456789abcdef"
SID = "9f1c2b4e-7d0a-4c3e-8b51-2f6a1d9e0c47"
FIELDS: dict[str, Any] = {"call_sid": SID, "direction": "inbound", "from": "+15550100",
                          "to": "+15550199", "call_id": "abc@10.0.0.1", "sip_status": 100,
                          "account_sid": "acc-1", "application_sid": "app-1",
                          "caller_name": "Zoë"}
CHECK = JambonzSignature(SECRET)
URL = "https://gw.example.com/jambonz/answer"


def sign(payload: bytes, t: int, secret: str = SECRET) -> str:
    digest = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256)
    return digest.hexdigest()


def request(body: bytes | None = None, header: str | None = None, *, now: float | None = None,
            method: str = "POST", query: tuple[tuple[str, str], ...] = ()) -> WebhookRequest:
    headers = CIMultiDict({"Content-Type": "application/json"})
    if header is not None:
        headers["Jambonz-Signature"] = header
    return WebhookRequest(method, (URL,), headers,
                          body=json.dumps(FIELDS).encode() if body is None else body,
                          query=query, now=time.time() if now is None else now)


def signed(body: bytes | None = None, *, age: float = 0.0, secret: str = SECRET
           ) -> WebhookRequest:
    payload = json.dumps(FIELDS).encode() if body is None else body
    t = int(time.time() - age)
    return request(payload, f"t={t},v1={sign(payload, t, secret)}")


# -- the signature ---------------------------------------------------------------------------


def test_a_signed_webhook_is_valid() -> None:
    assert CHECK.verify(signed()) is Verdict.VALID


def test_the_body_as_jambonz_writes_it_is_signed_whatever_the_spacing() -> None:
    # jambonz's verifier hashes JSON.stringify of the parsed body: compact, non-ASCII as is.
    compact = json.dumps(FIELDS, separators=(",", ":"), ensure_ascii=False).encode()
    t = int(time.time())
    spaced = json.dumps(FIELDS).encode()
    assert CHECK.verify(request(spaced, f"t={t},v1={sign(compact, t)}")) is Verdict.VALID


@pytest.mark.parametrize("age", [TOLERANCE_S + 5, -TOLERANCE_S - 5])
def test_an_old_or_future_signature_is_stale(age: float) -> None:
    assert CHECK.verify(signed(age=age)) is Verdict.STALE


def test_a_tampered_body_is_invalid() -> None:
    good = signed()
    forged = WebhookRequest(good.method, good.urls, good.headers,
                            body=good.body.replace(b"+15550199", b"+15550666"), now=good.now)
    assert CHECK.verify(forged) is Verdict.INVALID


def test_another_secret_is_invalid_and_an_unsigned_request_missing() -> None:
    assert CHECK.verify(signed(secret="not-the-secret")) is Verdict.INVALID
    assert CHECK.verify(request()) is Verdict.MISSING
    assert CHECK.verify(request(header="  ")) is Verdict.MISSING


def test_any_of_several_signatures_may_match() -> None:
    payload = json.dumps(FIELDS).encode()
    t = int(time.time())
    header = f"t={t},v1={'0' * 64},v0=ignored,v1={sign(payload, t)}"
    assert CHECK.verify(request(payload, header)) is Verdict.VALID


@pytest.mark.parametrize("header", [
    "v1=abc", "t=,v1=abc", "t=12a,v1=abc", "t=1700000000", "t=1700000000,v0=abc", "garbage",
    "t=1700000000,v1=é", "t=1" + "0" * 20 + ",v1=abc", "t=1700000000,v1=" + "a" * 2000])
def test_a_malformed_header_is_invalid(header: str) -> None:
    assert CHECK.verify(request(header=header)) is Verdict.INVALID


def test_a_get_webhook_is_signed_over_its_fields() -> None:
    query = (("call_sid", SID), ("from", "+15550100"))
    payload = json.dumps(dict(query), separators=(",", ":")).encode()
    t = int(time.time())
    get = request(b"", f"t={t},v1={sign(payload, t)}", method="GET", query=query)
    assert CHECK.verify(get) is Verdict.VALID


@given(st.text(max_size=120))
def test_any_header_gives_a_verdict(header: str) -> None:
    assert CHECK.verify(request(header=header)) in (Verdict.MISSING, Verdict.INVALID)


def test_header_parsing() -> None:
    assert parse_header("t=17, v1=ab ,v1=cd") == ("17", ["ab", "cd"])
    assert parse_header("v1=ab") is None


def test_the_secret_is_never_in_its_repr() -> None:
    assert SECRET not in repr(CHECK)


# -- the answer ------------------------------------------------------------------------------


def test_the_call_is_read_from_the_json_body() -> None:
    call = JambonzHooks().call_info(signed())
    assert (call.call_id, call.caller, call.callee) == (SID, "+15550100", "+15550199")
    assert call.forwarded == {"call_sid": SID, "From": "+15550100", "To": "+15550199"}


def test_a_get_webhook_is_read_from_its_query() -> None:
    get = request(b"", method="GET", query=(("call_sid", SID), ("to", "+15550199")))
    call = JambonzHooks().call_info(get)
    assert (call.call_id, call.caller, call.callee) == (SID, None, "+15550199")


@pytest.mark.parametrize("body", [b"", b"[]", b"not json", json.dumps({"call_sid": 5}).encode(),
                                  json.dumps({"call_sid": "../x"}).encode()])
def test_a_webhook_without_a_usable_call_sid_is_refused(body: bytes) -> None:
    with pytest.raises(WebhookError, match="call_sid"):
        JambonzHooks().call_info(request(body))


def test_a_long_address_is_not_forwarded() -> None:
    long = "sip:" + "x" * MAX_FORWARDED_CHARS + "@pbx.example.com"
    body = json.dumps({**FIELDS, "from": long}).encode()
    call = JambonzHooks().call_info(request(body))
    assert call.caller == long and "From" not in call.forwarded


def test_the_answer_is_one_bidirectional_listen() -> None:
    plan = StreamPlan("wss://gw.example.com/jambonz/media/desk",
                      {"call_sid": SID, "To": "+15550199", TOKEN_PARAMETER: "tok"})
    doc = JambonzHooks().answer(JambonzHooks().call_info(signed()), plan)
    assert doc.content_type == "application/json"
    assert json.loads(doc.body) == [{
        "verb": "listen", "url": plan.url, "mixType": "mono", "sampleRate": 16000,
        "bidirectionalAudio": {"enabled": True, "streaming": True, "sampleRate": 16000},
        "passDtmf": True, "metadata": {METADATA_KEY: dict(plan.parameters)}}]


def test_socket_credentials_ride_in_ws_auth_and_the_rate_is_the_configured_one() -> None:
    hooks = JambonzHooks(8000, WsAuth("gw", "pw"))
    [verb] = json.loads(hooks.answer(hooks.call_info(signed()),
                                     StreamPlan("wss://gw/jambonz/media", {})).body)
    assert verb["wsAuth"] == {"username": "gw", "password": "pw"}
    assert verb["sampleRate"] == verb["bidirectionalAudio"]["sampleRate"] == 8000
    assert "pw" not in repr(WsAuth("gw", "pw"))


def test_busy_says_so_and_hangs_up() -> None:
    assert json.loads(JambonzHooks().busy().body) == [{"verb": "say", "text": BUSY_TEXT},
                                                      {"verb": "hangup"}]


def test_a_transfer_dials_a_number_or_a_sip_address() -> None:
    assert json.loads(dial_verbs(" +15550111 ").body) == [
        {"verb": "dial", "target": [{"type": "phone", "number": "+15550111"}]}]
    assert json.loads(dial_verbs("sip:desk@pbx.example.com").body) == [
        {"verb": "dial", "target": [{"type": "sip", "sipUri": "sip:desk@pbx.example.com"}]}]
    with pytest.raises(ValueError, match="empty"):
        dial_verbs(" ")


# -- the setup -------------------------------------------------------------------------------


REST = {"JAMBONZ_ACCOUNT_SID": "acc-1", "JAMBONZ_API_KEY": "key-0123456789",
        "VOICEGW_JAMBONZ_API_URL": "https://jambonz.example.com/api/v1/"}


def test_unconfigured_jambonz_is_served_unsigned_without_call_control() -> None:
    setup = from_env({})
    assert not setup.signed and setup.call_control is None and setup.extra_hooks == {}
    assert setup.subprotocols == SUBPROTOCOLS
    assert setup.new_stream().caps.clear


def test_the_webhook_secret_signs_and_ws_credentials_guard_the_upgrade() -> None:
    setup = from_env({"JAMBONZ_WEBHOOK_SECRET": SECRET, "JAMBONZ_WS_USER": "gw",
                      "JAMBONZ_WS_PASSWORD": "pw"})
    assert isinstance(setup.verify, JambonzSignature) and setup.needs_token
    assert setup.verify_upgrade == BasicAuthCheck("gw", "pw")
    assert isinstance(setup.hooks, JambonzHooks) and setup.hooks.ws_auth == WsAuth("gw", "pw")


def test_rest_credentials_hang_up_and_a_public_url_transfers() -> None:
    hang_up_only = from_env(REST)
    assert isinstance(hang_up_only.call_control, JambonzRest)
    assert hang_up_only.call_control.credentials.base_url == "https://jambonz.example.com/api"
    rest = hang_up_only.call_control
    assert not (rest.transfers or rest.joins) and hang_up_only.extra_hooks == {}
    both = from_env({**REST, "VOICEGW_PUBLIC_URL": "https://gw.example.com"})
    assert isinstance(both.call_control, JambonzRest) and both.call_control.transfers \
        and both.call_control.joins
    assert set(both.extra_hooks) == {"transfer", "join"}


@pytest.mark.parametrize("env", [
    {"JAMBONZ_API_KEY": "k"}, {**REST, "VOICEGW_JAMBONZ_API_URL": ""},
    {**REST, "VOICEGW_JAMBONZ_API_URL": "jambonz.example.com"},
    {**REST, "JAMBONZ_ACCOUNT_SID": "../x"},
    {"JAMBONZ_WS_USER": "gw"}, {"JAMBONZ_WS_PASSWORD": "pw"},
    {"JAMBONZ_WS_USER": "g:w", "JAMBONZ_WS_PASSWORD": "pw"},
    {"VOICEGW_JAMBONZ_SAMPLE_RATE": "44100"}, {"VOICEGW_JAMBONZ_SAMPLE_RATE": "fast"}])
def test_an_incomplete_or_wrong_setup_is_refused(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        from_env(env)


def test_the_sample_rate_is_configurable() -> None:
    hooks = from_env({"VOICEGW_JAMBONZ_SAMPLE_RATE": "8000"}).hooks
    assert isinstance(hooks, JambonzHooks) and hooks.rate == 8000
