"""Exotel's dynamic stream URL, sans-I/O: the call read from the applet's request, the
``{"url": ...}`` answer (rate and token in the query, credentials in the userinfo), the busy
answer, and the setup built from the environment."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest

from gateway.carrier_setup import all_setups
from gateway.carrier_setup.exotel import from_env
from gateway.carriers.basic_auth import BasicAuthCheck
from gateway.carriers.core import TOKEN_PARAMETER, Carrier
from gateway.carriers.exotel import CAPABILITIES
from gateway.carriers.exotel_hooks import ExotelHooks, stream_url
from gateway.carriers.hooks import StreamPlan, Verdict, WebhookError, WebhookRequest
from gateway.errors import ConfigError
from gateway.log import scrub

TOKEN = "1700000000.bm9uY2U.mac-_x"
PLAN = StreamPlan("wss://gw.example.test/exotel/media/desk", {TOKEN_PARAMETER: TOKEN})


def request(*query: tuple[str, str], auth: str | None = None) -> WebhookRequest:
    headers = {"Authorization": auth} if auth else {}
    return WebhookRequest("GET", ("https://gw.example.test/exotel/answer",), headers,
                          query=query)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_the_call_is_read_from_the_applets_query() -> None:
    hooks = ExotelHooks()
    call = hooks.call_info(request(("CallSid", "abc123"), ("From", "09876543210"),
                                   ("To", "08047491899")))
    assert (call.call_id, call.caller, call.callee) == ("abc123", "09876543210", "08047491899")
    assert call.forwarded == {}  # the start carries the numbers itself
    other = hooks.call_info(request(("CallSid", "abc123"), ("CallFrom", "1"), ("CallTo", "2")))
    assert (other.caller, other.callee) == ("1", "2")
    with pytest.raises(WebhookError):
        hooks.call_info(request(("From", "1")))
    with pytest.raises(WebhookError):
        hooks.call_info(request(("CallSid", "x" * 65)))


def test_the_answer_is_the_stream_url_with_rate_token_and_credentials() -> None:
    hooks = ExotelHooks(("voicegw", "p@ss:w/rd"))
    doc = hooks.answer(hooks.call_info(request(("CallSid", "abc123"))), PLAN)
    assert doc.content_type == "application/json"
    url = json.loads(doc.body)["url"]
    parts = urlsplit(url)
    assert (parts.scheme, parts.hostname, parts.path) == ("wss", "gw.example.test",
                                                          "/exotel/media/desk")
    # Percent-encoded in the URL, the credentials come back whole in the upgrade's header.
    assert (unquote(parts.username or ""), unquote(parts.password or "")) == \
        ("voicegw", "p@ss:w/rd")
    assert dict(parse_qsl(parts.query)) == {"sample-rate": "16000", TOKEN_PARAMETER: TOKEN}
    assert len(parse_qsl(parts.query)) <= 3 and len(parts.query) <= 256
    assert "p@ss" not in repr(hooks)


def test_without_credentials_the_url_has_no_userinfo_and_another_rate_can_be_asked() -> None:
    url = stream_url(StreamPlan(PLAN.url, {}), rate=8000)
    assert url == "wss://gw.example.test/exotel/media/desk?sample-rate=8000"
    with pytest.raises(ValueError, match="Hz"):
        stream_url(PLAN, rate=44100)
    with pytest.raises(ValueError, match="256"):
        stream_url(StreamPlan(PLAN.url, {"x": "y" * 300}))


def test_busy_answers_without_a_url() -> None:
    doc = ExotelHooks().busy()
    assert doc.body == ""  # HTTP 204: the applet gets no URL and the flow moves on


def test_the_setup_checks_basic_credentials_on_the_answer_and_the_upgrade() -> None:
    setup = from_env({"EXOTEL_STREAM_USER": "voicegw", "EXOTEL_STREAM_PASSWORD": "s3cret-pw"})
    assert setup.carrier is Carrier.EXOTEL and setup.signed and setup.needs_token
    assert setup.verify == setup.verify_upgrade == BasicAuthCheck("voicegw", "s3cret-pw")
    assert setup.call_control is None  # no REST hang-up or transfer exists
    assert setup.new_stream().caps == CAPABILITIES
    assert setup.verify is not None
    assert setup.verify.verify(request(auth=basic("voicegw", "s3cret-pw"))) is Verdict.VALID
    assert setup.verify.verify(request(auth=basic("voicegw", "wrong"))) is Verdict.INVALID
    assert setup.verify.verify(request()) is Verdict.MISSING
    assert "s3cret-pw" not in scrub("password s3cret-pw")  # registered as a secret


def test_unset_credentials_serve_it_unsigned_and_half_set_ones_are_refused() -> None:
    setup = all_setups({})[Carrier.EXOTEL]
    assert not setup.signed and setup.hooks is not None
    with pytest.raises(ConfigError, match="both"):
        from_env({"EXOTEL_STREAM_USER": "voicegw"})
    with pytest.raises(ConfigError, match="EXOTEL_STREAM_USER"):
        from_env({"EXOTEL_STREAM_USER": "a:b", "EXOTEL_STREAM_PASSWORD": "pw-123456"})


@pytest.mark.parametrize(("text", "rate"), [("", 16000), ("8000", 8000), ("24000", 24000)])
def test_the_rate_asked_for_is_configurable(text: str, rate: int) -> None:
    setup = from_env({"VOICEGW_EXOTEL_SAMPLE_RATE": text})
    assert isinstance(setup.hooks, ExotelHooks) and setup.hooks.rate == rate


@pytest.mark.parametrize("text", ["44100", "16k", "-8000"])
def test_a_rate_exotel_does_not_stream_is_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="VOICEGW_EXOTEL_SAMPLE_RATE"):
        from_env({"VOICEGW_EXOTEL_SAMPLE_RATE": text})
