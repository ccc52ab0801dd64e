"""What a call's bridge is given: the shape of the provider's socket, the settings every
bridge runs with, and the services all calls share. Kept apart from
:mod:`gateway.bridge` so the server and the tests can build them without the bridge's
machinery."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from gateway import live
from gateway.live_keeper import DEFAULT_OVERLAP_S
from gateway.record import CallObserver
from gateway.registry import AgentRegistry
from gateway.timing_trace import GatewayTrace
from gateway.twilio_rest import TwilioRest


class CallerSocket(Protocol):
    """The provider's WebSocket, as the bridge needs it."""

    async def receive(self) -> str | bytes | None:
        """The next frame (bytes for a binary one); None once the stream has ended."""
    def send_nowait(self, text: str) -> bool:
        """Write now if the socket takes it without waiting; False if it must be queued."""
    async def send(self, text: str) -> None:
        """Raises ConnectionError once the socket is closed."""
    async def close(self, code: int, reason: str) -> None: ...


@dataclass(frozen=True, slots=True)
class BridgeSettings:
    session: live.SessionConfig
    mark_interval_ms: int = 200
    max_held_frames: int = 500  # caller audio kept for a new Live session (10 s)
    # Caller audio written this long before a resumption handle arrived is replayed on a
    # resume too, as it may not have reached the service when it issued the handle.
    resume_overlap_s: float = DEFAULT_OVERLAP_S
    max_queued_media: int = 1500  # reply chunks waiting for the caller's socket
    start_timeout_s: float = 10.0
    max_live_attempts: int = 3  # connects in a row before the caller hears an apology
    fallback_number: str | None = None  # where a call goes when the Live API cannot serve it
    recordings_dir: Path | None = None  # where call recordings go
    record_all: bool = False  # record every call, not only those of agents with record=True
    capture_dir: Path | None = None  # save each call's inbound stream here, as JSON lines


@dataclass(frozen=True, slots=True)
class CallServices:
    """What every call shares: the agents, the Twilio REST client, recorded prompts."""

    agents: AgentRegistry | None = None  # None: every call gets the plain default agent
    rest: TwilioRest | None = None
    unavailable_prompt: bytes = b""  # mu-law 8 kHz, played when a call cannot be served
    observers: tuple[CallObserver, ...] = ()  # call records, metrics
    trace: GatewayTrace | None = None  # `voicegw serve --trace`: write times, for measuring
