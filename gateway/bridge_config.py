"""What a call's bridge is given: the shape of the carrier's socket, the settings every
bridge runs with, and the services all calls share. Kept apart from
:mod:`gateway.bridge` so the server and the tests can build them without the bridge's
machinery."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from gateway import live
from gateway.answering import OutboundCalls
from gateway.callctl import CallControlApi
from gateway.caller_processing import LineProcessing, ProcessingFactory
from gateway.carriers.core import Carrier, Outgoing
from gateway.faults import LIVE_RETRY, RetryPolicy
from gateway.live_keeper import DEFAULT_HELD_MS, DEFAULT_OVERLAP_S
from gateway.monitor import CallMonitor
from gateway.playout import DEFAULT_LEAD_MS
from gateway.record import CallObserver
from gateway.registry import AgentRegistry
from gateway.stall import StallTimes
from gateway.timing_trace import GatewayTrace
from gateway.tokens import StreamTokens
from gateway.turns import DetectorFactory
from gateway.vad_detectors import make_detector


class CallerSocket(Protocol):
    """The carrier's media socket, as the bridge needs it."""

    async def receive(self) -> str | bytes | None:
        """The next frame (bytes for a binary one); None once the stream has ended."""
    def send_nowait(self, frame: Outgoing) -> bool:
        """Write now if the socket takes it without waiting; False if it must be queued."""
    async def send(self, frame: Outgoing) -> None:
        """Raises ConnectionError once the socket is closed."""
    async def close(self, code: int, reason: str) -> None: ...
    @property
    def close_code(self) -> int | None:
        """The peer's close code once :meth:`receive` has returned None (None: no close
        frame, the connection just went)."""


@dataclass(frozen=True, slots=True)
class BridgeSettings:
    session: live.SessionConfig
    mark_interval_ms: int = 200
    max_held_ms: float = DEFAULT_HELD_MS  # caller audio kept for a new Live session (10 s)
    # Caller audio written this long before a resumption handle arrived is replayed on a
    # resume too, as it may not have reached the service when it issued the handle.
    resume_overlap_s: float = DEFAULT_OVERLAP_S
    max_queued_media: int = 1500  # reply chunks waiting for the caller's socket
    start_timeout_s: float = 10.0
    live_retry: RetryPolicy = LIVE_RETRY  # connects in a row before the caller hears sorry
    fallback_number: str | None = None  # where a call goes when the Live API cannot serve it
    recordings_dir: Path | None = None  # where call recordings go
    record_all: bool = False  # record every call, not only those of agents with record=True
    capture_dir: Path | None = None  # save each call's inbound stream here, as JSON lines
    pacing_lead_ms: float = DEFAULT_LEAD_MS  # a carrier without clear: audio held ahead
    stall: StallTimes = field(default_factory=StallTimes)  # a model gone quiet (timeout 0: off)
    # The gateway's default cleaning of callers' audio; an agent may choose otherwise.
    line_processing: LineProcessing = field(default_factory=LineProcessing)


@dataclass(frozen=True, slots=True)
class Prompt:
    """A recorded prompt: PCM16 mono and its rate (resampled to each carrier's)."""

    pcm: bytes = b""
    rate: int = 8000


@dataclass(frozen=True, slots=True)
class CallServices:
    """What every call shares: the agents, the carriers' REST clients, recorded prompts,
    the observers of calls, and the per-call stream tokens."""

    agents: AgentRegistry | None = None  # None: every call gets the plain default agent
    call_control: Mapping[Carrier, CallControlApi] = field(default_factory=dict)
    unavailable_prompt: Prompt = Prompt()  # played when a call cannot be served
    observers: tuple[CallObserver, ...] = ()  # call records, metrics
    trace: GatewayTrace | None = None  # `voicegw serve --trace`: write times, for measuring
    # With tokens, a stream must carry the one its answer document minted (signed carriers).
    tokens: Mapping[Carrier, StreamTokens] = field(default_factory=dict)
    # The voice activity detector of agents with local turn-taking (one per call).
    detectors: DetectorFactory = make_detector
    # Echo cancellation and noise suppression (the server plugs the libraries in); None: none.
    processing: ProcessingFactory | None = None
    # The live-call monitor, told as things happen (who speaks, transcript, tools); None: none.
    monitor: CallMonitor | None = None
    # The dial service, for calls the gateway placed (who answered); None: no outbound calls.
    dials: OutboundCalls | None = None
