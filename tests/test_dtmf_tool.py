"""The ``send_dtmf`` built-in: offered on opt-in, keys played behind the agent's words in the
caller's audio, the tool answering once they have played, and clear errors otherwise."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from gateway import dtmf, live
from gateway.agent import Agent, CallContext, ToolError
from gateway.callctl import CallController
from gateway.carriers.core import Played
from gateway.playout import CallerPlayout
from gateway.rig.dtmf_receiver import DtmfReceiver
from gateway.tools import ToolDispatcher
from tests.test_playout_carriers import L16_16K, FakeStream, Socket, caps, playout, reply
from tests.test_tools import Outbox, call, spawn

PRESSER = Agent(name="presser", instructions="Get through the menu.",
                call_control=["send_dtmf"])


class Line:
    """A controller running on a real playout, as the bridge wires them."""

    def __init__(self, *, marks: bool = True) -> None:
        self.socket = Socket()
        self.playout: CallerPlayout = playout(FakeStream(caps(marks=marks)), self.socket)
        self.control = CallController(None, "call-1", structlog.get_logger("test"),
                                      can_transfer=False)
        self.ctx = CallContext(control=self.control)
        self.tasks: list[asyncio.Task[Any]] = []

    async def __aenter__(self) -> Line:
        self.tasks = [asyncio.create_task(self.control.run(self.playout)),
                      asyncio.create_task(self.playout.writer())]
        await asyncio.sleep(0)  # run() has the playout
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def heard_keys(self, after_bytes: int = 0) -> list[str]:
        audio = b"".join(self.socket.audio())[after_bytes:]
        return DtmfReceiver(L16_16K.rate).push(audio)

    def marks(self) -> list[str]:
        return [m for m in self.socket.control() if "dtmf" in m]

    async def echo_marks(self) -> None:
        """The carrier at once: every mark played (not waiting for the audio's real time)."""
        echoed: set[str] = set()
        while True:
            for name in (json.loads(m)["mark"] for m in self.marks()):
                if name not in echoed:
                    echoed.add(name)
                    self.playout.played(Played(name))
            self.socket.changed.clear()
            await self.socket.changed.wait()


def test_send_dtmf_is_offered_only_to_an_agent_that_opts_in() -> None:
    [decl] = PRESSER.declarations()
    assert decl["name"] == "send_dtmf"
    assert decl["parametersJsonSchema"]["required"] == ["digits"]
    assert "menu" in decl["description"]
    assert "send_dtmf" not in Agent(name="plain", instructions="x").all_tools


async def test_keys_play_behind_the_agents_words_and_the_tool_returns_once_heard() -> None:
    async with Line() as ln:
        ln.playout.audio(reply(300), 0.0)  # the agent: "I'll press two"
        spoken = sum(len(a) for a in ln.socket.audio())
        pressing = asyncio.create_task(ln.ctx.send_dtmf("2,1#"))
        frames = (300 + dtmf.duration_ms("2,1#")) // 20  # 20 ms frames
        await asyncio.wait_for(ln.socket.wait_audio(frames), 5)
        assert not pressing.done()  # sent, not yet heard
        assert ln.marks() == ['{"mark": "dtmf-1"}']
        ln.playout.played(Played("dtmf-1"))  # the carrier: played up to the mark
        await asyncio.wait_for(pressing, 5)
        assert ln.heard_keys(after_bytes=spoken) == ["2", "1", "#"]
        assert ln.heard_keys() == ["2", "1", "#"]  # the words before them are no keys


async def test_a_carrier_without_marks_confirms_the_keys_by_the_gateways_clock() -> None:
    async with Line(marks=False) as ln:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.wait_for(ln.ctx.send_dtmf("9"), 5)
        assert loop.time() - started >= dtmf.duration_ms("9") / 1000 - 0.01
        assert ln.heard_keys() == ["9"] and ln.marks() == []


async def test_keys_a_barge_in_cuts_off_are_reported_to_the_model() -> None:
    async with Line() as ln:
        ln.playout.audio(reply(300), 0.0)
        pressing = asyncio.create_task(ln.ctx.send_dtmf("1234"))
        await asyncio.sleep(0)
        ln.playout.interrupted(0.0)
        with pytest.raises(ToolError, match="cut off"):
            await asyncio.wait_for(pressing, 5)


async def test_keys_the_line_never_confirms_fail_after_a_bounded_wait(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dtmf, "KEYS_WAIT_S", 0.05)
    async with Line() as ln:
        with pytest.raises(ToolError, match="did not confirm"):
            await asyncio.wait_for(ln.ctx.send_dtmf("1"), 5)


@pytest.mark.parametrize(("digits", "why"), [("1x", "'x' (position 2) is not a keypad key"),
                                            ("", "no keys"), ("1" * 40, "at most 32")])
async def test_a_bad_key_string_is_a_clear_error_and_nothing_plays(digits: str,
                                                                   why: str) -> None:
    async with Line() as ln:
        with pytest.raises(ToolError, match=why.replace("(", r"\(").replace(")", r"\)")):
            await ln.ctx.send_dtmf(digits)
        assert ln.socket.sent == []


async def test_no_keys_once_the_call_is_ending_or_without_call_control() -> None:
    async with Line() as ln:
        await ln.ctx.end_call("done")
        with pytest.raises(ToolError, match="being ended"):
            await ln.ctx.send_dtmf("1")
    with pytest.raises(ToolError, match="not available"):
        await CallContext().send_dtmf("1")


async def test_the_dispatcher_logs_and_records_long_digit_runs_masked() -> None:
    async with Line() as ln:
        ln.tasks.append(asyncio.create_task(ln.echo_marks()))
        outbox = Outbox()
        dispatcher = ToolDispatcher(PRESSER, ln.ctx, outbox.send, spawn)
        with capture_logs() as logs:
            dispatcher.handle_tool_call(call(("k-1", "send_dtmf", {"digits": "2"}),
                                             ("k-2", "send_dtmf", {"digits": "12345678#"})))
            await dispatcher.wait_idle()
        answers = {r["id"]: r["response"] for r in outbox.responses()}
        assert answers == {"k-1": {"result": "Pressed 1 key; they were heard. Listen to what "
                                             "the menu says next."},
                           "k-2": {"result": "Pressed 9 keys; they were heard. Listen to "
                                             "what the menu says next."}}
        assert ln.heard_keys() == list("212345678#")  # in the order the model sent them
    shown = [e["args"]["digits"] for e in logs if e["event"] == "tool_call"]
    assert sorted(shown) == ["******78#", "2"]
    assert sorted(e["keys"] for e in logs if e["event"] == "dtmf_sent") == ["******78#", "2"]
    assert sorted(r.args["digits"] for r in dispatcher.records) == ["******78#", "2"]
    assert "12345678" not in repr(logs)


def test_the_setup_offers_send_dtmf_on_every_carrier() -> None:
    # Only transfer_call is ever withheld (a carrier that cannot transfer): keys are audio.
    config = PRESSER.session_config(live.SessionConfig(model="m"),
                                    withheld=frozenset({"transfer_call"}))
    assert [t["name"] for t in config.tools] == ["send_dtmf"]
