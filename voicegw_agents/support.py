"""Customer support line for an online shop: order status, keypad entry, hand-off to a human.

A working example to copy. Orders live in SQLite (``VOICEGW_SUPPORT_DB``, default
``<tmp>/voicegw/support.sqlite3``), seeded with a few demo orders on first use. Callers can
say their order number or type it on the keypad. ``transfer_call`` connects them to the
number in ``VOICEGW_SUPPORT_TRANSFER_TO`` (read when the gateway starts); without it the
agent tells the caller no one is available.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

from gateway.agent import Agent, CallContext, Field, ToolError, tool

SHOP = "Northwind Outfitters"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    id        TEXT PRIMARY KEY,
    customer  TEXT NOT NULL,
    items     TEXT NOT NULL,
    status    TEXT NOT NULL,   -- processing | shipped | delivered | returned
    carrier   TEXT,
    eta       TEXT             -- ISO date, for orders on their way
);
"""
_SEED = [
    ("10041", "Jane Doe", "hiking boots, size 39", "delivered", "UPS", None),
    ("10042", "John Roe", "rain jacket (navy, M)", "shipped", "DHL", "2031-05-14"),
    ("10043", "Alex Smith", "2 wool socks, 1 beanie", "processing", None, None),
    ("10044", "Katherine Johnson", "trekking poles", "returned", "UPS", None),
]
OrderId = Annotated[str, Field(description="The 5-digit order number, digits only.")]


def db_path() -> Path:
    configured = os.environ.get("VOICEGW_SUPPORT_DB", "").strip()
    if configured:
        return Path(configured)
    return Path(tempfile.gettempdir()) / "voicegw" / "support.sqlite3"


@contextmanager
def _db() -> Iterator[sqlite3.Connection]:
    path = db_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=5.0)
    conn.row_factory = sqlite3.Row
    try:
        with conn:
            conn.executescript(_SCHEMA)
            conn.executemany("INSERT OR IGNORE INTO orders VALUES (?, ?, ?, ?, ?, ?)", _SEED)
        yield conn
    finally:
        conn.close()


@tool
def lookup_order(order_id: OrderId) -> dict[str, Any]:
    """Look up an order's status, contents and delivery estimate by its order number."""
    digits = "".join(ch for ch in order_id if ch.isdigit())
    if not digits:
        raise ToolError("an order number is digits only; ask the caller to repeat it")
    with _db() as conn:
        row = conn.execute("SELECT * FROM orders WHERE id = ?", (digits,)).fetchone()
    if row is None:
        return {"found": False, "order_id": digits,
                "hint": "Read the number back to the caller and ask them to check it."}
    order = {"found": True, "order_id": row["id"], "customer": row["customer"],
             "items": row["items"], "status": row["status"]}
    if row["carrier"]:
        order["carrier"] = row["carrier"]
    if row["eta"]:
        order["estimated_delivery"] = row["eta"]
    return order


@tool
async def read_keypad(ctx: CallContext) -> dict[str, Any]:
    """Digits the caller typed on the keypad since the last read, up to the # key.

    Use after asking the caller to type their order number followed by the hash key.
    """
    start = ctx.state.get("keypad_read", 0)
    typed = ctx.dtmf[start:]
    if "#" in typed:
        typed = typed[:typed.index("#")]
        ctx.state["keypad_read"] = start + len(typed) + 1
    else:
        ctx.state["keypad_read"] = len(ctx.dtmf)
    digits = "".join(d for d in typed if d.isdigit())
    return {"digits": digits} if digits else {"digits": "", "hint": "Nothing typed yet."}


agent = Agent(
    name="support",
    instructions=f"""You are the phone support agent for {SHOP}, an online outdoor shop.
You can look up orders by their 5-digit order number. Callers may say the number or type it
on the keypad followed by the hash key; if they type it, call read_keypad.
Never guess an order's status: always look it up. Keep answers short and friendly.
If the caller asks for a person, or you cannot help, say you will transfer them and then
call transfer_call. If transfer fails, apologise and offer to help in another way.
When the caller has nothing else, thank them, say goodbye and then call end_call.
On a call-back you place, if an automated menu answers ("press 1 for..."), let it finish,
then press the keys that reach the customer with send_dtmf, and wait for what it says next.
Never press a card number or a password.""",
    greeting=f"Hi, you've reached {SHOP} support. How can I help?",
    tools=[lookup_order, read_keypad],
    call_control=["end_call", "transfer_call", "send_dtmf"],
    transfer_to=os.environ.get("VOICEGW_SUPPORT_TRANSFER_TO", "").strip() or None,
)
