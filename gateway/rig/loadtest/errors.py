"""What went wrong with one load-test call, as one short kind (the report counts them by kind).

Kinds: ``connect_refused`` (nothing listening), ``connect_error`` (DNS, unreachable, TLS...),
``answer_<status>`` (the carrier's answer webhook was refused with HTTP ``status``: 403 bad
signature), ``handshake_<status>`` (the upgrade was answered with HTTP ``status``: 403 bad
signature, 503 busy or draining), ``closed_early`` (the socket dropped, or the gateway ended
the stream before the caller hung up), ``timeout`` (the call overran its wall-clock limit),
``no_reply`` (the call went through but the agent never answered) and ``error:<Type>`` for
anything else, so a new failure shows up by name instead of being folded into another kind.
"""

from __future__ import annotations

from typing import Final

import aiohttp

from gateway.rig.phone import CallResult

CONNECT_REFUSED: Final = "connect_refused"
CONNECT_ERROR: Final = "connect_error"
CLOSED_EARLY: Final = "closed_early"
TIMEOUT: Final = "timeout"
NO_REPLY: Final = "no_reply"


def classify_exception(exc: BaseException) -> str:
    # Timeouts first: aiohttp's ServerTimeoutError is also a connection error.
    if isinstance(exc, TimeoutError):
        return TIMEOUT
    if isinstance(exc, aiohttp.WSServerHandshakeError):
        return f"handshake_{exc.status}"
    if isinstance(exc, aiohttp.ClientResponseError):  # the answer webhook, before the socket
        return f"answer_{exc.status}"
    if isinstance(exc, aiohttp.ClientConnectorError):  # before ClientOSError, its base
        return CONNECT_REFUSED if isinstance(exc.os_error, ConnectionRefusedError) \
            else CONNECT_ERROR
    if isinstance(exc, ConnectionRefusedError):
        return CONNECT_REFUSED
    if isinstance(exc, aiohttp.ClientConnectionError | ConnectionError):
        return CLOSED_EARLY
    return f"error:{type(exc).__name__}"


def classify_result(result: CallResult, *, expect_reply: bool = True) -> str | None:
    """The failure a call that raised nothing still had, or None if it went as planned."""
    if result.closed_by_gateway:
        return CLOSED_EARLY
    if expect_reply and (result.unanswered or not result.response_ms):
        return NO_REPLY
    return None
