"""The bench for the hostile-input tests: a client that can break every rule, one gateway in
front of two simulated Live servers, and the checks that a healthy call did not notice."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from structlog.testing import capture_logs
from websockets.client import ClientProtocol
from websockets.frames import Close
from websockets.http11 import Response
from websockets.uri import parse_uri

from gateway.agent import Agent
from gateway.bridge_config import CallServices
from gateway.config import Settings, custom_endpoint
from gateway.live_client import LiveSession, open_session
from gateway.record import CallSummary
from gateway.registry import AgentRegistry
from gateway.rig.peers.twilio import FRAME_BYTES, ULAW_SILENCE, TwilioPeer
from gateway.rig.phone import CallResult, Utterance, When, load_utterance, place_call
from gateway.rig.simulator import SimulatorServer, scenario_from_dict
from gateway.rig.simulator.record import SessionRecord
from gateway.rig.simulator.speech import fixture, speech_dir
from gateway.server import Gateway, load_prompt, running
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


def tone_wav(path: Path, seconds: float) -> Path:
    """A loud 24 kHz tone: the hostile line's reply, long enough to fill any socket buffer."""
    t = np.arange(int(24000 * seconds)) / 24000
    write_wav(path, (8000 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes(), 24000)
    return path


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
