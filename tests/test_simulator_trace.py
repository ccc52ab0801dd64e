"""The simulator's ``--trace``: what the core tags its messages with, the records the server
writes, and a complete file after SIGTERM."""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from gateway.live import OUTPUT_RATE
from gateway.rig.loadtest.local import free_port
from gateway.rig.loadtest.trace import read_jsonl
from gateway.rig.simulator import Scenario, SimulatorServer, speech
from gateway.rig.simulator.protocol import Send
from gateway.rig.simulator.record import HandleStore, SessionRecord
from gateway.rig.simulator.session import LiveSession

MODEL = "models/gemini-2.5-flash-native-audio-preview-12-2025"
SETUP = {"setup": {"model": MODEL}}
RATE = 8000
CHUNK = 2 * RATE * 20 // 1000  # 20 ms of PCM16


def caller_audio() -> bytes:
    return speech.caller_pcm16("caller_book_table") + speech.silence_pcm16(700)


def realtime(pcm: bytes) -> str:
    return json.dumps({"realtimeInput": {"audio": {"mimeType": f"audio/pcm;rate={RATE}",
                                                   "data": base64.b64encode(pcm).decode()}}})


def test_reply_messages_carry_turn_position_and_due_time() -> None:
    scenario = Scenario()
    session = LiveSession(scenario, SessionRecord(), handles=HandleStore())
    now = 100.0
    actions = session.receive(json.dumps(SETUP), now)
    pcm = caller_audio()
    for i in range(0, len(pcm), CHUNK):
        actions += session.receive(realtime(pcm[i:i + CHUNK]), now)
        now += 0.02
    while (due := session.deadline) is not None:
        now = max(now, due)
        actions += session.tick(now)
    audio = [a for a in actions if isinstance(a, Send) and a.kind == "audio"]
    assert audio and all(a.turn == 1 for a in audio)
    chunk_ms = scenario.chunk_ms
    total = sum(len(base64.b64decode(a.message["serverContent"]["modelTurn"]["parts"][0]
                                     ["inlineData"]["data"])) for a in audio)
    assert [a.audio_ms for a in audio[:3]] == [chunk_ms, 2 * chunk_ms, 3 * chunk_ms]
    assert audio[-1].audio_ms == total * 500 / OUTPUT_RATE
    # Paced one chunk_ms apart from the first.
    assert [round(a.due - audio[0].due, 6) for a in audio[:3]] == [0.0, 0.08, 0.16]
    done = [a for a in actions if isinstance(a, Send) and a.kind == "turnComplete"]
    assert [a.turn for a in done] == [1]


async def _talk(ws: ClientConnection) -> None:
    """Setup, the caller's utterance as fast as it goes, then wait for the first reply audio."""
    await ws.send(json.dumps(SETUP))
    assert "setupComplete" in json.loads(await ws.recv())
    pcm = caller_audio()
    for i in range(0, len(pcm), CHUNK):
        await ws.send(realtime(pcm[i:i + CHUNK]))
    async for frame in ws:
        if "inlineData" in str(frame):
            return


def _by_kind(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        out.setdefault(r["ev"], []).append(r)
    return out


async def test_server_writes_one_record_per_event(tmp_path: Path) -> None:
    path = tmp_path / "sim.jsonl"
    async with SimulatorServer(Scenario(speed=20), trace=path) as sim:
        async with connect(sim.url, max_size=None) as ws:
            await _talk(ws)
            async for frame in ws:  # the rest of the turn
                if "turnComplete" in str(frame):
                    break
        await sim.wait_until(lambda: sim.sessions[0].closed is not None)
    ev = _by_kind(list(read_jsonl(path)))
    (opened,) = ev["open"]
    assert opened["s"] == 1 and opened["handle"] is False
    assert opened["t"] <= opened["setup_t"] <= ev["in"][0]["t"]
    chunks = -(-len(caller_audio()) // CHUNK)
    assert len(ev["in"]) == chunks
    assert ev["in"][-1]["ms"] == len(caller_audio()) / 2 / RATE * 1000
    assert [r["ms"] for r in ev["in"][:2]] == [20.0, 40.0]
    out = ev["out"]
    assert {r["turn"] for r in out} == {1}
    assert [r["ms"] for r in out] == sorted(r["ms"] for r in out)
    assert all(r["late"] >= 0 for r in out)
    assert ev["turn_complete"][0]["turn"] == 1
    assert out[-1]["t"] <= ev["turn_complete"][0]["t"]
    assert ev["close"][0]["code"] == 1000


async def test_sigterm_leaves_a_complete_trace(tmp_path: Path) -> None:
    path, scenario = tmp_path / "sim.jsonl", tmp_path / "scenario.yaml"
    scenario.write_text("name: t\nspeed: 4\n", encoding="utf-8")
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "--log-level", "info", "simulate-live", "--port",
        str(port), "--scenario", str(scenario), "--trace", str(path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            while b"simulator.ready" not in await proc.stdout.readline():
                assert proc.returncode is None
        url = (f"ws://127.0.0.1:{port}/ws/google.ai.generativelanguage.v1beta."
               "GenerativeService.BidiGenerateContent")
        async with connect(url, max_size=None) as ws:
            await _talk(ws)  # the reply is streaming (4x: over a second to go)
            proc.terminate()
            async with asyncio.timeout(30):
                await ws.wait_closed()
        async with asyncio.timeout(30):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    ev = _by_kind([json.loads(line) for line in text.splitlines()])
    assert len(ev["open"]) == 1
    assert len(ev["in"]) == -(-len(caller_audio()) // CHUNK)
    assert ev["out"]
    assert ev["close"][0]["code"] == 1001  # going away: the server shut down


async def test_workers_share_the_port_and_the_trace_and_stop_together(tmp_path: Path) -> None:
    path, scenario = tmp_path / "sim.jsonl", tmp_path / "scenario.yaml"
    scenario.write_text("name: t\nspeed: 4\n", encoding="utf-8")
    path.write_text("left over from an earlier run\n", encoding="utf-8")
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "--log-level", "info", "simulate-live", "--port",
        str(port), "--scenario", str(scenario), "--trace", str(path), "--workers", "2",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    sessions = 20  # all on one worker by chance: 2 in 2**20
    try:
        assert proc.stdout is not None
        ready = 0
        async with asyncio.timeout(30):
            while ready < 2:  # each worker says so once it listens
                ready += b"simulator.ready" in await proc.stdout.readline()
        url = (f"ws://127.0.0.1:{port}/ws/google.ai.generativelanguage.v1beta."
               "GenerativeService.BidiGenerateContent")

        async def one_call() -> int | None:
            async with connect(url, max_size=None) as ws:
                await _talk(ws)
                started.release()
                async with asyncio.timeout(30):
                    async for _ in ws:  # the rest of the reply, until the worker closes
                        pass
                return ws.close_code

        # The workers log to this pipe: keep it drained, or they would block on a full one.
        drain = asyncio.create_task(proc.stdout.read())

        started = asyncio.Semaphore(0)
        calls = [asyncio.create_task(one_call()) for _ in range(sessions)]
        for _ in range(sessions):
            await started.acquire()  # every reply is streaming
        proc.terminate()
        codes = await asyncio.gather(*calls)
        async with asyncio.timeout(30):
            assert await proc.wait() == 0
        await drain
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert codes == [1001] * sessions  # going away: each worker closed its own
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    ev = _by_kind(records)  # every line whole: the workers' writes never interleaved
    numbers = sorted(r["s"] for r in ev["open"])
    assert numbers == sorted({r["s"] for r in ev["close"]}) and len(set(numbers)) == sessions
    assert {n % 2 for n in numbers} == {0, 1}  # worker 0 numbers 1, 3, ...; worker 1 2, 4, ...
    per_session = {n: [r for r in ev["in"] if r["s"] == n] for n in numbers}
    assert all(len(v) == -(-len(caller_audio()) // CHUNK) for v in per_session.values())


async def test_workers_stop_when_their_launcher_is_killed(tmp_path: Path) -> None:
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text("name: t\nspeed: 4\n", encoding="utf-8")
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "--log-level", "info", "simulate-live", "--port",
        str(port), "--scenario", str(scenario), "--workers", "2",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert proc.stdout is not None
    try:
        ready = 0
        async with asyncio.timeout(30):
            while ready < 2:
                ready += b"simulator.ready" in await proc.stdout.readline()
        proc.kill()  # SIGKILL: the launcher cannot pass anything on
        # The workers hold the other ends of this pipe: it reaches its end only once both
        # have exited, and they said why.
        async with asyncio.timeout(30):
            rest = await proc.stdout.read()
            await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
    assert rest.count(b"simulator.launcher_gone") == 2
    # The port is free again: nothing is left listening on it.
    with pytest.raises(OSError, match=r"Connect call failed|refused"):
        await connect(f"ws://127.0.0.1:{port}/", open_timeout=5)
