"""What the caller hears: the model's replies turned into Twilio messages, marks and barge-in.

One per call, owned by the bridge. Reply audio is resampled to 8 kHz mu-law and sent to the
caller's socket with a ``mark`` every ``mark_interval_ms`` of audio, so the gateway knows what
the caller has actually heard. Each message is written in place when nothing is queued ahead
of it and the socket has room, else queued for the writer task (see :meth:`_emit`). On
``interrupted``, in one synchronous step, every queued reply frame and mark of the turn is
dropped, the resampler is reset (so no filter tail of the old reply leaks) and ``clear`` is
sent or queued; the next reply audio can only follow it, so none of the interrupted turn is
written after the ``clear``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Protocol

from gateway import live, twilio
from gateway.audio import Resampler, pcm16_to_ulaw
from gateway.callctl import CallEnding
from gateway.errors import AudioFormatError
from gateway.outbound import Kind, OutboundQueue, Outgoing
from gateway.record import CallStats, Transcript
from gateway.recording import CallRecording
from gateway.timing_trace import CallTimings

# Twilio reads as it plays, so a send to the caller blocked this long means its socket stopped
# reading: the call is ended rather than left hanging. Not Final: tests shorten it.
CALLER_SEND_TIMEOUT_S: float = 10.0
PROMPT_CHUNK = 1600  # 200 ms of mu-law per message


class CallerSender(Protocol):
    def send_nowait(self, text: str) -> bool:
        """Write now if the socket takes it without waiting; False if it must be queued."""
    async def send(self, text: str) -> None:
        """Raises ConnectionError once the socket is closed."""


class CallerPlayout:
    def __init__(self, caller: CallerSender, stream: twilio.TwilioStream, stats: CallStats,
                 transcript: Transcript, *, max_queued: int, mark_interval_ms: int,
                 log: Any) -> None:
        self.caller = caller
        self.stream = stream
        self.stats = stats
        self.transcript = transcript
        self.mark_interval_ms = mark_interval_ms
        self.log = log
        self.out = OutboundQueue(max_queued)
        self._rate = live.OUTPUT_RATE
        self._resampler = Resampler(self._rate, twilio.SAMPLE_RATE)
        self.turn = 0
        self.turn_sent_ms = 0.0
        self._last_mark_ms = 0.0
        self.turn_open = False  # the model is mid-turn (audio or a tool call, no turnComplete)
        self.turn_done = asyncio.Event()
        self.turn_done.set()
        self._mark_waiters: dict[str, asyncio.Event] = {}
        self.heard: tuple[int, float] = (0, 0.0)  # (turn, ms) the caller has heard, from marks
        self.recording: CallRecording | None = None  # when this call is recorded
        self.timings: CallTimings | None = None  # `voicegw serve --trace`
        self._played_by: float | None = None  # when the reply written so far ends playing
        self._writing = False  # the writer task holds an item it is sending

    # -- model -> caller -----------------------------------------------------------------

    def audio(self, event: live.ModelAudio, received: float) -> None:
        self.open_turn()
        if event.rate != self._rate:
            try:
                resampler = Resampler(event.rate, twilio.SAMPLE_RATE)
            except (AudioFormatError, ValueError) as exc:
                self.stats.protocol_errors += 1
                self.log.warning("protocol_error", peer="live",
                                 error=f"reply audio at {event.rate} Hz: {exc}")
                return
            self._rate, self._resampler = event.rate, resampler
        ulaw = pcm16_to_ulaw(self._resampler.process(event.pcm))
        if not ulaw:
            return
        if self._emit(Outgoing(Kind.MEDIA, self.stream.media(ulaw), received, ulaw)):
            self.turn_sent_ms += len(ulaw) / 8.0
        else:
            self.stats.media_dropped_full += 1
            if self.stats.media_dropped_full % 100 == 1:  # first, then every 100th: no log storm
                self.log.warning("reply_audio_dropped", reason="caller socket not reading",
                                 dropped=self.stats.media_dropped_full)
        interval = self.mark_interval_ms
        if interval and self.turn_sent_ms - self._last_mark_ms >= interval:
            self.queue_mark(f"{self.turn}:{self.turn_sent_ms:.0f}")
            self._last_mark_ms = self.turn_sent_ms

    def interrupted(self, received: float) -> None:
        dropped = self.out.drop_audio()
        self.stats.media_dropped_barge_in += dropped
        self._resampler.reset()
        self._emit(Outgoing(Kind.CLEAR, self.stream.clear(), received))
        self.stats.interruptions += 1
        heard_turn, heard_ms = self.heard
        heard = heard_ms if heard_turn == self.turn else 0.0
        self.log.info("barge_in", turn=self.turn, dropped_chunks=dropped,
                      sent_ms=round(self.turn_sent_ms), heard_ms=round(heard))
        self.transcript.mark_agent_interrupted(
            heard / self.turn_sent_ms if self.turn_sent_ms else None)
        self.next_turn()

    def turn_complete(self, event: live.TurnComplete) -> None:
        if self.turn_sent_ms:
            self.queue_mark(f"{self.turn}:end", turn_end=True)
        self.next_turn()
        if event.reason:
            self.log.info("turn_complete", reason=event.reason)

    def turn_lost(self) -> None:
        """The Live session ended mid-turn: what was queued still plays; the turn is over."""
        if self.turn_open:
            self.next_turn()

    def open_turn(self) -> None:
        if not self.turn_open:
            self.turn_open = True
            self.turn_done.clear()

    def next_turn(self) -> None:
        if self.turn_sent_ms:
            self.turn += 1
        self.turn_sent_ms = 0.0
        self._last_mark_ms = 0.0
        self.turn_open = False
        self.turn_done.set()

    def prompt(self, ulaw: bytes) -> None:
        """Queue a recorded prompt (8 kHz mu-law) for the caller."""
        for i in range(0, len(ulaw), PROMPT_CHUNK):
            chunk = ulaw[i:i + PROMPT_CHUNK]
            self._emit(Outgoing(Kind.MEDIA, self.stream.media(chunk), time.perf_counter(),
                                chunk))

    # -- marks ---------------------------------------------------------------------------

    def queue_mark(self, name: str, *, turn_end: bool = False) -> None:
        self._emit(Outgoing(Kind.MARK, self.stream.mark(name), time.perf_counter(),
                            turn_end=turn_end))
        self.stats.marks_sent += 1

    def mark(self, event: twilio.Mark) -> None:
        """Twilio echoed a mark: everything queued before it has played."""
        waiter = self._mark_waiters.pop(event.name, None)
        if waiter is not None:
            waiter.set()
            return
        turn, _, ms = event.name.partition(":")
        try:
            heard = (int(turn), float(ms) if ms != "end" else self.turn_sent_ms)
        except ValueError:
            self.log.warning("unknown_mark", name=event.name[:64])
            return
        self.stats.marks_heard += 1
        self.heard = max(self.heard, heard)

    # -- gateway.callctl.Playout ---------------------------------------------------------

    async def wait_turn_done(self) -> None:
        await self.turn_done.wait()

    async def play_out(self, name: str) -> None:
        # Echoed when everything queued before it has played, or at once on a clear.
        waiter = self._mark_waiters[name] = asyncio.Event()
        self.queue_mark(name)
        await waiter.wait()

    # -- writer --------------------------------------------------------------------------

    def _emit(self, item: Outgoing) -> bool:
        """Write ``item`` at once when nothing is ahead of it, else queue it (False if full).

        Written in place, a reply chunk or a ``clear`` leaves in the same step as the Live
        message that caused it, however busy the event loop; queued, it waits for the writer
        task's turn. Only an idle writer and an empty queue keep the order intact.
        """
        if not self._writing and not self.out and self.caller.send_nowait(item.text):
            self._sent(item, time.perf_counter())
            return True
        return self.out.put(item)

    async def writer(self) -> None:
        while True:
            item = await self.out.get()
            self._writing = True
            try:
                # Once the socket's buffers are full, a send waits for the peer to read, and
                # aiohttp waits with no limit of its own.
                async with asyncio.timeout(CALLER_SEND_TIMEOUT_S):
                    await self.caller.send(item.text)
            except TimeoutError:
                self.log.warning("caller_not_reading", blocked_s=CALLER_SEND_TIMEOUT_S,
                                 queued=len(self.out), dropped=self.stats.media_dropped_full)
                raise CallEnding(f"caller socket not reading: a send blocked "
                                 f"{CALLER_SEND_TIMEOUT_S:g} s") from None
            except ConnectionError as exc:
                # The socket is closing. If the caller pump closed it (rejecting the stream),
                # its reason is the one to keep; if the peer went away, the pump sees that
                # too. Give it the time to say so instead of racing it.
                await asyncio.sleep(CALLER_SEND_TIMEOUT_S)
                raise CallEnding("caller socket closed while writing") from exc
            finally:
                self._writing = False
            self._sent(item, time.perf_counter())

    def _sent(self, item: Outgoing, done: float) -> None:
        if item.kind is Kind.MEDIA:
            self.stats.media_out += 1
            self.stats.reply_latency.observe(done - item.since)
            self._played(done, len(item.audio) / 8000)
            if self.recording is not None:
                self.recording.agent(item.audio, done)
            if self.timings is not None:
                self.timings.media(done, len(item.audio) / 8.0)
        elif item.kind is Kind.CLEAR:
            self.stats.barge_in.observe(done - item.since)
            self._played_by = None
            if self.recording is not None:
                self.recording.clear(done)
            if self.timings is not None:
                self.timings.clear(done)
        elif item.turn_end:
            self._played_by = None  # silence until the next reply is not a gap
            if self.timings is not None:  # in order with the turn's audio, queued or not
                self.timings.turn_end(done)

    def _played(self, now: float, seconds: float) -> None:
        """Twilio plays what it gets back to back; a chunk arriving late leaves a gap."""
        if self._played_by is not None and now > self._played_by:
            gap_ms = (now - self._played_by) * 1000
            self.stats.reply_gap_max_ms = max(self.stats.reply_gap_max_ms, round(gap_ms, 1))
        self._played_by = max(self._played_by or now, now) + seconds
