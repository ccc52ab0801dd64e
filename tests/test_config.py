"""Settings: endpoints for AI Studio, Vertex AI and custom URLs; secrets never printed."""

from __future__ import annotations

import dataclasses
import json

import pytest
from google import genai
from google.genai import _transformers as sdk_transformers
from google.oauth2.credentials import Credentials

from gateway.config import (
    DEFAULT_MODEL,
    LiveEndpoint,
    Secret,
    Settings,
    ai_studio_endpoint,
    custom_endpoint,
    load_settings,
    vertex_endpoint,
    vertex_host,
)
from gateway.errors import ConfigError, GatewayError

KEY = "AIzaSyTEST-not-a-real-key-0123456789"
TOKEN = "ya29.TEST-access-token-abcdef"
AI_STUDIO_URL = ("wss://generativelanguage.googleapis.com/ws/"
                 "google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent")


def _leaks(secret: str, *texts: str) -> list[str]:
    return [t for t in texts if secret in t]


def _all_renderings(settings: Settings) -> list[str]:
    ep = settings.endpoint
    return [ep.url, ep.safe_url(), repr(settings), str(settings), repr(ep), str(ep),
            f"{settings}", "%s %r" % (settings, settings),  # noqa: UP031
            json.dumps(dataclasses.asdict(settings), default=str),
            repr(dict(ep.headers)), str(list(ep.headers.values()))]


# -- AI Studio ----------------------------------------------------------------------------


def test_ai_studio_endpoint() -> None:
    ep = ai_studio_endpoint(KEY, "gemini-2.5-flash-native-audio-preview-12-2025")
    assert ep.kind == "ai_studio"
    assert ep.url == AI_STUDIO_URL
    assert ep.model == "models/gemini-2.5-flash-native-audio-preview-12-2025"
    assert set(ep.headers) == {"x-goog-api-key"}
    assert ep.headers["x-goog-api-key"].reveal() == KEY
    assert not _leaks(KEY, ep.url, ep.safe_url(), repr(ep), str(ep))


def test_ai_studio_model_prefix_not_doubled_and_version_pinnable() -> None:
    ep = ai_studio_endpoint(KEY, "models/m", version="v1alpha")
    assert ep.model == "models/m"
    assert ".v1alpha.GenerativeService.BidiGenerateContent" in ep.url


def test_ai_studio_url_matches_the_sdk() -> None:
    client = genai.Client(api_key=KEY)
    base = client._api_client._http_options.base_url
    assert base is not None
    sdk_host = base.split("://", 1)[1].rstrip("/")
    assert ai_studio_endpoint(KEY, "m").url == (
        f"wss://{sdk_host}/ws/google.ai.generativelanguage.v1beta.GenerativeService."
        "BidiGenerateContent")


# -- Vertex AI ------------------------------------------------------------------------------


@pytest.mark.parametrize(("location", "host"), [
    ("global", "aiplatform.googleapis.com"),
    ("us", "aiplatform.us.rep.googleapis.com"),
    ("eu", "aiplatform.eu.rep.googleapis.com"),
    ("us-central1", "us-central1-aiplatform.googleapis.com"),
    ("europe-west4", "europe-west4-aiplatform.googleapis.com"),
    ("asia-northeast1", "asia-northeast1-aiplatform.googleapis.com"),
])
def test_vertex_host_rules(location: str, host: str) -> None:
    assert vertex_host(location) == host
    ep = vertex_endpoint("my-proj", location, TOKEN, "gemini-live")
    assert ep.url == (f"wss://{host}/ws/google.cloud.aiplatform.v1beta1.LlmBidiService/"
                      "BidiGenerateContent")


@pytest.mark.parametrize("location", ["global", "us", "eu", "us-central1", "europe-west4",
                                      "me-central2"])
def test_vertex_host_agrees_with_the_sdk(location: str) -> None:
    client = genai.Client(vertexai=True, project="p", location=location,
                          credentials=Credentials(token="t"))  # type: ignore[no-untyped-call]
    base = client._api_client._http_options.base_url
    assert base == f"https://{vertex_host(location)}/"


@pytest.mark.parametrize("model", ["gemini-live", "models/gemini-live",
                                   "publishers/google/models/gemini-live"])
def test_vertex_model_path_and_auth(model: str) -> None:
    ep = vertex_endpoint("my-proj", "us-central1", TOKEN, model, version="v1")
    assert ep.kind == "vertex"
    assert ep.model == ("projects/my-proj/locations/us-central1/publishers/google/models/"
                        "gemini-live")
    assert "/google.cloud.aiplatform.v1.LlmBidiService/" in ep.url
    assert set(ep.headers) == {"Authorization"}
    assert ep.headers["Authorization"].reveal() == f"Bearer {TOKEN}"
    assert not _leaks(TOKEN, ep.url, ep.safe_url(), repr(ep), str(ep))


def test_vertex_model_path_agrees_with_the_sdk() -> None:
    client = genai.Client(vertexai=True, project="my-proj", location="europe-west4",
                          credentials=Credentials(token="t"))  # type: ignore[no-untyped-call]
    sdk_model = sdk_transformers.t_model(client._api_client, "gemini-live")
    # AsyncLive.connect then prefixes publishers/... with the project and location
    assert sdk_model == "publishers/google/models/gemini-live"
    sdk_model = f"projects/my-proj/locations/europe-west4/{sdk_model}"
    ours = vertex_endpoint("my-proj", "europe-west4", TOKEN, "gemini-live").model
    assert ours == sdk_model


# -- custom URL -------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["ws://127.0.0.1:9000/live", "wss://sim.example/ws/x?y=1"])
def test_custom_endpoint_verbatim(url: str) -> None:
    ep = custom_endpoint(url, "m", KEY)
    assert (ep.url, ep.kind, ep.model) == (url, "custom", "models/m")
    assert ep.headers["x-goog-api-key"].reveal() == KEY
    assert custom_endpoint(url, "publishers/google/models/m").model == (
        "publishers/google/models/m")
    assert custom_endpoint(url, "m").headers == {}


@pytest.mark.parametrize("url", ["http://127.0.0.1:9000", "https://x", "ftp://x",
                                 "127.0.0.1:9000", "", "WS//x"])
def test_bad_live_url_scheme_raises(url: str) -> None:
    with pytest.raises(ConfigError, match=r"--live-url must be a ws:// or wss:// URL"):
        custom_endpoint(url, "m")
    if url:  # an empty flag means "not given"
        with pytest.raises(ConfigError, match="--live-url"):
            load_settings(live_url=url, env={"GEMINI_API_KEY": KEY})


def test_config_error_is_a_gateway_error() -> None:
    assert issubclass(ConfigError, GatewayError)


@pytest.mark.parametrize(("url", "safe"), [
    ("wss://h/p?key=SECRET", "wss://h/p"),
    ("wss://h:8443/p#frag-SECRET", "wss://h:8443/p"),
    ("wss://user:SECRET@h:8443/p?access_token=SECRET", "wss://h:8443/p"),
    ("ws://127.0.0.1:9000/live", "ws://127.0.0.1:9000/live"),
])
def test_safe_url_drops_query_fragment_and_credentials(url: str, safe: str) -> None:
    ep = LiveEndpoint(url=url, model="models/m", kind="custom")
    assert ep.safe_url() == safe
    assert "SECRET" not in ep.safe_url()


# -- Secret -------------------------------------------------------------------------------------


def test_secret_never_prints() -> None:
    s = Secret(KEY)
    for text in (repr(s), str(s), f"{s}", f"{s!r}", "%s" % s, format(s, ""),  # noqa: UP031
                 repr([s]), repr({"k": s}), json.dumps({"k": s}, default=str)):
        assert KEY not in text
        assert "***" in text
    assert s.reveal() == KEY


def test_secret_equality_and_hash() -> None:
    assert Secret("a") == Secret("a")
    assert Secret("a") != Secret("b")
    assert Secret("a") != "a"
    assert hash(Secret("a")) == hash(Secret("a"))
    assert len({Secret("a"), Secret("a"), Secret("b")}) == 2


def test_secret_has_no_dict_to_leak_through() -> None:
    s = Secret(KEY)
    assert not hasattr(s, "__dict__")
    assert KEY not in repr(vars(type(s)))


# -- load_settings --------------------------------------------------------------------------


def test_ai_studio_from_env_never_shows_the_key() -> None:
    settings = load_settings(env={"GEMINI_API_KEY": KEY})
    assert settings.endpoint.kind == "ai_studio"
    assert settings.endpoint.url == AI_STUDIO_URL
    assert settings.endpoint.model == f"models/{DEFAULT_MODEL}"
    assert settings.endpoint.headers["x-goog-api-key"].reveal() == KEY
    assert _leaks(KEY, *_all_renderings(settings)) == []


def test_google_api_key_is_a_fallback() -> None:
    settings = load_settings(env={"GOOGLE_API_KEY": KEY})
    assert settings.endpoint.headers["x-goog-api-key"].reveal() == KEY
    both = load_settings(env={"GEMINI_API_KEY": "gemini-key-1", "GOOGLE_API_KEY": KEY})
    assert both.endpoint.headers["x-goog-api-key"].reveal() == "gemini-key-1"


def test_vertex_from_env_never_shows_the_token() -> None:
    settings = load_settings(env={"GOOGLE_CLOUD_PROJECT": "proj", "GOOGLE_CLOUD_LOCATION": "eu",
                                  "VOICEGW_VERTEX_TOKEN": TOKEN, "GEMINI_API_KEY": KEY})
    ep = settings.endpoint
    assert ep.kind == "vertex"  # Vertex wins when it is fully configured
    assert ep.url.startswith("wss://aiplatform.eu.rep.googleapis.com/")
    assert ep.model == f"projects/proj/locations/eu/publishers/google/models/{DEFAULT_MODEL}"
    assert _leaks(TOKEN, *_all_renderings(settings)) == []
    assert _leaks(KEY, *_all_renderings(settings)) == []


def test_vertex_location_defaults_to_us_central1() -> None:
    ep = load_settings(env={"GOOGLE_CLOUD_PROJECT": "p", "VOICEGW_VERTEX_TOKEN": TOKEN}).endpoint
    assert ep.url.startswith("wss://us-central1-aiplatform.googleapis.com/")


def test_project_without_token_falls_back_to_the_api_key() -> None:
    ep = load_settings(env={"GOOGLE_CLOUD_PROJECT": "p", "GEMINI_API_KEY": KEY}).endpoint
    assert ep.kind == "ai_studio"


def test_custom_url_with_key_keeps_the_key_out_of_the_url() -> None:
    settings = load_settings(live_url="ws://127.0.0.1:9000/sim", model="sim-model",
                             env={"GEMINI_API_KEY": KEY})
    ep = settings.endpoint
    assert (ep.kind, ep.url, ep.model) == ("custom", "ws://127.0.0.1:9000/sim",
                                           "models/sim-model")
    assert ep.headers["x-goog-api-key"].reveal() == KEY
    assert _leaks(KEY, *_all_renderings(settings)) == []


def test_custom_url_needs_no_credentials() -> None:
    assert load_settings(live_url="ws://127.0.0.1:9000", env={}).endpoint.headers == {}


@pytest.mark.parametrize("env", [
    {},
    {"GEMINI_API_KEY": "   "},
    {"GOOGLE_CLOUD_PROJECT": "p"},
    {"VOICEGW_VERTEX_TOKEN": TOKEN},
    {"GOOGLE_CLOUD_LOCATION": "us"},
])
def test_missing_credentials_raise_a_helpful_error(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(env=env)
    text = str(exc.value)
    for hint in ("GEMINI_API_KEY", "GOOGLE_CLOUD_PROJECT", "VOICEGW_VERTEX_TOKEN", "--live-url"):
        assert hint in text
    assert TOKEN not in text


def test_environment_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_CLOUD_PROJECT",
                 "VOICEGW_VERTEX_TOKEN", "VOICEGW_MODEL", "VOICEGW_INSTRUCTIONS"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError):
        load_settings()
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    assert load_settings().endpoint.kind == "ai_studio"


def test_flags_and_environment_values() -> None:
    env = {"GEMINI_API_KEY": KEY, "VOICEGW_MODEL": "env-model", "VOICEGW_VOICE": "Puck",
           "VOICEGW_LANGUAGE": "de-DE", "VOICEGW_INSTRUCTIONS": "Be brief.",
           "VOICEGW_PUBLIC_URL": "https://gw.example.com"}
    s = load_settings(host="0.0.0.0", port=9999, log_level="debug", env=env)
    assert (s.host, s.port, s.log_level) == ("0.0.0.0", 9999, "debug")
    assert s.endpoint.model == "models/env-model"
    assert (s.voice, s.language, s.system_instruction) == ("Puck", "de-DE", "Be brief.")
    assert s.public_url == "https://gw.example.com"
    assert load_settings(model="flag-model", env=env).endpoint.model == "models/flag-model"


def test_defaults() -> None:
    s = load_settings(env={"GEMINI_API_KEY": KEY})
    assert (s.host, s.port, s.voice, s.language, s.public_url) == (
        "127.0.0.1", 8080, "Kore", "en-US", None)
    assert "phone agent" in s.system_instruction


@pytest.mark.parametrize("url", ["gw.example.com", "ftp://gw.example.com"])
def test_bad_public_url_raises(url: str) -> None:
    with pytest.raises(ConfigError, match="VOICEGW_PUBLIC_URL"):
        load_settings(env={"GEMINI_API_KEY": KEY, "VOICEGW_PUBLIC_URL": url})


@pytest.mark.parametrize("port", [-1, 65536])
def test_port_out_of_range(port: int) -> None:
    with pytest.raises(ConfigError, match="port out of range"):
        load_settings(port=port, env={"GEMINI_API_KEY": KEY})


def test_settings_are_frozen() -> None:
    s = load_settings(env={"GEMINI_API_KEY": KEY})
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.port = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.endpoint.url = "wss://evil"  # type: ignore[misc]


def test_exception_tracebacks_do_not_show_the_key() -> None:
    settings = load_settings(env={"GEMINI_API_KEY": KEY})
    with pytest.raises(RuntimeError) as exc:
        raise RuntimeError(f"failed with {settings!r} / {settings.endpoint}")
    assert KEY not in str(exc.value)


def test_repr_of_headers_field_is_hidden() -> None:
    ep = ai_studio_endpoint(KEY, "m")
    assert "headers" not in repr(ep)


def test_bare_live_url_gets_the_ai_studio_path() -> None:
    from gateway.config import AI_STUDIO_PATH, custom_endpoint

    bare = custom_endpoint("ws://127.0.0.1:8765", "m")
    assert bare.url == "ws://127.0.0.1:8765" + AI_STUDIO_PATH.format(version="v1beta")
    explicit = custom_endpoint("wss://proxy.example/live/socket", "m")
    assert explicit.url == "wss://proxy.example/live/socket"
