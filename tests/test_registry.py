"""Agent discovery (bundled package, entry points) and per-call routing."""

from __future__ import annotations

import json
import textwrap
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest

from gateway import registry
from gateway.agent import Agent, tool
from gateway.errors import ConfigError
from gateway.registry import (
    DEFAULT_AGENT_NAME,
    ENTRY_POINT_GROUP,
    AgentLoadError,
    AgentRegistry,
    UnknownAgentError,
    agent_from_path,
    bundled_agents,
    describe_agents,
    discover_agents,
    parse_numbers,
)


@tool
def opening_hours(day: str) -> str:
    """Opening hours for a day."""
    return f"{day}: 12-22"


plugin_agent = Agent(name="bistro", instructions="You answer for Bistro Nord.",
                     tools=[opening_hours])
support_override = Agent(name="support", instructions="A replacement support agent.")
not_an_agent = "surprise"


def _entry_points(monkeypatch: pytest.MonkeyPatch, *values: tuple[str, str]) -> None:
    eps = [EntryPoint(name=n, value=v, group=ENTRY_POINT_GROUP) for n, v in values]

    def fake(*, group: str) -> list[EntryPoint]:
        assert group == ENTRY_POINT_GROUP
        return eps

    monkeypatch.setattr(registry, "entry_points", fake)


def test_bundled_agents_are_discovered() -> None:
    names = {a.name for a in bundled_agents()}
    assert {"front_desk", "support"} <= names


def test_plugins_are_loaded_from_entry_points_and_override_bundled(
        monkeypatch: pytest.MonkeyPatch) -> None:
    _entry_points(monkeypatch, ("bistro", "tests.test_registry:plugin_agent"),
                  ("support", "tests.test_registry:support_override"))
    found = discover_agents()
    assert found["bistro"] is plugin_agent
    assert found["support"] is support_override
    assert found[DEFAULT_AGENT_NAME].all_tools == {}
    assert "front_desk" in found


def test_entry_point_may_name_a_module_with_an_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    _entry_points(monkeypatch, ("fd", "voicegw_agents.front_desk"))
    assert discover_agents(bundled=None)["front_desk"].name == "front_desk"


@pytest.mark.parametrize(("value", "message"), [
    ("tests.test_registry:not_an_agent", "is a str, not an Agent"),
    ("no_such_module_xyz:agent", "failed to load"),
])
def test_broken_plugins_fail_at_start_up(monkeypatch: pytest.MonkeyPatch, value: str,
                                         message: str) -> None:
    _entry_points(monkeypatch, ("broken", value))
    with pytest.raises(AgentLoadError, match=message):
        discover_agents()


def test_two_plugins_with_one_name_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _entry_points(monkeypatch, ("a", "tests.test_registry:plugin_agent"),
                  ("b", "tests.test_registry:plugin_agent"))
    with pytest.raises(AgentLoadError, match="bistro"):
        discover_agents()


def test_a_bundled_module_with_a_wrong_agent_is_reported(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "my_agents"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "good.py").write_text(textwrap.dedent("""
        from gateway.agent import Agent
        agent = Agent(name="good", instructions="x")
    """))
    (pkg / "helpers.py").write_text("VALUE = 1\n")  # no agent: skipped
    monkeypatch.syspath_prepend(str(tmp_path))
    assert [a.name for a in bundled_agents("my_agents")] == ["good"]
    (pkg / "wrong.py").write_text("agent = 42\n")
    with pytest.raises(AgentLoadError, match=r"my_agents\.wrong\.agent is a int"):
        bundled_agents("my_agents")


# -- routing ---------------------------------------------------------------------------------


def _registry(**kw: Any) -> AgentRegistry:
    agents = {a.name: a for a in (registry.DEFAULT_AGENT, plugin_agent, support_override)}
    return AgentRegistry(agents=agents, **kw)


def test_path_beats_parameter_beats_number_beats_default() -> None:
    reg = _registry(default="support", numbers={"+15550100": "bistro"})
    both = {"agent": "support", "To": "+15550100"}
    assert reg.select(path="/media/bistro", parameters={"agent": "support"}).name == "bistro"
    assert reg.select(path="/media", parameters=both).name == "support"
    assert reg.select(path="/media", parameters={"To": "+1 (555) 010-0"}).name == "bistro"
    assert reg.select(path="/media", parameters={"To": "+15550999"}).name == "support"
    assert reg.select().name == "support"
    # A carrier's own route, and the number its start names rather than a parameter.
    assert reg.select(path="/telnyx/media/bistro").name == "bistro"
    assert reg.select(path="/vonage/media", dialled="+15550100").name == "bistro"


def test_unknown_agent_names_raise_a_clear_error() -> None:
    reg = _registry()
    with pytest.raises(UnknownAgentError) as info:
        reg.select(path="/voice/media/nobody")
    assert info.value.name == "nobody"
    assert "stream URL path" in str(info.value)
    assert "assistant, bistro, support" in str(info.value)
    with pytest.raises(UnknownAgentError, match="stream parameter"):
        reg.select(parameters={"agent": "ghost"})


def test_paths() -> None:
    assert agent_from_path("/media/support") == "support"
    assert agent_from_path("/prefix/media/support/") == "support"
    assert agent_from_path("/media") is None
    assert agent_from_path(None) is None


def test_number_map_formats() -> None:
    assert parse_numbers('{"+1 555 0100": "bistro"}') == {"+15550100": "bistro"}
    assert parse_numbers("+15550100=bistro, +15550111=support") == {
        "+15550100": "bistro", "+15550111": "support"}
    assert parse_numbers("") == {}
    for bad in ("{not json", "[1]", "+1555", "=bistro"):
        with pytest.raises(ConfigError):
            parse_numbers(bad)


def test_configuration_is_checked_at_start_up() -> None:
    agents = {a.name: a for a in (registry.DEFAULT_AGENT, plugin_agent)}
    reg = AgentRegistry.from_env({"VOICEGW_AGENT": "bistro",
                                  "VOICEGW_AGENT_NUMBERS": "+15550100=assistant"}, agents)
    assert reg.default == "bistro"
    assert reg.numbers == {"+15550100": "assistant"}
    with pytest.raises(ConfigError, match="VOICEGW_AGENT='ghost'"):
        AgentRegistry.from_env({"VOICEGW_AGENT": "ghost"}, agents)
    with pytest.raises(ConfigError, match="unknown agent 'ghost'"):
        AgentRegistry.from_env({"VOICEGW_AGENT_NUMBERS": "+1555=ghost"}, agents)
    assert AgentRegistry.from_env({}, agents).default == DEFAULT_AGENT_NAME


# -- listing -------------------------------------------------------------------------------


def test_describe_agents_json_is_machine_readable() -> None:
    data = json.loads(describe_agents([plugin_agent, registry.DEFAULT_AGENT], as_json=True))
    assert [a["name"] for a in data] == ["assistant", "bistro"]
    assert data[1]["tools"] == plugin_agent.declarations()
    assert data[0]["tools"] == []


def test_describe_agents_human_form_shows_each_tool_declaration() -> None:
    text = describe_agents([plugin_agent, registry.DEFAULT_AGENT])
    assert "bistro  (voice Kore, en-US)" in text
    assert "You answer for Bistro Nord." in text
    assert "tool opening_hours:" in text
    assert '"parametersJsonSchema"' in text
    assert "tools: none" in text
