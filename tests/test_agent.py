"""The plugin API: declarations derived from signatures, validation, invocation, built-ins."""

from __future__ import annotations

import asyncio
import enum
import json
import threading
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal

import pytest
from google.genai import types
from pydantic import BaseModel, Field

from gateway import live
from gateway.agent import (
    Agent,
    CallContext,
    Scheduling,
    Tool,
    ToolArgumentsError,
    ToolDefinitionError,
    ToolError,
    ToolResultError,
    tool,
)
from gateway.audio import AudioFormat, Codec
from gateway.carriers.core import Started
from gateway.schema import parse_docstring


def _walk(node: Any) -> Iterator[Mapping[str, Any]]:
    """Every schema object in a JSON Schema (property *names* are not keywords)."""
    if isinstance(node, Mapping):
        yield node
        for key, value in node.items():
            if key == "properties":
                for sub in value.values():
                    yield from _walk(sub)
            elif isinstance(value, Mapping | list):
                yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def assert_valid_declaration(decl: Mapping[str, Any]) -> None:
    """Google's own SDK types are the oracle for what the Live API accepts."""
    fd = types.FunctionDeclaration.model_validate(decl)
    assert fd.name == decl["name"]
    assert fd.description
    schema = decl.get("parametersJsonSchema")
    if schema is None:
        return
    assert schema["type"] == "object"
    types.Schema.from_json_schema(json_schema=types.JSONSchema.model_validate(schema),
                                  api_option="GEMINI_API", raise_error_on_unsupported_field=True)
    for node in _walk(schema):
        assert not {"$ref", "$defs", "title", "allOf"} & set(node), node


def props(t: Tool) -> dict[str, Any]:
    assert t.parameters is not None
    return dict(t.parameters["properties"])


class Colour(enum.Enum):
    RED = "red"
    GREEN = "green"


class Address(BaseModel):
    """A postal address."""

    street: str
    city: str
    title: str | None = None  # a *property* called title must survive the title-stripping


# -- schema derivation, one hint at a time ----------------------------------------------


def test_scalars_are_typed_and_required_unless_defaulted() -> None:
    @tool
    def f(s: str, i: int, x: float, b: bool = False) -> None:
        """Scalars."""

    p = props(f)
    assert {k: v["type"] for k, v in p.items()} == {
        "s": "string", "i": "integer", "x": "number", "b": "boolean"}
    assert f.parameters is not None
    assert f.parameters["required"] == ["s", "i", "x"]
    assert p["b"]["default"] is False
    assert_valid_declaration(f.declaration())


def test_literal_and_enum_become_enums() -> None:
    @tool
    def f(mode: Literal["fast", "slow"], colour: Colour = Colour.RED) -> None:
        """Pick."""

    p = props(f)
    assert p["mode"] == {"type": "string", "enum": ["fast", "slow"]}
    assert p["colour"]["enum"] == ["red", "green"]
    assert p["colour"]["default"] == "red"
    assert_valid_declaration(f.declaration())


def test_lists_and_optional_parameters() -> None:
    @tool
    def f(tags: list[str], counts: list[int] | None = None, note: str | None = None) -> None:
        """Lists."""

    p = props(f)
    assert p["tags"] == {"type": "array", "items": {"type": "string"}}
    # Optional with a default: the model just leaves it out, so no anyOf/null noise.
    assert p["counts"] == {"type": "array", "items": {"type": "integer"}}
    assert p["note"] == {"type": "string"}
    assert f.parameters is not None
    assert f.parameters["required"] == ["tags"]
    assert_valid_declaration(f.declaration())


def test_required_nullable_keeps_its_null_branch() -> None:
    @tool
    def f(note: str | None) -> None:
        """Must say null explicitly."""

    assert props(f)["note"] == {"anyOf": [{"type": "string"}, {"type": "null"}]}
    assert_valid_declaration(f.declaration())


def test_pydantic_models_are_inlined_without_titles() -> None:
    @tool
    def f(home: Address, others: list[Address], work: Address | None = None) -> None:
        """Addresses."""

    p = props(f)
    assert p["home"]["type"] == "object"
    assert p["home"]["description"] == "A postal address."
    assert set(p["home"]["properties"]) == {"street", "city", "title"}
    assert p["others"]["items"]["required"] == ["street", "city"]
    assert p["work"]["properties"]["title"] == {"type": "string"}
    assert_valid_declaration(f.declaration())


def test_descriptions_from_annotated_field_and_google_docstring() -> None:
    @tool
    def f(day: str, party: Annotated[int, Field(ge=1, le=12, description="Guests.")],
          when: str = "19:00") -> None:
        """Check a table.

        This second paragraph is for operators, not the model.

        Args:
            day: Day of the week,
                in English.
            party: Ignored: the Field description wins.
            when (str): Arrival time.
        """

    assert f.description == "Check a table."
    p = props(f)
    assert p["day"]["description"] == "Day of the week, in English."
    assert p["party"] == {"type": "integer", "minimum": 1, "maximum": 12,
                          "description": "Guests."}
    assert p["when"]["description"] == "Arrival time."
    assert_valid_declaration(f.declaration())


def test_docstring_parser_handles_sections_and_continuations() -> None:
    doc = parse_docstring("""Summary line
    continues here.

    Args:
        a (int): First.
        b: Second,
            wrapped.
        *rest: Varargs.

    Returns:
        x: not a parameter.
    """)
    assert doc.summary == "Summary line continues here."
    assert doc.params == {"a": "First.", "b": "Second, wrapped.", "rest": "Varargs."}


def test_call_context_is_injected_not_declared() -> None:
    @tool
    def f(q: str, context: CallContext) -> None:
        """Needs the call."""

    assert set(props(f)) == {"q"}
    assert f.injected == ("context",)


def test_a_tool_without_parameters_declares_none() -> None:
    @tool
    def ping() -> str:
        """Ping."""
        return "pong"

    assert ping.declaration() == {"name": "ping", "description": "Ping."}
    assert_valid_declaration(ping.declaration())


def test_decorator_options_and_non_blocking_declaration() -> None:
    @tool(name="lookup.v2", non_blocking=True, scheduling=Scheduling.SILENT, timeout_s=2.5,
          description="Override.")
    def f(q: str) -> str:
        """Docstring loses to the explicit description."""
        return q.upper()

    assert (f.name, f.description, f.timeout_s, f.scheduling) == (
        "lookup.v2", "Override.", 2.5, Scheduling.SILENT)
    assert f.declaration()["behavior"] == "NON_BLOCKING"
    assert "behavior" not in tool(_documented).declaration()
    assert f("x") == "X"  # still callable as the plain function
    assert_valid_declaration(f.declaration())


def _documented(x: int) -> int:
    """Documented."""
    return x


def _undocumented(x: int) -> int:
    return x


def _no_hint(x) -> int:  # type: ignore[no-untyped-def]
    """No hint."""
    return 1


def _varargs(*xs: int) -> int:
    """Varargs."""
    return 1


class Node(BaseModel):
    children: list[Node] = []


def _recursive(tree: Node) -> None:
    """Recursive."""


@pytest.mark.parametrize(("fn", "message"), [
    (_undocumented, "needs a docstring"),
    (_no_hint, "no type hint"),
    (_varargs, "*args"),
    (_recursive, "recursive type"),
])
def test_definition_mistakes_fail_at_import_time(fn: Any, message: str) -> None:
    with pytest.raises(ToolDefinitionError, match=message.replace("*", r"\*")):
        tool(fn)


def test_bad_tool_names_are_refused() -> None:
    with pytest.raises(ToolDefinitionError, match="tool name"):
        tool(name="has space")(_documented)


# -- validation and invocation ---------------------------------------------------------


@tool
def book(party: Annotated[int, Field(ge=1)], colour: Colour, home: Address,
         ctx: CallContext) -> dict[str, Any]:
    """Typed arguments arrive as Python objects."""
    return {"party": party, "colour": colour.name, "city": home.city, "call": ctx.call_sid}


async def test_arguments_are_validated_and_converted() -> None:
    ctx = CallContext(call_sid="CA1")
    out = await book.invoke({"party": 4.0, "colour": "green",
                             "home": {"street": "Main St 1", "city": "Oslo"}}, ctx)
    assert out == {"party": 4, "colour": "GREEN", "city": "Oslo", "call": "CA1"}


@pytest.mark.parametrize(("args", "fragment"), [
    ({"party": 0, "colour": "red", "home": {"street": "a", "city": "b"}}, "party"),
    ({"party": 2, "colour": "blue", "home": {"street": "a", "city": "b"}}, "colour"),
    ({"party": 2, "colour": "red"}, "home: Field required"),
    ({"party": 2, "colour": "red", "home": {"street": "a", "city": "b"}, "x": 1}, "x: Extra"),
])
async def test_bad_arguments_raise_a_message_for_the_model(args: dict[str, Any],
                                                           fragment: str) -> None:
    with pytest.raises(ToolArgumentsError, match="invalid arguments") as info:
        await book.invoke(args, CallContext())
    assert fragment in str(info.value)


async def test_results_are_normalised() -> None:
    @tool
    def number() -> int:
        """A number."""
        return 7

    @tool
    async def model() -> Address:
        """A model."""
        return Address(street="s", city="c")

    @tool
    def nothing() -> None:
        """Nothing."""

    ctx = CallContext()
    assert await number.invoke({}, ctx) == {"result": 7}
    assert await model.invoke({}, ctx) == {"street": "s", "city": "c", "title": None}
    assert await nothing.invoke({}, ctx) == {"result": None}


async def test_non_json_results_raise_a_clear_error() -> None:
    @tool
    def bad() -> object:
        """Returns junk."""
        return {"when": object()}

    with pytest.raises(ToolResultError, match="not JSON-serialisable"):
        await bad.invoke({}, CallContext())


async def test_sync_tools_run_off_the_event_loop() -> None:
    release = threading.Event()
    loop_thread = threading.get_ident()
    seen: dict[str, Any] = {}

    @tool
    def blocking() -> bool:
        """Blocks its thread until the loop releases it."""
        seen["thread"] = threading.get_ident()
        return release.wait(timeout=10)

    async def loop_side() -> None:
        # Runs only if the loop is free while the tool blocks; if the tool ran on the loop
        # this would start after it and the tool would time out with False.
        release.set()

    invoked = asyncio.create_task(blocking.invoke({}, CallContext()))
    other = asyncio.create_task(loop_side())
    assert await invoked == {"result": True}
    await other
    assert seen["thread"] != loop_thread


# -- the agent and its built-ins ---------------------------------------------------------


class Control:
    def __init__(self) -> None:
        self.ended: list[str] = []
        self.transferred: list[str] = []

    async def end_call(self, reason: str) -> None:
        self.ended.append(reason)

    async def transfer_call(self, to: str) -> None:
        self.transferred.append(to)


def test_agent_wraps_functions_and_declares_opted_in_builtins() -> None:
    agent = Agent(name="desk", instructions="Be nice.", tools=[_documented, book],
                  call_control=["end_call", "transfer_call"], transfer_to="+15550100",
                  transfer_targets={"billing": "+15550111"})
    names = [d["name"] for d in agent.declarations()]
    assert names == ["_documented", "book", "end_call", "transfer_call"]
    assert all(isinstance(t, Tool) for t in agent.tools)
    for decl in agent.declarations():
        assert_valid_declaration(decl)
    transfer = agent.all_tools["transfer_call"].declaration()
    assert transfer["parametersJsonSchema"]["properties"]["to"]["enum"] == ["billing"]
    assert "end_call" not in Agent(name="plain", instructions="x").all_tools


def test_agent_definition_mistakes() -> None:
    with pytest.raises(ToolDefinitionError, match="call_control"):
        Agent(name="a", instructions="x", call_control=["hang_up"])
    with pytest.raises(ToolDefinitionError, match="two tools"):
        Agent(name="a", instructions="x", tools=[_documented, tool(_documented)])
    with pytest.raises(ToolDefinitionError, match="agent name"):
        Agent(name="a/b", instructions="x")


def _call(caller: str | None = None, callee: str | None = None) -> Started:
    fmt = AudioFormat(Codec.PCMU, 8000)
    return Started(call_id="CA1", stream_id="MZ1", caller=caller, callee=callee,
                   parameters={"tenant": "acme"}, inbound=fmt, outbound=fmt)


async def test_builtin_end_call_reaches_the_bridge() -> None:
    agent = Agent(name="a", instructions="x", call_control=["end_call"])
    control = Control()
    ctx = CallContext.for_call(agent, _call(caller="+15550001", callee="+15550002"), control)
    assert (ctx.caller, ctx.dialled, ctx.agent) == ("+15550001", "+15550002", "a")
    assert (ctx.call_sid, ctx.stream_sid, ctx.parameters) == ("CA1", "MZ1", {"tenant": "acme"})
    out = await agent.all_tools["end_call"].invoke({"reason": "caller is done"}, ctx)
    assert "result" in out
    assert control.ended == ["caller is done"]


async def test_builtin_transfer_only_dials_configured_destinations() -> None:
    agent = Agent(name="a", instructions="x", call_control=["transfer_call"],
                  transfer_to="+15550100", transfer_targets={"billing": "+15550111"})
    control = Control()
    ctx = CallContext.for_call(agent, _call(), control)
    transfer = agent.all_tools["transfer_call"]
    await transfer.invoke({}, ctx)
    await transfer.invoke({"to": "billing"}, ctx)
    with pytest.raises(ToolError, match="cannot transfer"):
        await transfer.invoke({"to": "+19005550199"}, ctx)  # a number the caller dictated
    assert control.transferred == ["+15550100", "+15550111"]


async def test_call_control_without_a_bridge_or_destination_is_a_tool_error() -> None:
    with pytest.raises(ToolError, match="not available"):
        await CallContext().end_call("bye")
    with pytest.raises(ToolError, match="no transfer destination"):
        await CallContext(control=Control()).transfer_call()


def test_session_config_and_greeting() -> None:
    agent = Agent(name="a", instructions="Be brief.", voice="Puck", language="de-DE",
                  greeting="Hallo!", tools=[_documented])
    cfg = agent.session_config(live.SessionConfig(model="models/m", voice="Kore"))
    setup = json.loads(live.build_setup(cfg))["setup"]
    assert setup["systemInstruction"]["parts"][0]["text"] == "Be brief."
    assert setup["generationConfig"]["speechConfig"]["voiceConfig"] == {
        "prebuiltVoiceConfig": {"voiceName": "Puck"}}
    assert setup["tools"] == [{"functionDeclarations": agent.declarations()}]
    # A built-in the call's carrier cannot carry out is not offered at all.
    closer = Agent(name="c", instructions="x", call_control=["end_call", "transfer_call"],
                   transfer_to="+15550100")
    withheld = closer.session_config(live.SessionConfig(model="models/m"),
                                     withheld=frozenset({"transfer_call"}))
    assert [d["name"] for d in withheld.tools] == ["end_call"]
    prompt = agent.greeting_prompt()
    assert prompt is not None
    assert "Hallo!" in prompt
    assert Agent(name="b", instructions="x").greeting_prompt() is None
