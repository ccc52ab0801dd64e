"""A simulated phone call: plays a caller into any gateway exactly as a carrier would.

One message of caller audio goes per tick on a drift-corrected clock (silence between
utterances, as a real line carries), and each 20 ms tick also plays 20 ms of the gateway's
audio from a carrier-like :class:`gateway.rig.peers.PlaybackBuffer`, confirming marks as
playback reaches them (and what the carrier does on a clear). Both tracks are kept on that one
clock, so the saved WAV shows what the caller said and heard, aligned. Timings measured here
are in call time (ticks of 20 ms), so they mean the same whatever ``speed`` the call was
played at.

Which carrier it plays is its peer's business (:mod:`gateway.rig.peers`); the phone can also
fetch the answer document first, as a carrier does, which carries the stream's URL and its
per-call token.

Used by ``voicegw call``, ``voicegw demo``, the load tester and the integration tests.
"""

from __future__ import annotations

import asyncio
import enum
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Protocol

import aiohttp
import numpy as np

from gateway.audio import AudioFormat, Codec, Resampler, decoder, encoder, pcm16_to_ulaw
from gateway.carriers.twilio import FORMAT as ULAW_8K
from gateway.rig.answer import fetch_answer, register
from gateway.rig.line import PhoneLine
from gateway.rig.line_spec import LineSpec
from gateway.rig.links import Link, connect, is_tcp
from gateway.rig.peers import (
    DialsDirect,
    OutClear,
    OutMark,
    OutMedia,
    PhonePeer,
    PlaybackBuffer,
)
from gateway.rig.peers.twilio import TwilioPeer
from gateway.tasks import cancel_and_wait
from gateway.wav import read_wav, write_wav

TICK_S: Final = 0.020
TICK_MS: Final = 20


@dataclass(frozen=True, slots=True)
class Speech:
    """Recorded audio in a format: the caller's lines, before the phone's carrier encodes them
    (converted only when the carrier's format differs, so a mu-law line stays bit-exact)."""

    data: bytes
    fmt: AudioFormat = ULAW_8K

    def to(self, fmt: AudioFormat) -> bytes:
        if fmt == self.fmt:
            return self.data
        pcm = decoder(self.fmt.codec)(self.data)
        if fmt.rate != self.fmt.rate:
            pcm = Resampler(self.fmt.rate, fmt.rate).process(pcm)
        return encoder(fmt.codec)(pcm)

    @property
    def seconds(self) -> float:
        return self.fmt.ms(len(self.data)) / 1000

    def __add__(self, other: Speech) -> Speech:
        return Speech(self.data + other.to(self.fmt), self.fmt)


def load_utterance(path: str | Path) -> Speech:
    """Any PCM16 or mu-law WAV: 8 kHz as mu-law (what a phone line carries), other rates as
    16-bit linear at their own rate (a wideband caller)."""
    pcm, rate = read_wav(path)
    if rate == 8000:
        return Speech(pcm16_to_ulaw(pcm), ULAW_8K)
    if rate not in (16000, 24000):
        pcm, rate = Resampler(rate, 16000).process(pcm), 16000
    return Speech(pcm, AudioFormat(Codec.L16, rate))


class When(enum.Enum):
    START = "start"  # delay after the call starts
    AFTER_REPLY = "after_reply"  # delay of silence after the agent's reply has been heard
    BARGE_IN = "barge_in"  # delay after the agent's reply started playing


@dataclass(frozen=True, slots=True)
class Utterance:
    """Something the caller does: says ``audio`` and/or presses the keypad ``dtmf`` digits.

    The digits (each sent as the carrier sends them) go when the utterance starts, before its
    audio; an utterance of digits alone ends as soon as they are pressed.
    """

    audio: Speech | None = None
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
    said: bytearray = field(default_factory=bytearray)  # in said_fmt, one tick at a time
    # What went on the wire, where a line (echo, noise) changed it; ``said`` stays clean
    # (the reference for word error rates). Empty on a clean line: it is ``said`` there.
    sent: bytearray = field(default_factory=bytearray)
    heard: bytearray = field(default_factory=bytearray)  # in heard_fmt
    said_fmt: AudioFormat = ULAW_8K
    heard_fmt: AudioFormat = ULAW_8K
    connect_ms: float = 0.0
    close_code: int | None = None
    call_sid: str = ""
    dtmf_sent: int = 0
    audio_received_ms: float = 0.0  # of reply audio that arrived
    # The gateway closed the stream (rather than the phone hanging up); then how much of
    # the audio that had arrived was still waiting to be played at that moment.
    closed_by_gateway: bool = False
    unplayed_at_close_ms: float = 0.0
    # The most reply audio that was ever waiting to be played (ms), and when (monotonic,
    # real time) playback ran out of audio each time: for a carrier the gateway paces.
    peak_queued_ms: float = 0.0
    quiet_at: list[float] = field(default_factory=list)

    def said_pcm(self) -> bytes:
        return decoder(self.said_fmt.codec)(bytes(self.said))

    def sent_pcm(self) -> bytes:
        """What the gateway received from the phone, as PCM16 (``said``'s on a clean line)."""
        return decoder(self.said_fmt.codec)(bytes(self.sent or self.said))

    def heard_pcm(self, rate: int | None = None) -> bytes:
        """What the caller heard, as PCM16 (at ``rate``, default its own)."""
        pcm = decoder(self.heard_fmt.codec)(bytes(self.heard))
        if rate is not None and rate != self.heard_fmt.rate:
            pcm = Resampler(self.heard_fmt.rate, rate).process(pcm)
        return pcm

    def write_wav(self, path: str | Path) -> None:
        """Stereo: the caller's side on the left (as the line delivered it: with its echo
        and noise, where there is a line), what the caller heard on the right, at the rate
        the caller's audio went at."""
        rate = self.said_fmt.rate
        left = np.frombuffer(self.sent_pcm(), dtype="<i2")
        right = np.frombuffer(self.heard_pcm(rate), dtype="<i2")
        n = min(len(left), len(right))
        write_wav(path, np.column_stack([left[:n], right[:n]]).astype("<i2").tobytes(),
                  rate, 2)


class CallObserver(Protocol):
    """Sees what crosses the phone's socket, when (``time.monotonic()``): for load-test traces.

    ``sent`` and ``received`` carry audio milliseconds: the caller's cumulative audio sent
    with that frame, and the duration of one reply message as it arrives (before playback).
    ``spoke`` is the moment the last frame of an utterance was sent.
    """

    def connected(self, t: float) -> None: ...
    def sent(self, t: float, audio_ms: float) -> None: ...
    def spoke(self, t: float) -> None: ...
    def received(self, t: float, audio_ms: float) -> None: ...
    def cleared(self, t: float) -> None: ...


class Callee(Protocol):
    """The called side, where the phone plays one (an IVR, :mod:`gateway.rig.ivr`): it hears
    each tick of what plays (PCM16 at ``rate``) and says what it decides, as utterances due at
    once; the phone hangs up once it is ``done`` and has said all of it."""

    def hear(self, pcm: bytes, rate: int) -> list[Utterance]: ...
    @property
    def done(self) -> bool: ...


class _Script:
    """Decides, tick by tick, what the caller says next (in the peer's inbound format)."""

    def __init__(self, utterances: list[Utterance], fmt: AudioFormat,
                 reply_wait_ticks: int) -> None:
        self.pending = list(utterances)
        self.fmt = fmt
        self.tick_bytes = fmt.frame_bytes * TICK_MS // fmt.frame_ms
        self.silence = fmt.silence(TICK_MS)
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
            frame = self.current[self.offset:self.offset + self.tick_bytes]
            self.offset += self.tick_bytes
            if self.offset >= len(self.current):
                self.done_speaking_tick = tick
                self.reply_started_tick = None
                self.last_audio_tick = None
            return frame + self.silence[len(frame):]
        if self.pending and self._due(tick, self.pending[0], result):
            utt = self.pending.pop(0)
            self.keys.extend(utt.dtmf)
            audio = utt.audio.to(self.fmt) if utt.audio is not None else b""
            self.current, self.offset, self.waited = audio, 0, 0
            if not audio:  # keys only: done at once, now wait for the reply
                self.done_speaking_tick = tick
                self.reply_started_tick = None
                self.last_audio_tick = None
                return self.silence
            self.done_speaking_tick = None
            return self.next_frame(tick, result)
        return self.silence

    def take_keys(self) -> list[str]:
        keys, self.keys = self.keys, []
        return keys

    def _due(self, tick: int, utt: Utterance, result: CallResult) -> bool:
        delay = utt.delay_ms // TICK_MS
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

    def __init__(self, peer: PhonePeer, script: _Script,
                 observer: CallObserver | None = None, line: LineSpec | None = None,
                 callee: Callee | None = None) -> None:
        self.peer = peer
        self.callee = callee
        self._decode = decoder(peer.outbound.codec)
        self.line = None if line is None else PhoneLine(line, peer.inbound, peer.outbound)
        self.observer = observer
        self.script = script
        out = peer.outbound
        self.play_bytes = out.frame_bytes * TICK_MS // out.frame_ms
        self.playback = PlaybackBuffer(out.bytes_per_second * 120, out.codec.silence)
        self.result = CallResult(said_fmt=peer.inbound, heard_fmt=out)
        self.echoes: list[str] = []
        self.confirmations: list[str | bytes] = []  # a clear's, to send on the next tick
        self.barge_started: list[int] = []
        self.last_audio_tick: int | None = None
        self.prev_partial = False
        self.tick = 0
        self.tick_at = time.monotonic()  # when the current tick's playback began
        self.tick_audio_ms = 0.0  # how much reply audio the current tick plays
        self.audio_ends = 0.0  # when it ends (monotonic)
        self.speed = 1.0
        self.hanging_up = False

    async def receive(self, link: Link) -> None:
        r, observer, peer = self.result, self.observer, self.peer
        async for data in link.messages():
            arrived = time.monotonic()
            event = peer.receive(data)
            now = self.tick * float(TICK_MS)
            if observer is not None:
                if isinstance(event, OutMedia):
                    observer.received(arrived, peer.outbound.ms(len(event.payload)))
                elif isinstance(event, OutClear):
                    observer.cleared(arrived)
            if isinstance(event, OutMedia):
                r.media_received += 1
                r.audio_received_ms += peer.outbound.ms(len(event.payload))
                r.timeline.append((now, "media"))
                self.playback.push_audio(event.payload)
                # Ahead of the caller's ear: what is queued, less what has played since the
                # last tick (playback is continuous; the ticks only do its bookkeeping).
                elapsed = (arrived - self.tick_at) * 1000 * self.speed
                ahead = peer.outbound.ms(self.playback.queued_bytes) \
                    + max(0.0, self.tick_audio_ms - elapsed)
                r.peak_queued_ms = max(r.peak_queued_ms, ahead)
            elif isinstance(event, OutMark):
                r.marks_received += 1
                r.timeline.append((now, f"mark:{event.name}"))
                self.echoes.extend(self.playback.push_mark(event.name))
            elif isinstance(event, OutClear):
                r.clears += 1
                r.timeline.append((now, "clear"))
                pending = self.playback.clear()
                if peer.echo_marks_on_clear:
                    self.echoes.extend(pending)
                self.confirmations.extend(peer.cleared())
                self.last_audio_tick = None  # silence after a clear is intended, not a gap
        if not self.hanging_up:  # the gateway ended the call
            r.closed_by_gateway = True
            r.unplayed_at_close_ms = peer.outbound.ms(self.playback.queued_bytes)
            r.timeline.append((self.tick * float(TICK_MS), "close"))

    def caller_frame(self) -> bytes:
        was_playing = self.playback.playing
        script = self.script
        frame = script.next_frame(self.tick, self.result)
        if script.offset == script.tick_bytes and script.done_speaking_tick is None \
                and was_playing:
            self.barge_started.append(self.tick)
        self.result.said += frame
        if self.line is not None:
            frame = self.line.send(frame)
            self.result.sent += frame
        return frame

    def play(self) -> list[str]:
        """Play one tick of the agent's audio; returns the mark names to confirm now."""
        r, tick, script = self.result, self.tick, self.script
        self.tick_at = now = time.monotonic()
        got = min(self.playback.queued_bytes, self.play_bytes)
        played = self.playback.play(self.play_bytes)
        r.heard += played.audio
        if self.line is not None:  # its echo: exactly what played, when (a clear cuts it)
            self.line.hear(played.audio)
        if self.callee is not None:
            script.pending += self.callee.hear(self._decode(played.audio), self.peer.outbound.rate)
        if not played.had_audio and self.tick_audio_ms:  # the last tick's audio was the last
            r.quiet_at.append(self.audio_ends)
        self.tick_audio_ms = self.peer.outbound.ms(got)
        self.audio_ends = now + self.tick_audio_ms / 1000 / self.speed
        if played.had_audio:
            # Audio resuming shortly after running dry, within one reply, is a gap the
            # caller hears; the end of a reply followed by the next one is not.
            if self.last_audio_tick is not None:
                gap = tick - self.last_audio_tick
                if 1 < gap <= _GAP_TICKS or (gap == 1 and self.prev_partial):
                    r.underruns += 1
            self.last_audio_tick, self.prev_partial = tick, played.underrun
            if script.reply_started_tick is None and script.done_speaking_tick is not None:
                r.response_ms.append((tick - script.done_speaking_tick) * float(TICK_MS))
            script.heard_audio(tick)
        elif self.barge_started and not self.playback.playing:
            r.barge_in_ms.append((tick - self.barge_started.pop()) * float(TICK_MS))
        names = played.marks + self.echoes
        self.echoes = []
        return names

    def finished(self, tail_ticks: int) -> bool:
        """The script is said and its reply heard; or the callee is done and has said all."""
        script = self.script
        if self.callee is None:
            return script.idle(self.tick, tail_ticks)
        return self.callee.done and not script.pending and script.offset >= len(script.current)


_GAP_TICKS: Final = 25  # 500 ms


async def place_call(url: str, utterances: list[Utterance], *, speed: float = 1.0,
                     parameters: dict[str, str] | None = None, reply_wait_s: float = 8.0,
                     tail_ms: int = 800, max_s: float = 300.0,
                     headers: dict[str, str] | None = None,
                     result: CallResult | None = None,
                     observer: CallObserver | None = None,
                     peer: PhonePeer | None = None, answer_url: str | None = None,
                     secret: str | None = None, signed_url: str | None = None,
                     line: LineSpec | None = None, callee: Callee | None = None,
                     stop: asyncio.Event | None = None) -> CallResult:
    """Call a gateway, say ``utterances``, hang up when all is heard.

    ``url`` is the media socket's URL; with ``answer_url`` the phone first fetches the
    answer document there, as the carrier would (signed with ``secret`` when given), and
    connects where it says, carrying its parameters and token. A carrier without answer
    documents (a PBX, :class:`gateway.rig.peers.DialsDirect`) dials ``url`` itself, with its
    parameters in the query, whatever ``answer_url`` says. ``peer`` is the carrier
    (Twilio's by default, with ``parameters`` as its stream's custom parameters). Where the
    carrier signs the socket's upgrade, it signs ``signed_url`` (default ``url``).

    Pass ``result`` to fill a caller-owned :class:`CallResult`: when the call fails or is
    cancelled (a load test's timeout), what was measured until then is still there.
    ``observer`` is told the time of every frame sent and every reply frame received.
    ``line`` puts a simulated line (:mod:`gateway.rig.line`) between the caller and the
    gateway: the echo of what the phone played, noise, a codec leg (``result.sent``).
    ``callee`` makes the phone the called side: it says what the callee decides as it hears
    the gateway, and hangs up when the callee is done (``utterances`` go first). Once
    ``stop`` is set the carrier ends the stream (a call moved elsewhere, as into a conference).
    """
    if peer is None:
        peer = TwilioPeer(custom_parameters=parameters)
    call = _PhoneCall(peer, _Script(utterances, peer.inbound,
                                    reply_wait_ticks=int(reply_wait_s / TICK_S)), observer,
                      line, callee)
    if result is not None:
        result.said_fmt, result.heard_fmt = call.result.said_fmt, call.result.heard_fmt
        call.result = result
    result = call.result
    result.call_sid = peer.call_id
    call.speed = speed
    async with aiohttp.ClientSession() as session:
        if isinstance(peer, DialsDirect):  # no answer document: the PBX dials the socket
            answer_url = None
            url = peer.media_url(url)
        signed_url = signed_url or url
        if answer_url is not None and is_tcp(url):
            await register(session, peer, answer_url, secret)  # no document: no URL in it
        elif answer_url is not None:
            signed_url, url = await fetch_answer(session, peer, answer_url, secret)
        upgrade = {**peer.upgrade_headers(signed_url, secret), **(headers or {})}
        t_connect = time.perf_counter()
        async with connect(session, url, headers=upgrade, protocols=peer.subprotocols) as link:
            result.connect_ms = (time.perf_counter() - t_connect) * 1000
            if observer is not None:
                observer.connected(time.monotonic())
            for message in peer.opening():
                await link.send(message)
            receiver = asyncio.create_task(call.receive(link))
            try:
                await _talk(link, call, speed=speed, max_s=max_s, tail_ms=tail_ms,
                            done=receiver, stop=stop)
            finally:
                await cancel_and_wait(receiver)
            result.close_code = link.close_code
    result.call_sid = peer.call_id or result.call_sid  # where the gateway named the call
    return result


async def _talk(ws: Link, call: _PhoneCall, *, speed: float, max_s: float, tail_ms: int,
                done: asyncio.Task[None], stop: asyncio.Event | None = None) -> None:
    """The call's clock: each tick sends the caller's audio (and keys), confirms what
    played, and stops once the script is done and the reply heard (or the gateway hung up)."""
    peer, result, observer = call.peer, call.result, call.observer
    loop = asyncio.get_running_loop()
    per_message = max(1, peer.send_ms // TICK_MS)
    t0 = loop.time()
    pending = b""
    while call.tick < int(max_s / TICK_S) and not done.done() and not (stop and stop.is_set()):
        spoken = call.script.done_speaking_tick
        pending += call.caller_frame()
        if (call.tick + 1) % per_message == 0:
            t_sent = time.monotonic() if observer is not None else 0.0
            await _send(ws, peer.media(pending))
            pending = b""
            result.frames_sent += 1
            if observer is not None:
                observer.sent(t_sent, (call.tick + 1) * TICK_S * 1000)
                finished = call.script.done_speaking_tick
                if finished is not None and finished != spoken:
                    observer.spoke(t_sent)
        for digit in call.script.take_keys():
            for message in peer.dtmf(digit):
                await _send(ws, message)
            result.dtmf_sent += 1
        for message in call.confirmations:
            await _send(ws, message)
        call.confirmations = []
        for name in call.play():
            for message in peer.played(name):
                await _send(ws, message)
            result.marks_echoed += 1
        if call.finished(tail_ms // TICK_MS):
            break
        call.tick += 1
        # Drift-corrected: sleep to the tick's due time, never a fixed 20 ms.
        await asyncio.sleep(max(0.0, t0 + call.tick * TICK_S / speed - loop.time()))
    if not ws.closed:
        call.hanging_up = True
        for message in peer.hang_up():
            await _send(ws, message)
        await ws.close()


async def _send(link: Link, message: str | bytes) -> None:
    await link.send(message)
