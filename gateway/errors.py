"""One exception tree for the gateway.

``GatewayError`` is the root. Below it, errors that are *ours* (bad settings, misuse of an
API by our own code) are kept apart from errors caused by a *peer* (a carrier or the Live
service sent something we cannot accept, or went away), so a handler can decide whether
to blame the peer (close its stream with a code) or ourselves (log as a bug). Each carrier's
stream errors are :class:`gateway.carriers.core.CarrierProtocolError`.
"""

from __future__ import annotations


class GatewayError(Exception):
    """Root of every exception the gateway raises on purpose."""


class ConfigError(GatewayError):
    """A setting is missing or invalid; raised at start-up, never mid-call."""


class AudioFormatError(GatewayError, ValueError):
    """Audio handed to the codec or resampler is not in the declared format."""


class PeerError(GatewayError):
    """The other side of a connection misbehaved or went away."""


class ProtocolError(PeerError):
    """A peer sent a message that breaks its protocol.

    ``field`` names the offending JSON path (``"media.payload"``) when one is known,
    ``call_sid`` the call it happened on, so the log line points at the culprit.
    """

    def __init__(self, message: str, *, field: str | None = None, call_sid: str | None = None):
        self.message = message
        self.field = field
        self.call_sid = call_sid
        where = f" (field {field!r})" if field else ""
        call = f" [call {call_sid}]" if call_sid else ""
        super().__init__(f"{message}{where}{call}")


class LiveProtocolError(ProtocolError):
    """The Live service sent a message we cannot interpret."""


class LiveClosedError(PeerError):
    """The Live session's WebSocket closed; ``code`` and ``reason`` are the peer's."""

    def __init__(self, code: int, reason: str):
        self.code = code
        self.reason = reason
        super().__init__(f"Live session closed: {code} {reason}".rstrip())


class CallControlError(PeerError):
    """A carrier refused a call-control request (hang up, transfer), or kept failing until
    we gave up; ``status`` is its HTTP status, ``code`` its own error code where it sends one."""

    def __init__(self, message: str, *, status: int | None = None,
                 code: object = None) -> None:
        self.status = status
        self.code = code
        super().__init__(message)


class LiveConnectError(PeerError):
    """The Live session could not be opened (network, handshake or setup failure)."""


class LiveSetupTimeoutError(LiveConnectError):
    """The Live service accepted the connection but never answered ``setup``."""


class StoreError(GatewayError):
    """The call-record database cannot be used (missing, newer schema, unreachable)."""
