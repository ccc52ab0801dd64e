"""HTTP Basic credentials on a provider's requests, checked. Pure: no I/O.

Exotel, jambonz and Asterisk's WebSocket channel driver sign nothing; what they can do is send
a user name and password the operator configured with each request (in the URL's userinfo,
which a client turns into an ``Authorization: Basic`` header, or as that header directly).
:class:`BasicAuthCheck` is the :class:`gateway.carriers.hooks.Verifier` for them. Both parts
are compared in constant time, and both always, so the time taken says nothing of which part
was wrong.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass, field
from typing import Final

from gateway.carriers.hooks import Verdict, WebhookRequest

HEADER: Final = "Authorization"
_MAX_CHARS: Final = 1024  # far beyond any configured pair; a longer header is not one


def basic_pair(value: str | None) -> tuple[str, str] | None:
    """The (user, password) of an ``Authorization: Basic ...`` value; None if it is not one."""
    if not value or len(value) > _MAX_CHARS:
        return None
    scheme, _, encoded = value.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        text = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = text.partition(":")
    return (user, password) if sep else None


@dataclass(frozen=True, slots=True)
class BasicAuthCheck:
    """A request must carry exactly these credentials."""

    user: str
    password: str = field(repr=False)
    header: str = HEADER

    def __post_init__(self) -> None:
        if not self.user or not self.password or ":" in self.user:
            raise ValueError("Basic credentials need a user (without ':') and a password")

    def verify(self, request: WebhookRequest) -> Verdict:
        value = request.headers.get(self.header)
        if not value or not value.strip():
            return Verdict.MISSING
        pair = basic_pair(value)
        if pair is None:
            return Verdict.INVALID
        user_ok = hmac.compare_digest(pair[0].encode(), self.user.encode())
        password_ok = hmac.compare_digest(pair[1].encode(), self.password.encode())
        return Verdict.VALID if user_ok and password_ok else Verdict.INVALID
