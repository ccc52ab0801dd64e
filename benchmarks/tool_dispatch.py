"""Tool-dispatch overhead: toolCall arrival -> tool start, and tool return -> toolResponse sent.

Drives the gateway's ToolDispatcher with the Live core's own parsed events, for an async tool
and a sync tool (which runs in a worker thread), and prints the dispatcher's histograms.
Run: .venv/bin/python benchmarks/tool_dispatch.py
"""

from __future__ import annotations

import asyncio
import json
import time

import structlog

from gateway import live
from gateway.agent import Agent, CallContext, tool
from gateway.carriers import twilio
from gateway.carriers.core import Started
from gateway.tools import ToolDispatcher

CALLS = 2000


@tool
async def lookup_async(order_id: str) -> dict[str, str]:
    """Look up an order.

    Args:
        order_id: The order number.
    """
    return {"order": order_id, "status": "shipped"}


@tool
def lookup_sync(order_id: str) -> dict[str, str]:
    """Look up an order (blocking code, run off the event loop).

    Args:
        order_id: The order number.
    """
    return {"order": order_id, "status": "shipped"}


async def run(name: str) -> None:
    agent = Agent(name="bench", instructions="bench", tools=[lookup_async, lookup_sync])
    call = Started(call_id="CA" + "0" * 32, stream_id="MZ" + "0" * 32, caller=None,
                   callee=None, parameters={}, inbound=twilio.FORMAT, outbound=twilio.FORMAT)
    ctx = CallContext.for_call(agent, call, control=None)
    answered = asyncio.Event()
    count = 0

    async def send(_text: str) -> None:
        nonlocal count
        count += 1
        if count == CALLS:
            answered.set()

    dispatcher = ToolDispatcher(agent, ctx, send,
                                lambda coro, name: asyncio.create_task(coro, name=name),
                                log=structlog.get_logger("bench"))
    for i in range(CALLS):
        frame = json.dumps({"toolCall": {"functionCalls": [
            {"id": f"c{i}", "name": name, "args": {"order_id": str(10000 + i)}}]}})
        received = time.perf_counter()
        for event in live.parse_server_message(frame):
            assert isinstance(event, live.ToolCall)
            dispatcher.handle_tool_call(event, received)
        await dispatcher.wait_idle()
    await answered.wait()
    s = dispatcher.stats
    print(f"{name:13} start: {s.start_delay.summary().format()}")
    print(f"{'':13} reply: {s.reply_delay.summary().format()}")


def main() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    print(f"{CALLS} sequential tool calls each; times in ms")
    for name in ("lookup_async", "lookup_sync"):
        asyncio.run(run(name))


if __name__ == "__main__":
    main()
