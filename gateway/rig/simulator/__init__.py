"""A simulated Gemini Live API server: a test and demo tool, not a model.

It speaks the BidiGenerateContent WebSocket protocol well enough for Google's own SDK and
for the gateway's Live client, answering caller speech with bundled recordings according to
a :class:`Scenario`, and can inject the failures production shows (``goAway``, close codes,
dropped connections). Use :class:`SimulatorServer` in-process, or ``voicegw simulate-live``.
"""

from gateway.rig.simulator.record import SessionRecord
from gateway.rig.simulator.scenario import (
    Injection,
    Scenario,
    ScenarioError,
    ToolCallSpec,
    Turn,
    bundled_scenario,
    load_scenario,
    scenario_from_dict,
)
from gateway.rig.simulator.server import SimulatorServer, run_simulator

__all__ = [
    "Injection",
    "Scenario",
    "ScenarioError",
    "SessionRecord",
    "SimulatorServer",
    "ToolCallSpec",
    "Turn",
    "bundled_scenario",
    "load_scenario",
    "run_simulator",
    "scenario_from_dict",
]
