"""What a fault means for the call: a closed Live session (reconnect, or apologise and end), a
broken carrier frame (ignore it, or close the stream with a stated code), and how long to wait
before trying again (one retry policy, for the Live API and the carriers' REST APIs).

Pure: a close code and reason in, a decision out. The service reports every failure as a
WebSocket close, and 1011 covers both a passing fault ("Internal error", "Deadline expired" at
the connection's lifetime limit) and a hard stop (quota), so the reason text decides, as the
reports collected in the protocol reference show.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from gateway.carriers.core import (
    BadStart,
    CarrierProtocolError,
    EventRole,
    FrameTooLarge,
    OutOfOrder,
    UnsupportedMediaFormat,
    WrongFrameType,
)

_QUOTA_WORDS: Final = ("quota", "exhausted", "exceeded", "billing", "rate limit")


class Fault(enum.Enum):
    TRANSIENT = "transient"  # reconnect (resuming the session) and carry on
    CREDENTIALS = "credentials"  # 1007: bad or expired key, region blocked, bad setup
    MODEL = "model"  # 1008: unknown model, feature not enabled, stale resumption handle
    QUOTA = "quota"  # 1011 with a quota reason
    NORMAL = "normal"  # 1000: the service ended the session on purpose


@dataclass(frozen=True, slots=True)
class Decision:
    fault: Fault
    retry: bool
    why: str


def classify_close(code: int, reason: str) -> Decision:
    text = reason.lower()
    if code == 1007:
        return Decision(Fault.CREDENTIALS, False, f"Live API refused the request: {reason}")
    if code == 1008:
        if "session not found" in text:
            # A stale resumption handle: a fresh session still serves the caller.
            return Decision(Fault.TRANSIENT, True, "resumption handle no longer valid")
        return Decision(Fault.MODEL, False, f"Live API refused the model or feature: {reason}")
    if code == 1011 and any(word in text for word in _QUOTA_WORDS):
        return Decision(Fault.QUOTA, False, f"Live API quota: {reason}")
    if code == 1000:
        return Decision(Fault.NORMAL, True, "Live API closed the session")
    # 1006 (no close frame), 1011 internal/unavailable/deadline, 1001, 1012-1014: passing.
    return Decision(Fault.TRANSIENT, True, f"Live session dropped: {code} {reason}".rstrip())


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``attempts`` tries in all, the n-th retry after ``base_s * 2**(n-1)``, capped."""

    attempts: int
    base_s: float
    cap_s: float

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("a retry policy needs at least one attempt")

    def delay_s(self, retry: int) -> float:
        """The wait before retry number ``retry`` (1-based)."""
        return float(min(self.cap_s, self.base_s * 2 ** (retry - 1)))


# A caller is waiting on a Live reconnect: retry quickly, and not for long.
LIVE_RETRY: Final = RetryPolicy(attempts=3, base_s=0.2, cap_s=2.0)
# Hanging up or transferring can wait a few seconds for a carrier's API to recover.
REST_RETRY: Final = RetryPolicy(attempts=4, base_s=0.5, cap_s=4.0)


def caller_fault_close(exc: CarrierProtocolError, errors: int,
                       max_errors: int) -> tuple[int, str] | None:
    """What one broken carrier frame does to its stream: the (code, reason) to close with, or
    ``None`` when only this frame is lost (each carries 20 ms) and the call goes on.

    ``errors`` counts this call's protocol errors so far, this one included. The README's
    "Hostile input" table lists every outcome.
    """
    match exc:
        case UnsupportedMediaFormat() | WrongFrameType():
            return 1003, exc.message  # RFC 6455: data of a type we cannot accept
        case FrameTooLarge():
            return 1009, exc.message
        case BadStart():
            return 1008, f"bad start: {exc.message}"
        case OutOfOrder(role=EventRole.OPENS):
            return 1008, "second start on one stream"  # a new call's identity mid-call
        case OutOfOrder(role=EventRole.ENDS):
            return 1000, "stop before start"  # the peer is done; no call to wait for
    if errors > max_errors:
        return 1008, f"too many protocol errors ({errors})"
    return None

