"""The bundled agents' tools, run for real against temporary SQLite databases."""

from __future__ import annotations

import ast
import asyncio
import datetime as dt
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from gateway import live
from gateway.agent import Agent, CallContext, ToolArgumentsError, ToolError
from gateway.tools import ToolDispatcher
from tests.test_agent import assert_valid_declaration
from voicegw_agents import front_desk, support

BUNDLED = (front_desk.agent, support.agent)


@pytest.fixture(autouse=True)
def databases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VOICEGW_FRONT_DESK_DB", str(tmp_path / "front_desk.sqlite3"))
    monkeypatch.setenv("VOICEGW_SUPPORT_DB", str(tmp_path / "support.sqlite3"))
    return tmp_path


def next_open_day(after: int = 1) -> str:
    day = dt.date.today() + dt.timedelta(days=after)
    while day.weekday() in front_desk.CLOSED_WEEKDAYS:
        day += dt.timedelta(days=1)
    return day.isoformat()


async def run(agent: Agent, tool_name: str, ctx: CallContext | None = None, /,
              **args: Any) -> dict[str, Any]:
    return await agent.all_tools[tool_name].invoke(args,
                                                   ctx or CallContext(caller="+15550001"))


@pytest.mark.parametrize("agent", BUNDLED, ids=lambda a: a.name)
def test_declarations_are_valid_for_the_live_api(agent: Agent) -> None:
    decls = agent.declarations()
    assert decls
    for decl in decls:
        assert_valid_declaration(decl)
    assert agent.greeting
    assert "end_call" in agent.all_tools


@pytest.mark.parametrize("module", [front_desk, support], ids=lambda m: m.__name__)
def test_each_agent_is_one_file_importing_only_the_plugin_api(module: Any) -> None:
    tree = ast.parse(Path(module.__file__).read_text())
    gateway_imports = {node.module for node in ast.walk(tree)
                       if isinstance(node, ast.ImportFrom) and node.module
                       and node.module.split(".")[0] in ("gateway", "voicegw_agents")}
    assert gateway_imports == {"gateway.agent"}


# -- front desk ------------------------------------------------------------------------------


async def test_booking_checks_real_capacity_and_refuses_when_full(databases: Path) -> None:
    day = next_open_day()
    agent = front_desk.agent
    assert await run(agent, "check_availability", date=day, time="19:00", party_size=8) == {
        "available": True}
    booked = await run(agent, "book_table", name="Jane", date=day, time="19:00", party_size=8)
    assert booked["booking_id"].startswith("FD-")
    assert (booked["date"], booked["time"], booked["party_size"]) == (day, "19:00", 8)
    # The only 8-seat table is taken for the whole sitting, so overlapping times are full...
    overlap = await run(agent, "check_availability", date=day, time="20:30", party_size=8)
    assert overlap["available"] is False
    assert "21:00" in overlap["alternatives"]  # ...and the model is offered real alternatives
    with pytest.raises(ToolError, match="no table for 8 at 20:30"):
        await run(agent, "book_table", name="Bob", date=day, time="20:30", party_size=8)
    # Once the sitting is over the table is free again.
    assert (await run(agent, "check_availability", date=day, time="21:00",
                      party_size=8))["available"]
    # The phone defaults to the number calling.
    with sqlite3.connect(databases / "front_desk.sqlite3") as conn:
        rows = conn.execute("SELECT name, phone, table_seats FROM bookings").fetchall()
    assert rows == [("Jane", "+15550001", 8)]


async def test_small_parties_fill_every_table_before_refusing() -> None:
    day = next_open_day()
    total = sum(front_desk.TABLES.values())
    for i in range(total):
        await run(front_desk.agent, "book_table", name=f"Guest {i}", date=day, time="18:00",
                  party_size=2)
    with pytest.raises(ToolError, match="no table for 2"):
        await run(front_desk.agent, "book_table", name="One too many", date=day, time="18:00",
                  party_size=2)


async def test_change_and_cancel_a_booking() -> None:
    day, later = next_open_day(), next_open_day(8)
    agent = front_desk.agent
    big = await run(agent, "book_table", name="Jane", date=day, time="19:00", party_size=8)
    small = await run(agent, "book_table", name="Bob", date=day, time="18:00", party_size=4)
    moved = await run(agent, "change_booking", booking_id=small["booking_id"].lower(),
                      date=later, time="20:15")
    assert (moved["date"], moved["time"], moved["party_size"]) == (later, "20:15", 4)
    # Growing Bob's party to 8 at Jane's time needs Jane's table: refused, booking unchanged.
    with pytest.raises(ToolError, match="unchanged"):
        await run(agent, "change_booking", booking_id=small["booking_id"], date=day,
                  time="19:00", party_size=8)
    cancelled = await run(agent, "cancel_booking", booking_id=big["booking_id"])
    assert cancelled == {"cancelled": big["booking_id"], "date": day, "time": "19:00"}
    # Jane's table is free now, so the same change goes through.
    changed = await run(agent, "change_booking", booking_id=small["booking_id"], date=day,
                        time="19:00", party_size=8)
    assert changed["party_size"] == 8
    with pytest.raises(ToolError, match="no booking"):
        await run(agent, "cancel_booking", booking_id=big["booking_id"])


@pytest.mark.parametrize(("args", "message"), [
    ({"time": "16:00"}, "we seat guests from 17:00"),
    ({"time": "19:10"}, "quarter hour"),
    ({"time": "7pm"}, "not a time"),
    ({"party_size": 9}, "largest table seats 8"),
    ({"date": (dt.date.today() - dt.timedelta(days=1)).isoformat()}, "in the past"),
])
async def test_front_desk_explains_impossible_requests(args: dict[str, Any],
                                                       message: str) -> None:
    request = {"date": next_open_day(), "time": "19:00", "party_size": 2, **args}
    with pytest.raises(ToolError, match=message):
        await run(front_desk.agent, "check_availability", **request)


async def test_closed_day_and_bad_dates() -> None:
    monday = dt.date.today() + dt.timedelta(days=7 - dt.date.today().weekday())
    with pytest.raises(ToolError, match="closed on Mondays"):
        await run(front_desk.agent, "check_availability", date=monday.isoformat(),
                  time="19:00", party_size=2)
    with pytest.raises(ToolArgumentsError, match="date"):
        await run(front_desk.agent, "check_availability", date="next friday", time="19:00",
                  party_size=2)


async def test_current_date_is_today() -> None:
    out = await run(front_desk.agent, "current_date")
    assert out["date"] == dt.date.today().isoformat()


async def test_a_full_slot_reaches_the_model_as_an_error_through_the_dispatcher() -> None:
    day = next_open_day()
    sent: list[dict[str, Any]] = []

    async def send(text: str) -> None:
        sent.append(json.loads(text))

    args = {"name": "Jane", "date": day, "time": "19:00", "party_size": 8}
    async with asyncio.TaskGroup() as tg:  # the call's own group, as in the bridge
        dispatcher = ToolDispatcher(front_desk.agent, CallContext(caller="+15550001"), send,
                                    lambda coro, name: tg.create_task(coro, name=name))
        dispatcher.handle_tool_call(live.ToolCall((live.FunctionCall("c1", "book_table",
                                                                     args),)))
        await dispatcher.wait_idle()
        dispatcher.handle_tool_call(live.ToolCall((live.FunctionCall("c2", "book_table",
                                                                     args),)))
        await dispatcher.wait_idle()
    first, second = (m["toolResponse"]["functionResponses"][0]["response"] for m in sent)
    assert first["booking_id"].startswith("FD-")
    assert second["error"].startswith("no table for 8 at 19:00")


# -- support ---------------------------------------------------------------------------------


async def test_order_lookup_found_and_not_found() -> None:
    found = await run(support.agent, "lookup_order", order_id="1 0 0 4 2")
    assert found["found"] is True
    assert (found["status"], found["carrier"]) == ("shipped", "DHL")
    assert found["estimated_delivery"] == "2031-05-14"
    missing = await run(support.agent, "lookup_order", order_id="99999")
    assert (missing["found"], missing["order_id"]) == (False, "99999")
    with pytest.raises(ToolError, match="digits only"):
        await run(support.agent, "lookup_order", order_id="abc")


async def test_keypad_entry_is_read_up_to_the_hash_key() -> None:
    ctx = CallContext()
    assert (await run(support.agent, "read_keypad", ctx))["digits"] == ""
    ctx.dtmf.extend("10043#")
    assert await run(support.agent, "read_keypad", ctx) == {"digits": "10043"}
    ctx.dtmf.extend("77")
    assert await run(support.agent, "read_keypad", ctx) == {"digits": "77"}


class Control:
    def __init__(self) -> None:
        self.transferred: list[str] = []

    async def end_call(self, reason: str) -> None:
        raise AssertionError("not expected")

    async def transfer_call(self, to: str) -> None:
        self.transferred.append(to)


async def test_support_transfers_to_the_configured_human_line() -> None:
    control = Control()
    ctx = CallContext(transfer_to="+15550123", control=control)
    await run(support.agent, "transfer_call", ctx)
    assert control.transferred == ["+15550123"]
    unconfigured = CallContext(control=control)  # VOICEGW_SUPPORT_TRANSFER_TO unset
    with pytest.raises(ToolError, match="no transfer destination"):
        await run(support.agent, "transfer_call", unconfigured)
