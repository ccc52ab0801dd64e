"""The per-call tool dispatcher: one task per call, answers as soon as each tool returns."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest
from structlog.testing import capture_logs

from gateway import live
from gateway.agent import Agent, CallContext, Scheduling, ToolError, tool
from gateway.tools import ToolDispatcher

SAFETY_S = 5.0  # only bounds a broken test; nothing waits for it to pass


def spawn(coro: Any, name: str) -> asyncio.Task[None]:
    """What the call's task group does for the dispatcher (these tests have no call)."""
    return asyncio.create_task(coro, name=name)


class Outbox:
    """The Live session's send(), recording each toolResponse as parsed JSON."""

    def __init__(self, fail: bool = False) -> None:
        self.messages: list[dict[str, Any]] = []
        self.fail = fail
        self._changed = asyncio.Condition()

    async def send(self, text: str) -> None:
        if self.fail:
            raise ConnectionError("session closed")
        self.messages.append(json.loads(text))
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, count: int) -> list[dict[str, Any]]:
        async with asyncio.timeout(SAFETY_S), self._changed:
            await self._changed.wait_for(lambda: len(self.messages) >= count)
        return self.messages

    def responses(self) -> list[dict[str, Any]]:
        out = []
        for m in self.messages:
            assert set(m) == {"toolResponse"}
            items = m["toolResponse"]["functionResponses"]
            assert len(items) == 1  # one message per finished call
            out.append(items[0])
        return out


def call(*calls: tuple[str, str, dict[str, Any]]) -> live.ToolCall:
    return live.ToolCall(tuple(live.FunctionCall(i, n, a) for i, n, a in calls))


class Gates:
    """Events a test uses to hold and observe tools."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()


def make_agent(g: Gates) -> Agent:
    @tool
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    @tool(non_blocking=True, scheduling=Scheduling.INTERRUPT)
    async def background(q: str) -> dict[str, str]:
        """Slow search the model need not wait for."""
        return {"found": q}

    @tool
    async def held(tag: str) -> str:
        """Waits for the test to release it."""
        g.started.set()
        try:
            await g.release.wait()
        except asyncio.CancelledError:
            g.cancelled.set()
            raise
        return tag

    @tool
    def boom() -> None:
        """Always fails."""
        raise RuntimeError("database is down")

    @tool
    def refuse() -> None:
        """Fails in words for the model."""
        raise ToolError("no table at 8")

    @tool(timeout_s=0.05)
    async def hang() -> None:
        """Never answers."""
        await asyncio.Event().wait()

    @tool
    async def slow_api() -> None:
        """Its own upstream call times out."""
        raise TimeoutError("upstream took too long")

    @tool
    async def stubborn(tag: str) -> str:
        """Ignores cancellation and answers anyway."""
        g.started.set()
        try:
            await g.release.wait()
        except asyncio.CancelledError:
            g.cancelled.set()
        return tag

    @tool
    def junk() -> object:
        """Returns something that is not JSON."""
        return {"x": {1, 2}}

    @tool
    def whoami(ctx: CallContext) -> str | None:
        """Who is calling."""
        return ctx.caller

    return Agent(name="t", instructions="x", tools=[add, background, held, boom, refuse, hang,
                                                    slow_api, stubborn, junk, whoami])


@pytest.fixture
def gates() -> Gates:
    return Gates()


@pytest.fixture
def outbox() -> Outbox:
    return Outbox()


@pytest.fixture
async def dispatcher(gates: Gates, outbox: Outbox) -> Any:
    d = ToolDispatcher(make_agent(gates), CallContext(caller="+15550001"), outbox.send, spawn)
    yield d
    await d.aclose()


async def test_blocking_tool_answers_with_its_result(dispatcher: ToolDispatcher,
                                                     outbox: Outbox) -> None:
    dispatcher.handle_tool_call(call(("c1", "add", {"a": 2, "b": 3})))
    await outbox.wait_for(1)
    assert outbox.responses() == [{"id": "c1", "name": "add", "response": {"result": 5}}]
    [record] = dispatcher.records
    assert (record.id, record.name, record.args, record.result, record.error,
            record.cancelled) == ("c1", "add", {"a": 2, "b": 3}, {"result": 5}, None, False)
    assert record.latency_s >= 0
    assert dispatcher.stats.start_delay.count == 1
    assert dispatcher.stats.reply_delay.count == 1


async def test_non_blocking_tool_answer_carries_its_scheduling(dispatcher: ToolDispatcher,
                                                               outbox: Outbox) -> None:
    dispatcher.handle_tool_call(call(("c1", "background", {"q": "boots"})))
    await outbox.wait_for(1)
    assert outbox.responses() == [{"id": "c1", "name": "background",
                                   "response": {"found": "boots"}, "scheduling": "INTERRUPT"}]


@pytest.mark.parametrize(("name", "args", "expected"), [
    ("boom", {}, "boom failed: RuntimeError: database is down"),
    ("refuse", {}, "no table at 8"),
    ("hang", {}, "hang did not answer within 0.05 s"),
    ("slow_api", {}, "slow_api failed: TimeoutError: upstream took too long"),
    ("add", {"a": "two", "b": 3}, "invalid arguments: a:"),
    ("junk", {}, "not JSON-serialisable"),
    ("nope", {}, "no tool named 'nope' (available: add, background"),
])
async def test_every_failure_becomes_an_error_response(dispatcher: ToolDispatcher,
                                                       outbox: Outbox, name: str,
                                                       args: dict[str, Any],
                                                       expected: str) -> None:
    dispatcher.handle_tool_call(call(("c9", name, args)))
    await outbox.wait_for(1)
    [response] = outbox.responses()
    assert (response["id"], response["name"]) == ("c9", name)
    assert set(response["response"]) == {"error"}
    assert expected in response["response"]["error"]
    assert dispatcher.records[0].error == response["response"]["error"]
    assert dispatcher.stats.errors == 1


async def test_a_tool_that_swallows_cancellation_is_still_not_answered(
        dispatcher: ToolDispatcher, outbox: Outbox, gates: Gates) -> None:
    dispatcher.handle_tool_call(call(("c1", "stubborn", {"tag": "x"})))
    async with asyncio.timeout(SAFETY_S):
        await gates.started.wait()
    dispatcher.handle_cancellation(live.ToolCallCancellation(("c1",)))
    await dispatcher.wait_idle()
    assert gates.cancelled.is_set()
    assert outbox.messages == []
    assert dispatcher.records[0].cancelled


async def test_timeout_is_counted(dispatcher: ToolDispatcher, outbox: Outbox) -> None:
    dispatcher.handle_tool_call(call(("c1", "hang", {})))
    await outbox.wait_for(1)
    assert dispatcher.stats.timeouts == 1
    assert not dispatcher.running


async def test_a_slow_tool_does_not_hold_up_another(dispatcher: ToolDispatcher,
                                                    outbox: Outbox, gates: Gates) -> None:
    dispatcher.handle_tool_call(call(("slow", "held", {"tag": "late"}),
                                     ("fast", "add", {"a": 1, "b": 1})))
    await outbox.wait_for(1)
    assert [r["id"] for r in outbox.responses()] == ["fast"]
    assert dispatcher.running == {"slow"}
    gates.release.set()
    await outbox.wait_for(2)
    assert [r["id"] for r in outbox.responses()] == ["fast", "slow"]
    assert outbox.responses()[1]["response"] == {"result": "late"}


async def test_cancellation_stops_exactly_the_named_call_and_sends_nothing_for_it(
        gates: Gates, outbox: Outbox) -> None:
    other = Gates()
    agent = make_agent(gates)
    second = make_agent(other).all_tools["held"]
    agent = Agent(name="t", instructions="x",
                  tools=[*agent.tools, tool(name="held2")(second.fn)])
    dispatcher = ToolDispatcher(agent, CallContext(), outbox.send, spawn)
    dispatcher.handle_tool_call(call(("a", "held", {"tag": "A"}), ("b", "held2", {"tag": "B"})))
    async with asyncio.timeout(SAFETY_S):
        await gates.started.wait()
        await other.started.wait()
    dispatcher.handle_cancellation(live.ToolCallCancellation(("a", "not-running")))
    async with asyncio.timeout(SAFETY_S):
        await gates.cancelled.wait()
    assert not other.cancelled.is_set()
    other.release.set()
    await outbox.wait_for(1)
    await dispatcher.aclose()
    assert [r["id"] for r in outbox.responses()] == ["b"]  # nothing ever sent for "a"
    by_id = {r.id: r for r in dispatcher.records}
    assert by_id["a"].cancelled
    assert by_id["a"].outcome == "cancelled"
    assert by_id["b"].result == {"result": "B"}
    assert dispatcher.stats.cancelled == 1


async def test_sync_tool_blocking_its_thread_leaves_the_loop_running(outbox: Outbox) -> None:
    entered, release = threading.Event(), threading.Event()

    @tool
    def blocking() -> bool:
        """Blocks a worker thread."""
        entered.set()
        return release.wait(timeout=10)

    agent = Agent(name="t", instructions="x", tools=[blocking])
    dispatcher = ToolDispatcher(agent, CallContext(), outbox.send, spawn)
    dispatcher.handle_tool_call(call(("c1", "blocking", {})))
    # The loop keeps running while the tool holds its thread: this await returns once the
    # tool is inside its wait. Had the tool run on the loop, it would have blocked here for
    # its whole 10 s and answered False.
    assert await asyncio.to_thread(entered.wait, SAFETY_S)
    assert dispatcher.running == {"c1"}
    release.set()
    await outbox.wait_for(1)
    assert outbox.responses()[0]["response"] == {"result": True}
    await dispatcher.aclose()


async def test_context_is_passed_to_tools(dispatcher: ToolDispatcher, outbox: Outbox) -> None:
    dispatcher.handle_tool_call(call(("c1", "whoami", {})))
    await outbox.wait_for(1)
    assert outbox.responses()[0]["response"] == {"result": "+15550001"}


async def test_aclose_cancels_running_tools_and_answers_nothing(dispatcher: ToolDispatcher,
                                                                outbox: Outbox,
                                                                gates: Gates) -> None:
    dispatcher.handle_tool_call(call(("c1", "held", {"tag": "x"})))
    async with asyncio.timeout(SAFETY_S):
        await gates.started.wait()
    await dispatcher.aclose()
    assert gates.cancelled.is_set()
    assert not dispatcher.running
    assert outbox.messages == []
    assert dispatcher.records[0].cancelled


async def test_a_dead_session_does_not_raise_into_the_bridge(gates: Gates) -> None:
    dead = Outbox(fail=True)
    dispatcher = ToolDispatcher(make_agent(gates), CallContext(), dead.send, spawn)
    with capture_logs() as logs:
        dispatcher.handle_tool_call(call(("c1", "add", {"a": 1, "b": 2})))
        async with asyncio.timeout(SAFETY_S):
            await dispatcher.wait_idle()
    assert any(e["event"] == "tool_response_not_sent" for e in logs)
    assert dispatcher.records[0].result == {"result": 3}


async def test_every_call_is_logged_with_outcome_and_latency(dispatcher: ToolDispatcher,
                                                             outbox: Outbox) -> None:
    with capture_logs() as logs:
        dispatcher.handle_tool_call(call(("c1", "add", {"a": 1, "b": 2}),
                                         ("c2", "refuse", {})))
        await outbox.wait_for(2)
    entries = {e["id"]: e for e in logs if e["event"] == "tool_call"}
    assert entries["c1"]["tool"] == "add"
    assert entries["c1"]["args"] == {"a": 1, "b": 2}
    assert entries["c1"]["outcome"] == "ok"
    assert entries["c2"]["outcome"] == "error"
    assert entries["c2"]["error"] == "no table at 8"
    assert all(isinstance(e["latency_ms"], float) for e in entries.values())


async def test_a_reused_id_of_a_running_call_is_not_run_twice(dispatcher: ToolDispatcher,
                                                               outbox: Outbox,
                                                               gates: Gates) -> None:
    dispatcher.handle_tool_call(call(("c1", "held", {"tag": "first"})))
    dispatcher.handle_tool_call(call(("c1", "held", {"tag": "second"})))
    assert dispatcher.stats.calls == 1
    gates.release.set()
    await dispatcher.wait_idle()
    assert [r["response"] for r in outbox.responses()] == [{"result": "first"}]


async def test_records_are_bounded(gates: Gates, outbox: Outbox) -> None:
    dispatcher = ToolDispatcher(make_agent(gates), CallContext(), outbox.send, spawn, max_records=2)
    dispatcher.handle_tool_call(call(*((f"c{i}", "add", {"a": i, "b": 0}) for i in range(3))))
    await outbox.wait_for(3)
    assert [r.id for r in dispatcher.records] == ["c1", "c2"]
    assert dispatcher.stats.calls == 3
