"""Why a call ended: a typed kind, carried on the call's record and counted by metrics, and
the sentence with the detail for people (a close code, a masked number, a count)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from gateway.errors import GatewayError


class EndKind(enum.Enum):
    """Each value is the ``reason`` label of ``voicegw_calls_total`` and the record's
    ``end_kind``: a fixed set, so alerts and dashboards can count on it."""

    CALLER_HUNG_UP = "caller_hung_up"
    CALLER_DISCONNECTED = "caller_disconnected"  # the socket went away with no goodbye
    AGENT_ENDED = "agent_ended"
    TRANSFERRED = "transferred"
    MACHINE_ANSWERED = "machine_answered"  # a call placed reached a machine: hung up on it
    VOICEMAIL_LEFT = "voicemail_left"  # a call placed reached a machine: message left
    LIVE_UNAVAILABLE = "live_unavailable"  # the Live API could not serve the call
    PROTOCOL_ERROR = "protocol_error"  # the carrier's stream broke its protocol
    REFUSED = "refused"  # the stream's token was missing, forged, expired or replayed
    START_TIMEOUT = "start_timeout"
    UNKNOWN_AGENT = "unknown_agent"
    MODEL_STALLED = "model_stalled"  # the model stayed quiet through a nudge and a resume
    SHUTDOWN = "shutdown"
    INTERNAL_ERROR = "internal_error"


@dataclass(frozen=True, slots=True)
class EndReason:
    kind: EndKind
    detail: str  # a sentence: "live unavailable (quota): Live API quota: ..."

    def __str__(self) -> str:
        return self.detail


class CallEnding(GatewayError):
    """The call should end now; raised inside the call's task group by whoever decides."""

    def __init__(self, kind: EndKind, detail: str) -> None:
        self.reason = EndReason(kind, detail)
        super().__init__(detail)

    @classmethod
    def of(cls, reason: EndReason) -> CallEnding:
        return cls(reason.kind, reason.detail)


def first_reason(group: BaseExceptionGroup[Any]) -> EndReason | None:
    """The reason of the first :class:`CallEnding` in ``group`` (nested groups too)."""
    for exc in group.exceptions:
        if isinstance(exc, CallEnding):
            return exc.reason
        if isinstance(exc, BaseExceptionGroup):
            found = first_reason(exc)
            if found is not None:
                return found
    return None
