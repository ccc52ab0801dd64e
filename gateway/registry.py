"""Which agents exist, and which one answers a given call.

Agents come from two places: the bundled ``voicegw_agents`` package (every module in it with a
module-level ``agent = Agent(...)``) and installed plugins, which declare an entry point in the
``voicegw.agents`` group, e.g. in the plugin's ``pyproject.toml``::

    [project.entry-points."voicegw.agents"]
    bistro = "bistro_agent:agent"

A plugin with the same name as a bundled agent replaces it.

Per call, the first of these that names an agent wins:

1. the stream URL's path, ``/media/{agent}`` (point the TwiML ``<Stream url>`` there);
2. a ``<Parameter name="agent" value="..."/>`` on the stream;
3. the dialled number, through ``VOICEGW_AGENT_NUMBERS`` (JSON ``{"+15550100": "front_desk"}``
   or ``+15550100=front_desk,+15550111=support``);
4. ``VOICEGW_AGENT``, else the plain built-in ``assistant`` (no tools).
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any, Final

import structlog

from gateway.agent import Agent
from gateway.errors import ConfigError, GatewayError

ENTRY_POINT_GROUP: Final = "voicegw.agents"
BUNDLED_PACKAGE: Final = "voicegw_agents"
DEFAULT_AGENT_NAME: Final = "assistant"
_NUMBER_JUNK: Final = re.compile(r"[\s().-]")

DEFAULT_AGENT: Final = Agent(
    name=DEFAULT_AGENT_NAME,
    instructions=("You are a friendly, concise phone agent. Callers hear you over a telephone "
                  "line, so keep replies short and speak naturally."),
)


class UnknownAgentError(GatewayError):
    """A call asked for an agent that does not exist (the caller should hear an apology)."""

    def __init__(self, name: str, known: Iterable[str], source: str) -> None:
        self.name = name
        self.source = source
        self.known = tuple(sorted(known))
        super().__init__(f"no agent named {name[:64]!r} (from the {source}); "
                         f"known agents: {', '.join(self.known) or 'none'}")


class AgentLoadError(ConfigError):
    """An agent module or plugin failed to load; raised at start-up."""


def discover_agents(*, bundled: str | None = BUNDLED_PACKAGE,
                    plugins: bool = True) -> dict[str, Agent]:
    """Every agent: the default ``assistant``, the bundled ones, then installed plugins."""
    found: dict[str, Agent] = {DEFAULT_AGENT.name: DEFAULT_AGENT}
    if bundled:
        for agent in bundled_agents(bundled):
            found[agent.name] = agent
    if plugins:
        seen: set[str] = set()
        for agent in plugin_agents():
            if agent.name in seen:
                raise AgentLoadError(f"two {ENTRY_POINT_GROUP} plugins define an agent "
                                     f"named {agent.name!r}")
            if agent.name in found:
                structlog.get_logger("gateway.registry").info(
                    "agent_overridden", agent=agent.name)
            seen.add(agent.name)
            found[agent.name] = agent
    return found


def bundled_agents(package: str = BUNDLED_PACKAGE) -> list[Agent]:
    """The ``agent`` of every module in ``package`` that has one."""
    try:
        pkg = importlib.import_module(package)
    except ImportError as exc:
        raise AgentLoadError(f"cannot import agent package {package!r}: {exc}") from exc
    out = []
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = _import(f"{package}.{info.name}")
        agent = getattr(module, "agent", None)
        if agent is None:
            continue
        if not isinstance(agent, Agent):
            raise AgentLoadError(f"{module.__name__}.agent is a {type(agent).__name__}, "
                                 f"not an Agent")
        out.append(agent)
    return out


def plugin_agents() -> list[Agent]:
    """Agents from installed packages' ``voicegw.agents`` entry points."""
    out = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = ep.load()
        except Exception as exc:  # a broken plugin: say which, at start-up
            raise AgentLoadError(f"agent plugin {ep.name!r} ({ep.value}) failed to load: "
                                 f"{type(exc).__name__}: {exc}") from exc
        if isinstance(loaded, ModuleType):
            loaded = getattr(loaded, "agent", None)
        if not isinstance(loaded, Agent):
            raise AgentLoadError(f"agent plugin {ep.name!r} ({ep.value}) is a "
                                 f"{type(loaded).__name__}, not an Agent")
        out.append(loaded)
    return out


def _import(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except Exception as exc:
        raise AgentLoadError(f"agent module {name} failed to import: "
                             f"{type(exc).__name__}: {exc}") from exc


def normalise_number(number: str) -> str:
    """``+1 (555) 010-0100`` and ``+15550100100`` are the same line."""
    return _NUMBER_JUNK.sub("", number)


def parse_numbers(text: str | None) -> dict[str, str]:
    """``VOICEGW_AGENT_NUMBERS``: a JSON object or ``number=agent,number=agent``."""
    if not text or not text.strip():
        return {}
    text = text.strip()
    pairs: Iterable[tuple[Any, Any]]
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"VOICEGW_AGENT_NUMBERS is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError("VOICEGW_AGENT_NUMBERS must be a JSON object")
        pairs = data.items()
    else:
        pairs = [item.partition("=")[::2] for item in text.split(",") if item.strip()]
    out: dict[str, str] = {}
    for number, agent in pairs:
        if not isinstance(number, str) or not isinstance(agent, str) \
                or not number.strip() or not agent.strip():
            raise ConfigError(f"VOICEGW_AGENT_NUMBERS: bad entry {number!r}={agent!r}; "
                              f"expected number=agent")
        out[normalise_number(number)] = agent.strip()
    return out


def agent_from_path(path: str | None) -> str | None:
    """``/media/support`` or ``/telnyx/media/support`` (under any prefix) -> ``support``;
    plain ``/media`` -> None."""
    if not path:
        return None
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[-2] == "media":
        return parts[-1]
    return None


@dataclass(frozen=True, slots=True)
class AgentRegistry:
    """The known agents plus the routing configuration; built once at start-up."""

    agents: Mapping[str, Agent]
    default: str = DEFAULT_AGENT_NAME
    numbers: Mapping[str, str] = field(default_factory=dict)  # normalised number -> agent

    def __post_init__(self) -> None:
        if self.default not in self.agents:
            raise ConfigError(f"VOICEGW_AGENT={self.default!r} is not a known agent "
                              f"({', '.join(sorted(self.agents))})")
        for number, name in self.numbers.items():
            if name not in self.agents:
                raise ConfigError(f"VOICEGW_AGENT_NUMBERS maps {number} to unknown agent "
                                  f"{name!r} ({', '.join(sorted(self.agents))})")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None,
                 agents: Mapping[str, Agent] | None = None) -> AgentRegistry:
        """Discover agents (unless given) and read ``VOICEGW_AGENT``/``VOICEGW_AGENT_NUMBERS``."""
        env = os.environ if env is None else env
        found = discover_agents() if agents is None else dict(agents)
        return cls(agents=found,
                   default=env.get("VOICEGW_AGENT", "").strip() or DEFAULT_AGENT_NAME,
                   numbers=parse_numbers(env.get("VOICEGW_AGENT_NUMBERS")))

    def get(self, name: str, source: str = "configuration") -> Agent:
        agent = self.agents.get(name)
        if agent is None:
            raise UnknownAgentError(name, self.agents, source)
        return agent

    def select(self, *, path: str | None = None,
               parameters: Mapping[str, str] | None = None,
               dialled: str | None = None) -> Agent:
        """The agent for a call; raises :class:`UnknownAgentError` for a name nobody knows.
        ``dialled`` is the number the caller rang (a stream's ``To`` parameter otherwise)."""
        params = parameters or {}
        by_path = agent_from_path(path)
        if by_path:
            return self.get(by_path, "stream URL path")
        by_param = params.get("agent", "").strip()
        if by_param:
            return self.get(by_param, 'stream parameter "agent"')
        dialled = dialled or params.get("To")
        if dialled and normalise_number(dialled) in self.numbers:
            return self.get(self.numbers[normalise_number(dialled)], "dialled-number map")
        return self.get(self.default)


def describe_agents(agents: Iterable[Agent], as_json: bool = False) -> str:
    """The ``voicegw agents`` listing: each agent and its tools' declarations."""
    items = sorted(agents, key=lambda a: a.name)
    if as_json:
        return json.dumps([{
            "name": a.name, "instructions": a.instructions, "voice": a.voice,
            "language": a.language, "greeting": a.greeting,
            "call_control": list(a.call_control), "transfer_to": a.transfer_to,
            "transfer_targets": dict(a.transfer_targets),
            "tool_timeout_s": a.tool_timeout_s, "tools": a.declarations(),
        } for a in items], indent=2)
    blocks = []
    for a in items:
        lines = [f"{a.name}  (voice {a.voice}, {a.language})",
                 f"  {_summary(a.instructions)}"]
        if a.greeting:
            lines.append(f"  greeting: {a.greeting}")
        if not a.all_tools:
            lines.append("  tools: none")
        for decl in a.declarations():
            lines.append(f"  tool {decl['name']}:")
            lines.extend("    " + line for line in json.dumps(decl, indent=2).splitlines())
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def _summary(text: str, limit: int = 100) -> str:
    first = " ".join(text.split())
    return first if len(first) <= limit else first[: limit - 3].rstrip() + "..."
