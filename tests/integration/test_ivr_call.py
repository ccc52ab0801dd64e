"""An agent gets through an IVR with ``send_dtmf``, over real loopback sockets.

The phone plays the called side: the rig's IVR (:mod:`gateway.rig.ivr`) says its menu, hears
what the gateway plays and takes keys from it as a Q.24 receiver does. The simulated model is
scripted to press 2 for support when it hears the menu, then the account number and #. The
keys are tones in the call's audio, so the same script works on a JSON carrier (Twilio) and a
binary one (Asterisk's WebSocket driver), and the IVR must reach the right leaf on both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.agent import Agent
from gateway.carriers.core import Carrier
from gateway.rig.ivr import WORDS, Ivr, Node
from tests.cases import CASES, CarrierCase
from tests.integration.test_carrier_calls import line

ACCOUNT = "12345678"
CALLER = Agent(name="caller", instructions="You phone a company for a customer. When its "
               "menu asks, press keys with send_dtmf; the account number is 12345678.",
               call_control=["send_dtmf"])
TURNS: list[dict[str, Any]] = [
    {"caller_text": WORDS[Node.MAIN], "reply": "agent_goodbye", "reply_text": "Support.",
     "tool_calls": [{"name": "send_dtmf", "args": {"digits": "2"}, "id": "menu"}]},
    {"caller_text": WORDS[Node.ACCOUNT], "reply": "agent_goodbye", "reply_text": "Done.",
     "tool_calls": [{"name": "send_dtmf", "args": {"digits": f"{ACCOUNT}#"},
                     "id": "account"}]},
]
BOTH = [c for c in CASES if c.carrier in (Carrier.TWILIO, Carrier.ASTERISK)]


@pytest.mark.parametrize("case", BOTH, ids=str)
async def test_an_agent_presses_its_way_through_an_ivr_to_the_right_leaf(
        case: CarrierCase, tmp_path: Path) -> None:
    ivr = Ivr()
    async with line(case, TURNS, tmp_path, agent=CALLER) as ln:
        result, _ = await ln.call([], callee=ivr)
    [session] = ln.sim.sessions
    summary = ln.summary(result)

    # The IVR heard exactly the keys the model pressed, at the menu they were meant for, and
    # no key in the agent's words; it reached support with the account number.
    assert [(v.node, v.keys) for v in ivr.visits] == [
        (Node.MAIN, "2"), (Node.ACCOUNT, f"{ACCOUNT}#"), (Node.SUPPORT, "")]
    assert ivr.account == ACCOUNT
    # Each press was answered once its tones had played, and said so to the model.
    answers = {r["id"]: r["response"] for r in session.tool_responses}
    assert answers["menu"]["result"].startswith("Pressed 1 key;")
    assert answers["account"]["result"].startswith("Pressed 9 keys;")
    # The call record keeps the menu choice, and the account number masked to its last two.
    shown = {r.id: (r.outcome, r.args["digits"]) for r in summary.tool_calls}
    assert shown == {"menu": ("ok", "2"), "account": ("ok", "******78#")}
    # The IVR hung up after its last prompt, as an IVR does.
    assert not result.closed_by_gateway
    assert summary.end_reason == "caller hung up"
