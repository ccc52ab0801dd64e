"""Flow control on a whole Asterisk call, over real loopback sockets: once Asterisk says
``MEDIA_XOFF`` mid-reply the gateway writes no more reply audio, holds the rest, and after
``MEDIA_XON`` sends all of it, in order, to the end of the turn.

The phone is a hand-driven Asterisk (the rig's :class:`AsteriskPeer` builds every frame). The
moments that matter are fenced by events, not sleeps: a frame of caller audio sent right after
the XOFF reaches the model only after the gateway has read the XOFF (one socket, read in
order); the end of the model's turn at the playout is an event of its own.
"""

from __future__ import annotations

import asyncio

import aiohttp

from gateway.carrier_setup import all_setups
from gateway.carriers.core import Carrier
from gateway.config import Settings, custom_endpoint
from gateway.rig.peers.asterisk import AsteriskPeer
from gateway.rig.phone import load_utterance
from gateway.rig.simulator import SimulatorServer, scenario_from_dict
from gateway.rig.simulator.speech import speech_dir
from gateway.server import Gateway, running
from tests.audio_measure import agent_speech

SPEED = 4.0


async def test_audio_stops_at_xoff_is_held_and_all_of_it_follows_xon() -> None:
    scenario = scenario_from_dict({"speed": SPEED, "turns": [
        {"caller_text": "Hi, I'd like to book a table.", "reply": "agent_moved"}]})
    peer = AsteriskPeer({"From": "+15550100"})
    said = load_utterance(speech_dir() / "caller_book_table.wav").to(peer.inbound)
    said += peer.inbound.silence(2000)  # the pause that ends the caller's turn
    frame = peer.frame_bytes
    async with SimulatorServer(scenario) as sim:
        gateway = Gateway(Settings(endpoint=custom_endpoint(sim.url, "test-model")),
                          carriers={Carrier.ASTERISK: all_setups({})[Carrier.ASTERISK]})
        async with running(gateway) as port, aiohttp.ClientSession() as http, \
                http.ws_connect(f"ws://127.0.0.1:{port}/asterisk/media") as ws:
            for message in peer.opening():
                await ws.send_str(str(message))
            for i in range(0, len(said), frame):
                await ws.send_bytes(said[i:i + frame])
            received: list[str | bytes] = []
            first = await ws.receive()
            while first.type is not aiohttp.WSMsgType.BINARY:  # a mark may come first
                first = await ws.receive()
            received.append(first.data)
            await ws.send_str(str(peer.xoff()))
            await ws.send_bytes(peer.inbound.silence(20))  # the fence
            sent = -(-len(said) // frame) + 1  # every caller frame, the fence included

            async def read() -> None:
                """Everything the gateway sends, up to the mark that ends the reply."""
                async for msg in ws:
                    received.append(msg.data)
                    if isinstance(msg.data, str) and msg.data.endswith(":end"):
                        return

            reader = asyncio.create_task(read())
            [session] = sim.sessions
            await sim.wait_until(lambda: session.audio_chunks == sent)
            [bridge] = gateway.calls.values()
            playout = bridge.playout
            assert playout is not None and playout.paused  # the XOFF was read first
            written = bridge.stats.media_out
            async with asyncio.timeout(20):
                await playout.turn_done.wait()  # the whole reply is at the gateway
            assert bridge.stats.media_out == written  # nothing written while paused
            assert len(playout.out) > 0  # the rest is held
            await ws.send_str(str(peer.xon()))
            async with asyncio.timeout(20):
                await reader
    [summary] = gateway.finished
    assert summary.stats.flow_pauses == 1
    assert summary.stats.media_dropped_full == 0
    audio = [m for m in received if isinstance(m, bytes)]
    assert all(len(m) % frame == 0 for m in audio)
    assert len(audio) == summary.stats.media_out  # every message written reached the phone
    # All of the reply, none of it twice: its length at 8 kHz, to the last whole frame.
    heard_ms = peer.outbound.ms(sum(len(m) for m in audio))
    reply_ms = len(agent_speech("agent_moved", 8000)) / 16
    assert abs(heard_ms - reply_ms) <= 40
    assert [m for m in received if isinstance(m, str)][-1] == "MARK_MEDIA 0:end"
