"""CPU per 20 ms of audio of each carrier's inbound and outbound path, beside Twilio's, in one run.

Each carrier (and each format it streams) gets a real :class:`gateway.bridge.CallBridge`,
built by the product from the carrier's own stream core (``gateway.carrier_setup``'s
``from_env``, with the format's environment variable) and started by the carrier's opening
messages, as the rig's phone peers send them. Only the two sockets are stand-ins: the caller's
takes every write at once, and the Live session is open and takes every message at once. So
what is timed is the bridge's own per-frame work, through its own pumps:

* inbound, per 20 ms of audio: the carrier's wire message (20 ms each, Exotel's 100 ms;
  JSON text with base64, or Vonage's, jambonz's, Asterisk's or AudioSocket's binary frame) -> the
  carrier core's ``receive`` -> decode -> 16 kHz -> the Live ``realtimeInput`` message, with
  the bridge's and the keeper's bookkeeping (speech peak, held audio, counters, forward
  latency);
* outbound, per 20 ms of reply: the Live ``serverContent`` audio messages (24 kHz PCM,
  base64 in JSON, 80 ms each, as the simulator sends them) and each reply's ``turnComplete``
  -> ``live.parse_server_message`` -> the playout: resample to the carrier's rate, encode, cut
  to the carrier's message sizes (Vonage, jambonz: exactly 640 bytes), the carrier's ``play`` message,
  a mark every 200 ms, counters.

The caller speaks the rig's caller recordings and the model the agent recordings, converted
to each format. A batch is ``--seconds`` of audio each way per carrier; its CPU is
``time.process_time`` around the pump's work (the event loop's turns in between included: the
caller pump yields every 8 frames, as in the product). Contenders are interleaved batch by
batch, in a rotating order, and each figure is the median of ``--repeats`` batches, so the
ratios to Twilio hold on a shared machine. Sockets, TLS and the kernel are not included:
``calls_per_core.py`` measures the whole process; ``frame_cost.py`` splits Twilio's path into
its pieces.

Run: .venv/bin/python benchmarks/carrier_frame_cost.py [--repeats 21] [--seconds 30]

Sample (2-core shared machine, the defaults, about 6 s; ratios agree within about 0.03
between runs, the absolute figures within about 8 %):

| carrier | format | inbound µs/frame | x twilio | outbound µs/20 ms | x twilio | messages out per s of reply |
|---|---|---|---|---|---|---|
| twilio | PCMU/8000 | 9.49 | 1.00 | 8.00 | 1.00 | 16.9 |
| signalwire | PCMU/8000 | 9.32 | 0.98 | 7.95 | 0.99 | 16.9 |
| telnyx | L16_BE/16000 | 10.23 | 1.08 | 8.00 | 1.00 | 16.9 |
| telnyx PCMU | PCMU/8000 | 10.61 | 1.12 | 8.14 | 1.02 | 16.9 |
| telnyx PCMA | PCMA/8000 | 10.72 | 1.13 | 8.15 | 1.02 | 16.9 |
| plivo | L16/16000 | 7.94 | 0.84 | 7.54 | 0.94 | 16.9 |
| plivo mu-law | PCMU/8000 | 9.15 | 0.97 | 8.12 | 1.02 | 16.9 |
| vonage | L16/16000 | 4.79 | 0.51 | 11.19 | 1.40 | 55.2 |
| jambonz | L16/16000 | 4.71 | 0.50 | 11.15 | 1.39 | 55.2 |
| exotel | L16/16000 | 2.32 | 0.24 | 6.93 | 0.87 | 9.6 |
| exotel 8k | L16/8000 | 3.27 | 0.35 | 6.21 | 0.78 | 8.7 |
| asterisk | PCMU/8000 | 6.60 | 0.70 | 7.70 | 0.96 | 17.0 |
| asterisk slin16 | L16/16000 | 5.05 | 0.53 | 7.55 | 0.94 | 17.0 |
| audiosocket | L16/8000 | 7.40 | 0.78 | 16.17 | 2.02 | 50.1 |
| browser | L16/16000 / L16/24000 | 5.98 | 0.64 | 4.03 | 0.53 | 16.9 |
| browser mulaw8k | PCMU/8000 | 7.12 | 0.76 | 7.52 | 0.98 | 16.9 |

Exotel's 100 ms messages pay the JSON and base64 overheads once per 100 ms: a quarter of
Twilio's inbound cost per 20 ms; outbound its 3.2 KB minimum message halves the messages sent.
Vonage's and jambonz's binary frames skip JSON and base64 inbound; outbound they send four
640-byte frames where the others send one message per 80 ms Live chunk (jambonz's core is
Vonage's shape, and costs the same). Asterisk's WebSocket driver also takes raw binary audio
(whole 20 ms frames, several to a message: about one per Live chunk). AudioSocket's replies go out in 20 ms messages through
the paced writer task (a queue hand-off per message, where the others are written in place):
twice Twilio's outbound cost, some 8 µs per 20 ms more. Wideband L16 needs no resampling
inbound; Telnyx's core does more per frame than Twilio's (sequence order, track and whole-sample
checks: about 1 µs).
The browser's pcm16 (the console's talk page; a later run than the rows above) is the Live
API's own rates both ways: no resampling in or out, binary frames with no JSON or base64, so
its outbound costs half of Twilio's; its mulaw8k is a phone's 8 kHz path in binary frames.
"""  # noqa: E501 - the table is printed output

from __future__ import annotations

import argparse
import asyncio
import binascii
import itertools
import statistics
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import structlog

from gateway import live
from gateway.audio import AudioFormat
from gateway.bridge import CallBridge, CallState
from gateway.bridge_config import BridgeSettings
from gateway.carrier_setup import PROVIDERS
from gateway.carriers import telnyx
from gateway.carriers.asterisk import Dialect
from gateway.carriers.audiosocket import AudioSocketStream
from gateway.carriers.browser import BrowserFormat, BrowserStream
from gateway.carriers.core import Carrier, CarrierStream, Outgoing
from gateway.carriers.plivo import ContentType
from gateway.ending import EndKind
from gateway.rig.peers import PhonePeer
from gateway.rig.peers.asterisk import AsteriskPeer
from gateway.rig.peers.audiosocket import AudioSocketPeer
from gateway.rig.peers.browser import BrowserPeer
from gateway.rig.peers.exotel import ExotelPeer
from gateway.rig.peers.jambonz import JambonzPeer
from gateway.rig.peers.plivo import PlivoPeer
from gateway.rig.peers.telnyx import TelnyxPeer
from gateway.rig.peers.twilio import TwilioPeer, signalwire_peer
from gateway.rig.peers.vonage import VonagePeer
from gateway.rig.phone import load_utterance
from gateway.rig.simulator import protocol
from gateway.rig.simulator.scenario import Scenario
from gateway.rig.simulator.speech import fixtures, reply_pcm

FRAME_MS = 20


@dataclass(frozen=True, slots=True)
class Contender:
    name: str
    carrier: Carrier
    env: Mapping[str, str]  # how the gateway is told the format (as an operator would)
    peer: Callable[[], PhonePeer]

    def stream(self) -> CarrierStream:
        if self.carrier is Carrier.AUDIOSOCKET:  # served by its TCP listener, not a setup
            return AudioSocketStream()
        if self.carrier is Carrier.BROWSER:  # the console's talk page: its URL's format
            return BrowserStream("BRbench", BrowserFormat.parse(self.env["format"]))
        return PROVIDERS[self.carrier](self.env).new_stream()


CONTENDERS = (
    Contender("twilio", Carrier.TWILIO, {}, TwilioPeer),
    Contender("signalwire", Carrier.SIGNALWIRE, {}, lambda: signalwire_peer({})),
    Contender("telnyx", Carrier.TELNYX, {}, TelnyxPeer),
    Contender("telnyx PCMU", Carrier.TELNYX, {"VOICEGW_TELNYX_CODEC": "PCMU"},
              lambda: TelnyxPeer(fmt=telnyx.FORMATS["PCMU"])),
    Contender("telnyx PCMA", Carrier.TELNYX, {"VOICEGW_TELNYX_CODEC": "PCMA"},
              lambda: TelnyxPeer(fmt=telnyx.FORMATS["PCMA"])),
    Contender("plivo", Carrier.PLIVO, {}, PlivoPeer),
    Contender("plivo mu-law", Carrier.PLIVO,
              {"VOICEGW_PLIVO_CONTENT_TYPE": ContentType.MULAW_8K.value},
              lambda: PlivoPeer(content=ContentType.MULAW_8K)),
    Contender("vonage", Carrier.VONAGE, {}, VonagePeer),
    Contender("jambonz", Carrier.JAMBONZ, {}, JambonzPeer),
    Contender("exotel", Carrier.EXOTEL, {}, ExotelPeer),
    Contender("exotel 8k", Carrier.EXOTEL, {"VOICEGW_EXOTEL_SAMPLE_RATE": "8000"},
              lambda: ExotelPeer(rate=8000)),
    Contender("asterisk", Carrier.ASTERISK, {}, AsteriskPeer),
    Contender("asterisk slin16", Carrier.ASTERISK, {},
              lambda: AsteriskPeer(format_name="slin16", dialect=Dialect.JSON)),
    Contender("audiosocket", Carrier.AUDIOSOCKET, {}, AudioSocketPeer),
    Contender("browser", Carrier.BROWSER, {"format": "pcm16"}, BrowserPeer),
    Contender("browser mulaw8k", Carrier.BROWSER, {"format": "mulaw8k"},
              lambda: BrowserPeer(fmt=BrowserFormat.MULAW8K)),
)
# AudioSocket's replies are paced by the clock; here the pacer's lead is made endless, so the
# batch is timed as the CPU work it is (the waiting is not work).
_UNPACED = 1e9


class Batches:
    """Hands a pump one batch at a time and says when it has taken all of it."""

    def __init__(self) -> None:
        self._items: deque[str | bytes] = deque()
        self._more: asyncio.Future[None] | None = None
        self.drained = asyncio.Event()

    def feed(self, items: Iterable[str | bytes]) -> None:
        self._items.extend(items)
        self.drained.clear()
        if self._more is not None and not self._more.done():
            self._more.set_result(None)

    async def next(self) -> str | bytes:
        while not self._items:
            self.drained.set()
            self._more = asyncio.get_running_loop().create_future()
            await self._more
        return self._items.popleft()


class CallerSocket:
    """The carrier's socket: frames from the batch; every write taken at once."""

    def __init__(self) -> None:
        self.inbox = Batches()
        self.sent = 0
        self.close_code: int | None = None

    async def receive(self) -> str | bytes | None:
        return await self.inbox.next()

    def send_nowait(self, frame: Outgoing) -> bool:
        self.sent += 1
        return True

    async def send(self, frame: Outgoing) -> None:
        self.sent += 1

    async def close(self, code: int, reason: str) -> None:
        self.close_code = code


class LiveSession:
    """An open Live session: frames from the batch; every message taken at once."""

    def __init__(self) -> None:
        self.inbox = Batches()
        self.sent = 0

    async def connect(self, setup: str) -> LiveSession:
        return self

    def frames(self) -> AsyncIterator[str | bytes]:
        return self._frames()

    async def _frames(self) -> AsyncIterator[str | bytes]:
        while True:
            yield await self.inbox.next()

    async def send(self, text: str | bytes) -> None:
        self.sent += 1

    def send_nowait(self, text: bytes) -> bool:
        self.sent += 1
        return True

    async def close(self, code: int = 1000, reason: str = "") -> None:
        pass


def caller_frames(fmt: AudioFormat) -> Iterator[bytes]:
    """The rig's caller recordings in ``fmt``, 20 ms at a time, round and round."""
    frames = []
    for fixture in fixtures("caller"):
        audio = load_utterance(fixture.path).to(fmt)
        size = fmt.frame_bytes
        frames += [audio[i:i + size] for i in range(0, len(audio) - size + 1, size)]
    return itertools.cycle(frames)


def reply_frames(seconds: float) -> tuple[list[bytes], float]:
    """Live messages saying the rig's agent recordings (each reply ending in ``turnComplete``)
    for at least ``seconds``, and how many ms of audio they carry."""
    step = 2 * live.OUTPUT_RATE * Scenario().chunk_ms // 1000
    frames: list[bytes] = []
    ms = 0.0
    for fixture in itertools.cycle(fixtures("agent")):
        pcm = reply_pcm(fixture.path)
        for i in range(0, len(pcm), step):
            data = binascii.b2a_base64(pcm[i:i + step], newline=False).decode("ascii")
            frames.append(protocol.encode(protocol.model_audio(data, live.OUTPUT_RATE)))
        frames.append(protocol.encode(protocol.turn_complete()))
        ms += len(pcm) * 500 / live.OUTPUT_RATE
        if ms >= seconds * 1000:
            return frames, ms
    raise AssertionError("unreachable")


class Call:
    """One contender's call, started and active, its pumps waiting for batches."""

    def __init__(self, contender: Contender, seconds: float) -> None:
        self.contender = contender
        self.peer = contender.peer()
        self.caller, self.live = CallerSocket(), LiveSession()
        self.bridge = CallBridge(self.caller, contender.stream(), self.live.connect,
                                 BridgeSettings(session=live.SessionConfig(model="models/bench"),
                                                pacing_lead_ms=_UNPACED,
                                                max_queued_media=100_000))
        self.frames_per_batch = round(seconds * 1000 / FRAME_MS)
        # A carrier that sends longer messages (Exotel: 100 ms) sends fewer of them.
        self.per_message = max(1, self.peer.send_ms // FRAME_MS)
        self.messages_per_batch = self.frames_per_batch // self.per_message
        self.audio = caller_frames(self.peer.inbound)
        self.replies, self.reply_ms = reply_frames(seconds)
        self.task: asyncio.Task[object] | None = None
        self.inbound_us: list[float] = []
        self.outbound_us: list[float] = []
        self.messages_out = 0
        self.forwarded_at_start = 0

    async def start(self) -> None:
        self.task = asyncio.create_task(self.bridge.run())
        opening = list(self.peer.opening())
        if self.contender.carrier is Carrier.AUDIOSOCKET:  # its first audio starts the call
            opening.append(self.peer.media(next(self.audio)))
        self.caller.inbox.feed(opening)
        for _ in range(1000):  # the connect and the greeting take a few loop turns
            if self.bridge.state is CallState.ACTIVE:
                await self.caller.inbox.drained.wait()
                self.forwarded_at_start = self.bridge.stats.frames_forwarded
                return
            await asyncio.sleep(0)
        raise RuntimeError(f"{self.contender.name}: the call did not start")

    async def inbound(self) -> None:
        frames = [self.peer.media(b"".join(next(self.audio) for _ in range(self.per_message)))
                  for _ in range(self.messages_per_batch)]
        t0 = time.process_time()
        self.caller.inbox.feed(frames)
        await self.caller.inbox.drained.wait()
        spent = time.process_time() - t0
        # Per 20 ms of the caller's audio, however many messages carried it.
        self.inbound_us.append(spent / (len(frames) * self.per_message) * 1e6)

    async def outbound(self) -> None:
        sent = self.caller.sent
        t0 = time.process_time()
        self.live.inbox.feed(self.replies)
        await self.live.inbox.drained.wait()
        playout = self.bridge.playout
        # A paced playout queues every message; its writer task sends them, one per loop turn.
        while playout is not None and playout.out:  # noqa: ASYNC110 - yielding to it
            await asyncio.sleep(0)
        spent = time.process_time() - t0
        self.outbound_us.append(spent / (self.reply_ms / FRAME_MS) * 1e6)
        self.messages_out = self.caller.sent - sent

    async def end(self) -> None:
        assert self.task is not None
        self.bridge.request_end(EndKind.SHUTDOWN, "benchmark over")
        await self.task
        stats = self.bridge.stats
        batches = len(self.inbound_us)
        # Every frame reached the Live session, and the replies reached the caller: the path
        # measured is the whole one, not one cut short (held audio, a dropped reply).
        forwarded = stats.frames_forwarded - self.forwarded_at_start
        if forwarded != batches * self.messages_per_batch \
                or stats.protocol_errors or stats.media_dropped_full or not stats.media_out:
            raise RuntimeError(f"{self.contender.name}: forwarded {forwarded} "
                               f"of {batches * self.messages_per_batch} frames, "
                               f"{stats.protocol_errors} protocol errors, "
                               f"{stats.media_dropped_full} replies dropped")


def fmt_pair(call: Call) -> str:
    inbound, outbound = call.peer.inbound, call.peer.outbound
    return str(inbound) if inbound == outbound else f"{inbound} / {outbound}"


def table(calls: Sequence[Call], repeats: int, seconds: float) -> str:
    assert calls[0].contender.carrier is Carrier.TWILIO  # the ratios' base
    base_in = statistics.median(calls[0].inbound_us)
    base_out = statistics.median(calls[0].outbound_us)
    lines = [f"µs of CPU per 20 ms of audio, median of {repeats} interleaved batches of "
             f"{seconds:g} s each way:",
             "| carrier | format | inbound µs/frame | x twilio | outbound µs/20 ms | x twilio "
             "| messages out per s of reply |",
             "|---|---|---|---|---|---|---|"]
    for call in calls:
        us_in, us_out = statistics.median(call.inbound_us), statistics.median(call.outbound_us)
        per_s = call.messages_out / (call.reply_ms / 1000)
        lines.append(f"| {call.contender.name} | {fmt_pair(call)} | {us_in:.2f} "
                     f"| {us_in / base_in:.2f} | {us_out:.2f} | {us_out / base_out:.2f} "
                     f"| {per_s:.1f} |")
    return "\n".join(lines)


async def run(repeats: int, seconds: float) -> None:
    calls = [Call(c, seconds) for c in CONTENDERS]
    for call in calls:
        await call.start()
    for r in range(repeats):
        shift = r % len(calls)
        for call in calls[shift:] + calls[:shift]:
            await call.inbound()
            await call.outbound()
    for call in calls:
        await call.end()
    print(table(calls, repeats, seconds))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--repeats", type=int, default=21, help="batches per carrier and way")
    ap.add_argument("--seconds", type=float, default=30.0, help="audio per batch")
    args = ap.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    asyncio.run(run(args.repeats, args.seconds))


if __name__ == "__main__":
    main()
