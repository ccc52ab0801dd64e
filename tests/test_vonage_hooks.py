"""Vonage's webhooks: the signed-callback check against Vonage's own ``vonage-jwt``, the NCCO
against Vonage's own ``vonage-voice`` models, and what an answer or event webhook says.

Tokens are made with PyJWT exactly as Vonage makes them (HS256 over ``iat``, ``jti``, ``iss``,
``payload_hash``, ``api_key``, ``application_id``). ``vonage_jwt.verify_signature`` checks only
the signature (and PyJWT's own time claims), so the payload hash and the age are tested here
against what the gateway must refuse beyond it.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
import warnings
from typing import Any

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict
from structlog.testing import capture_logs
from vonage_jwt.verify_jwt import verify_signature
from vonage_voice.models.connect_endpoints import WebsocketEndpoint
from vonage_voice.models.ncco import Talk

from gateway.carrier_setup.vonage import event_hook, from_env
from gateway.carriers.hooks import BUSY_TEXT, StreamPlan, Verdict, WebhookError, WebhookRequest
from gateway.carriers.vonage_hooks import (
    MAX_FORWARDED_CHARS,
    TOLERANCE_S,
    VonageHooks,
    VonageSignature,
    call_event,
    e164,
    msisdn,
    signed_payloads,
)

SECRET = "vonage-signature-secret-0123456789abcdef"
APP = "aaaaaaaa-bbbb-cccc-dddd-0123456789ab"
UUID = "63f61863-4a51-4f6b-86e1-46edebcf9356"
QUERY = [("from", "447700900123"), ("to", "447700900000"), ("uuid", UUID),
         ("conversation_uuid", "CON-f972836a-550f-45fa-956c-12a2ab5b7d22"),
         ("region_url", "https://api-eu-1.vonage.com")]
CHECK = VonageSignature(SECRET, application_id=APP)


def compact(obj: Any, *, ascii_only: bool = False) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=ascii_only).encode()


def token(payload: bytes, *, secret: str = SECRET, iat: float | None = None,
          algorithm: str = "HS256", drop: tuple[str, ...] = (), **claims: Any) -> str:
    """A signed-callback JWT as Vonage makes it."""
    body: dict[str, Any] = {
        "iat": int(time.time()) if iat is None else iat, "jti": str(uuid.uuid4()),
        "iss": "Vonage", "payload_hash": hashlib.sha256(payload).hexdigest(),
        "api_key": "a1b2c3d", "application_id": APP, **claims}
    for name in drop:
        del body[name]
    return jwt.encode(body, secret, algorithm=algorithm)


def get(query: list[tuple[str, str]] = QUERY, authorization: str | None = None,
        now: float | None = None) -> WebhookRequest:
    headers = CIMultiDict[str]()
    if authorization is not None:
        headers["authorization"] = authorization  # any case: HTTP's headers are
    return WebhookRequest("GET", ("https://gw.example.com/vonage/answer",), headers,
                          query=tuple(query), now=time.time() if now is None else now)


def post(body: bytes, authorization: str | None, now: float | None = None) -> WebhookRequest:
    headers = CIMultiDict[str]({"Authorization": authorization} if authorization else {})
    return WebhookRequest("POST", ("https://gw.example.com/vonage/answer",), headers,
                          body=body, now=time.time() if now is None else now)


def signed_get(query: list[tuple[str, str]] = QUERY, **kw: Any) -> WebhookRequest:
    return get(query, "Bearer " + token(compact(dict(query)), **kw))


# -- the signature, with Vonage's own check as the oracle -------------------------------------


def test_a_signed_answer_webhook_is_valid_for_vonage_and_for_us() -> None:
    tok = token(compact(dict(QUERY)))
    assert verify_signature(tok, SECRET) is True
    assert CHECK.verify(get(authorization=f"Bearer {tok}")) is Verdict.VALID


def test_a_forged_signature_is_invalid_for_vonage_and_for_us() -> None:
    tok = token(compact(dict(QUERY)), secret="another-accounts-secret-0123456789ab")
    assert verify_signature(tok, SECRET) is False
    assert CHECK.verify(get(authorization=f"Bearer {tok}")) is Verdict.INVALID


@given(st.lists(st.tuples(st.text(min_size=1, max_size=12), st.text(max_size=20)),
                max_size=6), st.booleans())
def test_any_query_signed_by_vonage_is_valid_and_by_anyone_else_invalid(
        query: list[tuple[str, str]], forged: bool) -> None:
    secret = "someone-elses-secret-0123456789abcdef" if forged else SECRET
    tok = token(compact(dict(query)), secret=secret)
    assert verify_signature(tok, SECRET) is not forged
    expected = Verdict.INVALID if forged else Verdict.VALID
    assert CHECK.verify(get(query, f"Bearer {tok}")) is expected


def test_a_post_json_body_is_hashed_as_sent_and_as_compact_json() -> None:
    body = compact(dict(QUERY))
    assert CHECK.verify(post(body, "Bearer " + token(body))) is Verdict.VALID
    spaced = json.dumps(dict(QUERY), indent=2).encode()
    assert CHECK.verify(post(spaced, "Bearer " + token(spaced))) is Verdict.VALID
    assert CHECK.verify(post(spaced, "Bearer " + token(body))) is Verdict.VALID


@pytest.mark.parametrize("authorization", [None, "", "   "])
def test_no_signature_is_missing(authorization: str | None) -> None:
    assert CHECK.verify(get(authorization=authorization)) is Verdict.MISSING


@pytest.mark.parametrize("authorization", [
    "Basic YTpi", "Bearer", "Bearer not.a.jwt", "Bearer " + "a" * 5000, "Token x.y.z",
    "Bearer " + jwt.encode({"iat": 1}, key=None, algorithm="none"),
])
def test_what_is_no_vonage_jwt_is_invalid(authorization: str) -> None:
    assert CHECK.verify(get(authorization=authorization)) is Verdict.INVALID


def test_only_hs256_is_taken() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # newer PyJWT: the secret is short for HS512
        tok = token(compact(dict(QUERY)), algorithm="HS512")
    assert CHECK.verify(get(authorization=f"Bearer {tok}")) is Verdict.INVALID


def test_a_tampered_payload_is_invalid_though_its_signature_is_vonages() -> None:
    tok = token(compact(dict(QUERY)))
    tampered = [(k, "15550666" if k == "from" else v) for k, v in QUERY]
    assert verify_signature(tok, SECRET) is True  # the oracle checks the signature alone
    assert CHECK.verify(get(tampered, f"Bearer {tok}")) is Verdict.INVALID
    reordered = list(reversed(QUERY))  # Vonage hashes the fields in the order sent
    assert CHECK.verify(get(reordered, f"Bearer {tok}")) is Verdict.INVALID


@pytest.mark.parametrize("age", [TOLERANCE_S + 1, -(TOLERANCE_S + 1), 86400.0])
def test_an_old_or_future_signature_is_stale(age: float) -> None:
    now = time.time()
    request = signed_get(iat=int(now - age))
    assert CHECK.verify(get(QUERY, request.headers["Authorization"], now=now)) is Verdict.STALE


def test_within_the_tolerance_is_valid() -> None:
    now = time.time()
    tok = token(compact(dict(QUERY)), iat=int(now - TOLERANCE_S + 5))
    assert CHECK.verify(get(QUERY, f"Bearer {tok}", now=now)) is Verdict.VALID


def test_an_expired_token_is_stale() -> None:
    now = time.time()
    tok = token(compact(dict(QUERY)), iat=int(now - 10), exp=int(now - 1))
    assert CHECK.verify(get(QUERY, f"Bearer {tok}", now=now)) is Verdict.STALE


@pytest.mark.parametrize(("drop", "claims"), [
    (("iat",), {}), (("payload_hash",), {}), ((), {"iat": "yesterday"}), ((), {"iat": True}),
    ((), {"payload_hash": 5}), ((), {"exp": "soon"}),
])
def test_a_signed_token_without_usable_claims_is_invalid(drop: tuple[str, ...],
                                                         claims: dict[str, Any]) -> None:
    tok = token(compact(dict(QUERY)), drop=drop, **claims)
    assert CHECK.verify(get(authorization=f"Bearer {tok}")) is Verdict.INVALID


def test_a_token_for_another_application_is_invalid() -> None:
    assert CHECK.verify(signed_get(application_id="another-app")) is Verdict.INVALID
    assert CHECK.verify(signed_get(drop=("application_id",))) is Verdict.VALID
    assert CHECK.verify(signed_get(application_id=APP.upper())) is Verdict.VALID
    assert VonageSignature(SECRET).verify(signed_get(application_id="x")) is Verdict.VALID


def test_non_ascii_fields_are_hashed_escaped_or_not() -> None:
    query = [("uuid", UUID), ("from", "Zoë")]
    assert compact(dict(query)) != compact(dict(query), ascii_only=True)
    for ascii_only in (False, True):
        tok = token(compact(dict(query), ascii_only=ascii_only))
        assert CHECK.verify(get(query, f"Bearer {tok}")) is Verdict.VALID


def test_a_repeated_name_keeps_its_place_and_its_last_value() -> None:
    query = [("a", "1"), ("b", "2"), ("a", "3")]
    assert b'{"a":"3","b":"2"}' in signed_payloads(get(query))


def test_a_short_secret_still_works_without_warnings() -> None:
    check = VonageSignature("short")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # newer PyJWT warns when signing with it...
        tok = token(compact(dict(QUERY)), secret="short")
    # ...but not when checking: the tests turn every warning into an error.
    assert check.verify(get(authorization=f"Bearer {tok}")) is Verdict.VALID


def test_the_secret_is_not_in_the_verifiers_repr() -> None:
    assert SECRET not in repr(CHECK)


@given(st.text(max_size=300), st.binary(max_size=300),
       st.lists(st.tuples(st.text(max_size=8), st.text(max_size=8)), max_size=4))
def test_whatever_a_request_carries_the_check_gives_a_verdict(
        authorization: str, body: bytes, query: list[tuple[str, str]]) -> None:
    for auth in (authorization, f"Bearer {authorization}"):
        request = WebhookRequest("POST", (), CIMultiDict({"Authorization": auth}), body=body,
                                 query=tuple(query), now=time.time())
        assert CHECK.verify(request) in (Verdict.MISSING, Verdict.INVALID)


@given(st.binary(max_size=300), st.lists(st.tuples(st.text(max_size=8), st.text(max_size=12)),
                                         max_size=4))
def test_whatever_a_webhook_says_it_is_a_call_or_a_webhook_error(
        body: bytes, query: list[tuple[str, str]]) -> None:
    request = WebhookRequest("POST", (), CIMultiDict(), body=body, query=tuple(query))
    try:
        call = VonageHooks().call_info(request)
    except WebhookError:
        return
    assert call.forwarded["uuid"] == call.call_id
    call_event(request)


# -- the answer ------------------------------------------------------------------------------


def test_call_info_from_a_get() -> None:
    call = VonageHooks().call_info(get())
    assert call.call_id == UUID
    assert (call.caller, call.callee) == ("+447700900123", "+447700900000")
    assert call.forwarded == {"uuid": UUID, "conversation_uuid": QUERY[3][1],
                              "from": "+447700900123", "to": "+447700900000"}


def test_call_info_from_a_post() -> None:
    body = json.dumps({"from": "447700900123", "to": "447700900000", "uuid": UUID,
                       "conversation_uuid": "CON-1", "custom_data": {"x": 1}}).encode()
    call = VonageHooks().call_info(post(body, None))
    assert (call.call_id, call.caller, call.forwarded["conversation_uuid"]) == (
        UUID, "+447700900123", "CON-1")


@pytest.mark.parametrize("query", [[], [("uuid", "")], [("uuid", "../../v1/calls")],
                                   [("uuid", "a" * 81)]])
def test_an_answer_without_a_usable_uuid_is_refused(query: list[tuple[str, str]]) -> None:
    with pytest.raises(WebhookError, match="uuid"):
        VonageHooks().call_info(get(query))


def test_addresses_that_are_no_numbers_stay_as_they_are_and_long_ones_stay_home() -> None:
    sip = "sip:" + "x" * MAX_FORWARDED_CHARS + "@pbx.example.com"
    call = VonageHooks().call_info(get([("uuid", UUID), ("from", "Unknown"), ("to", sip)]))
    assert (call.caller, call.callee) == ("Unknown", sip)
    assert call.forwarded == {"uuid": UUID, "from": "Unknown"}  # the NCCO's headers are capped


def test_numbers() -> None:
    assert e164("447700900123") == "+447700900123"
    assert e164("+447700900123") == "+447700900123"
    assert e164("012345") == "012345"  # not E.164: as given
    assert e164("") is None
    assert msisdn(" +15550111 ") == "15550111"
    for bad in ("sip:a@b", "+0123456", "12345", "+1" + "5" * 15):
        with pytest.raises(ValueError, match=r"E\.164"):
            msisdn(bad)


def test_the_ncco_is_what_vonages_own_models_write() -> None:
    headers = {"uuid": UUID, "from": "+447700900123", "voicegw_token": "t" * 60}
    doc = VonageHooks().answer(VonageHooks().call_info(get()),
                               StreamPlan("wss://gw.example.com/vonage/media", headers))
    assert doc.content_type == "application/json"
    [action] = json.loads(doc.body)
    sdk = WebsocketEndpoint(uri="wss://gw.example.com/vonage/media",
                            contentType="audio/l16;rate=16000", headers=headers)
    assert action == {"action": "connect",
                      "endpoint": [sdk.model_dump(by_alias=True, exclude_none=True,
                                                  mode="json")]}


def test_the_headers_of_the_longest_answer_fit_vonages_limit() -> None:
    query = [("uuid", "u" * 80), ("conversation_uuid", "c" * 80),
             ("from", "1" * 15), ("to", "x" * MAX_FORWARDED_CHARS)]
    call = VonageHooks().call_info(get(query))
    headers = {**call.forwarded, "voicegw_token": f"{2**40}.{'n' * 16}.{'m' * 32}"}
    assert len(json.dumps(headers, separators=(",", ":"))) <= 512


def test_the_busy_answer_says_so_and_nothing_more() -> None:
    doc = VonageHooks().busy()
    assert json.loads(doc.body) == [Talk(text=BUSY_TEXT).model_dump(
        by_alias=True, exclude_none=True, mode="json")]
    assert VonageHooks().answer_methods == ("GET", "POST")


# -- the event webhook -----------------------------------------------------------------------


def test_an_event_is_logged_without_numbers_or_headers() -> None:
    body = json.dumps({"from": "447700900123", "to": "wss://gw.example.com/vonage/media",
                       "uuid": UUID, "conversation_uuid": "CON-1", "status": "disconnected",
                       "direction": "outbound", "timestamp": "2020-03-31T12:00:00.000Z",
                       "headers": {"voicegw_token": "secret-stream-token"}}).encode()
    with capture_logs() as logs:
        doc = event_hook(post(body, None))
    assert doc.body == ""  # the server answers 204
    [entry] = logs
    assert entry["event"] == "vonage_call_event"
    assert (entry["call_sid"], entry["status"], entry["direction"]) == (
        UUID, "disconnected", "outbound")
    assert entry["caller"].endswith("123") and "447700900" not in entry["caller"]
    assert "secret-stream-token" not in repr(logs)


def test_an_event_with_odd_fields_reads_as_unknowns() -> None:
    event = call_event(get([("uuid", "../x"), ("status", "s" * 100)]))
    assert event.uuid is None
    assert event.status == "s" * 40


def test_setup_from_env() -> None:
    assert from_env({}).verify is None
    setup = from_env({"VONAGE_SIGNATURE_SECRET": SECRET, "VONAGE_APPLICATION_ID": APP})
    assert isinstance(setup.verify, VonageSignature)
    assert setup.verify.application_id == APP
    assert setup.verify_upgrade is None  # Vonage does not sign the socket's upgrade
    assert setup.call_control is None  # no private key: no call control
    assert set(setup.extra_hooks) == {"event"}
    assert setup.new_stream().caps.stop_event is False
