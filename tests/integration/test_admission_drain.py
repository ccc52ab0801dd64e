"""Admission (a cap on concurrent calls) and draining, over real sockets and a real process.

Calls run against the simulated Live server; a "long" call is one whose caller has a second
thing to say only after a long silence, so it stays up until the gateway ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.config import Settings, custom_endpoint
from gateway.ending import EndKind
from gateway.rig.phone import CallResult, Utterance, When, load_utterance, place_call
from gateway.rig.simulator import SimulatorServer, scenario_from_dict
from gateway.rig.simulator.speech import speech_dir
from gateway.server import SHUTDOWN_REASON, Gateway, running

SPEED = 4.0
VOICEGW = Path(sys.executable).with_name("voicegw")
TURNS = [{"caller_text": "A table for two tomorrow.", "reply": "agent_options"},
         {"caller_text": "Thanks, goodbye.", "reply": "agent_goodbye"}]


def _say(name: str, when: When, delay_ms: int) -> Utterance:
    return Utterance(load_utterance(speech_dir() / f"{name}.wav"), when, delay_ms)


LONG_CALL = [_say("caller_book_table", When.START, 300),
             _say("caller_goodbye", When.AFTER_REPLY, 600_000)]  # 10 minutes of call time
SHORT_CALL = [_say("caller_book_table", When.START, 300)]


@contextlib.asynccontextmanager
async def line(**settings: Any) -> AsyncIterator[tuple[SimulatorServer, Gateway, int]]:
    async with SimulatorServer(scenario_from_dict({"speed": SPEED, "turns": TURNS})) as sim:
        gateway = Gateway(replace(Settings(endpoint=custom_endpoint(sim.url, "test-model")),
                                  **settings))
        async with running(gateway) as port:
            yield sim, gateway, port


def call(port: int, script: list[Utterance]) -> asyncio.Task[CallResult]:
    return asyncio.create_task(place_call(f"ws://127.0.0.1:{port}/media", script, speed=SPEED,
                                          max_s=900.0))


async def _live_sessions(sim: SimulatorServer, n: int) -> None:
    await sim.wait_until(lambda: len(sim.sessions) >= n)


async def _refused_stream(http: aiohttp.ClientSession, port: int) -> int:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(f"ws://127.0.0.1:{port}/media")
    return refused.value.status


async def _twiml(http: aiohttp.ClientSession, port: int) -> ET.Element:
    async with http.post(f"http://127.0.0.1:{port}/twiml", data={"CallSid": "CA1"}) as resp:
        assert resp.status == 200
        return ET.fromstring(await resp.text())


def _is_busy(root: ET.Element) -> bool:
    say = root.find("Say")
    return ([c.tag for c in root] == ["Say", "Hangup"] and say is not None
            and "busy" in (say.text or ""))


async def test_over_capacity_callers_hear_busy_and_streams_get_503() -> None:
    async with line(max_calls=1) as (sim, gateway, port), aiohttp.ClientSession() as http:
        assert not _is_busy(await _twiml(http, port))  # a free line: <Connect><Stream>
        first = call(port, LONG_CALL)
        await _live_sessions(sim, 1)
        assert _is_busy(await _twiml(http, port))
        assert await _refused_stream(http, port) == 503
        async with http.get(f"http://127.0.0.1:{port}/readyz") as resp:
            assert resp.status == 200  # full is not unready: callers still hear "busy"
        assert len(gateway.calls) == 1
        assert len(sim.sessions) == 1  # the refused stream never opened a Live session
        next(iter(gateway.calls.values())).request_end(EndKind.SHUTDOWN, "test over")
        await first
        await gateway.wait_idle()  # the phone may see the close before the gateway is done
        # The slot is free again.
        assert not _is_busy(await _twiml(http, port))
    # The webhook and the stream, each refused once.
    assert gateway.counters[("twilio", "capacity")] == 2


def _hold_the_loop(seconds: float) -> None:
    time.sleep(seconds)  # the stimulus: work that keeps the loop from its timers


async def test_while_the_event_loop_lags_callers_hear_busy_and_streams_get_503() -> None:
    async with line(max_loop_lag_ms=50) as (sim, gateway, port), \
            aiohttp.ClientSession() as http:
        assert not _is_busy(await _twiml(http, port))
        async with asyncio.timeout(30):  # bounds a broken test only
            while not gateway.lag.overloaded:  # the loop falls behind, tick after tick
                _hold_the_loop(0.2)  # each tick comes about 0.1 s late
                await gateway.lag.ticked.wait()
        assert _is_busy(await _twiml(http, port))
        assert await _refused_stream(http, port) == 503
        async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
            text = await resp.text()
        assert 'voicegw_requests_refused_total{carrier="twilio",reason="overloaded"} 2.0' \
            in text
        lag_line = next(x for x in text.splitlines()
                        if x.startswith("voicegw_event_loop_lag_seconds "))
        assert float(lag_line.split()[1]) > 0.05
        async with asyncio.timeout(30):
            while gateway.lag.overloaded:  # left alone, the loop catches up
                await gateway.lag.ticked.wait()
        assert not _is_busy(await _twiml(http, port))
        result = await call(port, SHORT_CALL)  # and calls are taken again
        assert result.media_received > 0 and result.response_ms
    assert len(sim.sessions) == 1  # the refused stream never opened a Live session


async def test_drain_refuses_new_calls_and_ends_active_ones_cleanly() -> None:
    async with line() as (sim, gateway, port), aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{port}/readyz") as resp:
            assert (resp.status, await resp.json()) == (200, {"status": "ready"})
        phone = call(port, LONG_CALL)
        await _live_sessions(sim, 1)
        await sim.wait_until(lambda: sim.sessions[0].turns_completed >= 1)  # mid-conversation
        drain = asyncio.create_task(gateway.drain(600.0))
        await gateway.drain_started.wait()

        async with http.get(f"http://127.0.0.1:{port}/readyz") as resp:
            assert (resp.status, await resp.json()) == (503, {"status": "draining"})
        async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
            assert resp.status == 200  # alive, just not taking calls
        assert _is_busy(await _twiml(http, port))
        assert await _refused_stream(http, port) == 503
        # The active call is in its grace period, untouched.
        assert not drain.done() and not phone.done() and len(gateway.calls) == 1

        await gateway.drain(0)  # the grace is over (as on a second SIGTERM): end the call now
        await drain
        assert not gateway.calls
        result = await phone
        await sim.wait_until(lambda: sim.sessions[0].closed is not None)
    assert result.closed_by_gateway
    assert result.close_code == 1000
    [summary] = [s for s in gateway.finished if s.call_sid == result.call_sid]
    assert summary.end_reason == SHUTDOWN_REASON
    assert len(sim.sessions) == 1
    assert gateway.counters[("twilio", "draining")] == 2


async def test_after_the_grace_period_calls_are_ended_not_cancelled() -> None:
    async with line() as (sim, gateway, port):
        phone = call(port, LONG_CALL)
        await _live_sessions(sim, 1)
        await gateway.drain(0.2)
        result = await phone
    assert result.close_code == 1000
    assert gateway.finished[-1].end_reason == SHUTDOWN_REASON


async def test_calls_that_finish_within_the_grace_period_end_by_themselves() -> None:
    async with line() as (sim, gateway, port):
        phone = call(port, SHORT_CALL)
        await _live_sessions(sim, 1)
        async with asyncio.timeout(60):  # far below the grace: the drain waited for the call
            await gateway.drain(600.0)
        result = await phone
    assert result.close_code == 1000
    assert not result.closed_by_gateway
    assert gateway.finished[-1].end_reason == "caller hung up"


# -- the real process ---------------------------------------------------------------------

class Process:
    """``voicegw serve`` in a subprocess; its JSON log lines are collected as they arrive."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self._seen = asyncio.Condition()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            text = raw.decode(errors="replace").strip()
            self.raw.append(text)
            with contextlib.suppress(ValueError):
                self.lines.append(json.loads(text))
            async with self._seen:
                self._seen.notify_all()
        async with self._seen:
            self._seen.notify_all()

    async def event(self, name: str, timeout: float = 30.0) -> dict[str, Any]:  # noqa: ASYNC109
        def find() -> dict[str, Any] | None:
            return next((r for r in self.lines if r.get("event") == name), None)
        async with asyncio.timeout(timeout), self._seen:
            await self._seen.wait_for(lambda: find() is not None or self.reader.done())
        found = find()
        assert found is not None, f"no {name!r} log line:\n" + "\n".join(self.raw)
        return found

    async def all_of(self, name: str, n: int, timeout: float = 30.0,  # noqa: ASYNC109
                     **fields: Any) -> list[dict[str, Any]]:
        """The ``name`` log lines with ``fields``, once there are at least ``n`` of them."""
        def found() -> list[dict[str, Any]]:
            return [r for r in self.lines if r.get("event") == name
                    and all(r.get(k) == v for k, v in fields.items())]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout), self._seen:
                await self._seen.wait_for(lambda: len(found()) >= n or self.reader.done())
        lines = found()
        assert len(lines) >= n, f"fewer than {n} {name!r} lines:\n" + "\n".join(self.raw)
        return lines

    def events(self) -> list[str]:
        return [r.get("event", "") for r in self.lines]


async def _poll_ready(http: aiohttp.ClientSession, port: int, want: int) -> None:
    """Poll /readyz until it answers ``want`` (bounded: 200 tries)."""
    url = f"http://127.0.0.1:{port}/readyz"
    for _ in range(200):
        with contextlib.suppress(aiohttp.ClientConnectionError):
            async with http.get(url) as resp:
                if resp.status == want:
                    return
        await asyncio.sleep(0.05)
    raise AssertionError(f"/readyz never answered {want}")


async def test_sigterm_drains_the_process_and_it_exits_0() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "VOICEGW_"))}
    env["VOICEGW_SHUTDOWN_GRACE_S"] = "600"  # the second signal ends the grace, not the clock
    async with SimulatorServer(scenario_from_dict({"speed": SPEED, "turns": TURNS})) as sim:
        proc = await asyncio.create_subprocess_exec(
            str(VOICEGW), "serve", "--host", "127.0.0.1", "--port", "0", "--live-url", sim.url,
            env=env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE)
        gw = Process(proc)
        try:
            listening = await gw.event("gateway_listening")
            port = int(listening["port"])
            assert listening["resampler_kernel"] == "compiled"
            async with aiohttp.ClientSession() as http:
                await _poll_ready(http, port, 200)
                phone = call(port, LONG_CALL)
                await _live_sessions(sim, 1)

                proc.send_signal(signal.SIGTERM)
                await _poll_ready(http, port, 503)  # still listening while it drains
                assert _is_busy(await _twiml(http, port))
                assert not phone.done()
                proc.send_signal(signal.SIGTERM)  # a second signal: stop waiting for calls
                result = await phone
                async with asyncio.timeout(30):
                    code = await proc.wait()
                await gw.reader
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert code == 0, "\n".join(gw.raw)
    assert result.close_code == 1000
    assert result.closed_by_gateway
    events = gw.events()
    for name in ("shutdown_signal", "drain_started", "shutdown_signal_again", "drain_hurried",
                 "drain_ending_calls", "drain_finished", "gateway_stopped"):
        assert name in events, name
    [ended] = [r for r in gw.lines if r.get("event") == "call_ended"]
    assert ended["reason"] == SHUTDOWN_REASON
    assert "calls_cancelled_at_shutdown" not in events
