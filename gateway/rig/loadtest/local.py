"""``--local``: the simulated Live server and a gateway as subprocesses on free loopback ports.

Subprocesses rather than tasks in this process so each one's CPU can be measured on its own:
the load generator's event loop must not be billed to the gateway, nor the simulator's. Both
are the real commands (``voicegw simulate-live``, ``voicegw serve``), run with this Python.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from gateway.errors import ConfigError
from gateway.rig.peers.registry import BASIC_ENV, SECRET_ENV


def free_port() -> int:
    # Bind-then-release: racy in principle, but the port is used at once, on loopback.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(slots=True)
class LocalStack:
    """``async with LocalStack(speed=...) as stack:`` then call ``stack.base_url``.

    ``env`` is added to the gateway's environment: a carrier's signing secret, so that the
    calls go through its answer webhook, signatures and stream tokens as in production."""

    speed: float = 1.0
    max_calls: int = 100
    env: dict[str, str] = field(default_factory=dict)
    sim_trace: Path | None = None  # the simulator's --trace; complete once stopped
    gateway_trace: Path | None = None  # the gateway's --trace; likewise
    startup_s: float = 20.0
    gateway: subprocess.Popen[bytes] | None = None
    simulator: subprocess.Popen[bytes] | None = None
    gateway_port: int = 0
    simulator_port: int = 0
    audiosocket: bool = False  # also take Asterisk AudioSocket calls (on audiosocket_port)
    audiosocket_port: int = 0
    workdir: Path | None = None
    _tmp: tempfile.TemporaryDirectory[str] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def pids(self) -> dict[str, int]:
        procs = {"gateway": self.gateway, "simulator": self.simulator}
        return {name: p.pid for name, p in procs.items() if p is not None}

    async def __aenter__(self) -> LocalStack:
        self._tmp = tempfile.TemporaryDirectory(prefix="voicegw-loadtest-")
        work = self.workdir = Path(self._tmp.name)
        # The simulator paces replies at the same speed the phones play at.
        scenario = work / "scenario.yaml"
        scenario.write_text(f"name: loadtest\nspeed: {self.speed}\n", encoding="utf-8")
        self.simulator_port, self.gateway_port = free_port(), free_port()
        tcp: list[str] = []
        if self.audiosocket:
            self.audiosocket_port = free_port()
            tcp = ["--audiosocket", f"127.0.0.1:{self.audiosocket_port}"]
        ours = {*SECRET_ENV.values(), *(name for pair in BASIC_ENV.values() for name in pair)}
        env = {k: v for k, v in os.environ.items() if k not in ours}
        # Call records go to a throwaway database: the gateway still pays for writing them,
        # as in production, without filling the user's ./voicegw-calls.db.
        env["VOICEGW_DATABASE"] = str(work / "calls.db")
        env.update(self.env)
        try:
            trace = [] if self.sim_trace is None else ["--trace", str(self.sim_trace.resolve())]
            self.simulator = self._spawn(
                ["simulate-live", "--port", str(self.simulator_port), "--scenario",
                 str(scenario), *trace], work / "simulator.log", env)
            await self._wait_for(self.simulator, self.simulator_port, "simulator")
            sim_url = f"ws://127.0.0.1:{self.simulator_port}"
            gw_trace = ([] if self.gateway_trace is None
                        else ["--trace", str(self.gateway_trace.resolve())])
            self.gateway = self._spawn(
                ["serve", "--port", str(self.gateway_port), "--live-url", sim_url,
                 "--max-calls", str(self.max_calls), *tcp, *gw_trace], work / "gateway.log",
                env)
            await self._wait_for(self.gateway, self.gateway_port, "gateway")
        except BaseException:
            self.stop()
            raise
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def _spawn(self, args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:  # the child keeps its own handle
            return subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
                [sys.executable, "-m", "gateway", "--log-level", "warning", *args],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                cwd=self.workdir)

    async def _wait_for(self, proc: subprocess.Popen[bytes], port: int, name: str) -> None:
        deadline = time.monotonic() + self.startup_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ConfigError(f"the {name} exited with {proc.returncode} at startup: "
                                  f"{self._log_tail(name)}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)  # polling a child we cannot get an event from
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return
        raise ConfigError(f"the {name} did not listen on port {port} "
                          f"within {self.startup_s:g} s: {self._log_tail(name)}")

    def _log_tail(self, name: str) -> str:
        if self.workdir is None:
            return ""
        with contextlib.suppress(OSError):
            return (self.workdir / f"{name}.log").read_text(errors="replace")[-800:]
        return ""

    def stop(self) -> None:
        # The gateway first, so its calls end before their Live sessions do. SIGTERM lets
        # the simulator close its sessions and write out its trace.
        for proc in (self.gateway, self.simulator):
            if proc is None or proc.poll() is not None:
                continue
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
