"""The bench for the hostile-input tests: a client that can break every rule of any carrier's
media stream, one gateway in front of two simulated Live servers, and the checks that a healthy
call of the same carrier did not notice."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
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
from gateway.carriers.core import Carrier, Outgoing
from gateway.config import Settings, custom_endpoint
from gateway.live_client import LiveSession, open_session
from gateway.metrics import PREFIX
from gateway.record import CallSummary
from gateway.registry import AgentRegistry
from gateway.rig.peers.browser import operator_check
from gateway.rig.peers.registry import new_peer, stream_core
from gateway.rig.phone import CallResult, Utterance, When, load_utterance, place_call
from gateway.rig.simulator import SimulatorServer, scenario_from_dict
from gateway.rig.simulator.record import SessionRecord
from gateway.rig.simulator.speech import fixture, speech_dir
from gateway.server import Gateway, load_prompt, running
from gateway.wav import write_wav
from tests.cases.browser import TOKEN
from tests.integration.hostile_wire import CALLER, Wire
from tests.integration.hostile_wires import WIRES

SPEED = 8.0  # the healthy call and its simulator
HOSTILE_SPEED = 25.0  # the hostile line's simulator: its long reply streams quickly
HEALTHY_REPLY = "agent_goodbye"
# The healthy caller's line: short, so that a row costs little more than the reply it overlaps.
HEALTHY_SAYS = "caller_goodbye"
REPLY_MS = fixture(HEALTHY_REPLY).duration_s * 1000
RESPONSE_MS_MAX = 1500.0
TAG = {"healthy": "Healthy test line.", "hostile": "Hostile test line."}
FLOOD_FRAMES = 10_000
# A flood that queued its frames would hold >= 3 MB of inbound JSON alone (10,000 x ~300 B
# of 8 kHz mu-law), and ~9 MB of outbound Live messages; a bounded path holds a fraction of one
# of those. Frames of 16 kHz linear PCM (Telnyx, Plivo, Vonage) are 4x the bytes: a queue would
# hold ~9 MB inbound, and what a bounded path keeps (the replay buffer of the last frames, the
# few in flight) is larger too.
FLOOD_MEMORY_BOUND = {160: 2 * 1024 * 1024, 640: 3 * 1024 * 1024}  # by frame bytes


# -- a client that can break every rule -----------------------------------------------------


class RawCaller:
    """A carrier's media stream on a plain socket, framing with websockets' sans-I/O protocol.

    Unlike a WebSocket library it will send binary or oversized frames, stop reading (with a
    receive buffer as small as the kernel allows), or vanish without a close frame.
    ``wire`` builds the carrier's messages, valid and broken.
    """

    def __init__(self, port: int, wire: Wire, *, rcvbuf: int | None = None) -> None:
        self.port = port
        self.wire = wire
        self.url = f"ws://127.0.0.1:{port}/{wire.carrier.value}/media/hostile"
        self.rcvbuf = rcvbuf
        self.protocol = ClientProtocol(parse_uri(self.url))
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.loop = asyncio.get_running_loop()

    async def __aenter__(self) -> RawCaller:
        sock = self.sock
        if self.rcvbuf is not None:  # before connecting, so the window is small from the start
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        sock.setblocking(False)
        await self.loop.sock_connect(sock, ("127.0.0.1", self.port))
        request = self.protocol.connect()
        request.headers.update(self.wire.upgrade_headers)
        self.protocol.send_request(request)
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

    def _frame(self, frame: Outgoing) -> None:
        if isinstance(frame, str):
            self.protocol.send_text(frame.encode())
        else:
            self.protocol.send_binary(frame)

    async def send(self, *frames: Outgoing) -> None:
        """Text frames for strings, binary frames for bytes."""
        for frame in frames:
            self._frame(frame)
        await self._flush()

    async def send_batched(self, frames: Iterable[Outgoing], batch: int = 100) -> None:
        """As fast as the socket takes them: ``batch`` frames per write."""
        pending = 0
        for frame in frames:
            self._frame(frame)
            pending += 1
            if pending == batch:
                await self._flush()
                pending = 0
        await self._flush()

    async def hang_up(self) -> tuple[int, str]:
        """Hang up as the carrier does: its ``stop`` (the gateway then closes the stream), or,
        where it has none, a normal close of its own; the gateway's close frame."""
        if self.wire.stop_event:
            await self.send(self.wire.stop())
        else:
            self.protocol.send_close(1000)
            await self._flush()
        return await self.closed()

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
                # sock_recv returns without suspending while data is waiting, and the gateway
                # shares this event loop: give it its turn between reads (a real caller's
                # reads never hold the gateway's loop), or a read loop on a connection the
                # gateway is closing starves the close it has already scheduled.
                await asyncio.sleep(0)

    def abort(self, *, reset: bool = False) -> None:
        """Drop the connection without a close frame: a FIN, or with ``reset`` a RST."""
        if reset:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


# -- one gateway, two Live lines, one healthy call -------------------------------------------


@dataclass
class Bench:
    carrier: Carrier
    gateway: Gateway
    port: int
    healthy_sim: SimulatorServer
    hostile_sim: SimulatorServer

    def caller(self, **kw: Any) -> RawCaller:
        """A hostile stream of this bench's carrier, on a call of its own."""
        return RawCaller(self.port, WIRES[self.carrier](), **kw)

    async def hostile_session(self, predicate: Callable[[SessionRecord], bool],
                              timeout: float = 10.0) -> SessionRecord:  # noqa: ASYNC109
        """The hostile line's one Live session, once ``predicate`` holds for it."""
        sim = self.hostile_sim
        await sim.wait_until(lambda: bool(sim.sessions) and predicate(sim.sessions[0]),
                             timeout=timeout)
        return sim.sessions[0]

    async def hostile_ended(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Until the hostile call has ended: its peers closed, its summary recorded."""
        gateway = self.gateway
        async with asyncio.timeout(timeout):
            while not any(s.agent == "hostile" for s in gateway.finished):
                gateway.call_done.clear()
                await gateway.call_done.wait()


@dataclass
class Outcome:
    """What the test looks at once the gateway has drained."""

    carrier: Carrier
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
async def bench(long_reply: Path, carrier: Carrier, **settings: Any) -> AsyncIterator[Bench]:
    """A gateway with a ``healthy`` and a ``hostile`` agent, each on its own simulator.

    It serves every carrier unsigned (a test gateway on loopback), so no stream needs a
    per-call token and every hostile frame reaches the carrier's parser.
    """
    healthy = scenario_from_dict({"speed": SPEED, "turns": [
        {"caller_text": "Thanks, goodbye.", "reply": HEALTHY_REPLY}]})
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
                                  unavailable_prompt=load_prompt()),
            browser=operator_check(TOKEN))
        assert not any(s.signed for s in gateway.carriers.values())
        async with running(gateway) as port:
            yield Bench(carrier, gateway, port, healthy_sim, hostile_sim)
            # Every Live session a call opened was closed by the gateway when the call ended.
            for sim in (healthy_sim, hostile_sim):
                await sim.wait_until(lambda s=sim: all(r.closed for r in s.sessions))
        # Leaving `running` drained the gateway: every call's summary is recorded.
    assert not gateway.calls


HostileRun = Callable[[Bench], Awaitable[None]]


async def beside_a_healthy_call(long_reply: Path, carrier: Carrier, hostile: HostileRun,
                                **settings: Any) -> Outcome:
    """Run ``hostile`` while a healthy call of the same carrier, on the same gateway, is
    hearing its reply."""
    with capture_logs() as logs:
        async with asyncio.timeout(60), bench(long_reply, carrier, **settings) as b:
            script = [Utterance(load_utterance(speech_dir() / f"{HEALTHY_SAYS}.wav"),
                                When.START, 200)]
            call = asyncio.create_task(place_call(
                f"ws://127.0.0.1:{b.port}/{carrier.value}/media/healthy", script, speed=SPEED,
                peer=new_peer(carrier, {"From": CALLER}), tail_ms=400, max_s=60.0,
                secret=TOKEN if carrier is Carrier.BROWSER else None))
            sim = b.healthy_sim
            await sim.wait_until(lambda: bool(sim.sessions) and "audio" in sim.sessions[0].sent,
                                 timeout=20)
            assert not call.done()
            await hostile(b)
            healthy = await call
    finished = list(b.gateway.finished)
    [healthy_summary] = [s for s in finished if s.agent == "healthy"]
    [hostile_summary] = [s for s in finished if s.agent != "healthy"]
    outcome = Outcome(carrier, healthy, healthy_summary, hostile_summary, logs)
    _check_healthy(b, outcome)
    # /metrics counts the hostile stream's errors under its carrier, and nowhere else.
    assert protocol_errors_by_carrier(b.gateway) == {
        c.value: hostile_summary.stats.protocol_errors if c is carrier else 0
        for c in [*b.gateway.carriers, Carrier.BROWSER]}  # the bench serves the browser too
    return outcome


def protocol_errors_by_carrier(gateway: Gateway) -> dict[str, float]:
    """``voicegw_protocol_errors_total`` by carrier, as a scrape of /metrics would read it."""
    return {sample.labels["carrier"]: sample.value
            for family in gateway.metrics.registry.collect() for sample in family.samples
            if sample.name == f"{PREFIX}protocol_errors_total"}


def _padding_ms(carrier: Carrier) -> float:
    """The most silence the carrier's chunking pads a reply's tail with, in ms."""
    fmt = new_peer(carrier, {}).outbound
    return fmt.ms(stream_core(carrier).caps.chunking.minimum)


def _check_healthy(b: Bench, o: Outcome) -> None:
    """The healthy call went exactly as it would have alone."""
    result, summary = o.healthy, o.healthy_summary
    [session] = b.healthy_sim.sessions
    assert summary.carrier == o.carrier.value
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
    # A carrier that takes only whole messages of a minimum size (Exotel's 3.2 KB) hears the
    # reply's tail padded with silence up to one such message.
    assert -20 <= result.audio_received_ms - REPLY_MS <= max(20.0, _padding_ms(o.carrier)), \
        (result.audio_received_ms, REPLY_MS)
    assert result.clears == 0
    assert summary.stats.protocol_errors == 0
    assert summary.end_reason == "caller hung up"
    # No warning names the healthy call.
    assert not [e for e in o.logs if e["log_level"] in ("warning", "error")
                and e.get("call_sid") == result.call_sid]


def check_warned(o: Outcome, call_sid: str | None, count: int) -> None:
    """``count`` protocol_error warnings from the hostile stream's carrier, each naming the
    hostile call where it was known."""
    warned = o.warnings("protocol_error")
    assert len(warned) == count
    for entry in warned:
        assert entry["peer"] == o.carrier.value
        assert entry["carrier"] == o.carrier.value
        assert entry.get("call_sid") == call_sid


async def ends_normally(c: RawCaller, b: Bench, frames: int = 1) -> None:
    """A valid frame reaches the Live session (the stream is still fine), then hang up."""
    await c.send(c.wire.media())
    await b.hostile_session(lambda s: s.audio_chunks >= frames)
    assert await c.hang_up() == HUNG_UP[c.wire.stop_event]


def close_reason(reason: str) -> str:
    """``reason`` as a close frame carries it: cut to fit (Plivo's list of formats does not)."""
    return reason.encode()[:120].decode("utf-8", "ignore")


# The close frame a hang-up gets: after a stop, the gateway's own; after the caller's close,
# aiohttp's answer to it.
HUNG_UP = {True: (1000, "caller hung up"), False: (1000, "")}
