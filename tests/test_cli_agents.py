"""``voicegw agents``: the installed command lists every agent and valid tool declarations."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from google.genai import types

from gateway.registry import discover_agents
from tests.test_agent import assert_valid_declaration

ROOT = Path(__file__).resolve().parents[1]
VOICEGW = Path(sys.executable).with_name("voicegw")  # the console script, as installed


def voicegw(*args: str, pythonpath: Path | None = None) -> str:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath),
                                                          env.get("PYTHONPATH")]))
    proc = subprocess.run([str(VOICEGW), *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def check_declarations(listing: list[dict[str, Any]]) -> None:
    for entry in listing:
        assert entry["tools"], entry["name"]
        for decl in entry["tools"]:
            fd = types.FunctionDeclaration.model_validate(decl)  # extra keys are refused
            assert fd.name == decl["name"]
            assert fd.parameters_json_schema == decl.get("parametersJsonSchema")
            assert (fd.behavior.value if fd.behavior else None) == decl.get("behavior")
            assert_valid_declaration(decl)


def test_json_lists_every_agent_with_declarations_the_sdk_accepts() -> None:
    listing = json.loads(voicegw("agents", "--json"))
    agents = discover_agents()

    assert [a["name"] for a in listing] == sorted(agents)
    assert {"assistant", "front_desk", "support"} <= set(agents)
    for entry in listing:
        agent = agents[entry["name"]]
        assert entry["tools"] == agent.declarations()
        assert [d["name"] for d in entry["tools"]] == list(agent.all_tools)
        assert entry["instructions"] == agent.instructions
        assert entry["greeting"] == agent.greeting
        assert entry["call_control"] == list(agent.call_control)
    # The plain assistant has no tools; every other agent's declarations must be valid.
    assert next(a for a in listing if a["name"] == "assistant")["tools"] == []
    check_declarations([a for a in listing if a["name"] != "assistant"])
    by_name = {a["name"]: a for a in listing}
    assert {d["name"] for d in by_name["support"]["tools"]} >= {
        "lookup_order", "read_keypad", "end_call", "transfer_call", "send_dtmf"}
    assert {d["name"] for d in by_name["front_desk"]["tools"]} >= {
        "check_availability", "book_table", "change_booking", "cancel_booking", "end_call"}


def test_human_output_lists_every_agent_and_each_of_its_tools() -> None:
    text = voicegw("agents")
    agents = discover_agents()

    headers = re.findall(r"^(\S+)  \(voice (\S+), (\S+)\)$", text, re.MULTILINE)
    assert headers == [(a.name, a.voice, a.language)
                       for a in sorted(agents.values(), key=lambda a: a.name)]
    for block in text.strip().split("\n\n"):
        name = block.split(" ", 1)[0]
        tools = re.findall(r"^  tool (\S+):$", block, re.MULTILINE)
        assert tools == list(agents[name].all_tools)
        if not tools:
            assert "  tools: none" in block.splitlines()


@pytest.fixture
def plugin(tmp_path: Path) -> Path:
    """The README's example agent, installed as a plugin with the README's entry point."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Write your own agent\n", 1)[1].split("\n## ", 1)[0]
    toml = re.search(r"^```toml\n(.*?)^```$", section, re.DOTALL | re.MULTILINE)
    assert toml, "the README shows no entry point"
    points = tomllib.loads(toml.group(1))["project"]["entry-points"]["voicegw.agents"]
    assert points == {"bistro": "bistro:agent"}
    shutil.copy(ROOT / "tests" / "fixtures" / "agents" / "bistro.py", tmp_path / "bistro.py")
    dist = tmp_path / "bistro_agent-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: bistro-agent\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[voicegw.agents]\n" + "".join(f"{k} = {v}\n" for k, v in points.items()))
    return tmp_path


def test_an_entry_point_plugin_is_listed_beside_the_bundled_agents(plugin: Path) -> None:
    listing = json.loads(voicegw("agents", "--json", pythonpath=plugin))
    by_name = {a["name"]: a for a in listing}

    assert {"assistant", "front_desk", "support", "bistro"} <= set(by_name)
    bistro = by_name["bistro"]
    assert [d["name"] for d in bistro["tools"]] == ["opening_hours", "request_callback",
                                                    "end_call", "transfer_call"]
    assert bistro["greeting"] == "Bistro Nord, good afternoon. How can I help?"
    assert bistro["transfer_to"] == "+15550100"
    check_declarations([bistro])
    day = bistro["tools"][0]["parametersJsonSchema"]["properties"]["day"]
    assert day["enum"][0] == "monday" and len(day["enum"]) == 7
    assert "bistro  (voice Kore, en-US)" in voicegw("agents", pythonpath=plugin).splitlines()
