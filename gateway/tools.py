"""Runs the model's tool calls for one call, each in its own task.

The Live service sends ``toolCall`` with one or more function calls and waits for a
``toolResponse`` per call id. Each function call runs in its own task, so a slow lookup never
holds up the audio or the other calls, and each answer is sent the moment its tool returns.
Everything a tool can do wrong (raise, hang, return junk, be called with bad or unknown
arguments) becomes ``{"error": "..."}`` for the model, which can then apologise or retry;
nothing is raised into the bridge. ``toolCallCancellation`` (the caller talked over a
non-blocking call) cancels exactly the named calls, and the service expects no answer for them.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import structlog

from gateway import live
from gateway.agent import Agent, CallContext, Tool, ToolError
from gateway.stats import Histogram

Send = Callable[[str], Awaitable[None]]
# Starts a task in the call's own task group, so a tool never outlives its call.
Spawn = Callable[[Coroutine[Any, Any, None], str], "asyncio.Task[None]"]
MAX_RECORDS: Final = 200
_ERROR_CHARS: Final = 500
_LOG_ARGS_CHARS: Final = 1000


@dataclass(frozen=True, slots=True)
class ToolRecord:
    """One function call, for the call record."""

    id: str
    name: str
    args: Mapping[str, Any] = field(hash=False)
    result: Mapping[str, Any] | None = field(hash=False)  # None when cancelled
    error: str | None
    latency_s: float  # tool start -> tool return (or cancellation)
    cancelled: bool = False

    @property
    def outcome(self) -> str:
        if self.cancelled:
            return "cancelled"
        return "error" if self.error is not None else "ok"


@dataclass(slots=True)
class ToolStats:
    calls: int = 0
    errors: int = 0
    timeouts: int = 0
    cancelled: int = 0
    start_delay: Histogram = field(default_factory=Histogram)  # toolCall arrival -> tool start
    reply_delay: Histogram = field(default_factory=Histogram)  # tool return -> toolResponse sent
    run_time: Histogram = field(default_factory=Histogram)  # the tool itself


class ToolWatch(Protocol):
    """Told of each function call as it starts and as it finishes (the live-call monitor)."""

    def tool_started(self, call: live.FunctionCall) -> None: ...
    def tool_finished(self, record: ToolRecord) -> None: ...


class ToolDispatcher:
    """One per call: owns the call's running tool tasks.

    ``send`` writes one text message to the Live session; ``spawn`` starts a task in the
    call's task group, so tools end with the call at the latest. :meth:`aclose` cancels what
    is still running. ``responded`` is told after each answer is sent whether the model was
    waiting for it (False for a ``NON_BLOCKING`` function's). ``watch`` is told each call as
    it starts and finishes.
    """

    def __init__(self, agent: Agent, ctx: CallContext, send: Send, spawn: Spawn, *,
                 log: Any = None, max_records: int = MAX_RECORDS,
                 clock: Callable[[], float] = time.perf_counter,
                 responded: Callable[[bool], None] | None = None,
                 watch: ToolWatch | None = None) -> None:
        self.agent = agent
        self.ctx = ctx
        self._send = send
        self._spawn = spawn
        self.log = log if log is not None else structlog.get_logger("gateway.tools")
        self._clock = clock
        self._responded = responded  # told after each answer sent: blocking or not
        self._watch = watch
        self._running: dict[str, asyncio.Task[None]] = {}
        self._cancelled: set[str] = set()
        self._records: deque[ToolRecord] = deque(maxlen=max_records)
        self.stats = ToolStats()

    @property
    def running(self) -> frozenset[str]:
        """Ids of the calls whose tools have not returned yet."""
        return frozenset(self._running)

    @property
    def records(self) -> list[ToolRecord]:
        """The most recent calls (at most ``max_records``), oldest first."""
        return list(self._records)

    def handle_tool_call(self, event: live.ToolCall, received: float | None = None) -> None:
        """Start one task per function call; returns at once. ``received``: perf_counter time
        the message arrived (for the dispatch-overhead histogram)."""
        arrived = self._clock() if received is None else received
        for call in event.calls:
            if call.id in self._running:
                # The answer would be ambiguous: the service matches answers by id.
                self.log.warning("tool_call_duplicate_id", id=call.id, tool=call.name)
                continue
            task = self._spawn(self._run(call, arrived), f"tool:{call.name}")
            self._running[call.id] = task
            self.stats.calls += 1

    def handle_cancellation(self, event: live.ToolCallCancellation) -> None:
        """Cancel exactly the named calls still running; none of them will be answered."""
        for call_id in event.ids:
            task = self._running.get(call_id)
            if task is None:
                self.log.debug("tool_cancel_not_running", id=call_id)
                continue
            self._cancelled.add(call_id)
            task.cancel()

    async def wait_idle(self) -> None:
        """Wait until every tool started so far has finished and been answered."""
        while self._running:
            await asyncio.wait(list(self._running.values()))

    async def aclose(self) -> None:
        """Cancel every tool still running (the call is over) and wait for them to stop."""
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, call: live.FunctionCall, arrived: float) -> None:
        started = self._clock()
        self.stats.start_delay.observe(started - arrived)
        if self._watch is not None:
            self._watch.tool_started(call)
        tool = self.agent.all_tools.get(call.name)
        result: dict[str, Any] | None = None
        error: str | None = None
        try:
            result = await self._invoke(tool, call)
            if call.id in self._cancelled:  # the tool swallowed our cancellation
                raise asyncio.CancelledError
        except asyncio.CancelledError:
            self._finish(call, None, "cancelled", started, cancelled=True)
            if call.id not in self._cancelled:
                raise  # the call is ending: let aclose() see a cancelled task
            return  # the model withdrew the call: it expects no answer
        except _Timeout as exc:
            self.stats.timeouts += 1
            error = f"{call.name} did not answer within {exc.seconds:g} s"
        except ToolError as exc:
            error = str(exc)
        except Exception as exc:
            error = f"{call.name} failed: {type(exc).__name__}: {exc}"
            self.log.warning("tool_exception", id=call.id, tool=call.name, exc_info=exc)
        finally:
            self._running.pop(call.id, None)
            self._cancelled.discard(call.id)
        # The answer is committed now: a cancellation arriving from here on is too late.
        response = {"error": error[:_ERROR_CHARS]} if error is not None else result
        assert response is not None
        self._finish(call, result, error, started)
        await self._respond(call, tool, response)

    async def _invoke(self, tool: Tool | None, call: live.FunctionCall) -> dict[str, Any]:
        if tool is None:
            known = ", ".join(self.agent.all_tools) or "none"
            raise ToolError(f"no tool named {call.name!r} (available: {known})")
        seconds = _timeout(tool, self.agent)
        try:
            async with asyncio.timeout(seconds) as scope:
                return await tool.invoke(call.args, self.ctx)
        except TimeoutError:
            if scope.expired():
                raise _Timeout(seconds) from None
            raise  # the tool's own timeout (a slow API it calls): an ordinary failure

    def _finish(self, call: live.FunctionCall, result: dict[str, Any] | None,
                error: str | None, started: float, *, cancelled: bool = False) -> None:
        latency = self._clock() - started
        self.stats.run_time.observe(latency)
        if cancelled:
            self.stats.cancelled += 1
            error = None
        elif error is not None:
            self.stats.errors += 1
        tool = self.agent.all_tools.get(call.name)
        args = dict(call.args if tool is None else tool.shown_args(call.args))
        record = ToolRecord(call.id, call.name, args, result, error, latency, cancelled)
        self._records.append(record)
        if self._watch is not None:
            self._watch.tool_finished(record)
        self.log.info("tool_call", id=call.id, tool=call.name, args=_loggable(args),
                      outcome=record.outcome, error=error, latency_ms=round(latency * 1000, 1))

    async def _respond(self, call: live.FunctionCall, tool: Tool | None,
                       response: Mapping[str, Any]) -> None:
        returned = self._clock()
        scheduling = str(tool.scheduling) if tool is not None and tool.non_blocking else None
        try:
            text = live.tool_response([live.FunctionResponse(call.id, call.name, response,
                                                             scheduling)])
        except ValueError as exc:  # belt and braces: Tool.invoke already checked the result
            text = live.tool_response([live.FunctionResponse(
                call.id, call.name, {"error": str(exc)[:_ERROR_CHARS]}, scheduling)])
        try:
            await self._send(text)
        except Exception as exc:  # the session is gone; the bridge is ending the call anyway
            self.log.warning("tool_response_not_sent", id=call.id, tool=call.name,
                             error=repr(exc))
            return
        self.stats.reply_delay.observe(self._clock() - returned)
        if self._responded is not None:
            self._responded(scheduling is None)


# Apart from TimeoutError: only our own deadline is a timeout; a tool's own is a failure.
class _Timeout(Exception):
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(f"timed out after {seconds:g} s")


def _timeout(tool: Tool | None, agent: Agent) -> float:
    if tool is not None and tool.timeout_s is not None:
        return tool.timeout_s
    return agent.tool_timeout_s


def _loggable(args: Mapping[str, Any]) -> Any:
    try:
        text = json.dumps(args, default=str)
    except (TypeError, ValueError):
        return repr(args)[:_LOG_ARGS_CHARS]
    return dict(args) if len(text) <= _LOG_ARGS_CHARS else text[:_LOG_ARGS_CHARS] + "..."
