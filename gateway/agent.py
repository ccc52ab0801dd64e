"""The plugin API: a phone agent is one Python file that builds an :class:`Agent`.

A minimal agent::

    from gateway.agent import Agent, CallContext, tool

    @tool
    def opening_hours(day: str) -> str:
        '''Opening hours for a day of the week.

        Args:
            day: Day of the week in English, e.g. "monday".
        '''
        return "12:00 to 22:00" if day.lower() != "monday" else "closed"

    agent = Agent(name="bistro", instructions="You answer the phone for Bistro Nord.",
                  greeting="Bistro Nord, how can I help?", tools=[opening_hours],
                  call_control=["end_call"])

A tool is a plain function, sync or async, with type hints and a docstring: the docstring's
first paragraph tells the model what the tool does, its ``Args:`` section what each parameter
means, and the hints become the JSON Schema of the parameters (``str``, ``int``, ``float``,
``bool``, ``Literal``, ``Enum``, ``list[...]``, optional parameters with defaults, pydantic
models, ``Annotated[..., Field(description=...)]``). The model's arguments are validated
against the same schema before the function runs; a mistake goes back to the model as an
error it can talk about. A parameter annotated :class:`CallContext` is filled in by the
gateway (who is calling, per-call state, keypad digits, hang-up, transfer and pressing keys)
and never shown to the model. Sync tools run in a worker thread so they never stall the
call's audio.

A tool returns a dict, or any JSON value (sent as ``{"result": value}``). To tell the model
that something went wrong in words it should use, ``raise ToolError("No table at 8")``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import inspect
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, overload

import pydantic
from pydantic import Field

from gateway import dtmf
from gateway.errors import GatewayError
from gateway.live import SessionConfig
from gateway.schema import ToolDefinitionError, derive
from gateway.turns import TurnTaking

# Field is pydantic's, re-exported so an agent file needs no other import for descriptions.
__all__ = ["Agent", "CallContext", "CallControl", "Field", "Scheduling", "Tool",
           "ToolDefinitionError", "ToolError", "TurnTaking", "tool"]

BUILTINS: Final = ("end_call", "transfer_call", "warm_transfer", "send_dtmf")
_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$")  # the Live API's rule
_AGENT_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")  # safe in a URL path


class Scheduling(enum.StrEnum):
    """When the model acts on a NON_BLOCKING tool's result."""

    INTERRUPT = "INTERRUPT"  # cut off what it is saying and react now
    WHEN_IDLE = "WHEN_IDLE"  # react once it has finished speaking (the service default)
    SILENT = "SILENT"  # just add the result to the conversation


class ToolError(GatewayError):
    """Raise from a tool to send ``{"error": message}`` to the model, worded for it."""


class ToolArgumentsError(ToolError):
    """The model's arguments do not match the tool's parameters."""


class ToolResultError(ToolError):
    """A tool returned something that cannot be sent to the model as JSON."""


class CallIdentity(Protocol):
    """Who a call is, as its carrier's stream says (``gateway.carriers.core.Started``)."""

    @property
    def call_id(self) -> str: ...
    @property
    def stream_id(self) -> str: ...
    @property
    def caller(self) -> str | None: ...
    @property
    def callee(self) -> str | None: ...
    @property
    def parameters(self) -> Mapping[str, str]: ...


class CallControl(Protocol):
    """What the bridge does for a tool that ends or transfers the call, or presses keys."""

    async def end_call(self, reason: str) -> None: ...
    async def transfer_call(self, to: str) -> None: ...
    async def warm_transfer(self, to: str, summary: str) -> None: ...
    async def send_dtmf(self, keys: str) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class CallContext:
    """One call, as a tool sees it. ``state`` and ``dtmf`` live as long as the call.

    ``call_sid`` is the carrier's id of the call, ``caller``/``dialled`` the From/To numbers,
    ``parameters`` the stream's custom parameters, ``dtmf`` the keypad digits pressed so far
    (oldest first), ``state`` a dict the agent's tools can share within the call.
    ``end_call``/``transfer_call``/``send_dtmf`` are coroutines: call them from ``async def``
    tools.
    """

    call_sid: str = ""
    stream_sid: str = ""
    caller: str | None = None
    dialled: str | None = None
    parameters: Mapping[str, str] = field(default_factory=dict)
    agent: str = ""
    transfer_to: str | None = None  # the agent's default destination
    control: CallControl | None = field(default=None, repr=False)
    state: dict[str, Any] = field(default_factory=dict, repr=False)
    dtmf: list[str] = field(default_factory=list)

    @classmethod
    def for_call(cls, agent: Agent, call: CallIdentity,
                 control: CallControl | None) -> CallContext:
        """The context the bridge builds once the carrier's stream names the call."""
        return cls(call_sid=call.call_id, stream_sid=call.stream_id,
                   parameters=dict(call.parameters), caller=call.caller, dialled=call.callee,
                   agent=agent.name, transfer_to=agent.transfer_to, control=control)

    async def end_call(self, reason: str = "") -> None:
        """Hang up once what the agent has said so far has been played to the caller."""
        await self._control().end_call(reason)

    async def transfer_call(self, to: str | None = None) -> None:
        """Connect the caller to ``to`` (a number or ``sip:`` address), default ``transfer_to``."""
        target = to or self.transfer_to
        if not target:
            raise ToolError("no transfer destination is configured for this line")
        await self._control().transfer_call(target)

    async def warm_transfer(self, summary: str, to: str | None = None) -> None:
        """Put the caller on hold, call ``to`` (default ``transfer_to``), tell them
        ``summary``, then join them with the caller; if they do not answer, the caller comes
        back to the agent, which is told why."""
        target = to or self.transfer_to
        if not target:
            raise ToolError("no transfer destination is configured for this line")
        await self._control().warm_transfer(target, summary)

    async def send_dtmf(self, digits: str) -> None:
        """Press keypad keys (``0-9 * # A-D``; ``,`` waits half a second): their tones play
        to the other end after what the agent has said; returns once they have played."""
        try:
            keys = dtmf.parse(digits)
        except dtmf.DtmfError as exc:
            raise ToolError(str(exc)) from None
        await self._control().send_dtmf(keys)

    def _control(self) -> CallControl:
        if self.control is None:
            raise ToolError("call control is not available on this call")
        return self.control


@dataclass(frozen=True, slots=True)
class Tool:
    """A function the model can call, with its declaration. Build it with :func:`tool`.

    A sync tool that times out or is cancelled keeps its worker thread until it returns
    (threads cannot be stopped); its result is then discarded.
    """

    name: str
    description: str
    fn: Callable[..., Any] = field(repr=False)
    non_blocking: bool = False
    scheduling: Scheduling = Scheduling.WHEN_IDLE
    timeout_s: float | None = None  # None: the agent's tool_timeout_s
    args_model: type[pydantic.BaseModel] = field(default=pydantic.BaseModel, repr=False,
                                                 compare=False)
    parameters: Mapping[str, Any] | None = field(default=None, repr=False, compare=False)
    injected: tuple[str, ...] = field(default=(), repr=False, compare=False)
    # How the arguments appear in logs and the call record (default: as the model sent them).
    shown: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = field(
        default=None, repr=False, compare=False)

    @classmethod
    def from_function(cls, fn: Callable[..., Any], *, name: str | None = None,
                      description: str | None = None, non_blocking: bool = False,
                      scheduling: Scheduling | str = Scheduling.WHEN_IDLE,
                      timeout_s: float | None = None) -> Tool:
        tool_name: str = name or str(getattr(fn, "__name__", ""))
        if not _NAME.match(tool_name):
            raise ToolDefinitionError(f"tool name {tool_name!r} must start with a letter or _ "
                                      f"and use only letters, digits, _ . : - (max 64)")
        if timeout_s is not None and not timeout_s > 0:
            raise ToolDefinitionError(f"tool {tool_name!r}: timeout_s must be > 0")
        sig = derive(fn, tool_name, CallContext)
        text = description or sig.description
        if not text:
            raise ToolDefinitionError(f"tool {tool_name!r} needs a docstring: it is how the "
                                      f"model knows when to call it")
        return cls(name=tool_name, description=text, fn=fn, non_blocking=non_blocking,
                   scheduling=Scheduling(scheduling), timeout_s=timeout_s,
                   args_model=sig.args_model, parameters=sig.schema, injected=sig.injected)

    def declaration(self) -> dict[str, Any]:
        """This tool's entry in the setup's ``functionDeclarations``."""
        decl: dict[str, Any] = {"name": self.name, "description": self.description}
        if self.parameters is not None:
            decl["parametersJsonSchema"] = json.loads(json.dumps(self.parameters))
        if self.non_blocking:
            decl["behavior"] = "NON_BLOCKING"
        return decl

    def bind(self, args: Mapping[str, Any], ctx: CallContext) -> dict[str, Any]:
        """Validated keyword arguments for ``fn``; raises :class:`ToolArgumentsError`."""
        try:
            parsed = self.args_model.model_validate(dict(args))
        except pydantic.ValidationError as exc:
            raise ToolArgumentsError(_explain(exc)) from None
        kwargs = {k: getattr(parsed, k) for k in type(parsed).model_fields}
        kwargs.update(dict.fromkeys(self.injected, ctx))
        return kwargs

    async def invoke(self, args: Mapping[str, Any], ctx: CallContext) -> dict[str, Any]:
        """Validate, run (sync functions in a worker thread) and normalise the result."""
        kwargs = self.bind(args, ctx)
        if inspect.iscoroutinefunction(self.fn):
            result = await self.fn(**kwargs)
        else:
            # A thread, not the loop: a blocking database query must not stall the audio.
            result = await asyncio.to_thread(self.fn, **kwargs)
            if inspect.isawaitable(result):
                result = await result
        return normalise_result(self.name, result)

    def shown_args(self, args: Mapping[str, Any]) -> Mapping[str, Any]:
        """``args`` as logs and the call record show them."""
        return args if self.shown is None else self.shown(args)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the plain function, as if undecorated (handy in the agent's own tests)."""
        return self.fn(*args, **kwargs)


def normalise_result(name: str, result: Any) -> dict[str, Any]:
    """A dict passes through; another JSON value becomes ``{"result": value}``."""
    if isinstance(result, pydantic.BaseModel):
        result = result.model_dump(mode="json")
    out = dict(result) if isinstance(result, Mapping) else {"result": result}
    try:
        json.dumps(out, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ToolResultError(f"tool {name!r} returned a value that is not JSON-serialisable "
                              f"({exc}); return str, numbers, bools, lists or dicts") from None
    return out


def _explain(exc: pydantic.ValidationError) -> str:
    problems = []
    for err in exc.errors(include_url=False)[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "arguments"
        problems.append(f"{where}: {err['msg']}")
    return "invalid arguments: " + "; ".join(problems)


@overload
def tool(fn: Callable[..., Any], /) -> Tool: ...
@overload
def tool(*, name: str | None = None, description: str | None = None,
         non_blocking: bool = False, scheduling: Scheduling | str = Scheduling.WHEN_IDLE,
         timeout_s: float | None = None) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(fn: Callable[..., Any] | None = None, /, *, name: str | None = None,
         description: str | None = None, non_blocking: bool = False,
         scheduling: Scheduling | str = Scheduling.WHEN_IDLE,
         timeout_s: float | None = None) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a function a tool: ``@tool`` or ``@tool(name=..., non_blocking=True, ...)``.

    ``non_blocking=True`` lets the model keep talking while the tool runs; its result is then
    delivered according to ``scheduling``. ``timeout_s`` overrides the agent's default.
    """
    def wrap(f: Callable[..., Any]) -> Tool:
        return Tool.from_function(f, name=name, description=description,
                                  non_blocking=non_blocking, scheduling=scheduling,
                                  timeout_s=timeout_s)

    return wrap(fn) if fn is not None else wrap


# -- built-in call control ---------------------------------------------------------------


async def _end_call(reason: str, ctx: CallContext) -> dict[str, Any]:
    """End the phone call. Say goodbye first; call this only when the caller is done.

    Args:
        reason: Why the call is ending, in a few words (for the call log).
    """
    await ctx.end_call(reason)
    # Worded so the model does not start a new reply the hang-up would cut off.
    return {"result": "Hanging up after your last words. Say nothing more."}


async def _send_dtmf(digits: str, ctx: CallContext) -> dict[str, Any]:
    """Press keys on the phone's keypad: their touch tones play to the other end of the call.
    Use it when an automated menu asks you to press or enter something (an option, an
    extension, an account number followed by #). Let the menu finish speaking first; it
    returns once the keys have been heard.

    Args:
        digits: The keys, in order: 0-9, * and #, (rarely) A-D; a comma waits half a second.
    """
    await ctx.send_dtmf(digits)
    # Not the digits themselves: this answer goes on the call record, an account number too.
    pressed = sum(1 for k in dtmf.parse(digits) if k not in dtmf.PAUSES)
    return {"result": f"Pressed {pressed} key{'s' if pressed != 1 else ''}; they were heard. "
                      f"Listen to what the menu says next."}


def _dtmf_tool() -> Tool:
    # The longest press there can be, plus its wait behind the agent's words.
    timeout = dtmf.duration_ms("," * dtmf.MAX_KEYS) / 1000 + dtmf.KEYS_WAIT_S + 5
    built = Tool.from_function(_send_dtmf, name="send_dtmf", timeout_s=timeout)
    return dataclasses.replace(built, shown=_masked_digits)


def _masked_digits(args: Mapping[str, Any]) -> Mapping[str, Any]:
    digits = args.get("digits")
    return {**args, "digits": dtmf.mask(digits)} if isinstance(digits, str) else args


def _transfer_tool(agent: Agent, *, warm: bool = False) -> Tool:
    """``transfer_call`` (cold: the carrier connects the caller), or ``warm_transfer`` (the
    agent holds the caller, briefs the person, then joins them)."""
    targets = dict(agent.transfer_targets)
    names = ", ".join(targets)

    def destination(to: str | None) -> str | None:
        # The model may only pick a destination the operator configured: a number the caller
        # dictates must never be dialled (toll fraud).
        if to is not None and to not in targets and to not in targets.values() \
                and to != agent.transfer_to:
            raise ToolError(f"cannot transfer to {to!r}; destinations: {names or 'default'}")
        return targets.get(to, to) if to else None

    async def transfer_call(ctx: CallContext, to: str | None = None) -> dict[str, Any]:
        await ctx.transfer_call(destination(to))
        return {"result": "Transferring the caller now."}

    async def warm_transfer(ctx: CallContext, summary: str,
                            to: str | None = None) -> dict[str, Any]:
        await ctx.warm_transfer(summary, destination(to))
        return {"result": "Calling them now. Tell the caller, in one sentence, that you are "
                          "putting them on hold to fetch someone; then say nothing more."}

    param = (f"Which line: one of {names}. Omit for the main line." if targets
             else "Leave out: the main line is used.")
    if warm:
        fn: Callable[..., Any] = warm_transfer
        fn.__doc__ = ("Hand the caller to a human, briefing them first: the caller waits on "
                      "hold while you call the person and tell them who is calling and why; "
                      "if nobody answers, the caller comes back to you.\n\nArgs:\n"
                      "    summary: Who is calling and what they need, in one or two "
                      f"sentences, for the person taking over.\n    to: {param}\n")
    else:
        fn = transfer_call
        fn.__doc__ = ("Transfer the caller to a human. Tell the caller you are transferring "
                      f"them first.\n\nArgs:\n    to: {param}\n")
    built = Tool.from_function(fn)
    if not targets or built.parameters is None:
        return built
    schema = json.loads(json.dumps(built.parameters))
    schema["properties"]["to"]["enum"] = list(targets)
    return dataclasses.replace(built, parameters=schema)


# -- the agent -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Agent:
    """One phone agent: persona, voice, tools and which call controls the model may use.

    ``tools`` takes :class:`Tool` objects or plain functions (wrapped with :func:`tool`).
    ``call_control`` opts into the built-ins ``"end_call"`` (hang up), ``"transfer_call"``
    (to ``transfer_to``, or one of the named ``transfer_targets`` such as
    ``{"billing": "+15550100"}``), ``"warm_transfer"`` (the same destinations, briefed first:
    see :mod:`gateway.handover`) and ``"send_dtmf"`` (press keys: their tones play in the
    call's audio, so an agent calling out can get through a menu on any carrier).
    ``greeting`` is what the agent says when the call connects; without it the agent waits
    for the caller to speak. ``turn_taking`` says who decides when the caller has started
    and finished speaking (:class:`gateway.turns.TurnTaking`: the Live API's detection,
    tuned, or the gateway's own with ``mode="local"``).
    """

    name: str
    instructions: str
    voice: str = "Kore"
    language: str = "en-US"
    greeting: str | None = None
    tools: Sequence[Tool | Callable[..., Any]] = ()
    call_control: Sequence[str] = ()
    tool_timeout_s: float = 10.0
    transfer_to: str | None = None
    transfer_targets: Mapping[str, str] = field(default_factory=dict)
    record: bool = False  # save a stereo WAV of each call (needs VOICEGW_RECORDINGS_DIR)
    turn_taking: TurnTaking = field(default_factory=TurnTaking)
    # Seconds without reply audio, once one is owed, before the gateway steps in (nudge,
    # resume, apology; see gateway.stall); None: the gateway's setting; 0: never.
    stall_timeout_s: float | None = None
    # Cleaning of the caller's audio; None: the gateway's setting (VOICEGW_ECHO_CANCELLATION,
    # VOICEGW_NOISE_SUPPRESSION).
    echo_cancellation: bool | None = None
    noise_suppression: bool | None = None
    _by_name: Mapping[str, Tool] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not _AGENT_NAME.match(self.name):
            raise ToolDefinitionError(f"agent name {self.name!r}: use letters, digits, _ "
                                      f"and - (it appears in URLs)")
        if not self.tool_timeout_s > 0:
            raise ToolDefinitionError(f"agent {self.name!r}: tool_timeout_s must be > 0")
        if not isinstance(self.turn_taking, TurnTaking):
            raise ToolDefinitionError(f"agent {self.name!r}: turn_taking must be a "
                                      f"TurnTaking(...), not {type(self.turn_taking).__name__}")
        if self.stall_timeout_s is not None and not self.stall_timeout_s >= 0:
            raise ToolDefinitionError(f"agent {self.name!r}: stall_timeout_s must be >= 0")
        unknown = set(self.call_control) - set(BUILTINS)
        if unknown:
            raise ToolDefinitionError(f"agent {self.name!r}: unknown call_control "
                                      f"{sorted(unknown)}; choose from {list(BUILTINS)}")
        tools = tuple(t if isinstance(t, Tool) else Tool.from_function(t) for t in self.tools)
        builtins = []
        if "end_call" in self.call_control:
            builtins.append(Tool.from_function(_end_call, name="end_call"))
        if "transfer_call" in self.call_control:
            builtins.append(_transfer_tool(self))
        if "warm_transfer" in self.call_control:
            builtins.append(_transfer_tool(self, warm=True))
        if "send_dtmf" in self.call_control:
            builtins.append(_dtmf_tool())
        by_name: dict[str, Tool] = {}
        for t in (*tools, *builtins):
            if t.name in by_name:
                raise ToolDefinitionError(f"agent {self.name!r}: two tools named {t.name!r}")
            by_name[t.name] = t
        object.__setattr__(self, "tools", tools)
        object.__setattr__(self, "call_control", tuple(self.call_control))
        object.__setattr__(self, "transfer_targets", dict(self.transfer_targets))
        object.__setattr__(self, "_by_name", by_name)

    @property
    def all_tools(self) -> Mapping[str, Tool]:
        """Every tool the model can call, by name, the opted-in built-ins included."""
        return self._by_name

    def declarations(self) -> list[dict[str, Any]]:
        """The ``functionDeclarations`` for the session's setup."""
        return [t.declaration() for t in self._by_name.values()]

    def session_config(self, base: SessionConfig,
                       withheld: frozenset[str] = frozenset()) -> SessionConfig:
        """``base`` (the server's model and audio settings) with this agent's persona and
        tools, less those ``withheld`` (a built-in the call's carrier cannot carry out)."""
        declarations = [d for d in self.declarations() if d["name"] not in withheld]
        return dataclasses.replace(base, voice=self.voice, language=self.language,
                                   system_instruction=self.instructions,
                                   tools=tuple(declarations),
                                   vad=self.turn_taking.vad_config())

    def greeting_prompt(self) -> str | None:
        """Text to send the model once the session is ready, so it speaks first."""
        if not self.greeting:
            return None
        return (f"The phone call has just connected. Greet the caller now by saying: "
                f"{self.greeting}")
