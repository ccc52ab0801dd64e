"""A gateway with its web console in front of the simulated Live server, on loopback, for the
console's browser tests, its latency benchmark and its screenshots (a test and demo tool).

Calls are recorded (stereo WAVs) and stored (SQLite), so the console has calls to list and
replay; the bundled front-desk agent answers, and the simulator's booking scenario makes it
call a real tool on the first turn.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import argon2

from gateway.bridge_config import CallServices
from gateway.config import Secret, Settings, custom_endpoint
from gateway.console.settings import ConsoleSettings
from gateway.registry import AgentRegistry, bundled_agents
from gateway.rig.phone import CallResult, Utterance, When, load_utterance, place_call
from gateway.rig.simulator import SimulatorServer, scenario_from_dict
from gateway.rig.simulator.speech import speech_dir
from gateway.server import Gateway, load_prompt, running
from gateway.store import CallRecorder
from gateway.store.sqlite import SqliteStore

# A test rig's credentials, known to its tests: nothing real is behind them.
PASSWORD: Final = "console password for tests"  # noqa: S105
TOKEN: Final = "console-token-for-tests-" + "0" * 24
KEY: Final = "k" * 32
API_KEY: Final = "simulated-live-api-key"  # the simulator takes any; tokens need one
AGENT: Final = "front_desk"
# argon2id as the console uses it, with the least work: a sign-in costs microseconds.
_HASH: Final = argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)


def booking_scenario(speed: float) -> dict[str, object]:
    """The booking conversation after the agent's greeting (the first turn); the caller's
    first turn makes it check a table before it answers."""
    return {"speed": speed, "turns": [
        {"reply": "agent_greeting"},
        {"caller_text": "Hi, I'd like to book a table for two tomorrow evening.",
         "reply": "agent_options",
         "tool_calls": [{"name": "check_availability", "id": "check-1",
                         "args": {"date": "2031-01-03", "time": "19:30", "party_size": 2}}]},
        {"caller_text": "Actually, wait, can we make it eight?", "reply": "agent_moved"},
        {"caller_text": "Thanks, goodbye.", "reply": "agent_goodbye"},
    ]}


def phone_script() -> list[Utterance]:
    """A phone caller's side of the booking conversation (after the greeting), barge-in
    included."""
    def say(name: str, when: When, delay_ms: int) -> Utterance:
        return Utterance(load_utterance(speech_dir() / f"{name}.wav"), when, delay_ms)
    return [say("caller_book_table", When.AFTER_REPLY, 500),
            say("caller_barge_in", When.BARGE_IN, 2000),
            say("caller_goodbye", When.AFTER_REPLY, 600)]


@dataclass
class ConsoleStack:
    sim: SimulatorServer
    gateway: Gateway
    recorder: CallRecorder
    port: int
    speed: float

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def phone_call(self, **kw: object) -> CallResult:
        """A call from a (simulated Twilio) phone, as ``voicegw call`` places one."""
        return await place_call(f"ws://127.0.0.1:{self.port}/media", phone_script(),
                                speed=self.speed, parameters={"From": "+15550104567"},
                                max_s=60.0, **kw)  # type: ignore[arg-type]

    async def stored(self, call_sid: str) -> None:
        """Wait until the call's ended record is in the store."""
        await self.gateway.wait_idle()
        recorder = self.recorder
        while True:
            record = await recorder.store.get_call(call_sid)
            if record is not None and record.ended_at is not None:
                return
            written = recorder.stats.written
            await recorder.wait_until(lambda: recorder.stats.written > written)  # noqa: B023


@contextlib.asynccontextmanager
async def console_stack(workdir: Path, *, speed: float = 1.0) -> AsyncIterator[ConsoleStack]:
    """The simulator and a gateway with the console on its own port (``port``)."""
    recordings = workdir / "recordings"
    recordings.mkdir(parents=True, exist_ok=True)
    store = SqliteStore(workdir / "calls.db")
    async with SimulatorServer(scenario_from_dict(booking_scenario(speed))) as sim:
        # The simulator mints ephemeral tokens too: the talk page's "direct to the model".
        settings = Settings(endpoint=custom_endpoint(sim.url, "test-model", API_KEY),
                            live_rest_url=sim.rest_base_url,
                            recordings_dir=str(recordings), record_all=True)
        agents = {a.name: a for a in bundled_agents()}
        recorder = CallRecorder(store)
        services = CallServices(agents=AgentRegistry(agents=agents, default=AGENT),
                                observers=(recorder,),
                                unavailable_prompt=load_prompt())
        console = ConsoleSettings(password_hash=Secret(_HASH), token=Secret(TOKEN),
                                  key=Secret(KEY))
        gateway = Gateway(settings, services=services, console=console)
        async with running(gateway) as port:
            yield ConsoleStack(sim, gateway, recorder, port, speed)
