"""The token request the gateway builds for an agent (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from google.genai import tokens as sdk_tokens

from gateway import live
from gateway.config import load_settings, vertex_endpoint
from gateway.errors import ConfigError
from gateway.live_token_client import TokenMinter
from gateway.live_tokens import (
    TokenOrder,
    TokenOrderError,
    constrained_url,
    field_mask,
    parse_order,
    rest_url,
    token_request,
)
from gateway.registry import bundled_agents
from gateway.token_route import WITHHELD

NOW = datetime(2027, 1, 15, 8, 0, tzinfo=UTC)


def agent_setup() -> dict[str, object]:
    agent = {a.name: a for a in bundled_agents()}["support"]
    base = live.SessionConfig(model="models/m")
    return live.setup_object(agent.session_config(base, withheld=WITHHELD))


def test_the_request_locks_the_agents_setup_with_the_times_asked_for() -> None:
    setup = agent_setup()
    wanted = token_request(setup, TokenOrder("support", 3, 600, 30), NOW)
    body = wanted.body
    assert body["uses"] == 3
    assert body["expireTime"] == wanted.expire_time == "2027-01-15T08:10:00Z"
    assert body["newSessionExpireTime"] == "2027-01-15T08:00:30Z"
    locked = body["bidiGenerateContentSetup"]
    assert "sessionResumption" not in locked  # a client may resume its own session
    assert {k: v for k, v in setup.items() if k != "sessionResumption"} == locked
    assert wanted.model == "models/m"


def test_the_field_mask_names_fields_as_the_sdk_does() -> None:
    setup = agent_setup()
    assert field_mask(setup) == sdk_tokens._get_field_masks(setup)


@pytest.mark.parametrize("body", [
    {}, {"agent": ""}, {"agent": "a", "uses": 0}, {"agent": "a", "uses": 1.5},
    {"agent": "a", "uses": True}, {"agent": "a", "expire_s": 72000},
    {"agent": "a", "expire_s": 10, "new_session_expire_s": 11}, {"agent": "a", "x": 1}, [],
])
def test_bad_orders(body: object) -> None:
    with pytest.raises(TokenOrderError):
        parse_order(body)


def test_order_defaults() -> None:
    assert parse_order({"agent": " support "}) == TokenOrder("support", 1, 1800.0, 60.0)
    assert parse_order({"agent": "a", "expire_s": 20}).new_session_expire_s == 20


def test_urls_on_the_live_host() -> None:
    url = "wss://user@live.example:8443/ws/whatever?key=SECRET"
    assert constrained_url(url) == ("wss://live.example:8443/ws/google.ai.generativelanguage"
                                    ".v1alpha.GenerativeService"
                                    ".BidiGenerateContentConstrained")
    assert rest_url(url) == "https://live.example:8443"
    assert rest_url("ws://127.0.0.1:9") == "http://127.0.0.1:9"


def test_where_tokens_are_minted() -> None:
    env = {"GEMINI_API_KEY": "a-key-for-tests", "VOICEGW_LIVE_REST_URL": "https://r.example"}
    settings = load_settings(env=env)
    minter = TokenMinter.for_endpoint(settings.endpoint, settings.live_rest_url)
    assert minter is not None and minter.base_url == "https://r.example"
    plain = TokenMinter.for_endpoint(load_settings(env={"GEMINI_API_KEY": "a-key-for-tests"})
                                     .endpoint)
    assert plain is not None and plain.base_url == "https://generativelanguage.googleapis.com"
    assert TokenMinter.for_endpoint(vertex_endpoint("p", "us-central1", "t", "m")) is None
    with pytest.raises(ConfigError):
        load_settings(env={**env, "VOICEGW_LIVE_REST_URL": "ftp://r.example"})
