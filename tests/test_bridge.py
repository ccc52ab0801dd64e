"""The per-call bridge with in-memory peers: ordering guarantees that sockets would blur.

The whole-call tests over real sockets live in tests/integration/; here each peer is a pair of
queues so a test can decide exactly what arrives when.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator

import pytest
from structlog.testing import capture_logs

from gateway import live
from gateway.bridge import CallBridge
from gateway.bridge_config import BridgeSettings
from gateway.carriers.core import Outgoing
from gateway.carriers.twilio import TwilioStream
from gateway.ending import EndKind
from gateway.errors import LiveClosedError, LiveConnectError
from gateway.faults import RetryPolicy
from gateway.rig.peers.twilio import TwilioPeer

_END = object()


class FakeCaller:
    def __init__(self) -> None:
        self.inbox: asyncio.Queue[object] = asyncio.Queue()
        self.sent: list[dict[str, object]] = []
        self.sent_event = asyncio.Event()
        self.closed: tuple[int, str] | None = None
        self.room = True  # False: as a socket whose buffers are full, nothing written in place
        self.close_code: int | None = None  # the peer's, once receive() has returned None

    async def receive(self) -> str | bytes | None:
        item = await self.inbox.get()
        if item is _END:
            self.inbox.put_nowait(_END)  # ended stays ended
            return None
        assert isinstance(item, str | bytes)
        return item

    def send_nowait(self, frame: Outgoing) -> bool:
        if not self.room:
            return False
        self.sent.append(json.loads(frame))
        self.sent_event.set()
        return True

    async def send(self, frame: Outgoing) -> None:
        self.sent.append(json.loads(frame))
        self.sent_event.set()

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    async def wait_sent(self, predicate: object) -> None:
        assert callable(predicate)
        while not predicate(self.sent):
            self.sent_event.clear()
            await self.sent_event.wait()


class FakeLive:
    def __init__(self) -> None:
        self.inbox: asyncio.Queue[object] = asyncio.Queue()
        self.received: list[dict[str, object]] = []
        self.received_event = asyncio.Event()
        self.setup: dict[str, object] | None = None
        self.closed = False
        self.close_with = (1011, "Internal error occurred.")
        self.refuse = 0  # connects to refuse before one succeeds

    async def connect(self, setup: str) -> FakeLive:
        if self.refuse:
            self.refuse -= 1
            raise LiveConnectError("cannot connect")
        self.setup = json.loads(setup)
        return self

    def frames(self) -> AsyncIterator[str | bytes]:
        return self._frames()

    async def _frames(self) -> AsyncIterator[str | bytes]:
        while (item := await self.inbox.get()) is not _END:
            assert isinstance(item, str | bytes)
            yield item
        if not self.closed:  # as the real session: a close we asked for is no fault
            raise LiveClosedError(*self.close_with)

    async def send(self, text: str) -> None:
        self.received.append(json.loads(text))
        self.received_event.set()

    def send_nowait(self, text: bytes) -> bool:
        return False  # every message through send(), where the tests can hold it

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = True

    async def wait_received(self, count: int) -> None:
        while len(self.received) < count:
            self.received_event.clear()
            await self.received_event.wait()


def _audio(ms: int, value: int = 1000) -> str:
    pcm = value.to_bytes(2, "little", signed=True) * (24 * ms)
    return json.dumps({"serverContent": {"modelTurn": {"parts": [{"inlineData": {
        "mimeType": "audio/pcm;rate=24000", "data": base64.b64encode(pcm).decode()}}]}}})


@pytest.fixture
def peers() -> tuple[FakeCaller, FakeLive, TwilioPeer]:
    return FakeCaller(), FakeLive(), TwilioPeer("CA" + "a" * 32, "MZ" + "b" * 32)


def _bridge(caller: FakeCaller, model: FakeLive) -> CallBridge:
    return CallBridge(caller, TwilioStream(), model.connect,
                      BridgeSettings(session=live.SessionConfig(model="models/test"),
                                     mark_interval_ms=100,
                                     live_retry=RetryPolicy(3, 0.0, 0.0)))


async def test_caller_audio_is_resampled_and_forwarded_frame_by_frame(peers) -> None:
    caller, model, peer = peers
    task = asyncio.create_task(_bridge(caller, model).run())
    caller.inbox.put_nowait(peer.connected())
    caller.inbox.put_nowait(peer.start())
    for _ in range(5):
        caller.inbox.put_nowait(peer.media(b"\x80" * 160))
    await model.wait_received(5)
    for msg in model.received:
        audio = msg["realtimeInput"]["audio"]  # type: ignore[index]
        assert audio["mimeType"] == "audio/pcm;rate=16000"
        assert len(base64.b64decode(audio["data"])) == 640  # 20 ms at 16 kHz, one per frame
    caller.inbox.put_nowait(peer.stop())
    summary = await task
    assert summary.end.kind is EndKind.CALLER_HUNG_UP
    assert summary.stats.frames_forwarded == 5
    assert model.closed and caller.closed is not None
    assert model.setup is not None and "setup" in model.setup


async def test_barge_in_drops_queued_reply_and_nothing_old_follows_clear(peers) -> None:
    caller, model, peer = peers
    bridge = _bridge(caller, model)
    task = asyncio.create_task(bridge.run())
    caller.inbox.put_nowait(peer.start())
    await model.wait_received(0)
    # Let the writer stall so reply audio piles up in the queue, as with a slow caller socket.
    block = asyncio.Event()
    original_send = caller.send

    async def slow_send(frame: Outgoing) -> None:
        await block.wait()
        await original_send(frame)

    caller.send = slow_send  # type: ignore[method-assign]
    caller.room = False
    for _ in range(10):
        model.inbox.put_nowait(_audio(40, value=3000))
    model.inbox.put_nowait(json.dumps({"serverContent": {"interrupted": True}}))
    model.inbox.put_nowait(_audio(40, value=-3000))
    model.inbox.put_nowait(json.dumps({"serverContent": {"turnComplete": True}}))
    await _until(lambda: bridge.stats.interruptions == 1 and bridge.stats.marks_sent >= 4)
    block.set()
    await caller.wait_sent(lambda sent: any(m.get("mark", {}).get("name") == "1:end"
                                           for m in sent))
    events = [m["event"] for m in caller.sent]
    clear_at = events.index("clear")
    # At most the one frame that was already being written precedes the clear.
    assert events[:clear_at] in (["media"], [])
    after = [m for m in caller.sent[clear_at + 1:] if m["event"] == "media"]
    assert len(after) == 1  # only the new turn's single chunk
    assert bridge.stats.barge_in.count == 1
    caller.inbox.put_nowait(_END)
    summary = await task
    assert summary.end.kind is EndKind.CALLER_DISCONNECTED


async def test_a_live_close_no_retry_can_fix_ends_the_call_with_its_reason(peers) -> None:
    caller, model, peer = peers
    model.close_with = (1011, "Resource has been exhausted (e.g. check quota).")
    task = asyncio.create_task(_bridge(caller, model).run())
    caller.inbox.put_nowait(peer.start())
    model.inbox.put_nowait(_END)
    summary = await task
    assert summary.end.kind is EndKind.LIVE_UNAVAILABLE
    assert summary.end_reason == ("live unavailable (quota): Live API quota: "
                                  "Resource has been exhausted (e.g. check quota).")
    assert caller.closed is not None and caller.closed[0] == 1000


async def test_protocol_errors_are_counted_not_fatal(peers) -> None:
    caller, model, peer = peers
    task = asyncio.create_task(_bridge(caller, model).run())
    caller.inbox.put_nowait(peer.start())
    caller.inbox.put_nowait("not json")
    caller.inbox.put_nowait(
        f'{{"event":"media","streamSid":"{peer.stream_sid}","media":{{"payload":"***"}}}}')
    model.inbox.put_nowait("{also not json")
    caller.inbox.put_nowait(peer.media(b"\x80" * 160))
    await model.wait_received(1)
    caller.inbox.put_nowait(peer.stop())
    summary = await task
    assert summary.stats.protocol_errors == 3
    assert summary.stats.frames_forwarded == 1


async def test_tool_calls_without_tools_are_answered_with_an_error(peers) -> None:
    caller, model, peer = peers
    task = asyncio.create_task(_bridge(caller, model).run())
    caller.inbox.put_nowait(peer.start())
    model.inbox.put_nowait(json.dumps({"toolCall": {"functionCalls": [
        {"id": "c1", "name": "lookup", "args": {}}]}}))
    await model.wait_received(1)
    response = model.received[0]["toolResponse"]["functionResponses"][0]  # type: ignore[index]
    assert response["id"] == "c1" and "error" in response["response"]
    caller.inbox.put_nowait(peer.stop())
    await task


async def test_the_call_log_reaches_every_collaborator_from_the_start(peers) -> None:
    caller, model, peer = peers
    model.refuse = 1  # the keeper logs a retry: with the call's names already bound
    with capture_logs() as logs:
        task = asyncio.create_task(_bridge(caller, model).run())
        caller.inbox.put_nowait(peer.start())
        caller.inbox.put_nowait(peer.media(b"\x80" * 160))
        await model.wait_received(1)
        caller.inbox.put_nowait(peer.stop())
        await task
    [retry] = [e for e in logs if e["event"] == "live_connect_retry"]
    assert retry["call_sid"] == peer.call_sid and retry["carrier"] == "twilio"
    assert retry["agent"] == "assistant"


async def test_a_socket_that_closes_normally_is_a_hang_up_only_where_that_is_how_calls_end(
        peers) -> None:
    caller, model, peer = peers
    task = asyncio.create_task(_bridge(caller, model).run())
    caller.inbox.put_nowait(peer.start())
    caller.close_code = 1000
    caller.inbox.put_nowait(_END)
    summary = await task
    # Twilio says "stop" when a caller hangs up: a close without one is a lost connection.
    assert summary.end.kind is EndKind.CALLER_DISCONNECTED


async def _until(predicate: object) -> None:
    # Each loop lets every ready task run once; bounded so a broken bridge fails, not hangs.
    assert callable(predicate)
    for _ in range(10_000):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never became true")
