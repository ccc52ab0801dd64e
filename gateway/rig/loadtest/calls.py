"""One load-test call: what the caller plays (a WAV or a capture), and placing it.

Every call goes through :func:`gateway.rig.phone.place_call`, the same simulated phone the
demo and the integration tests use, with the carrier's own peer, so a load-test call is exactly
what that carrier would send.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gateway.carriers.core import Carrier
from gateway.rig.capture import load_capture
from gateway.rig.line_spec import LineSpec
from gateway.rig.peers.registry import new_peer
from gateway.rig.phone import CallResult, Speech, Utterance, When, load_utterance, place_call
from gateway.rig.simulator.speech import speech_dir

from .errors import CLOSED_EARLY, classify_exception, classify_result
from .trace import PhoneTrace

DEFAULT_UTTERANCE = "caller_book_table.wav"
BARGE_IN_UTTERANCE = "caller_barge_in.wav"
REPLY_BEAT_MS = 600


@dataclass(frozen=True, slots=True)
class CallPlan:
    """The same script for every call; each call gets its own ids from its peer.

    With ``answer_url`` each call first fetches the carrier's answer document there (signed
    with ``secret``), as the carrier would, and streams where it says; else it connects to
    the media URL directly (a gateway that checks no signatures). With ``line``, every
    call goes over that simulated line, call ``i`` with the spec's seed plus ``i`` (each its
    own noise, the run reproducible)."""

    utterances: tuple[Utterance, ...]
    parameters: dict[str, str] = field(default_factory=dict)
    source: str = ""  # what is played, for the report
    carrier: Carrier = Carrier.TWILIO
    answer_url: str | None = None
    secret: str | None = field(default=None, repr=False)
    line: LineSpec | None = None

    def line_for(self, index: int) -> LineSpec | None:
        return None if self.line is None else replace(self.line, seed=self.line.seed + index)

    @property
    def barge_in(self) -> bool:
        return any(u.when is When.BARGE_IN for u in self.utterances)


def build_plan(*, wav: Sequence[Path] | Path | None = None,
               capture: Path | None = None,
               barge_in_ms: int | None = None, dtmf: str = "",
               secret: str | None = None, start_ms: int = 300,
               parameters: Mapping[str, str] | None = None,
               carrier: Carrier = Carrier.TWILIO, answer_url: str | None = None,
               line: LineSpec | None = None) -> CallPlan:
    """``parameters`` go in every stream's start, over a capture's and the defaults."""
    params: dict[str, str] = {"From": "+15550100", "To": "+15550199"}
    if capture is not None:
        cap = load_capture(capture)
        assert cap.fmt is not None
        params |= cap.parameters
        # The capture's audio is replayed frame for frame; its keypad presses go with the
        # first frame (their timing within the capture is not kept).
        first = Utterance(Speech(bytes(cap.audio), cap.fmt), When.START, 0,
                          dtmf=dtmf or "".join(cap.dtmf))
        source = str(capture)
    else:
        paths = [wav] if isinstance(wav, Path) else list(wav or [])
        paths = paths or [speech_dir() / DEFAULT_UTTERANCE]
        first = Utterance(load_utterance(paths[0]), When.START, start_ms, dtmf=dtmf)
        source = ", ".join(str(p) for p in paths)
    utterances = [first]
    if capture is None:
        # A conversation: each further recording once the reply to the previous one is heard,
        # after the beat a person takes before answering.
        utterances += [Utterance(load_utterance(p), When.AFTER_REPLY, REPLY_BEAT_MS)
                       for p in paths[1:]]
    if barge_in_ms is not None:
        # Talking over the reply is what a barge-in is; a different recording than the first
        # so the simulator hears a new turn.
        utterances.append(Utterance(load_utterance(speech_dir() / BARGE_IN_UTTERANCE),
                                    When.BARGE_IN, barge_in_ms))
    return CallPlan(tuple(utterances), params | dict(parameters or {}), source, carrier,
                    answer_url, secret, line)


@dataclass(slots=True)
class CallRecord:
    """One call's figures, in the load test's wall clock (seconds since the run began)."""

    index: int
    started_s: float
    ended_s: float = 0.0
    error: str | None = None
    connected: bool = False
    connect_ms: float | None = None
    response_ms: list[float] = field(default_factory=list)
    barge_in_ms: list[float] = field(default_factory=list)
    underruns: int = 0
    frames_sent: int = 0
    frames_attempted: int = 0
    media_received: int = 0
    clears: int = 0
    dtmf_sent: int = 0
    call_sid: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index, "call_sid": self.call_sid, "ok": self.ok, "error": self.error,
            "started_s": round(self.started_s, 3), "ended_s": round(self.ended_s, 3),
            "connect_ms": None if self.connect_ms is None else round(self.connect_ms, 2),
            "response_ms": self.response_ms, "barge_in_ms": self.barge_in_ms,
            "underruns": self.underruns, "frames_sent": self.frames_sent,
            "frames_attempted": self.frames_attempted, "media_received": self.media_received,
            "clears": self.clears, "dtmf_sent": self.dtmf_sent,
        }


async def run_call(index: int, url: str, plan: CallPlan, *, speed: float, timeout_s: float,
                   reply_wait_s: float, t0: float, trace: PhoneTrace | None = None
                   ) -> CallRecord:
    """Place one call; never raises (but for cancellation): failures become ``error``."""
    started = time.monotonic()
    record = CallRecord(index, started - t0)
    result = CallResult()
    observer = None if trace is None else trace.call(index, started)
    send_failed = False
    try:
        async with asyncio.timeout(timeout_s):
            await place_call(url, list(plan.utterances), speed=speed,
                             reply_wait_s=reply_wait_s, result=result, observer=observer,
                             peer=new_peer(plan.carrier, plan.parameters),
                             answer_url=plan.answer_url, secret=plan.secret,
                             line=plan.line_for(index))
        record.error = classify_result(result)
    except Exception as exc:  # every failure is a figure of the test, not a crash
        record.error = classify_exception(exc)
        send_failed = record.error == CLOSED_EARLY
    _fill(record, result, send_failed)
    ended = time.monotonic()
    record.ended_s = ended - t0
    if trace is not None:
        trace.end(index, ended, record.error)
    return record


def _fill(record: CallRecord, result: CallResult, send_failed: bool) -> None:
    record.call_sid = result.call_sid
    # place_call sets connect_ms only once the upgrade succeeded.
    record.connected = result.connect_ms > 0 or result.frames_sent > 0
    record.connect_ms = result.connect_ms if record.connected else None
    record.response_ms = list(result.response_ms)
    record.barge_in_ms = list(result.barge_in_ms)
    record.underruns = result.underruns
    record.frames_sent = result.frames_sent
    # The gateway sends no per-frame ack, so "acknowledged" means: written to the socket
    # without error. A socket that broke mid-call failed on a write the phone attempted.
    record.frames_attempted = result.frames_sent + (1 if send_failed and record.connected
                                                    else 0)
    record.media_received = result.media_received
    record.clears = result.clears
    record.dtmf_sent = result.dtmf_sent
