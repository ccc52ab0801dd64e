"""Signed links to a gateway route that answers ``<Dial>``, for carriers that transfer a call
by fetching new instructions from a URL (Plivo's ``aleg_url``, SignalWire's ``Url``), or one
that answers a conference (a warm transfer's join: ``field="room"``). Pure.

The route is signed by the carrier like any webhook, and the number (or room) in the link is
signed by the gateway: only a number the gateway itself put in a link, within its lifetime, is
ever dialled, whoever fetches the route. The key is derived from the carrier's own secret, which
every replica of the gateway holds, so a link minted by one is honoured by whichever one the
carrier reaches; the derivation keeps it apart from anything the carrier signs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from typing import Final
from urllib.parse import quote, urlsplit

from gateway.carriers.hooks import AnswerDocument, WebhookError, WebhookRequest

TRANSFER_TTL_S: Final = 300.0


class TransferLinks:
    """``render`` turns a number into the carrier's ``<Dial>`` document (or a room into its
    conference document); ``path`` is the route's (``/plivo/transfer``) under ``public_url``,
    and ``field`` the query field the link carries the value in. Each path has its own key,
    so a link to one route is never taken by another."""

    def __init__(self, secret: str, public_url: str, path: str,
                 render: Callable[[str], AnswerDocument], *,
                 ttl_s: float = TRANSFER_TTL_S, field: str = "number") -> None:
        self._key = hmac.new(secret.encode(), f"voicegw transfer link {path}".encode(),
                             hashlib.sha256).digest()
        parts = urlsplit(public_url)
        scheme = {"ws": "http", "wss": "https"}.get(parts.scheme.lower(), parts.scheme)
        self.url = f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}{path}"
        self._render = render
        self.ttl_s = ttl_s
        self.field = field

    def __repr__(self) -> str:
        return f"TransferLinks({self.url!r})"

    def _mac(self, number: str, expires: int) -> str:
        mac = hmac.new(self._key, f"{number}|{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def link(self, number: str, now: float) -> str:
        """The URL that dials ``number`` (or joins room ``number``), valid for ``ttl_s`` from
        ``now``."""
        target = number.strip()
        self._render(target)  # refuses an empty destination now, not when it is fetched
        expires = int(now + self.ttl_s)
        return (f"{self.url}?{self.field}={quote(target, safe='')}&expires={expires}"
                f"&sig={self._mac(target, expires)}")

    def dial(self, request: WebhookRequest) -> AnswerDocument:
        """The route: ``<Dial>`` to the link's number (or the room's document), or
        :class:`WebhookError`."""
        query: dict[str, list[str]] = {}
        for key, value in request.query:
            query.setdefault(key, []).append(value)
        try:
            [number], [expires_text], [sig] = (query[k] for k in (self.field, "expires", "sig"))
        except (KeyError, ValueError):
            raise WebhookError("not a transfer link of this gateway") from None
        if not (expires_text.isascii() and expires_text.isdigit() and len(expires_text) <= 12):
            raise WebhookError("not a transfer link of this gateway")
        expires = int(expires_text)
        if not hmac.compare_digest(self._mac(number, expires).encode(), sig.encode()):
            raise WebhookError("not a transfer link of this gateway")
        if request.now > expires:
            raise WebhookError("the transfer link has expired")
        return self._render(number)
