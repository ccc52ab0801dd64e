"""Hostile and broken Media Streams input, each kind beside a healthy call on the same gateway.

One row of the README's "Hostile input" table per test. Every test runs one gateway in front of
two simulated Live servers (the healthy line's and the hostile line's, so each side's audio is
counted apart) and places a healthy call with :func:`gateway.phone.place_call`; once that call
is hearing its reply, a hand-made client (:class:`RawCaller`) breaks the protocol on a second
stream. The test then checks both the defined outcome for the hostile stream (ignored and
counted, or closed with the stated code and reason, with its warning log line) and that the
healthy call did not notice: every frame it sent reached its Live session, its reply was
heard in full, no ``clear`` it did not cause.

Calls run time-compressed (SPEED x real time) on the phone and the healthy simulator.
Synchronisation is by events (the simulators' ``wait_until``, socket reads), never by sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pytest
from structlog.testing import capture_logs
from websockets.client import ClientProtocol
from websockets.frames import Close
from websockets.http11 import Response
from websockets.uri import parse_uri

from gateway import bridge, playout
from gateway.agent import Agent
from gateway.bridge import CallServices
from gateway.config import Settings, custom_endpoint
from gateway.live_client import LiveSession, open_session
from gateway.phone import CallResult, Utterance, When, load_utterance, place_call
from gateway.record import CallSummary
from gateway.registry import AgentRegistry
from gateway.server import MAX_FRAME_BYTES, Gateway, load_prompt, running
from gateway.simulator import SimulatorServer, scenario_from_dict
from gateway.simulator.record import SessionRecord
from gateway.simulator.speech import fixture, speech_dir
from gateway.twilio_peer import FRAME_BYTES, ULAW_SILENCE, TwilioPeer
from gateway.wav import write_wav

SPEED = 8.0  # the healthy call and its simulator
HOSTILE_SPEED = 25.0  # the hostile line's simulator: its long reply streams quickly
CALLER = "+15550100"
HEALTHY_REPLY = "agent_goodbye"
REPLY_MS = fixture(HEALTHY_REPLY).duration_s * 1000
RESPONSE_MS_MAX = 1500.0
SILENCE = bytes([ULAW_SILENCE]) * FRAME_BYTES
TAG = {"healthy": "Healthy test line.", "hostile": "Hostile test line."}
FLOOD_FRAMES = 10_000
# A flood that queued its frames would hold >= 3 MB of inbound JSON alone (10,000 x ~300 B),
# and ~9 MB of outbound Live messages; a bounded path holds a fraction of one of those.
FLOOD_MEMORY_BOUND = 2 * 1024 * 1024


# -- a client that can break every rule -----------------------------------------------------


class RawCaller:
    """A Media Streams client on a plain socket, framing with websockets' sans-I/O protocol.

    Unlike a WebSocket library it will send binary or oversized frames, stop reading (with a
    receive buffer as small as the kernel allows), or vanish without a close frame.
    ``peer`` builds the valid Twilio messages.
    """

    def __init__(self, port: int, path: str = "/media/hostile", *,
                 rcvbuf: int | None = None) -> None:
        self.port = port
        self.url = f"ws://127.0.0.1:{port}{path}"
        self.rcvbuf = rcvbuf
        self.peer = TwilioPeer(call_sid="CA" + uuid.uuid4().hex,
                               stream_sid="MZ" + uuid.uuid4().hex,
                               custom_parameters={"From": CALLER})
        self.protocol = ClientProtocol(parse_uri(self.url))
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.loop = asyncio.get_running_loop()

    async def __aenter__(self) -> RawCaller:
        sock = self.sock
        if self.rcvbuf is not None:  # before connecting, so the window is small from the start
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        sock.setblocking(False)
        await self.loop.sock_connect(sock, ("127.0.0.1", self.port))
        self.protocol.send_request(self.protocol.connect())
        await self._flush()
        while True:  # the 101 answer; frames may follow it in the same read
            data = await self.loop.sock_recv(sock, 4096)
            assert data, "gateway closed during the handshake"
            self.protocol.receive_data(data)
            if any(isinstance(e, Response) for e in self.protocol.events_received()):
                break
        assert self.protocol.handshake_exc is None, self.protocol.handshake_exc
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self.sock.close()

    async def _flush(self) -> None:
        for chunk in self.protocol.data_to_send():
            if chunk:
                await self.loop.sock_sendall(self.sock, chunk)

    async def send(self, *texts: str) -> None:
        for text in texts:
            self.protocol.send_text(text.encode())
        await self._flush()

    async def send_binary(self, data: bytes) -> None:
        self.protocol.send_binary(data)
        await self._flush()

    async def send_batched(self, texts: Iterable[str], batch: int = 100) -> None:
        """As fast as the socket takes them: ``batch`` frames per write."""
        pending = 0
        for text in texts:
            self.protocol.send_text(text.encode())
            pending += 1
            if pending == batch:
                await self._flush()
                pending = 0
        await self._flush()

    async def closed(self, timeout: float = 10.0) -> tuple[int, str]:  # noqa: ASYNC109
        """Read until the gateway's close frame (answering it) or the end of the connection.

        (1006, "") when the connection ended without a close frame.
        """
        async with asyncio.timeout(timeout):
            while not isinstance(self.protocol.close_rcvd, Close):
                try:
                    data = await self.loop.sock_recv(self.sock, 65536)
                except ConnectionError:
                    return 1006, ""
                if not data:
                    self.protocol.receive_eof()
                    break
                self.protocol.receive_data(data)
                self.protocol.events_received()
                with contextlib.suppress(OSError):  # our close reply, once theirs is in
                    await self._flush()
        close = self.protocol.close_rcvd
        return (close.code, close.reason) if close is not None else (1006, "")

    async def drain(self, timeout: float = 10.0) -> int:  # noqa: ASYNC109
        """Read to the end of the connection; the number of bytes that were still coming."""
        got = 0
        async with asyncio.timeout(timeout):
            while True:
                try:
                    data = await self.loop.sock_recv(self.sock, 65536)
                except ConnectionError:
                    return got
                if not data:
                    return got
                got += len(data)

    def abort(self, *, reset: bool = False) -> None:
        """Drop the connection without a close frame: a FIN, or with ``reset`` a RST."""
        if reset:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def media_with_payload(self, payload: str) -> str:
        """A ``media`` message of this stream carrying ``payload`` verbatim."""
        return json.dumps({"event": "media", "sequenceNumber": "99",
                           "streamSid": self.peer.stream_sid,
                           "media": {"track": "inbound", "chunk": "99", "timestamp": "1980",
                                     "payload": payload}})

    def start_with(self, **media_format: Any) -> str:
        """A ``start`` whose ``start`` object is changed as given (``None`` removes a key)."""
        msg = json.loads(self.peer.start())
        for key, value in media_format.items():
            if value is None:
                msg["start"].pop(key)
            else:
                msg["start"][key] = value
        return json.dumps(msg)


# -- one gateway, two Live lines, one healthy call -------------------------------------------


@dataclass
class Bench:
    gateway: Gateway
    port: int
    healthy_sim: SimulatorServer
    hostile_sim: SimulatorServer

    def caller(self, **kw: Any) -> RawCaller:
        return RawCaller(self.port, **kw)

    async def hostile_session(self, predicate: Callable[[SessionRecord], bool],
                              timeout: float = 10.0) -> SessionRecord:  # noqa: ASYNC109
        """The hostile line's one Live session, once ``predicate`` holds for it."""
        sim = self.hostile_sim
        await sim.wait_until(lambda: bool(sim.sessions) and predicate(sim.sessions[0]),
                             timeout=timeout)
        return sim.sessions[0]


@dataclass
class Outcome:
    """What the test looks at once the gateway has drained."""

    healthy: CallResult
    healthy_summary: CallSummary
    hostile: CallSummary
    logs: list[dict[str, Any]]

    def warnings(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.logs if e["event"] == event and e["log_level"] == "warning"]


def _tone_wav(path: Path, seconds: float) -> Path:
    """A loud 24 kHz tone: the hostile line's reply, long enough to fill any socket buffer."""
    t = np.arange(int(24000 * seconds)) / 24000
    write_wav(path, (8000 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes(), 24000)
    return path


@pytest.fixture(scope="module")
def long_reply(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tone_wav(tmp_path_factory.mktemp("hostile") / "long_reply.wav", 60.0)


@contextlib.asynccontextmanager
async def bench(long_reply: Path, **settings: Any) -> AsyncIterator[Bench]:
    """A gateway with a ``healthy`` and a ``hostile`` agent, each on its own simulator."""
    healthy = scenario_from_dict({"speed": SPEED, "turns": [
        {"caller_text": "Hi, I'd like to book a table for two tomorrow evening.",
         "reply": HEALTHY_REPLY}]})
    hostile = scenario_from_dict({"speed": HOSTILE_SPEED, "turns": [
        {"caller_text": "Hi, I'd like to book a table.", "reply": str(long_reply)}]})
    async with SimulatorServer(healthy) as healthy_sim, SimulatorServer(hostile) as hostile_sim:

        async def connect(setup: str) -> LiveSession:
            sim = hostile_sim if TAG["hostile"] in setup else healthy_sim
            return await open_session(custom_endpoint(sim.url, "test-model"), setup)

        agents = {name: Agent(name=name, instructions=tag) for name, tag in TAG.items()}
        gateway = Gateway(
            Settings(endpoint=custom_endpoint(healthy_sim.url, "test-model"), **settings),
            connect_live=connect,
            services=CallServices(agents=AgentRegistry(agents=agents, default="healthy"),
                                  unavailable_prompt=load_prompt()))
        async with running(gateway) as port:
            yield Bench(gateway, port, healthy_sim, hostile_sim)
            # Every Live session a call opened was closed by the gateway when the call ended.
            for sim in (healthy_sim, hostile_sim):
                await sim.wait_until(lambda s=sim: all(r.closed for r in s.sessions))
        # Leaving `running` drained the gateway: every call's summary is recorded.
    assert not gateway.calls


HostileRun = Callable[[Bench], Awaitable[None]]


async def beside_a_healthy_call(long_reply: Path, hostile: HostileRun,
                                **settings: Any) -> Outcome:
    """Run ``hostile`` while a healthy call on the same gateway is hearing its reply."""
    with capture_logs() as logs:
        async with asyncio.timeout(60), bench(long_reply, **settings) as b:
            script = [Utterance(load_utterance(speech_dir() / "caller_book_table.wav"),
                                When.START, 400)]
            call = asyncio.create_task(place_call(
                f"ws://127.0.0.1:{b.port}/media/healthy", script, speed=SPEED,
                parameters={"From": CALLER}, max_s=60.0))
            sim = b.healthy_sim
            await sim.wait_until(lambda: bool(sim.sessions) and "audio" in sim.sessions[0].sent,
                                 timeout=20)
            assert not call.done()
            await hostile(b)
            healthy = await call
    finished = list(b.gateway.finished)
    [healthy_summary] = [s for s in finished if s.agent == "healthy"]
    [hostile_summary] = [s for s in finished if s.agent != "healthy"]
    outcome = Outcome(healthy, healthy_summary, hostile_summary, logs)
    _check_healthy(b, outcome)
    return outcome


def _check_healthy(b: Bench, o: Outcome) -> None:
    """The healthy call went exactly as it would have alone."""
    result, summary = o.healthy, o.healthy_summary
    [session] = b.healthy_sim.sessions
    # Every frame the phone sent reached the model, one audio message each.
    assert result.frames_sent > 0
    assert summary.stats.frames_forwarded == result.frames_sent
    assert session.audio_chunks == result.frames_sent
    # Its one reply was heard in full, promptly (alone: 720-740 ms of call time from the end
    # of speech, silence detection and the scenario's delay included); nothing cleared it.
    assert session.turns_completed == 1
    assert session.interruptions == 0
    assert len(result.response_ms) == 1
    assert result.response_ms[0] < RESPONSE_MS_MAX
    assert result.unanswered == 0
    assert abs(result.audio_received_ms - REPLY_MS) <= 20
    assert result.clears == 0
    assert summary.stats.protocol_errors == 0
    assert summary.end_reason == "caller hung up"
    # No warning names the healthy call.
    assert not [e for e in o.logs if e["log_level"] in ("warning", "error")
                and e.get("call_sid") == result.call_sid]


def _check_warned(o: Outcome, call_sid: str | None, count: int) -> None:
    """``count`` protocol_error warnings, each naming the hostile call where it was known."""
    warned = o.warnings("protocol_error")
    assert len(warned) == count
    for entry in warned:
        assert entry["peer"] == "twilio"
        assert entry.get("call_sid") == call_sid


async def _ends_normally(c: RawCaller, b: Bench, frames_before_stop: int = 1) -> None:
    """One valid frame reaches the Live session (the stream is still fine), then hang up."""
    await c.send(c.peer.media(SILENCE))
    await b.hostile_session(lambda s: s.audio_chunks >= frames_before_stop)
    await c.send(c.peer.stop())
    assert await c.closed() == (1000, "caller hung up")


# -- ignored and counted ---------------------------------------------------------------------


def _oversized_payload(c: RawCaller) -> str:
    # 20,000 bytes of audio (2.5 s) in one frame: over the 8,000-byte payload limit, inside
    # the 64 KiB frame limit.
    return c.media_with_payload("/" * 26_668)


BAD_FRAMES: dict[str, Callable[[RawCaller], str]] = {
    "non-JSON text": lambda c: "this is not JSON {",
    "JSON that is not an object": lambda c: '["event", "media"]',
    "payload not base64": lambda c: c.media_with_payload("not base64!"),
    "empty payload": lambda c: c.media_with_payload(""),
    "oversized payload": _oversized_payload,
    "connected after start": lambda c: c.peer.connected(),
}


@pytest.mark.parametrize("kind", list(BAD_FRAMES))
async def test_a_broken_frame_is_dropped_counted_and_logged(long_reply: Path, kind: str) -> None:
    caller_sid: list[str] = []

    async def hostile(b: Bench) -> None:
        async with b.caller() as c:
            caller_sid.append(c.peer.call_sid)
            await c.send(c.peer.connected(), c.peer.start(), BAD_FRAMES[kind](c))
            await _ends_normally(c, b)

    o = await beside_a_healthy_call(long_reply, hostile)
    assert o.hostile.stats.protocol_errors == 1
    assert o.hostile.stats.frames_forwarded == 1  # the valid frame after it
    assert o.hostile.end_reason == "caller hung up"
    _check_warned(o, caller_sid[0], 1)


async def test_media_before_start_is_dropped_counted_and_logged(long_reply: Path) -> None:
    async def hostile(b: Bench) -> None:
        async with b.caller() as c:
            await c.send(c.peer.connected(), c.peer.media(SILENCE), c.peer.start())
            await _ends_normally(c, b)

    o = await beside_a_healthy_call(long_reply, hostile)
    assert o.hostile.stats.protocol_errors == 1
    assert o.hostile.stats.frames_in == 1  # only the frame after start reached the bridge
    assert o.hostile.end_reason == "caller hung up"
    _check_warned(o, None, 1)  # no call sid before start


async def test_an_unknown_event_is_ignored_and_counted_apart(long_reply: Path) -> None:
    async def hostile(b: Bench) -> None:
        async with b.caller() as c:
            unknown = json.dumps({"event": "playAudio", "streamSid": c.peer.stream_sid})
            await c.send(c.peer.connected(), c.peer.start(), unknown, unknown)
            await _ends_normally(c, b)

    o = await beside_a_healthy_call(long_reply, hostile)
    assert o.hostile.stats.unknown_events == 2
    assert o.hostile.stats.protocol_errors == 0  # a future Twilio event must not end calls
    assert o.hostile.end_reason == "caller hung up"
    [warned] = o.warnings("unknown_event")  # the first, then every 100th
    assert warned["name"] == "playAudio"
    assert warned["call_sid"] == o.hostile.call_sid


# -- the stream closed -------------------------------------------------------------------------


async def test_too_many_protocol_errors_close_the_stream_with_1008(long_reply: Path) -> None:
    codes: list[tuple[int, str]] = []

    async def hostile(b: Bench) -> None:
        async with b.caller() as c:
            await c.send(c.peer.connected(), c.peer.start(),
                         *["garbage"] * (bridge.MAX_PROTOCOL_ERRORS + 1))
            codes.append(await c.closed())

    o = await beside_a_healthy_call(long_reply, hostile)
    limit = bridge.MAX_PROTOCOL_ERRORS + 1
    assert codes == [(1008, f"too many protocol errors ({limit})")]
    assert o.hostile.stats.protocol_errors == limit
    assert o.hostile.end_reason == f"too many protocol errors ({limit})"
    _check_warned(o, o.hostile.call_sid, limit)
    [rejected] = o.warnings("caller_rejected")
    assert rejected["code"] == 1008
    assert rejected["call_sid"] == o.hostile.call_sid


async def test_a_second_start_closes_the_stream_with_1008(long_reply: Path) -> None:
    codes: list[tuple[int, str]] = []

    async def hostile(b: Bench) -> None:
        async with b.caller() as c:
            await c.send(c.peer.connected(), c.peer.start(), c.peer.media(SILENCE))
            await b.hostile_session(lambda s: s.audio_chunks == 1)
            await c.send(c.peer.start())
            codes.append(await c.closed())

    o = await beside_a_healthy_call(long_reply, hostile)
    assert codes == [(1008, "second start on one stream")]
    assert o.hostile.stats.protocol_errors == 1
    assert o.hostile.end_reason == "second start on one stream"
    _check_warned(o, o.hostile.call_sid, 1)


@pytest.mark.parametrize("fmt", [
    {"encoding": "audio/l16", "sampleRate": 8000, "channels": 1},
    {"encoding": "audio/x-mulaw", "sampleRate": 16000, "channels": 1},
    {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 2},
], ids=["l16", "16kHz", "stereo"])
async def test_a_media_format_other_than_mulaw_8k_mono_closes_with_1003(
        long_reply: Path, fmt: dict[str, Any]) -> None:
    codes: list[tuple[int, str]] = []

    async def hostile(b: Bench) -> None:
        async with b.caller() as c:
            await c.send(c.peer.connected(), c.start_with(mediaFormat=fmt))
            codes.append(await c.closed())

    o = await beside_a_healthy_call(long_reply, hostile)
    described = f"{fmt['encoding']}/{fmt['sampleRate']}/{fmt['channels']}"
    reason = f"unsupported media format {described}; expected audio/x-mulaw/8000/1"
    assert codes == [(1003, reason)]
    assert o.hostile.end_reason == reason
    assert o.hostile.stats.protocol_errors == 1
    assert o.hostile.agent is None  # no call was set up ...
    assert o.hostile.call_sid is None
    assert not o.hostile.stats.frames_in
    _check_warned(o, None, 1)


async def test_a_malformed_start_closes_with_1008(long_reply: Path) -> None:
    codes: list[tuple[int, str]] = []

    async def hostile(b: Bench) -> None:
        async with b.caller() as c:
            await c.send(c.peer.connected(), c.start_with(callSid=None))
            codes.append(await c.closed())

    o = await beside_a_healthy_call(long_reply, hostile)
    assert codes == [(1008, "bad start: missing or not a string")]
    assert o.hostile.stats.protocol_errors == 1
    _check_warned(o, None, 1)


@pytest.mark.parametrize("payload", ["garbage", "json"])
async def test_a_binary_frame_closes_the_stream_with_1003(long_reply: Path, payload: str) -> None:
    codes: list[tuple[int, str]] = []

    async def hostile(b: Bench) -> None:
        async with b.caller() as c:
            await c.send(c.peer.connected(), c.peer.start(), c.peer.media(SILENCE))
            await b.hostile_session(lambda s: s.audio_chunks == 1)
            # Even a valid Twilio message is refused in a binary frame: Twilio sends text.
            await c.send_binary(b"\x00\xff\x13\x37" * 40 if payload == "garbage"
                                else c.peer.media(SILENCE).encode())
            codes.append(await c.closed())

    o = await beside_a_healthy_call(long_reply, hostile)
    assert codes == [(1003, "binary frames are not accepted")]
    assert o.hostile.end_reason == "binary frames are not accepted"
    assert o.hostile.stats.frames_forwarded == 1
    _check_warned(o, o.hostile.call_sid, 1)


async def test_a_frame_over_the_size_limit_closes_the_stream_with_1009(
        long_reply: Path) -> None:
    codes: list[tuple[int, str]] = []

    async def hostile(b: Bench) -> None:
        async with b.caller() as c:
            await c.send(c.peer.connected(), c.peer.start(),
                         c.media_with_payload("A" * (MAX_FRAME_BYTES + 4)))
            codes.append(await c.closed())

    o = await beside_a_healthy_call(long_reply, hostile)
    # aiohttp refuses it from the frame header (nothing of it is buffered) and closes 1009.
    assert codes[0][0] == 1009
    assert o.hostile.end_reason == f"frame larger than {MAX_FRAME_BYTES} bytes"
    assert o.hostile.stats.protocol_errors == 1
    _check_warned(o, o.hostile.call_sid, 1)


async def test_stop_without_start_ends_the_stream_at_once(long_reply: Path) -> None:
    codes: list[tuple[int, str]] = []

    async def hostile(b: Bench) -> None:
        async with b.caller() as c:
            await c.send(c.peer.connected(), c.peer.stop())
            codes.append(await c.closed())

    o = await beside_a_healthy_call(long_reply, hostile)
    assert codes == [(1000, "stop before start")]  # not held until the 10 s start timeout
    assert o.hostile.end_reason == "stop before start"
    assert o.hostile.stats.protocol_errors == 1
    _check_warned(o, None, 1)


# -- the connection itself -------------------------------------------------------------------


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
async def test_an_abrupt_tcp_close_ends_the_call_and_its_live_session(
        long_reply: Path, reset: bool) -> None:
    sessions: list[SessionRecord] = []

    async def hostile(b: Bench) -> None:
        async with b.caller() as c:
            await c.send(c.peer.connected(), c.peer.start(),
                         *[c.peer.media(SILENCE) for _ in range(3)])
            sessions.append(await b.hostile_session(lambda s: s.audio_chunks == 3))
            c.abort(reset=reset)  # no stop, no close frame
        # The gateway notices at once and closes the call's Live session.
        await b.hostile_session(lambda s: s.closed is not None)

    o = await beside_a_healthy_call(long_reply, hostile)
    assert o.hostile.end_reason == "caller disconnected"
    assert o.hostile.stats.frames_forwarded == 3
    assert sessions[0].closed is not None and sessions[0].closed[0] == 1000
    assert not o.warnings("protocol_error")
    assert not [e for e in o.logs if e["log_level"] == "error"]


async def test_a_flood_is_forwarded_with_backpressure_in_bounded_memory(
        long_reply: Path) -> None:
    """10,000 frames (200 s of audio) as fast as the socket takes them.

    Policy: faster-than-real-time audio is forwarded, not dropped (Live takes it, and a
    burst after a network stall is real audio), but never buffered: the gateway reads the
    next frame only once the last is on its way to Live, so a flood is held back by TCP
    flow control at the sender, and the read loop yields after every frame so other calls
    keep their turn on the event loop.
    """
    figures: dict[str, int] = {}

    async def hostile(b: Bench) -> None:
        async with b.caller() as c:
            await c.send(c.peer.connected(), c.peer.start())
            await b.hostile_session(lambda s: s.setup is not None)
            tracemalloc.start()
            try:
                base = tracemalloc.get_traced_memory()[0]
                await c.send_batched(c.peer.media(SILENCE) for _ in range(1_000))
                await b.hostile_session(lambda s: s.audio_chunks == 1_000, timeout=30)
                figures["after_1000"] = tracemalloc.get_traced_memory()[0] - base
                await c.send_batched(c.peer.media(SILENCE) for _ in range(FLOOD_FRAMES - 1_000))
                await b.hostile_session(lambda s: s.audio_chunks == FLOOD_FRAMES, timeout=60)
                current, peak = tracemalloc.get_traced_memory()
                figures["after_10000"] = current - base
                figures["peak"] = peak - base
            finally:
                tracemalloc.stop()
            await c.send(c.peer.stop())
            assert await c.closed() == (1000, "caller hung up")

    o = await beside_a_healthy_call(long_reply, hostile)
    print(f"\nflood of {FLOOD_FRAMES} frames: retained after 1,000 frames "
          f"{figures['after_1000'] / 1024:.0f} KiB, after 10,000 "
          f"{figures['after_10000'] / 1024:.0f} KiB, peak {figures['peak'] / 1024:.0f} KiB "
          f"(whole process, both calls and simulators, tracemalloc)")
    assert o.hostile.stats.frames_in == FLOOD_FRAMES
    assert o.hostile.stats.frames_forwarded == FLOOD_FRAMES
    assert o.hostile.stats.protocol_errors == 0
    assert figures["peak"] < FLOOD_MEMORY_BOUND
    # Nothing accumulates per frame: 9,000 more frames retain (almost) nothing more.
    assert figures["after_10000"] - figures["after_1000"] < 256 * 1024


async def test_a_caller_that_stops_reading_is_cut_off(
        long_reply: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The caller talks, then never reads the reply (a receive buffer of 2 KiB).

    aiohttp's sends succeed until the socket's buffers are full (the kernel's send buffer,
    capped by the gateway at 64 KiB, then ~200 KB in the transport's), then wait for drain with
    no limit of their own; reply audio meanwhile fills the bounded outbound queue and the rest
    is dropped and counted. A send blocked past CALLER_SEND_TIMEOUT_S ends the call, and the
    connection is reset rather than closed politely behind bytes the peer will never read.
    """
    monkeypatch.setattr(playout, "CALLER_SEND_TIMEOUT_S", 1.0)
    left: list[int] = []

    async def hostile(b: Bench) -> None:
        async with b.caller(rcvbuf=1024) as c:
            speech = load_utterance(speech_dir() / "caller_book_table.wav") + SILENCE * 50
            frames = [speech[i:i + FRAME_BYTES].ljust(FRAME_BYTES, bytes([ULAW_SILENCE]))
                      for i in range(0, len(speech), FRAME_BYTES)]
            await c.send(c.peer.connected(), c.peer.start(),
                         *[c.peer.media(f) for f in frames])
            # The reply streams; the caller never reads. The gateway gives up on it ...
            await b.hostile_session(lambda s: s.closed is not None, timeout=30)
            # ... and reset the connection: only what sat in our own receive buffer is left,
            # nothing of what the gateway had queued for us (its buffers and its kernel's).
            left.append(await c.drain())

    o = await beside_a_healthy_call(long_reply, hostile, outbound_queue_items=50)
    assert o.hostile.end_reason == "caller socket not reading: a send blocked 1 s"
    assert o.hostile.stats.media_out > 0  # it was written to until the buffers filled
    assert o.hostile.stats.media_dropped_full > 0  # then the queue filled, and drops counted
    [warned] = o.warnings("caller_not_reading")
    assert warned["call_sid"] == o.hostile.call_sid
    assert left[0] < 8 * 1024
