"""Ephemeral Live API tokens: a client talks to the model directly, never holding the key. Pure.

An operator asks ``POST /v1/tokens`` for a token for one agent. The gateway asks the Live API's
``auth_tokens`` endpoint for one locked to the setup that agent's calls get (the same
``setup`` the bridge sends: model, voice, language, instructions, tools, turn-taking,
transcription), with ``uses``, ``expireTime`` and ``newSessionExpireTime`` set. The lock
names each field (``fieldMask``), the way the official SDK words "lock what I set": a client
can add what the agent leaves open, such as a resumption handle, and cannot change the rest.
The client then opens ``BidiGenerateContentConstrained`` on the Live host with the token.
That session bypasses the gateway: no tool runs, no call record is kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final
from urllib.parse import urlsplit

from gateway.errors import GatewayError

CONSTRAINED_PATH: Final = ("/ws/google.ai.generativelanguage.v1alpha.GenerativeService"
                           ".BidiGenerateContentConstrained")
TOKENS_PATH: Final = "/v1alpha/auth_tokens"
# The service refuses times 20 h or more ahead; a minute of margin for clocks that differ.
MAX_EXPIRE_S: Final = 20 * 3600 - 60
MAX_USES: Final = 100
# Not locked: a resumption handle is the client's own session state.
_OPEN_FIELDS: Final = frozenset({"sessionResumption"})


class TokenOrderError(GatewayError, ValueError):
    """A ``POST /v1/tokens`` body the gateway refuses (400)."""


@dataclass(frozen=True, slots=True)
class TokenOrder:
    """What an operator asked for. ``uses`` is at least 1: an unlimited token (the API's 0)
    handed to a browser is an API key by another name."""

    agent: str
    uses: int = 1
    expire_s: float = 1800.0
    new_session_expire_s: float = 60.0


def _number(body: Mapping[str, Any], name: str, default: float, low: float,
            high: float) -> float:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not low <= value <= high:
        raise TokenOrderError(f"{name} must be a number from {low:g} to {high:g}")
    return float(value)


def parse_order(body: Any) -> TokenOrder:
    """The JSON body ``{"agent", "uses", "expire_s", "new_session_expire_s"}``."""
    if not isinstance(body, Mapping):
        raise TokenOrderError("the body must be a JSON object")
    unknown = sorted(set(body) - {"agent", "uses", "expire_s", "new_session_expire_s"})
    if unknown:
        raise TokenOrderError(f"unknown field {unknown[0]!r}")
    agent = body.get("agent")
    if not isinstance(agent, str) or not agent.strip():
        raise TokenOrderError("agent must name an agent")
    uses = _number(body, "uses", 1, 1, MAX_USES)
    if not uses.is_integer():
        raise TokenOrderError("uses must be a whole number")
    expire_s = _number(body, "expire_s", 1800, 1, MAX_EXPIRE_S)
    window = _number(body, "new_session_expire_s", min(60.0, expire_s), 1, expire_s)
    return TokenOrder(agent.strip(), int(uses), expire_s, window)


def field_mask(setup: Mapping[str, Any]) -> str:
    """Every field of ``setup``, one level into objects (``generationConfig.speechConfig``)."""
    paths: list[str] = []
    for name, value in setup.items():
        if isinstance(value, Mapping) and value:
            paths.extend(f"{name}.{inner}" for inner in value)
        else:
            paths.append(name)
    return ",".join(paths)


def _rfc3339(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """The ``auth_tokens`` request body, and what the answer to the operator will say."""

    body: Mapping[str, Any]
    expire_time: str
    new_session_expire_time: str
    model: str


def token_request(setup: Mapping[str, Any], order: TokenOrder, now: datetime) -> TokenRequest:
    """``setup``: the agent's ``setup`` object (:func:`gateway.live.setup_object`); ``now``
    is timezone-aware."""
    locked = {k: v for k, v in setup.items() if k not in _OPEN_FIELDS}
    expire = _rfc3339(now + timedelta(seconds=order.expire_s))
    window = _rfc3339(now + timedelta(seconds=order.new_session_expire_s))
    body = {"uses": order.uses, "expireTime": expire, "newSessionExpireTime": window,
            "bidiGenerateContentSetup": locked, "fieldMask": field_mask(locked)}
    return TokenRequest(body, expire, window, str(setup.get("model", "")))


def constrained_url(live_url: str) -> str:
    """The constrained endpoint on the host of the gateway's Live endpoint (no query: the
    client adds ``?access_token=``, or sends ``Authorization: Token ...``)."""
    parts = urlsplit(live_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return f"{scheme}://{parts.netloc.rpartition('@')[2]}{CONSTRAINED_PATH}"


def rest_url(live_url: str) -> str:
    """The REST base URL of the same host (``wss://h`` -> ``https://h``)."""
    parts = urlsplit(live_url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return f"{scheme}://{parts.netloc.rpartition('@')[2]}"


def grant(request: TokenRequest, token: str, live_url: str) -> dict[str, str]:
    """The answer to ``POST /v1/tokens``."""
    return {"token": token, "expire_time": request.expire_time,
            "new_session_expire_time": request.new_session_expire_time,
            "model": request.model, "ws_url": constrained_url(live_url)}
