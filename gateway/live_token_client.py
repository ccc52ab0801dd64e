"""Mints ephemeral tokens at the Live API's REST endpoint (``POST /v1alpha/auth_tokens``).

An aiohttp adapter for :mod:`gateway.live_tokens`. The API key travels in the
``x-goog-api-key`` header, never in the URL, and no error says more than the service's status
and message, scrubbed of registered secrets. Not the carriers' :class:`~gateway.rest.http.
RestTransport`: that one is call control (a 404 means the call has gone, its logs and errors
name a call), and it retries, where a mint that failed half-way is better answered with an
error the operator can retry than with a second token nobody asked for.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any

import aiohttp

from gateway.config import LiveEndpoint, Secret
from gateway.errors import PeerError
from gateway.live_tokens import TOKENS_PATH, rest_url
from gateway.log import register_secret, scrub


class TokenMintError(PeerError):
    """The Live API did not mint a token; ``status`` is its HTTP status (0: no answer)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class TokenMinter:
    """One pooled HTTP session to the Live API's REST host, until :meth:`aclose`."""

    def __init__(self, base_url: str, api_key: Secret, *,
                 ssl_context: ssl.SSLContext | None = None, timeout_s: float = 10.0) -> None:
        register_secret(api_key.reveal())
        self.base_url = base_url.rstrip("/")
        self._key = api_key
        self._ssl = ssl_context
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def for_endpoint(cls, endpoint: LiveEndpoint, base_url: str | None = None, *,
                     ssl_context: ssl.SSLContext | None = None) -> TokenMinter | None:
        """For the gateway's Live endpoint; None where tokens cannot be had (Vertex AI, or a
        custom endpoint without an API key)."""
        key = endpoint.headers.get("x-goog-api-key")
        if endpoint.kind == "vertex" or key is None:
            return None
        return cls(base_url or rest_url(endpoint.url), key, ssl_context=ssl_context)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def mint(self, body: Mapping[str, Any]) -> str:
        """The new token's name (``auth_tokens/...``); raises :class:`TokenMintError`."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        headers = {"x-goog-api-key": self._key.reveal(), "Content-Type": "application/json"}
        try:
            async with self._session.post(self.base_url + TOKENS_PATH, json=dict(body),
                                          headers=headers, ssl=self._ssl or True,
                                          allow_redirects=False) as resp:
                answer = await resp.json(content_type=None)
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise TokenMintError(scrub(f"no answer from the Live API: "
                                       f"{type(exc).__name__}")) from None
        if status >= 300 or not isinstance(answer, dict):
            error = answer.get("error") if isinstance(answer, dict) else None
            message = error.get("message") if isinstance(error, dict) else None
            raise TokenMintError(scrub(f"the Live API refused the token: HTTP {status}"
                                       + (f": {str(message)[:200]}" if message else "")),
                                 status)
        name = answer.get("name")
        if not isinstance(name, str) or not name.startswith("auth_tokens/"):
            raise TokenMintError("the Live API's answer names no auth_tokens/ token", status)
        return name
