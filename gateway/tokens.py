"""Per-call stream tokens: a media socket is only for a call the gateway answered. Pure.

Providers differ in whether they sign the media socket's upgrade at all, so the answer
document the gateway writes for each call carries a short-lived token, in the stream's
parameters (or wherever that provider lets the document put something the socket will see).
The token is an HMAC over the carrier, the call id, an expiry and a random nonce, keyed by
``VOICEGW_SECRET`` (or a key made at start-up). When the stream starts, the bridge redeems it:
it must be the gateway's, for this carrier and this call, unexpired, and not used before. A
refused token closes the stream before any Live session opens, so nobody opens a session (and
runs up the Live API bill) by guessing a URL or replaying an old stream.

Spent nonces are remembered until their tokens expire, so the memory this takes is bounded
by the answer rate times the lifetime (a few hundred bytes per call answered in the last
``ttl_s``); past ``max_spent`` redemptions alive at once, tokens are refused rather than
forgotten early.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from typing import Final

DEFAULT_TTL_S: Final = 120.0
MAX_SPENT: Final = 200_000
_MAC_CHARS: Final = 32  # 192 bits of the HMAC, base64url


class TokenVerdict(enum.Enum):
    VALID = "valid"
    MISSING = "missing"
    MALFORMED = "malformed"
    FORGED = "forged"  # not the gateway's, or for another call or carrier
    EXPIRED = "expired"
    REPLAYED = "replayed"  # already used once
    OVERLOADED = "overloaded"  # too many live tokens to remember another


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


class StreamTokens:
    def __init__(self, key: bytes | None = None, *, ttl_s: float = DEFAULT_TTL_S,
                 max_spent: int = MAX_SPENT, clock: Callable[[], float] = time.time) -> None:
        if key is not None and len(key) < 16:
            raise ValueError("the stream-token key needs at least 16 bytes")
        self._key = key if key is not None else secrets.token_bytes(32)
        self.ttl_s = ttl_s
        self.max_spent = max_spent
        self._clock = clock
        self._spent: dict[str, float] = {}  # nonce -> expiry, oldest first

    def __repr__(self) -> str:
        return f"StreamTokens(ttl_s={self.ttl_s:g}, spent={len(self._spent)})"

    def _mac(self, carrier: str, call_id: str, expiry: int, nonce: str) -> str:
        message = f"{carrier}|{call_id}|{expiry}|{nonce}".encode()
        return _b64(hmac.new(self._key, message, hashlib.sha256).digest())[:_MAC_CHARS]

    def mint(self, carrier: str, call_id: str) -> str:
        """A token for one stream of ``call_id`` on ``carrier``."""
        expiry = int(self._clock() + self.ttl_s)
        nonce = _b64(secrets.token_bytes(12))
        return f"{expiry}.{nonce}.{self._mac(carrier, call_id, expiry, nonce)}"

    def redeem(self, carrier: str, call_id: str, token: str | None) -> TokenVerdict:
        """Check ``token`` for this stream and spend it (only a valid token is spent)."""
        if not token:
            return TokenVerdict.MISSING
        parts = token.split(".")
        if len(parts) != 3 or not parts[0].isascii() or not parts[0].isdigit() \
                or len(parts[0]) > 12 or not parts[1] or len(parts[1]) > 32:
            return TokenVerdict.MALFORMED
        expiry, nonce, mac = int(parts[0]), parts[1], parts[2]
        if not hmac.compare_digest(mac.encode(), self._mac(carrier, call_id, expiry,
                                                           nonce).encode()):
            return TokenVerdict.FORGED
        now = self._clock()
        if now > expiry:
            return TokenVerdict.EXPIRED
        self._forget_expired(now)
        if nonce in self._spent:
            return TokenVerdict.REPLAYED
        if len(self._spent) >= self.max_spent:
            return TokenVerdict.OVERLOADED
        self._spent[nonce] = expiry
        return TokenVerdict.VALID

    def _forget_expired(self, now: float) -> None:
        # Oldest redemption first. An expired token is refused before this set is read, so
        # its nonce can go; one redeemed late in its life may keep a younger expired nonce
        # behind it a little longer, never more than ttl_s.
        spent = self._spent
        while spent:
            nonce = next(iter(spent))
            if spent[nonce] >= now:
                break
            del spent[nonce]
