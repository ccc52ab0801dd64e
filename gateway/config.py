"""Settings: one frozen object built from the environment and command-line flags.

Bad or missing values raise :class:`ConfigError` at start-up, never in the middle of a call.
Secrets are held in :class:`Secret`, whose ``repr``/``str`` never show the value, so a settings
object can be logged or printed in a traceback without leaking a key.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Final, Literal
from urllib.parse import urlsplit

from gateway.caller_processing import LineProcessing
from gateway.errors import ConfigError
from gateway.stall import DEFAULT_STEP_S, DEFAULT_TIMEOUT_S

DEFAULT_MODEL: Final = "gemini-2.5-flash-native-audio-preview-12-2025"
AI_STUDIO_HOST: Final = "generativelanguage.googleapis.com"
AI_STUDIO_PATH: Final = (
    "/ws/google.ai.generativelanguage.{version}.GenerativeService.BidiGenerateContent"
)
VERTEX_PATH: Final = "/ws/google.cloud.aiplatform.{version}.LlmBidiService/BidiGenerateContent"
# Locations the Vertex API serves from a multi-regional ".rep" host, as Google's SDK does.
_MULTI_REGIONAL: Final = frozenset({"us", "eu"})


class Secret:
    """A string that refuses to be printed."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))


@dataclass(frozen=True, slots=True)
class LiveEndpoint:
    """Where and how to open a Live session. ``headers`` may hold secrets: never log them."""

    url: str
    model: str
    kind: Literal["ai_studio", "vertex", "custom"]
    headers: Mapping[str, Secret] = field(default_factory=dict, repr=False)

    def safe_url(self) -> str:
        """The URL without query, fragment or user:password@, for logs (a key could sit there)."""
        parts = urlsplit(self.url)
        host = parts.netloc.rpartition("@")[2]
        return f"{parts.scheme}://{host}{parts.path}"


def ai_studio_endpoint(api_key: str, model: str, *, version: str = "v1beta") -> LiveEndpoint:
    # The key goes in a header, as Google's SDK sends it, never in the URL.
    return LiveEndpoint(
        url=f"wss://{AI_STUDIO_HOST}{AI_STUDIO_PATH.format(version=version)}",
        model=model if model.startswith("models/") else f"models/{model}",
        kind="ai_studio",
        headers={"x-goog-api-key": Secret(api_key)},
    )


def vertex_host(location: str) -> str:
    if location == "global":
        return "aiplatform.googleapis.com"
    if location in _MULTI_REGIONAL:
        return f"aiplatform.{location}.rep.googleapis.com"
    return f"{location}-aiplatform.googleapis.com"


def vertex_endpoint(project: str, location: str, token: str, model: str, *,
                    version: str = "v1beta1") -> LiveEndpoint:
    model_id = model.rsplit("/", 1)[-1]
    return LiveEndpoint(
        url=f"wss://{vertex_host(location)}{VERTEX_PATH.format(version=version)}",
        model=f"projects/{project}/locations/{location}/publishers/google/models/{model_id}",
        kind="vertex",
        headers={"Authorization": Secret(f"Bearer {token}")},
    )


def custom_endpoint(url: str, model: str, api_key: str | None = None) -> LiveEndpoint:
    """An explicit URL (the simulator, a proxy); used verbatim, except that a bare
    ``ws://host:port`` gets the AI Studio path, as the official SDK does with a base URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss"):
        raise ConfigError(f"--live-url must be a ws:// or wss:// URL, got scheme "
                          f"{parts.scheme!r}")
    if parts.path in ("", "/") and not parts.query:
        url = f"{parts.scheme}://{parts.netloc}{AI_STUDIO_PATH.format(version='v1beta')}"
    headers = {"x-goog-api-key": Secret(api_key)} if api_key else {}
    return LiveEndpoint(url=url, kind="custom", headers=headers,
                        model=model if "/" in model else f"models/{model}")


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the server needs; built once by :func:`load_settings`."""

    endpoint: LiveEndpoint
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str | None = None
    voice: str | None = "Kore"
    language: str | None = "en-US"
    system_instruction: str = (
        "You are a friendly, concise phone agent. Callers hear you over a telephone line, "
        "so keep replies short and speak naturally."
    )
    mark_interval_ms: int = 200
    setup_timeout_s: float = 10.0
    max_caller_buffer_ms: float = 10_000.0  # caller audio held while Live is (re)connecting
    outbound_queue_items: int = 256
    shutdown_grace_s: float = 10.0
    log_level: str = "info"
    # Keys the per-call stream tokens (VOICEGW_SECRET); None: a random key per process.
    stream_secret: Secret | None = field(default=None, repr=False)
    stream_token_ttl_s: float = 120.0
    max_calls: int = 100  # concurrent calls; past this the answer routes say "busy"
    max_loop_lag_ms: float = 100.0  # event-loop lag (median over ~1 s) past which: "busy"
    # Where a call goes (with the carrier's REST credentials) when the Live API cannot serve it.
    fallback_number: str | None = None
    # Stereo WAVs of calls: those of agents with record=True, or all with VOICEGW_RECORD=all.
    recordings_dir: str = "recordings"
    record_all: bool = False
    capture_dir: str | None = None  # VOICEGW_CAPTURE_DIR: inbound streams as JSON lines
    # A model gone quiet (gateway.stall): seconds without reply audio, once one is owed,
    # before the nudge (VOICEGW_STALL_TIMEOUT_S; 0: off; an agent's own wins), and the wait
    # after the nudge and after the resume (VOICEGW_STALL_STEP_S).
    stall_timeout_s: float = DEFAULT_TIMEOUT_S
    stall_step_s: float = DEFAULT_STEP_S
    # VOICEGW_ECHO_CANCELLATION (on by default), VOICEGW_NOISE_SUPPRESSION (off): each agent
    # may choose otherwise.
    line_processing: LineProcessing = field(default_factory=LineProcessing)
    # Where POST /v1/tokens mints ephemeral tokens (VOICEGW_LIVE_REST_URL); None: https on
    # the Live endpoint's own host.
    live_rest_url: str | None = None


def _env(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _number(env: Mapping[str, str], name: str, flag: float | None, default: float, *,
            minimum: float, flag_name: str = "") -> float:
    text = _env(env, name)
    if flag is not None:
        value, name = flag, flag_name or name
    elif text is None:
        return default
    else:
        try:
            value = float(text)
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {text!r}") from None
    if not value >= minimum:  # also refuses NaN
        raise ConfigError(f"{name} must be at least {minimum:g}, got {value:g}")
    return value


def load_settings(*, host: str = "127.0.0.1", port: int = 8080, live_url: str | None = None,
                  model: str | None = None, log_level: str = "info",
                  max_calls: int | None = None, max_loop_lag_ms: float | None = None,
                  env: Mapping[str, str] | None = None) -> Settings:
    """Settings from flags (arguments) and the environment (``VOICEGW_*``, ``GEMINI_API_KEY``,
    ``GOOGLE_CLOUD_PROJECT``/``GOOGLE_CLOUD_LOCATION``/``VOICEGW_VERTEX_TOKEN``); a flag wins
    over its variable. The carriers' credentials are read by :mod:`gateway.carrier_setup`."""
    env = os.environ if env is None else env
    model = model or _env(env, "VOICEGW_MODEL") or DEFAULT_MODEL
    api_key = _env(env, "GEMINI_API_KEY") or _env(env, "GOOGLE_API_KEY")
    project = _env(env, "GOOGLE_CLOUD_PROJECT")
    location = _env(env, "GOOGLE_CLOUD_LOCATION") or "us-central1"
    vertex_token = _env(env, "VOICEGW_VERTEX_TOKEN")
    endpoint: LiveEndpoint
    if live_url:
        endpoint = custom_endpoint(live_url, model, api_key)
    elif project and vertex_token:
        endpoint = vertex_endpoint(project, location, vertex_token, model)
    elif api_key:
        endpoint = ai_studio_endpoint(api_key, model)
    else:
        raise ConfigError(
            "no Live API credentials: set GEMINI_API_KEY (AI Studio), or GOOGLE_CLOUD_PROJECT "
            "and VOICEGW_VERTEX_TOKEN (Vertex AI), or pass --live-url for a simulated server")
    public_url = _env(env, "VOICEGW_PUBLIC_URL")
    if public_url and urlsplit(public_url).scheme not in ("http", "https", "ws", "wss"):
        raise ConfigError("VOICEGW_PUBLIC_URL must start with https:// (or http:// for tests)")
    if not 0 <= port <= 65535:
        raise ConfigError(f"port out of range: {port}")
    voice = _env(env, "VOICEGW_VOICE") or "Kore"
    language = _env(env, "VOICEGW_LANGUAGE") or "en-US"
    calls = _number(env, "VOICEGW_MAX_CALLS", max_calls, 100, minimum=1,
                    flag_name="--max-calls")
    if not float(calls).is_integer():  # also refuses inf
        raise ConfigError(f"VOICEGW_MAX_CALLS must be a whole number, got {calls:g}")
    grace = _number(env, "VOICEGW_SHUTDOWN_GRACE_S", None, 10.0, minimum=0)
    lag = _number(env, "VOICEGW_MAX_LOOP_LAG_MS", max_loop_lag_ms, 100.0, minimum=0,
                  flag_name="--max-loop-lag-ms")
    secret = _env(env, "VOICEGW_SECRET")
    if secret is not None and len(secret) < 32:
        raise ConfigError("VOICEGW_SECRET must be at least 32 characters (it keys the "
                          "per-call stream tokens)")
    ttl = _number(env, "VOICEGW_STREAM_TOKEN_TTL_S", None, 120.0, minimum=5)
    stall = _number(env, "VOICEGW_STALL_TIMEOUT_S", None, DEFAULT_TIMEOUT_S, minimum=0)
    step = _number(env, "VOICEGW_STALL_STEP_S", None, DEFAULT_STEP_S, minimum=0.05)
    settings = Settings(endpoint=endpoint, host=host, port=port, public_url=public_url,
                        voice=voice, language=language, log_level=log_level,
                        stream_secret=Secret(secret) if secret else None,
                        stream_token_ttl_s=ttl,
                        max_calls=int(calls), max_loop_lag_ms=lag, shutdown_grace_s=grace,
                        stall_timeout_s=stall, stall_step_s=step)
    record = (_env(env, "VOICEGW_RECORD") or "agents").lower()
    if record not in ("agents", "all"):
        raise ConfigError(f"VOICEGW_RECORD must be 'agents' or 'all', got {record!r}")
    settings = replace(settings, fallback_number=_env(env, "VOICEGW_FALLBACK_NUMBER"),
                       recordings_dir=_env(env, "VOICEGW_RECORDINGS_DIR") or "recordings",
                       record_all=record == "all",
                       capture_dir=_env(env, "VOICEGW_CAPTURE_DIR"),
                       line_processing=line_processing(env),
                       live_rest_url=_rest_url(env))
    instruction = _env(env, "VOICEGW_INSTRUCTIONS")
    return replace(settings, system_instruction=instruction) if instruction else settings


def _rest_url(env: Mapping[str, str]) -> str | None:
    url = _env(env, "VOICEGW_LIVE_REST_URL")
    if url and urlsplit(url).scheme not in ("http", "https"):
        raise ConfigError("VOICEGW_LIVE_REST_URL must start with https:// (or http://)")
    return url


_ON: Final = frozenset({"1", "on", "true", "yes"})
_OFF: Final = frozenset({"0", "off", "false", "no"})


def _switch(env: Mapping[str, str], name: str, default: bool) -> bool:
    text = (_env(env, name) or "").lower()
    if not text:
        return default
    if text not in _ON | _OFF:
        raise ConfigError(f"{name} must be on or off, got {text[:20]!r}")
    return text in _ON


def line_processing(env: Mapping[str, str]) -> LineProcessing:
    """The gateway's default cleaning of callers' audio, from the environment."""
    default = LineProcessing()
    return LineProcessing(
        _switch(env, "VOICEGW_ECHO_CANCELLATION", default.echo_cancellation),
        _switch(env, "VOICEGW_NOISE_SUPPRESSION", default.noise_suppression))


def is_loopback(host: str) -> bool:
    """Whether ``host`` only listens on this machine (a name other than localhost could
    resolve to anything, so it counts as exposed)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False
