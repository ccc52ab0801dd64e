"""What the caller hears: the model's replies in the carrier's format, marks, and barge-in.

One per call, built by the bridge once the stream has started (so it knows the carrier's
format). Reply audio is resampled from the Live API's 24 kHz to the carrier's rate, encoded in
its codec, cut into the messages it takes (:class:`gateway.carriers.core.Chunker`) and sent to
the caller's socket with a mark every ``mark_interval_ms`` of audio, so the gateway knows what
the caller has actually heard. Each message is written in place when nothing is queued ahead of
it and the socket has room, else queued for the writer task (see :meth:`_emit`).

On ``interrupted``, in one synchronous step, every queued reply message and mark of the turn is
dropped, the resampler is reset (so no filter tail of the old reply leaks), and the carrier's
``clear`` is sent or queued; the next reply audio can only follow it, so none of the
interrupted turn is written after the ``clear``.

Two things differ by carrier, and the playout hides both from the bridge:

* **No clear** (Asterisk AudioSocket): the carrier plays whatever it is sent, so the gateway
  paces playback itself (:class:`Pacer`) and never runs more than ``lead_ms`` ahead of what
  the caller hears; a barge-in drops the rest, and the caller goes quiet within ``lead_ms``.
* **No marks**: the gateway confirms a mark itself when the audio before it has played, by
  its own clock (the carrier plays what it is sent back to back).

A carrier with flow control (Asterisk's WebSocket driver) may say its queue of reply audio is
full (:meth:`pause`) and later that it takes audio again (:meth:`resume`). Meanwhile reply
audio waits in the bounded outbound queue (what does not fit is dropped and counted) and
control messages still go; a barge-in still drops the held audio and sends the ``clear`` in
the same step.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Final, Protocol

from gateway import live
from gateway.audio import AudioFormat, Resampler, decoder, encoder
from gateway.caller_processing import CallerProcessing
from gateway.carriers.core import CarrierStream, Chunker, Outgoing, Played
from gateway.ending import CallEnding, EndKind
from gateway.errors import AudioFormatError
from gateway.outbound import Kind, OutboundQueue, Queued
from gateway.record import CallStats, Transcript
from gateway.recording import CallRecording, Feed
from gateway.timing_trace import CallTimings

# A carrier reads as it plays, so a send to the caller blocked this long means its socket
# stopped reading: the call is ended rather than left hanging. Not Final: tests shorten it.
CALLER_SEND_TIMEOUT_S: float = 10.0
PROMPT_MS: Final = 200  # a recorded prompt goes out in pieces of this length
DEFAULT_LEAD_MS: Final = 80.0  # how far ahead of the caller a paced playout may run


class CallerSender(Protocol):
    def send_nowait(self, frame: Outgoing) -> bool:
        """Write now if the socket takes it without waiting; False if it must be queued."""
    async def send(self, frame: Outgoing) -> None:
        """Raises ConnectionError once the socket is closed."""


class CallerPlayout:
    def __init__(self, caller: CallerSender, stream: CarrierStream, fmt: AudioFormat,
                 stats: CallStats, transcript: Transcript, *, max_queued: int,
                 mark_interval_ms: int, log: Any, recording: CallRecording | None = None,
                 timings: CallTimings | None = None,
                 lead_ms: float = DEFAULT_LEAD_MS) -> None:
        self.caller = caller
        self.stream = stream
        self.fmt = fmt
        self.stats = stats
        self.transcript = transcript
        self.mark_interval_ms = mark_interval_ms
        self.log = log
        self.recording = recording
        self._feed = Feed(fmt, recording.rate) if recording is not None else None
        self.timings = timings
        self.out = OutboundQueue(max_queued)
        self._encode = encoder(fmt.codec)
        self._rate = live.OUTPUT_RATE
        self._resampler = Resampler(self._rate, fmt.rate)
        self._chunker = Chunker(stream.caps.chunking, fmt.codec.silence)
        # Without a carrier clear, the gateway holds the audio back itself; without carrier
        # marks, its own clock says when a mark has played.
        self.pacer = Pacer(lead_ms / 1000) if not stream.caps.clear else None
        self._own_marks = not stream.caps.marks
        self.turn = 0
        self.turn_sent_ms = 0.0
        self._last_mark_ms = 0.0
        self.turn_open = False  # the model is mid-turn (audio or a tool call, no turnComplete)
        self.turn_done = asyncio.Event()
        self.turn_done.set()
        self.turn_began = asyncio.Event()  # set while a reply's turn is open
        self._end_mark: str | None = None  # the last turn's end mark, until it has played
        # Waited-on marks: True once played, False if a clear dropped the audio before them.
        self._mark_waiters: dict[str, asyncio.Future[bool]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}  # own marks not yet played
        self._settled: set[str] = set()  # waited-on marks a clear settled before their echo
        self.heard: tuple[int, float] = (0, 0.0)  # (turn, ms) the caller has heard, from marks
        self._played_by: float | None = None  # when the reply written so far ends playing
        self._plays_until = 0.0  # the same, across turns (reset by a clear only)
        self._writing = False  # the writer task holds an item it is sending
        self._barge_ins = 0  # how many; a paced item held across one is not sent
        self._carrier_paused = False  # the carrier asked for no more audio (flow control)
        self._held = False  # the call holds reply audio back (a voicemail's beep awaited)
        self._wake = asyncio.Event()  # a writer holding audio while paused: look again
        self._holding = False  # the writer holds an audio item until the carrier resumes
        # The echo canceller's reference: each chunk as the caller hears it, when it plays.
        self.reference: CallerProcessing | None = None
        self._decode = decoder(fmt.codec)

    # -- model -> caller -----------------------------------------------------------------

    def audio(self, event: live.ModelAudio, received: float) -> None:
        self.open_turn()
        if event.rate != self._rate:
            try:
                resampler = Resampler(event.rate, self.fmt.rate)
            except (AudioFormatError, ValueError) as exc:
                self.stats.protocol_errors += 1
                self.log.warning("protocol_error", peer="live",
                                 error=f"reply audio at {event.rate} Hz: {exc}")
                return
            self._rate, self._resampler = event.rate, resampler
        encoded = self._encode(self._resampler.process(event.pcm))
        for chunk in self._chunker.push(encoded):
            self._send_audio(chunk, received)

    def _send_audio(self, chunk: bytes, received: float) -> None:
        if self._emit(Queued(Kind.MEDIA, self.stream.play(chunk), received, chunk)):
            self.turn_sent_ms += self.fmt.ms(len(chunk))
        else:
            self.stats.media_dropped_full += 1
            if self.stats.media_dropped_full % 100 == 1:  # first, then every 100th: no log storm
                self.log.warning("reply_audio_dropped",
                                 reason="carrier paused the audio" if self.paused
                                 else "caller socket not reading",
                                 dropped=self.stats.media_dropped_full)
        interval = self.mark_interval_ms
        if interval and self.turn_sent_ms - self._last_mark_ms >= interval:
            self.queue_mark(f"{self.turn}:{self.turn_sent_ms:.0f}")
            self._last_mark_ms = self.turn_sent_ms

    @property
    def paused(self) -> bool:
        """Reply audio is held: the carrier's flow control, or the call's own :meth:`hold`."""
        return self._carrier_paused or self._held

    def pause(self) -> None:
        """The carrier takes no more audio for now: hold it (bounded) until :meth:`resume`."""
        if not self._carrier_paused:
            self._carrier_paused = True
            self.stats.flow_pauses += 1
            self.log.info("reply_audio_paused", queued=len(self.out))

    def resume(self) -> None:
        if self._carrier_paused:
            self._carrier_paused = False
            self._wake.set()
            self.log.info("reply_audio_resumed", queued=len(self.out))

    def hold(self) -> None:
        """Keep reply audio queued (bounded) until :meth:`release`: a voicemail message made
        while the greeting plays, so that it starts the moment the beep ends."""
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._wake.set()

    def interrupted(self, received: float) -> None:
        self._barge_ins += 1
        dropped = self._drop_all(received)
        self.stats.media_dropped_barge_in += dropped
        self._resampler.reset()
        self._chunker.drop()
        self.stats.interruptions += 1
        heard_turn, heard_ms = self.heard
        heard = heard_ms if heard_turn == self.turn else 0.0
        self.log.info("barge_in", turn=self.turn, dropped_chunks=dropped,
                      sent_ms=round(self.turn_sent_ms), heard_ms=round(heard))
        self.transcript.mark_agent_interrupted(
            heard / self.turn_sent_ms if self.turn_sent_ms else None)
        self.next_turn()

    def stop_prompts(self) -> None:
        """Drop the queued audio now and clear the carrier's: a prompt looping while the
        caller holds (the hold music) stops the moment they are back with the agent."""
        self._drop_all(time.perf_counter())

    def _drop_all(self, at: float) -> int:
        """Drop every queued chunk and stop what the carrier has; how many were dropped."""
        self._wake.set()  # a writer holding audio while paused drops it
        dropped = self.out.drop_audio()
        if self.pacer is None:
            self._emit(Queued(Kind.CLEAR, self.stream.clear(), at))
        else:
            # Nothing to send: what the carrier already has (at most the pacer's lead) plays
            # out, and the recording is cut where it ends.
            self._cleared(at, self.pacer.released_until(at))
        return dropped

    def turn_complete(self, event: live.TurnComplete, received: float) -> None:
        for chunk in self._chunker.flush():
            self._send_audio(chunk, received)
        if self.turn_sent_ms:
            self._end_mark = f"{self.turn}:end"
            self.queue_mark(self._end_mark, turn_end=True)
        self.next_turn()
        if event.reason:
            self.log.info("turn_complete", reason=event.reason)

    def turn_lost(self) -> None:
        """The Live session ended mid-turn: what was queued still plays; the turn is over."""
        if self.turn_open:
            for chunk in self._chunker.flush():
                self._send_audio(chunk, time.perf_counter())
            self.next_turn()

    def playing(self, now: float) -> bool:
        """Whether reply audio already sent is still playing at ``now`` (by the gateway's
        clock: a carrier plays what it gets back to back; a clear stops it)."""
        return self._plays_until > now

    @property
    def audible(self) -> bool:
        """Whether the caller may still be hearing the agent: a turn is open, or the last
        one's end has not been confirmed played (by the carrier's mark or, without marks,
        the gateway's clock)."""
        return self.turn_open or self._end_mark is not None

    def open_turn(self) -> None:
        if not self.turn_open:
            self.turn_open = True
            self.turn_done.clear()
            self.turn_began.set()

    def next_turn(self) -> None:
        if self.turn_sent_ms:
            self.turn += 1
        self.turn_sent_ms = 0.0
        self._last_mark_ms = 0.0
        self.turn_open = False
        self.turn_done.set()
        self.turn_began.clear()

    def prompt(self, audio: bytes) -> None:
        """Queue a recorded prompt (PCM16 at the carrier's rate) for the caller, behind all
        the reply audio received so far (a part-message the carrier's chunking held back
        goes first, padded)."""
        encoded = self._encode(audio)
        step = self.fmt.bytes_per_second * PROMPT_MS // 1000
        now = time.perf_counter()
        for chunk in self._chunker.flush():
            self._send_audio(chunk, now)
        chunker = Chunker(self.stream.caps.chunking, self.fmt.codec.silence)
        for i in range(0, len(encoded), step):
            for chunk in chunker.push(encoded[i:i + step]):
                self._emit(Queued(Kind.MEDIA, self.stream.play(chunk), now, chunk))
        for chunk in chunker.flush():
            self._emit(Queued(Kind.MEDIA, self.stream.play(chunk), now, chunk))

    # -- marks ---------------------------------------------------------------------------

    def queue_mark(self, name: str, *, turn_end: bool = False) -> None:
        wire = None if self._own_marks else self.stream.mark(name)
        self._emit(Queued(Kind.MARK, wire, time.perf_counter(), name=name, turn_end=turn_end))
        self.stats.marks_sent += 1

    def played(self, event: Played) -> None:
        """Everything sent before mark ``event.name`` has played (the carrier said so, or,
        for a carrier without marks, the gateway's clock)."""
        self._timers.pop(event.name, None)
        if event.name == self._end_mark:
            self._end_mark = None
        waiter = self._mark_waiters.pop(event.name, None)
        if waiter is not None:
            if not waiter.done():
                waiter.set_result(True)
            return
        if event.name in self._settled:
            self._settled.discard(event.name)
            return
        turn, _, ms = event.name.partition(":")
        try:
            heard = (int(turn), float(ms) if ms != "end" else self.turn_sent_ms)
        except ValueError:
            self.log.warning("unknown_mark", name=event.name[:64])
            return
        self.stats.marks_heard += 1
        self.heard = max(self.heard, heard)

    def _cleared(self, at: float, cut: float) -> None:
        """Audio past ``cut`` will never play: marks still waiting are settled now, and a
        carrier that echoes them on a clear (as Twilio does) finds them settled already."""
        self._played_by = None
        self._plays_until = 0.0
        self._end_mark = None
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for name, waiter in self._mark_waiters.items():
            if not waiter.done():
                waiter.set_result(False)
            self._settled.add(name)
        self._mark_waiters.clear()
        if self.recording is not None:
            self.recording.clear(cut)
        if self.reference is not None:
            self.reference.cut(cut)
        if self.timings is not None:
            self.timings.clear(at)

    # -- gateway.callctl.Playout ---------------------------------------------------------

    async def wait_turn_done(self) -> None:
        await self.turn_done.wait()

    async def play_out(self, name: str) -> None:
        """Queue mark ``name`` behind everything queued; return once the caller has heard
        all of it, or as soon as a clear drops it (a barge-in)."""
        await self.mark_heard(name)

    async def mark_heard(self, name: str) -> bool:
        """:meth:`play_out`, saying which: True when heard, False when a clear dropped it."""
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._mark_waiters[name] = waiter
        self.queue_mark(name)
        return await waiter

    # -- writer --------------------------------------------------------------------------

    def _emit(self, item: Queued) -> bool:
        """Write ``item`` at once when nothing is ahead of it, else queue it (False if full).

        Written in place, a reply chunk or a ``clear`` leaves in the same step as the Live
        message that caused it, however busy the event loop; queued, it waits for the writer
        task's turn. Only an idle writer and an empty queue keep the order intact; a paced
        playout always queues, since its writer decides when audio may go.
        """
        if self.pacer is None and not self._writing and not self.out and self._may_pass(item):
            if item.wire is None:
                self._sent(item, time.perf_counter())
                return True
            if self.caller.send_nowait(item.wire):
                self._sent(item, time.perf_counter())
                return True
        return self.out.put(item)

    async def writer(self) -> None:
        while True:
            item = await self.out.get()
            if self.paused and item.kind is Kind.MEDIA:
                self._holding = True
                try:
                    flowing = await self._flowing()
                finally:
                    self._holding = False
                if not flowing:
                    self.stats.media_dropped_barge_in += 1  # the caller talked over it
                    continue
            if self.pacer is not None and item.kind is Kind.MEDIA:
                barge_ins = self._barge_ins
                await self.pacer.wait_turn(self.fmt.ms(len(item.audio)) / 1000)
                if barge_ins != self._barge_ins:  # the caller talked over it while it waited
                    self.stats.media_dropped_barge_in += 1
                    continue
            if item.wire is not None:
                await self._write(item.wire)
            self._sent(item, time.perf_counter())

    def _may_pass(self, item: Queued) -> bool:
        """Under flow control: audio waits while paused, and nothing overtakes the audio the
        writer holds, but a barge-in's ``clear`` (that audio is being dropped)."""
        if item.kind is Kind.MEDIA:
            return not self.paused
        return not self._holding or item.kind is Kind.CLEAR

    async def _flowing(self) -> bool:
        """Wait while the carrier has paused the audio; False if a barge-in came meanwhile
        (the held item belongs to the interrupted reply)."""
        barge_ins = self._barge_ins
        while self.paused and barge_ins == self._barge_ins:
            self._wake.clear()
            await self._wake.wait()
        return barge_ins == self._barge_ins

    async def _write(self, wire: Outgoing) -> None:
        self._writing = True
        try:
            # Once the socket's buffers are full, a send waits for the peer to read, and
            # aiohttp waits with no limit of its own.
            async with asyncio.timeout(CALLER_SEND_TIMEOUT_S):
                await self.caller.send(wire)
        except TimeoutError:
            self.log.warning("caller_not_reading", blocked_s=CALLER_SEND_TIMEOUT_S,
                             queued=len(self.out), dropped=self.stats.media_dropped_full)
            raise CallEnding(EndKind.CALLER_DISCONNECTED,
                             f"caller socket not reading: a send blocked "
                             f"{CALLER_SEND_TIMEOUT_S:g} s") from None
        except ConnectionError as exc:
            # The socket is closing. If the caller pump closed it (rejecting the stream),
            # its reason is the one to keep; if the peer went away, the pump sees that
            # too. Give it the time to say so instead of racing it.
            await asyncio.sleep(CALLER_SEND_TIMEOUT_S)
            raise CallEnding(EndKind.CALLER_DISCONNECTED,
                             "caller socket closed while writing") from exc
        finally:
            self._writing = False

    def _sent(self, item: Queued, done: float) -> None:
        if item.kind is Kind.MEDIA:
            seconds = self.fmt.ms(len(item.audio)) / 1000
            self.stats.media_out += 1
            self.stats.reply_latency.observe(done - item.since)
            starts = self._played(done, seconds)
            if self.reference is not None:
                self.reference.far_end(self._decode(item.audio), starts)
            if self.pacer is not None:
                self.pacer.released(done, seconds)
            if self.recording is not None and self._feed is not None:
                self.recording.agent(self._feed(item.audio), done)
            if self.timings is not None:
                self.timings.media(done, seconds * 1000)
        elif item.kind is Kind.CLEAR:
            self.stats.barge_in.observe(done - item.since)
            self._cleared(done, done)
        else:
            if self._own_marks:
                self._confirm_later(item.name, done)
            if item.turn_end:
                self._played_by = None  # silence until the next reply is not a gap
                if self.timings is not None:  # in order with the turn's audio, queued or not
                    self.timings.turn_end(done)

    def _confirm_later(self, name: str, now: float) -> None:
        """A carrier without marks: the mark has played once the audio before it has."""
        delay = 0.0 if self._played_by is None else max(0.0, self._played_by - now)
        loop = asyncio.get_running_loop()
        self._timers[name] = loop.call_later(delay, self.played, Played(name))

    def _played(self, now: float, seconds: float) -> float:
        """A carrier plays what it gets back to back; a chunk arriving late leaves a gap.
        When this chunk starts playing."""
        if self._played_by is not None and now > self._played_by:
            gap_ms = (now - self._played_by) * 1000
            self.stats.reply_gap_max_ms = max(self.stats.reply_gap_max_ms, round(gap_ms, 1))
        starts = max(self._played_by or now, now)
        self._played_by = self._plays_until = starts + seconds
        return starts


class Pacer:
    """Real-time release of reply audio for a carrier that cannot clear what it has queued.

    The carrier plays what it is sent back to back; ``_until`` is when what has been sent so
    far ends playing. A message may go once, with it, that is no more than ``lead_s`` away, so
    at any moment the carrier holds at most ``lead_s`` of audio: all a barge-in cannot take
    back.
    """

    def __init__(self, lead_s: float) -> None:
        self.lead_s = lead_s
        self._until: float | None = None

    async def wait_turn(self, seconds: float) -> None:
        """Until a message of ``seconds`` may go."""
        if self._until is None:
            return
        wait = self._until + seconds - self.lead_s - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)  # the playback clock, not synchronisation

    def released(self, now: float, seconds: float) -> None:
        start = now if self._until is None or self._until < now else self._until
        self._until = start + seconds

    def released_until(self, now: float) -> float:
        """When the audio already with the carrier ends playing (at a barge-in, where the
        caller stops hearing the interrupted reply)."""
        return self._until if self._until is not None and self._until > now else now

    def queued_s(self, now: float) -> float:
        """How much audio the carrier holds that has not played yet."""
        return max(0.0, (self._until or now) - now)
