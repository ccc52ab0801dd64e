"""A simulated phone call: plays a caller into any gateway exactly as Twilio would.

One 20 ms ``media`` frame is sent per tick on a drift-corrected clock (silence between
utterances, as a real line carries), and each tick also plays 20 ms of the gateway's audio from a
Twilio-like :class:`PlaybackBuffer`, echoing marks as playback reaches them and all pending marks
on ``clear``. Both tracks are kept on that one clock, so the saved WAV shows what the caller said
and heard, aligned. Timings measured here are in call time (ticks of 20 ms), so they mean the same
whatever ``speed`` the call was played at.

Used by ``voicegw call``, ``voicegw demo`` and the integration tests.
"""

from __future__ import annotations

import asyncio
import enum
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Protocol

import aiohttp
import numpy as np

from gateway.audio import Resampler, pcm16_to_ulaw, ulaw_to_pcm16
from gateway.tasks import cancel_and_wait
from gateway.twilio_peer import (
    FRAME_BYTES,
    ULAW_SILENCE,
    OutClear,
    OutMark,
    OutMedia,
    PlaybackBuffer,
    TwilioPeer,
)
from gateway.wav import read_wav, write_wav

TICK_S: Final = 0.020
SILENCE_FRAME: Final = bytes([ULAW_SILENCE]) * FRAME_BYTES


class When(enum.Enum):
    START = "start"  # delay after the call starts
    AFTER_REPLY = "after_reply"  # delay of silence after the agent's reply has been heard
    BARGE_IN = "barge_in"  # delay after the agent's reply started playing


@dataclass(frozen=True, slots=True)
class Utterance:
    """Something the caller does: says ``ulaw`` and/or presses the keypad ``dtmf`` digits.

    The digits (each a ``dtmf`` event, as Twilio sends them) go when the utterance starts,
    before its audio; an utterance of digits alone ends as soon as they are pressed.
    """

    ulaw: bytes = b""
    when: When = When.AFTER_REPLY
    delay_ms: int = 600
    text: str = ""
    dtmf: str = ""


@dataclass(slots=True)
class CallResult:
    frames_sent: int = 0
    media_received: int = 0
    marks_received: int = 0
    marks_echoed: int = 0
    clears: int = 0
    underruns: int = 0
    # (call-time ms, what): "media", "mark:<name>", "clear"; in arrival order
    timeline: list[tuple[float, str]] = field(default_factory=list)
    response_ms: list[float] = field(default_factory=list)  # utterance end -> reply heard
    barge_in_ms: list[float] = field(default_factory=list)  # talk-over start -> reply silent
    unanswered: int = 0  # utterances after which no reply came within the wait
    said: bytearray = field(default_factory=bytearray)  # mu-law, one frame per tick
    heard: bytearray = field(default_factory=bytearray)
    connect_ms: float = 0.0
    close_code: int | None = None
    call_sid: str = ""
    dtmf_sent: int = 0
    audio_received_ms: float = 0.0  # of reply audio that arrived (8 kHz mu-law)
    # The gateway closed the stream (rather than the phone hanging up); then how much of
    # the audio that had arrived was still waiting to be played at that moment.
    closed_by_gateway: bool = False
    unplayed_at_close_ms: float = 0.0

    def write_wav(self, path: str | Path) -> None:
        """Stereo 8 kHz: caller on the left, what the caller heard on the right."""
        n = min(len(self.said), len(self.heard))
        left = np.frombuffer(ulaw_to_pcm16(bytes(self.said[:n])), dtype="<i2")
        right = np.frombuffer(ulaw_to_pcm16(bytes(self.heard[:n])), dtype="<i2")
        write_wav(path, np.column_stack([left, right]).astype("<i2").tobytes(), 8000, 2)


def load_utterance(path: str | Path) -> bytes:
    """Any PCM16 or mu-law WAV as 8 kHz mu-law, resampled with the gateway's own resampler."""
    pcm, rate = read_wav(path)
    if rate != 8000:
        pcm = Resampler(rate, 8000).process(pcm)
    return pcm16_to_ulaw(pcm)


class CallObserver(Protocol):
    """Sees what crosses the phone's socket, when (``time.monotonic()``): for load-test traces.

    ``sent`` and ``received`` carry audio milliseconds: the caller's cumulative audio sent
    with that frame, and the duration of one reply ``media`` as it arrives (before playback).
    ``spoke`` is the moment the last frame of an utterance was sent.
    """

    def connected(self, t: float) -> None: ...
    def sent(self, t: float, audio_ms: float) -> None: ...
    def spoke(self, t: float) -> None: ...
    def received(self, t: float, audio_ms: float) -> None: ...
    def cleared(self, t: float) -> None: ...


class _Script:
    """Decides, tick by tick, what the caller says next."""

    def __init__(self, utterances: list[Utterance], reply_wait_ticks: int) -> None:
        self.pending = list(utterances)
        self.current: bytes = b""
        self.offset = 0
        self.reply_wait_ticks = reply_wait_ticks
        self.waited = 0
        self.done_speaking_tick: int | None = 0
        self.reply_started_tick: int | None = None
        self.last_audio_tick: int | None = None
        self.keys: list[str] = []  # digits pressed, not yet sent

    def next_frame(self, tick: int, result: CallResult) -> bytes:
        if self.offset < len(self.current):
            frame = self.current[self.offset:self.offset + FRAME_BYTES]
            self.offset += FRAME_BYTES
            if self.offset >= len(self.current):
                self.done_speaking_tick = tick
                self.reply_started_tick = None
                self.last_audio_tick = None
            return frame.ljust(FRAME_BYTES, bytes([ULAW_SILENCE]))
        if self.pending and self._due(tick, self.pending[0], result):
            utt = self.pending.pop(0)
            self.keys.extend(utt.dtmf)
            self.current, self.offset, self.waited = utt.ulaw, 0, 0
            if not utt.ulaw:  # keys only: done at once, now wait for the reply
                self.done_speaking_tick = tick
                self.reply_started_tick = None
                self.last_audio_tick = None
                return SILENCE_FRAME
            self.done_speaking_tick = None
            return self.next_frame(tick, result)
        return SILENCE_FRAME

    def take_keys(self) -> list[str]:
        keys, self.keys = self.keys, []
        return keys

    def _due(self, tick: int, utt: Utterance, result: CallResult) -> bool:
        delay = utt.delay_ms // 20
        self.waited += 1
        if utt.when is When.START:
            return tick >= delay
        if self.reply_started_tick is None:
            if self.waited > self.reply_wait_ticks:
                result.unanswered += 1
                return True
            return False
        if utt.when is When.BARGE_IN:
            return tick - self.reply_started_tick >= delay
        return self.last_audio_tick is not None and tick - self.last_audio_tick >= delay

    def idle(self, tick: int, tail_ticks: int) -> bool:
        """Nothing left to say and the last reply has finished playing."""
        if self.pending or self.offset < len(self.current):
            return False
        if self.reply_started_tick is None:  # no reply (yet) to the last utterance
            self.waited += 1
            return self.waited > self.reply_wait_ticks
        return self.last_audio_tick is not None and tick - self.last_audio_tick >= tail_ticks

    def heard_audio(self, tick: int) -> None:
        if self.done_speaking_tick is not None and self.reply_started_tick is None:
            self.reply_started_tick = tick
        self.last_audio_tick = tick


class _PhoneCall:
    """One call's state: the script, the playback buffer, and what was measured."""

    def __init__(self, peer: TwilioPeer, script: _Script,
                 observer: CallObserver | None = None) -> None:
        self.peer = peer
        self.observer = observer
        self.script = script
        self.playback = PlaybackBuffer()
        self.result = CallResult()
        self.echoes: list[str] = []
        self.barge_started: list[int] = []
        self.last_audio_tick: int | None = None
        self.prev_partial = False
        self.tick = 0
        self.hanging_up = False

    async def receive(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        r, observer = self.result, self.observer
        async for msg in ws:
            arrived = time.monotonic() if observer is not None else 0.0
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
            event = self.peer.receive(msg.data)
            now = self.tick * 20.0
            if observer is not None:
                if isinstance(event, OutMedia):
                    observer.received(arrived, len(event.payload) / 8.0)
                elif isinstance(event, OutClear):
                    observer.cleared(arrived)
            if isinstance(event, OutMedia):
                r.media_received += 1
                r.audio_received_ms += len(event.payload) / 8.0
                r.timeline.append((now, "media"))
                self.playback.push_audio(event.payload)
            elif isinstance(event, OutMark):
                r.marks_received += 1
                r.timeline.append((now, f"mark:{event.name}"))
                self.echoes.extend(self.playback.push_mark(event.name))
            elif isinstance(event, OutClear):
                r.clears += 1
                r.timeline.append((now, "clear"))
                self.echoes.extend(self.playback.clear())
                self.last_audio_tick = None  # silence after a clear is intended, not a gap
        if not self.hanging_up:  # the gateway ended the call
            r.closed_by_gateway = True
            r.unplayed_at_close_ms = self.playback.queued_bytes / 8.0
            r.timeline.append((self.tick * 20.0, "close"))

    def caller_frame(self) -> bytes:
        was_playing = self.playback.playing
        frame = self.script.next_frame(self.tick, self.result)
        if frame is not SILENCE_FRAME and self.script.offset == FRAME_BYTES and was_playing:
            self.barge_started.append(self.tick)
        self.result.said += frame
        return frame

    def play(self) -> list[str]:
        """Play one tick of the agent's audio; returns the mark names to echo now."""
        r, tick, script = self.result, self.tick, self.script
        played = self.playback.play(FRAME_BYTES)
        r.heard += played.audio
        if played.had_audio:
            # Audio resuming shortly after running dry, within one reply, is a gap the
            # caller hears; the end of a reply followed by the next one is not.
            if self.last_audio_tick is not None:
                gap = tick - self.last_audio_tick
                if 1 < gap <= _GAP_TICKS or (gap == 1 and self.prev_partial):
                    r.underruns += 1
            self.last_audio_tick, self.prev_partial = tick, played.underrun
            if script.reply_started_tick is None and script.done_speaking_tick is not None:
                r.response_ms.append((tick - script.done_speaking_tick) * 20.0)
            script.heard_audio(tick)
        elif self.barge_started and not self.playback.playing:
            r.barge_in_ms.append((tick - self.barge_started.pop()) * 20.0)
        names = played.marks + self.echoes
        self.echoes = []
        return names


_GAP_TICKS: Final = 25  # 500 ms


async def place_call(url: str, utterances: list[Utterance], *, speed: float = 1.0,
                     parameters: dict[str, str] | None = None, reply_wait_s: float = 8.0,
                     tail_ms: int = 800, max_s: float = 300.0,
                     headers: dict[str, str] | None = None,
                     result: CallResult | None = None,
                     observer: CallObserver | None = None) -> CallResult:
    """Call ``url`` (a gateway's ``/media``), say ``utterances``, hang up when all is heard.

    Pass ``result`` to fill a caller-owned :class:`CallResult`: when the call fails or is
    cancelled (a load test's timeout), what was measured until then is still there.
    ``observer`` is told the time of every frame sent and every reply frame received.
    """
    # Twilio's SID format: two letters and 32 hex digits.
    peer = TwilioPeer(call_sid="CA" + uuid.uuid4().hex, stream_sid="MZ" + uuid.uuid4().hex,
                      custom_parameters=parameters)
    call = _PhoneCall(peer, _Script(utterances, reply_wait_ticks=int(reply_wait_s / TICK_S)),
                      observer)
    if result is not None:
        call.result = result
    result = call.result
    result.call_sid = peer.call_sid
    loop = asyncio.get_running_loop()
    t_connect = time.perf_counter()
    async with aiohttp.ClientSession() as session, session.ws_connect(
            url, headers=headers, max_msg_size=4 * 1024 * 1024) as ws:
        result.connect_ms = (time.perf_counter() - t_connect) * 1000
        if observer is not None:
            observer.connected(time.monotonic())
        await ws.send_str(peer.connected())
        await ws.send_str(peer.start())
        receiver = asyncio.create_task(call.receive(ws))
        t0 = loop.time()
        try:
            while call.tick < int(max_s / TICK_S) and not receiver.done():
                spoken = call.script.done_speaking_tick
                media = peer.media(call.caller_frame())
                if observer is None:
                    await ws.send_str(media)
                    result.frames_sent += 1
                else:
                    t_sent = time.monotonic()
                    await ws.send_str(media)
                    result.frames_sent += 1
                    observer.sent(t_sent, result.frames_sent * TICK_S * 1000)
                    done = call.script.done_speaking_tick
                    if done is not None and done != spoken:
                        observer.spoke(t_sent)
                for digit in call.script.take_keys():
                    await ws.send_str(peer.dtmf(digit))
                    result.dtmf_sent += 1
                for name in call.play():
                    await ws.send_str(peer.mark(name))
                    result.marks_echoed += 1
                if call.script.idle(call.tick, tail_ms // 20):
                    break
                call.tick += 1
                # Drift-corrected: sleep to the tick's absolute due time, never a fixed 20 ms.
                await asyncio.sleep(max(0.0, t0 + call.tick * TICK_S / speed - loop.time()))
            if not ws.closed:
                call.hanging_up = True
                await ws.send_str(peer.stop())
                await ws.close()
        finally:
            await cancel_and_wait(receiver)
        result.close_code = ws.close_code
    return result
