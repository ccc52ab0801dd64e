"""A model that goes quiet, over real sockets: the simulated model stalls on the caller's
second turn, the gateway's watchdog notices, and the call is recovered by a nudge or a resumed
session and goes on normally (the third turn is answered as usual), or ends with the apology
when nothing answers. Each stall is on the call's record and in ``voicegw_stalls_total``.

The watchdog runs on the wall clock and the call at ``SPEED`` times real time, so its
settings are scaled to match: 2 s of simulated time before the nudge and for each later step
(the gateway's default step is 1 s; 2 s leaves a loaded test machine room to answer a nudge
before the resume).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from gateway.config import Settings, custom_endpoint
from gateway.ending import EndKind
from gateway.record import CallSummary
from gateway.rig.phone import CallResult, Utterance, When, load_utterance, place_call
from gateway.rig.simulator import SimulatorServer
from gateway.rig.simulator.record import SessionRecord
from gateway.rig.simulator.scenario import scenario_from_dict
from gateway.rig.simulator.speech import speech_dir
from gateway.server import Gateway, load_prompt, running
from gateway.stall import StallOutcome, StallTrigger
from gateway.store.model import record_of
from gateway.watchdog import NUDGE_TEXT

SPEED = 4.0
TIMEOUT_S = 2.0 / SPEED
STEP_S = 2.0 / SPEED
APOLOGY_MS = len(load_prompt().pcm) / 2 / 8  # played on a line of 8 kHz


def turns(stall: str) -> list[dict[str, Any]]:
    return [{"caller_text": "A table for two tomorrow, please.", "reply": "agent_options"},
            {"caller_text": "Seven thirty.", "reply": "agent_moved", "stall": stall},
            {"caller_text": "Thanks, goodbye.", "reply": "agent_goodbye"}]


def say(name: str, when: When = When.AFTER_REPLY, delay_ms: int = 600) -> Utterance:
    return Utterance(load_utterance(speech_dir() / f"{name}.wav"), when, delay_ms)


SCRIPT = [say("caller_book_table", When.START, 300), say("caller_seven_thirty"),
          say("caller_goodbye")]


@dataclass
class Outcome:
    result: CallResult
    summary: CallSummary
    sessions: list[SessionRecord]
    metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float]

    def stalls(self, outcome: str) -> float:
        return self.metrics[("voicegw_stalls_total",
                             (("carrier", "twilio"), ("outcome", outcome)))]


async def run_call(stall: str, script: Sequence[Utterance] = SCRIPT) -> Outcome:
    scenario = scenario_from_dict({"speed": SPEED, "turns": turns(stall)})
    async with SimulatorServer(scenario) as sim:
        settings = Settings(endpoint=custom_endpoint(sim.url, "test-model"),
                            stall_timeout_s=TIMEOUT_S, stall_step_s=STEP_S)
        gateway = Gateway(settings)
        async with running(gateway) as port:
            result = await place_call(f"ws://127.0.0.1:{port}/media", list(script),
                                      speed=SPEED, max_s=120.0, reply_wait_s=30.0)
            await gateway.wait_idle()
            await sim.wait_until(lambda: all(s.closed is not None for s in sim.sessions))
            async with aiohttp.ClientSession() as http, \
                    http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                text = await resp.text()
    metrics = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    [summary] = gateway.finished
    return Outcome(result, summary, list(sim.sessions), metrics)


def assert_the_call_went_on(out: Outcome) -> None:
    """Every caller turn was answered, the third as usual, and the caller hung up."""
    assert out.result.unanswered == 0 and len(out.result.response_ms) == 3
    assert out.summary.end.kind is EndKind.CALLER_HUNG_UP
    assert sum(s.turns_completed for s in out.sessions) == 3
    assert out.sessions[-1].interruptions == 0


async def test_a_stall_is_recovered_by_a_nudge() -> None:
    out = await run_call("nudge")
    [session] = out.sessions
    assert session.stalled_turns == [2] and session.nudged == 1
    assert session.texts == [NUDGE_TEXT]  # the one text input the call sent
    assert_the_call_went_on(out)
    stalls = out.summary.stats.stalls
    [record] = stalls.records
    assert (record.trigger, record.outcome) == (StallTrigger.CALLER, StallOutcome.NUDGED)
    assert record.quiet_ms >= TIMEOUT_S * 1000
    assert stalls.counts[StallOutcome.NUDGED] == stalls.total == 1
    assert out.summary.stats.live.restarts == 0
    stored = record_of(out.summary, ended=True, now=time.time())  # what the store keeps
    assert stored is not None and stored.stalls == (record,)
    assert out.stalls("nudged") == 1
    assert out.stalls("resumed") == out.stalls("apologised") == out.stalls("abandoned") == 0


async def test_a_stall_deaf_to_the_nudge_is_recovered_by_a_resumed_session() -> None:
    out = await run_call("session")
    first, second = out.sessions
    assert first.stalled_turns == [2] and first.texts == [NUDGE_TEXT] and first.nudged == 0
    assert first.closed == (1000, "restarting")  # one connection per handle: closed first
    # The new session resumed the conversation at the newest handle, heard the caller's
    # request again (replayed) and answered it: turns 2 and 3 were its own.
    assert second.resumed and second.setup is not None
    assert second.setup["sessionResumption"] == {"handle": first.handles[-1]}
    assert second.stalled_turns == [] and second.turns_completed == 2
    live = out.summary.stats.live
    assert live.restarts == 1 and live.swaps == live.drops == 0 and live.frames_replayed > 0
    assert_the_call_went_on(out)
    [record] = out.summary.stats.stalls.records
    assert (record.trigger, record.outcome) == (StallTrigger.CALLER, StallOutcome.RESUMED)
    assert record.quiet_ms >= (TIMEOUT_S + STEP_S) * 1000
    assert out.stalls("resumed") == 1 and out.stalls("nudged") == 0
    assert out.metrics[("voicegw_live_reconnects_total",
                        (("carrier", "twilio"), ("kind", "restart")))] == 1


async def test_a_model_that_never_answers_gets_the_apology_and_the_call_ends() -> None:
    out = await run_call("never", SCRIPT[:2])
    assert len(out.sessions) == 2
    assert all(s.stalled_turns == [2] for s in out.sessions)
    assert out.summary.end.kind is EndKind.MODEL_STALLED
    r = out.result
    assert r.closed_by_gateway and r.unplayed_at_close_ms == 0
    assert r.audio_received_ms >= APOLOGY_MS  # the first reply, then the apology in full
    [record] = out.summary.stats.stalls.records
    assert record.outcome is StallOutcome.APOLOGISED
    assert out.stalls("apologised") == 1
    assert out.metrics[("voicegw_calls_total",
                        (("carrier", "twilio"), ("reason", "model_stalled")))] == 1
