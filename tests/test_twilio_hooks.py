"""Twilio's webhooks: X-Twilio-Signature checked against Twilio's own validator, the TwiML
answer read back with Twilio's own TwiML model; which carriers are served unsigned; settings."""

from __future__ import annotations

from typing import Any

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st
from multidict import MultiDict
from twilio.request_validator import RequestValidator

from gateway import cli
from gateway.carrier_setup import all_setups, enabled
from gateway.carriers import hooks as signing
from gateway.carriers import twilio_hooks
from gateway.carriers.core import Carrier
from gateway.carriers.hooks import CallInfo, StreamPlan, Verdict, WebhookRequest
from gateway.config import Secret, is_loopback, load_settings
from gateway.errors import ConfigError

TOKEN = "12345"
DOC_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
DOC_PARAMS = {"CallSid": "CA1234567890ABCDE", "Caller": "+12349013030", "Digits": "1234",
              "From": "+12349013030", "To": "+18005551212"}
ENV = {"GEMINI_API_KEY": "AIzaSy-test-key-000000"}


def test_twilio_documented_vector() -> None:
    assert twilio_hooks.compute_signature(TOKEN, DOC_URL, DOC_PARAMS.items()) == \
        "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    assert twilio_hooks.is_valid(TOKEN, [DOC_URL], DOC_PARAMS.items(),
                                 "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")


def test_tampering_wrong_token_and_missing_signature_fail() -> None:
    sig = RequestValidator(TOKEN).compute_signature(DOC_URL, DOC_PARAMS)
    assert twilio_hooks.is_valid(TOKEN, [DOC_URL], DOC_PARAMS.items(), sig)
    tampered = {**DOC_PARAMS, "To": "+18005550000"}
    assert not twilio_hooks.is_valid(TOKEN, [DOC_URL], tampered.items(), sig)
    assert not twilio_hooks.is_valid(TOKEN, [DOC_URL + "&x=1"], DOC_PARAMS.items(), sig)
    assert not twilio_hooks.is_valid("54321", [DOC_URL], DOC_PARAMS.items(), sig)
    assert not twilio_hooks.is_valid(TOKEN, [DOC_URL], DOC_PARAMS.items(), None)
    assert not twilio_hooks.is_valid(TOKEN, [DOC_URL], DOC_PARAMS.items(), "")
    assert not twilio_hooks.is_valid(TOKEN, [DOC_URL], DOC_PARAMS.items(), "é" + sig[1:])


def test_url_variants_follow_twilios_validator_with_the_right_default_port() -> None:
    assert signing.url_variants("https://gw.example.com/twiml") == [
        "https://gw.example.com/twiml", "https://gw.example.com:443/twiml"]
    assert signing.url_variants("http://gw.example.com:8080/twiml?a=1") == [
        "http://gw.example.com:8080/twiml?a=1", "http://gw.example.com/twiml?a=1"]
    # Twilio's validator would try wss://...:80; a wss URL's default port is 443.
    assert signing.url_variants("wss://gw.example.com/media") == [
        "wss://gw.example.com/media", "wss://gw.example.com:443/media"]
    assert signing.url_variants("https://[::1]:8443/media") == [
        "https://[::1]:8443/media", "https://[::1]/media"]


def test_stream_candidates_are_the_wss_and_https_forms_under_the_public_prefix() -> None:
    urls = signing.public_urls("https://gw.example.com/voice/", "/media", websocket=True)
    assert urls[0] == "wss://gw.example.com/voice/media"
    assert "https://gw.example.com/voice/media" in urls
    assert signing.public_urls("https://gw.example.com", "/twiml?x=1", websocket=False) == (
        "https://gw.example.com/twiml?x=1", "https://gw.example.com:443/twiml?x=1")


def test_the_verifier_says_missing_invalid_or_valid() -> None:
    verifier = twilio_hooks.TwilioSignature(TOKEN)
    sig = RequestValidator(TOKEN).compute_signature(DOC_URL, DOC_PARAMS)

    def request(headers: dict[str, str], form: dict[str, str] = DOC_PARAMS) -> WebhookRequest:
        return WebhookRequest("POST", (DOC_URL,), headers, form=tuple(form.items()))

    assert verifier.verify(request({"X-Twilio-Signature": sig})) is Verdict.VALID
    assert verifier.verify(request({})) is Verdict.MISSING
    assert verifier.verify(request({"X-Twilio-Signature": sig},
                                   {**DOC_PARAMS, "To": "+1"})) is Verdict.INVALID


def test_the_answer_is_twiml_twilio_reads_with_the_token_as_a_parameter() -> None:
    from xml.etree import ElementTree

    hooks = twilio_hooks.TwilioHooks()
    request = WebhookRequest("POST", (DOC_URL,), {}, form=tuple(DOC_PARAMS.items()))
    call = hooks.call_info(request)
    assert call == CallInfo("CA1234567890ABCDE", "+12349013030", "+18005551212",
                            {"From": "+12349013030", "To": "+18005551212",
                             "CallSid": "CA1234567890ABCDE"})
    doc = hooks.answer(call, StreamPlan("wss://gw.example.com/twilio/media",
                                        {**call.forwarded, "voicegw_token": 'a"<b'}))
    assert doc.content_type == "text/xml"
    root = ElementTree.fromstring(doc.body)
    stream = root.find("./Connect/Stream")
    assert stream is not None and stream.get("url") == "wss://gw.example.com/twilio/media"
    assert {p.get("name"): p.get("value") for p in stream} == {
        **call.forwarded, "voicegw_token": 'a"<b'}  # escaped, not spliced
    assert [child.tag for child in root] == ["Connect", "Hangup"]
    busy = ElementTree.fromstring(hooks.busy().body)
    assert [child.tag for child in busy] == ["Say", "Hangup"]


def test_a_webhook_without_a_call_sid_is_refused() -> None:
    with pytest.raises(signing.WebhookError, match="CallSid"):
        twilio_hooks.TwilioHooks().call_info(WebhookRequest("POST", (DOC_URL,), {}))


# -- property tests: our computation is Twilio's -----------------------------------------

_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
_hosts = st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z]{2,5}){1,2}", fullmatch=True)
_paths = st.lists(st.from_regex(r"[A-Za-z0-9._~%-]{1,8}", fullmatch=True), max_size=3) \
    .map(lambda segs: "/" + "/".join(segs))
_queries = st.lists(st.tuples(st.from_regex(r"[a-z]{1,5}", fullmatch=True),
                              st.from_regex(r"[A-Za-z0-9%+]{0,6}", fullmatch=True)),
                    max_size=3).map(lambda kv: "&".join(f"{k}={v}" for k, v in kv))


@st.composite
def _urls(draw: st.DrawFn, schemes: tuple[str, ...] = ("http", "https")) -> str:
    scheme = draw(st.sampled_from(schemes))
    port = draw(st.none() | st.integers(1, 65535))
    netloc = draw(_hosts) + (f":{port}" if port is not None else "")
    query = draw(_queries)
    return f"{scheme}://{netloc}{draw(_paths)}" + (f"?{query}" if query else "")


_params = st.lists(st.tuples(_text, _text), max_size=6)


@given(token=st.text(min_size=1, max_size=40), url=_urls(("http", "https", "ws", "wss")),
       pairs=_params)
def test_compute_matches_twilios_request_validator(token: str, url: str,
                                                   pairs: list[tuple[str, str]]) -> None:
    # A MultiDict has getall(), which Twilio's validator uses for repeated names.
    expected = RequestValidator(token).compute_signature(url, MultiDict(pairs))
    assert twilio_hooks.compute_signature(token, url, pairs) == expected


@given(url=_urls(), pairs=_params, signed_as=st.sampled_from(["same", "port", "bare", "other"]))
def test_validation_agrees_with_twilios_for_http_urls(url: str, pairs: list[tuple[str, str]],
                                                      signed_as: str) -> None:
    validator = RequestValidator(TOKEN)
    variants = signing.url_variants(url)
    target = {"same": url, "port": variants[-1], "bare": variants[min(1, len(variants) - 1)],
              "other": url + "x"}[signed_as]
    sig = validator.compute_signature(target, MultiDict(pairs))
    ours = twilio_hooks.is_valid(TOKEN, signing.url_variants(url), pairs, sig)
    assert ours == validator.validate(url, MultiDict(pairs), sig)


# -- unsigned mode: refuse to be exposed without a token ----------------------------------

@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.0.0.53", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("LOCALHOST", True), ("0.0.0.0", False), ("::", False),
    ("", False), ("10.0.0.5", False), ("gw.example.com", False),
])
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_unsigned_carriers_are_served_only_in_development_or_when_allowed() -> None:
    unsigned = all_setups({})
    signed = all_setups({"TWILIO_AUTH_TOKEN": "tok-123456"})
    # Nothing signed: every carrier on loopback, none beyond it without the opt-out.
    assert set(enabled(unsigned, allow_unsigned=False, loopback=True)) == set(unsigned)
    assert set(enabled(unsigned, allow_unsigned=True, loopback=False)) == set(unsigned)
    with pytest.raises(ConfigError, match=r"TWILIO_AUTH_TOKEN.*--allow-unsigned"):
        enabled(unsigned, allow_unsigned=False, loopback=False)
    # Once one carrier signs, only the signed ones are served (on loopback too: a proxy in
    # front makes loopback public), unless unsigned ones are allowed explicitly.
    for loopback in (True, False):
        served = enabled(signed, allow_unsigned=False, loopback=loopback)
        assert set(served) == {Carrier.TWILIO}
        assert served[Carrier.TWILIO].signed
    assert set(enabled(signed, allow_unsigned=True, loopback=False)) == set(signed)


def test_serve_refuses_a_public_address_without_a_token(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("TWILIO_AUTH_TOKEN", raising=False)
    served: list[Any] = []
    monkeypatch.setattr("gateway.lifecycle.serve", served.append)
    try:
        code = cli.main(["serve", "--host", "0.0.0.0", "--port", "0",
                         "--live-url", "ws://127.0.0.1:9"])
    finally:
        structlog.reset_defaults()  # main() pointed logging at capsys's stream
    err = capsys.readouterr().err
    assert code == 2
    assert not served  # refused before anything was built or bound
    assert len(err.strip().splitlines()) == 1
    assert "refusing to serve unsigned carriers beyond loopback" in err
    assert "TWILIO_AUTH_TOKEN" in err and "--allow-unsigned" in err


# -- settings from the environment ----------------------------------------------------------

def test_secret_max_calls_and_grace_come_from_the_environment() -> None:
    secret = "s" * 40
    s = load_settings(env={**ENV, "VOICEGW_SECRET": secret, "VOICEGW_MAX_CALLS": "7",
                           "VOICEGW_SHUTDOWN_GRACE_S": "2.5"})
    assert s.stream_secret == Secret(secret)
    assert secret not in repr(s)
    assert (s.max_calls, s.shutdown_grace_s) == (7, 2.5)
    assert load_settings(env={**ENV, "VOICEGW_MAX_CALLS": "7"}, max_calls=3).max_calls == 3
    defaults = load_settings(env=ENV)
    assert (defaults.stream_secret, defaults.max_calls) == (None, 100)
    assert defaults.stream_token_ttl_s == 120.0
    assert defaults.max_loop_lag_ms == 100.0
    assert load_settings(env={**ENV, "VOICEGW_MAX_LOOP_LAG_MS": "0"}).max_loop_lag_ms == 0.0
    assert load_settings(env={**ENV, "VOICEGW_MAX_LOOP_LAG_MS": "40"},
                         max_loop_lag_ms=250).max_loop_lag_ms == 250


@pytest.mark.parametrize(("name", "value"), [
    ("VOICEGW_MAX_CALLS", "0"), ("VOICEGW_MAX_CALLS", "2.5"), ("VOICEGW_MAX_CALLS", "many"),
    ("VOICEGW_MAX_CALLS", "inf"), ("VOICEGW_SHUTDOWN_GRACE_S", "-1"),
    ("VOICEGW_SHUTDOWN_GRACE_S", "nan"), ("VOICEGW_MAX_LOOP_LAG_MS", "-5"),
    ("VOICEGW_SECRET", "too-short"), ("VOICEGW_STREAM_TOKEN_TTL_S", "1"),
])
def test_bad_numbers_are_refused_at_start_up(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings(env={**ENV, name: value})
