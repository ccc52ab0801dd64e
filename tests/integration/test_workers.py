"""``voicegw serve --workers 2`` as real processes: calls on every worker, one database, the
whole server's /metrics from either worker, a killed worker replaced without touching the
other's calls, and a drain on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from gateway.rig.phone import CallResult, Utterance, place_call
from gateway.rig.simulator import SimulatorServer, scenario_from_dict
from gateway.server import WORKER_HEADER
from gateway.store import store_from_env
from tests.integration.test_admission_drain import (
    LONG_CALL,
    SHORT_CALL,
    SPEED,
    TURNS,
    VOICEGW,
    Process,
    _poll_ready,
    _refused_stream,
)


@contextlib.asynccontextmanager
async def server(tmp_path: Path) -> AsyncIterator[tuple[SimulatorServer, Process, int]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "VOICEGW_"))}
    env["VOICEGW_SHUTDOWN_GRACE_S"] = "600"  # the second signal ends the grace, not the clock
    env["VOICEGW_DATABASE"] = str(tmp_path / "calls.db")  # both migrate it at once on start
    async with SimulatorServer(scenario_from_dict({"speed": SPEED, "turns": TURNS})) as sim:
        proc = await asyncio.create_subprocess_exec(
            str(VOICEGW), "serve", "--workers", "2", "--port", "0", "--live-url", sim.url,
            env=env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE)
        gw = Process(proc)
        try:
            listening = await gw.all_of("gateway_listening", 2)
            assert {r["worker"] for r in listening} == {0, 1}
            yield sim, gw, int(listening[0]["port"])
        finally:
            if proc.returncode is None:
                proc.kill()  # its workers read the end of their stdin and stop
                await proc.wait()
            await gw.reader


@dataclasses.dataclass(slots=True)
class Phone:
    result: CallResult
    task: asyncio.Task[CallResult]


def _call(port: int, script: list[Utterance]) -> Phone:
    result = CallResult()  # its call_sid, set as the call starts, names it in the logs
    return Phone(result, asyncio.create_task(place_call(
        f"ws://127.0.0.1:{port}/media", script, speed=SPEED, max_s=900.0, result=result)))


async def _calls_on_both(gw: Process, port: int, script: list[Utterance],
                         ) -> dict[int, list[Phone]]:
    """Place calls two at a time until both workers have one (the kernel picks): the calls
    by the worker that carries them."""
    phones: list[Phone] = []
    for _ in range(10):
        phones += [_call(port, script), _call(port, script)]
        started = await gw.all_of("call_started", len(phones))
        worker = {r["call_sid"]: r["worker"] for r in started}
        if set(worker.values()) == {0, 1}:
            return {w: [p for p in phones if worker[p.result.call_sid] == w] for w in (0, 1)}
    raise AssertionError("ten pairs of calls all landed on one worker")


async def _metrics(http: aiohttp.ClientSession, port: int) -> dict[int, dict[str, float]]:
    """/metrics as each worker answers it: sample name and labels -> value."""
    seen: dict[int, dict[str, float]] = {}
    for _ in range(100):  # new connections: the kernel spreads them over the workers
        async with http.get(f"http://127.0.0.1:{port}/metrics",
                            headers={"Connection": "close"}) as resp:
            text = await resp.text()
            seen[int(resp.headers[WORKER_HEADER])] = {
                s.name + str(sorted(s.labels.items())): s.value
                for f in text_string_to_metric_families(text) for s in f.samples}
        if len(seen) == 2:
            return seen
    raise AssertionError("a hundred scrapes all answered by one worker")


def _ended(samples: dict[str, float]) -> float:
    return sum(v for k, v in samples.items() if k.startswith("voicegw_calls_total"))


async def test_calls_on_both_workers_one_database_and_the_whole_server_in_metrics(
        tmp_path: Path) -> None:
    async with server(tmp_path) as (_sim, gw, port), aiohttp.ClientSession() as http:
        phones = [p.task for ps in (await _calls_on_both(gw, port, SHORT_CALL)).values()
                  for p in ps]
        results = await asyncio.gather(*phones)
        assert all(r.close_code == 1000 for r in results)
        ended = await gw.all_of("call_ended", len(phones))
        assert {r["worker"] for r in ended} == {0, 1}
        for _ in range(50):  # each worker rewrites its file as a call ends: soon, not at once
            scrapes = await _metrics(http, port)
            if all(_ended(s) == len(phones) for s in scrapes.values()):
                break
        assert [_ended(s) for s in scrapes.values()] == [len(phones)] * 2
        gw.proc.send_signal(signal.SIGTERM)
        assert await gw.proc.wait() == 0
    store = store_from_env(env={"VOICEGW_DATABASE": str(tmp_path / "calls.db")}, create=False)
    assert store is not None
    await store.open()
    try:
        records = await store.list_calls(100)
    finally:
        await store.aclose()
    assert len(records) == len(phones)


async def test_a_killed_worker_is_replaced_its_calls_counted_and_sigterm_drains(
        tmp_path: Path) -> None:
    async with server(tmp_path) as (sim, gw, port), aiohttp.ClientSession() as http:
        by_worker = await _calls_on_both(gw, port, LONG_CALL)
        phones = [p.task for ps in by_worker.values() for p in ps]
        await sim.wait_until(lambda: len(sim.sessions) >= len(phones))
        victim = 0
        on_victim = [p.task for p in by_worker[victim]]
        others = [p.task for p in by_worker[1 - victim]]
        for _ in range(50):  # both workers' files show their active calls
            scrapes = await _metrics(http, port)
            if all(s["voicegw_active_calls[]"] == len(phones) for s in scrapes.values()):
                break
        [pid] = [r["pid"] for r in await gw.all_of("worker_started", 1, worker=victim)]
        os.kill(pid, signal.SIGKILL)

        await gw.all_of("worker_died", 1, worker=victim)
        await gw.all_of("gateway_listening", 2, worker=victim)  # its replacement
        await asyncio.gather(*on_victim, return_exceptions=True)  # cut off with the worker
        assert not any(p.done() for p in others)
        scrapes = await _metrics(http, port)
        for samples in scrapes.values():
            assert samples["voicegw_worker_restarts_total[]"] == 1
            assert samples["voicegw_worker_calls_lost_total[]"] == len(on_victim)
            assert samples["voicegw_active_calls[]"] == len(others)

        gw.proc.send_signal(signal.SIGTERM)
        await gw.all_of("drain_started", 2)
        await _poll_ready(http, port, 503)  # still listening while they drain
        assert await _refused_stream(http, port) == 503
        assert not any(p.done() for p in others)
        gw.proc.send_signal(signal.SIGTERM)  # a second signal: stop waiting for the calls
        for result in await asyncio.gather(*others):
            assert result.close_code == 1000
            assert result.closed_by_gateway
        async with asyncio.timeout(30):
            assert await gw.proc.wait() == 0, "\n".join(gw.raw)
