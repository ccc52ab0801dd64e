"""The Live client's two send paths against the simulator, over a real loopback socket."""

from __future__ import annotations

import pytest

from gateway import live
from gateway.config import custom_endpoint
from gateway.errors import LiveClosedError
from gateway.live_client import open_session
from gateway.rig.simulator import SimulatorServer

FRAME = bytes(range(256)) * 2 + bytes(128)  # 20 ms of 16 kHz PCM16, not silence


async def test_send_nowait_writes_at_once_in_order_and_defers_when_told_to_wait() -> None:
    async with SimulatorServer() as sim:
        session = await open_session(custom_endpoint(sim.url, "test-model"),
                                     '{"setup":{"model":"models/test-model"}}')
        message = live.audio_message(FRAME)
        assert all(session.send_nowait(message) for _ in range(40))
        # The slow path and the fast one share the socket: order holds across them.
        await session.send(live.text_message("between"))
        await sim.wait_until(lambda: sim.sessions[-1].texts == ["between"])
        assert sim.sessions[-1].audio_chunks == 40  # all of them arrived before the text
        # The transport asks us to pause (its buffer is above the high-water mark): the
        # fast path declines, so the caller awaits send(), which waits for the drain.
        ws = session._ws  # its flow-control callbacks, called as the transport would
        ws.pause_writing()
        assert not session.send_nowait(message)
        ws.resume_writing()
        assert session.send_nowait(message)
        await sim.wait_until(lambda: sim.sessions[-1].audio_chunks == 41)
        record = sim.sessions[-1]
        assert record.audio_bytes == 41 * len(FRAME)
        await session.close()
        await sim.wait_until(lambda: sim.sessions[-1].closed is not None)
        # Closed: the fast path declines, and send() reports the close as ours to handle.
        assert not session.send_nowait(message)
        with pytest.raises(LiveClosedError):
            await session.send(message)
