"""What the *simulated* Live server remembers: per-connection records and resumption handles."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any


@dataclass(eq=False)
class SessionRecord:
    """One accepted connection, as observed by the simulator; plain and mutable, read by tests.

    ``turns_completed`` counts model turns that ended (their ``turnComplete`` was sent),
    whether they ran to the end or were cut short; ``interruptions`` counts the cut-short
    ones, so ``turns_completed - interruptions`` replies were heard to the end.
    ``sent`` lists the kind of every server message in order: ``setupComplete``, ``audio``,
    ``text``, ``inputTranscription``, ``outputTranscription``, ``generationComplete``,
    ``turnComplete``, ``interrupted``, ``toolCall``, ``toolCallCancellation``, ``goAway``,
    ``sessionResumptionUpdate``, ``usageMetadata``.
    """

    path: str = ""  # request path without the query string (which may hold the key)
    setup: dict[str, Any] | None = None
    api_key_seen: bool = False
    model: str | None = None
    resumed: bool = False  # setup carried a handle this server issued
    handle_offered: bool = False  # setup carried a handle, known or not
    audio_chunks: int = 0  # audio blobs received (each mediaChunks entry counts)
    audio_bytes: int = 0  # decoded audio bytes received
    audio_rates: set[int] = field(default_factory=set)
    audio_seconds: float = 0.0  # of PCM16 received, by declared rate
    # The PCM16 itself, as received, up to the scenario's keep_audio_s (none by default).
    audio: bytearray = field(default_factory=bytearray)
    texts: list[str] = field(default_factory=list)  # realtimeInput.text and clientContent text
    speech_segments: list[float] = field(default_factory=list)  # caller speech found, seconds
    # activityStart/activityEnd acted on (automatic detection disabled): kind and the audio
    # position (seconds of caller audio received) it came at.
    activity_signals: list[tuple[str, float]] = field(default_factory=list)
    turns_completed: int = 0
    interruptions: int = 0
    interrupted_at: list[float] = field(default_factory=list)  # time.monotonic() values
    reply_chunks: list[int] = field(default_factory=list)  # reply messages sent, per turn
    tool_responses: list[dict[str, Any]] = field(default_factory=list)
    tool_timeouts: int = 0
    handles: list[str] = field(default_factory=list)  # resumption handles issued
    stalled_turns: list[int] = field(default_factory=list)  # turns the model went quiet on
    nudged: int = 0  # text inputs that woke a stalled turn (scenario ``stall: nudge``)
    closed: tuple[int, str] | None = None
    sent: list[str] = field(default_factory=list)


class Conversation:
    """One logical session across resumed connections: injections fire once per conversation."""

    def __init__(self) -> None:
        self.fired: set[int] = set()
        self.stalled: set[int] = set()  # turns that went quiet once (scenario ``stall``)


class HandleStore:
    """Resumption handles issued by one server, shared by all of its connections."""

    def __init__(self) -> None:
        self._handles: dict[str, tuple[Conversation, int]] = {}

    def issue(self, conversation: Conversation, position: int) -> str:
        """A new handle resuming ``conversation`` before turn ``position + 1``."""
        handle = f"sim-{uuid.uuid4().hex}"
        self._handles[handle] = (conversation, position)
        return handle

    def resolve(self, handle: str) -> tuple[Conversation, int] | None:
        return self._handles.get(handle)
