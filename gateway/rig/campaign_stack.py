"""The whole stack a campaign calls through, on loopback (benchmark tooling): the simulated Live
server, Twilio's network faked (:mod:`gateway.rig.dialing.twilio_net`, callees by a number's
last digit) and a real gateway serving ``/v1/calls`` with its call-record database in a file,
in this event loop. Then the audit from the far side: every call the network was asked for,
and the gateway's ``dials`` table checked against it.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from gateway.agent import Agent
from gateway.bridge_config import CallServices
from gateway.campaign.model import Contact
from gateway.campaign.plan import MINUTE
from gateway.campaign.window import Window
from gateway.carrier_setup import twilio
from gateway.config import Settings, custom_endpoint
from gateway.dialing.model import DialStatus
from gateway.dialing.setup import OutboundSettings
from gateway.registry import AgentRegistry
from gateway.rig.calls_api import Outcome
from gateway.rig.calls_api import PlacedCall as ApiCall
from gateway.rig.dialing.callees import Book
from gateway.rig.dialing.network import PlacedCall
from gateway.rig.dialing.twilio_net import FakeTwilioNetwork, fake_twilio_network
from gateway.rig.loadtest.local import free_port
from gateway.rig.simulator import SimulatorServer, scenario_from_dict
from gateway.server import Gateway, load_prompt, running
from gateway.store.recorder import CallRecorder
from gateway.store.sqlite import SqliteStore

ACCOUNT: Final = "AC" + "5" * 32
CARRIER_TOKEN: Final = "fake-twilio-auth-token"  # noqa: S105 - the fake network's
FROM: Final = "+14155550100"


@dataclass(frozen=True, slots=True)
class StackSettings:
    api_token: str
    database: Path
    agent: Agent
    max_calls: int  # the gateway's, above the campaign's concurrency
    speed: float = 4.0  # the callee's audio and the simulator's replies, x real time
    ring_speed: float = 20.0  # ringing and no-answer timeouts, x real time


@dataclass
class Stack:
    url: str  # the gateway's
    net: FakeTwilioNetwork
    gateway: Gateway
    store: SqliteStore  # the gateway's own connection to the database


@contextlib.asynccontextmanager
async def campaign_stack(settings: StackSettings, callees: Book,
                         clock: Callable[[], float]) -> AsyncIterator[Stack]:
    """Serve the stack; ``clock`` stamps each call the network is asked for."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    scenario = scenario_from_dict({"speed": settings.speed})
    async with (fake_twilio_network(ACCOUNT, CARRIER_TOKEN, callees, speed=settings.speed,
                                    ring_speed=settings.ring_speed, clock=clock) as (net, api),
                SimulatorServer(scenario) as sim):
        setup = twilio.from_env({"TWILIO_ACCOUNT_SID": ACCOUNT,
                                 "TWILIO_AUTH_TOKEN": CARRIER_TOKEN,
                                 "VOICEGW_TWILIO_API_URL": api})
        store = SqliteStore(settings.database)
        agent = settings.agent
        gateway = Gateway(
            Settings(endpoint=custom_endpoint(sim.url, "simulated"), public_url=url,
                     max_calls=settings.max_calls),
            services=CallServices(
                agents=AgentRegistry(agents={agent.name: agent}, default=agent.name),
                observers=(CallRecorder(store),), unavailable_prompt=load_prompt()),
            carriers={setup.carrier: setup},
            outbound=OutboundSettings(settings.api_token, {setup.carrier: FROM}))
        try:
            async with running(gateway, port=port):
                yield Stack(url, net, gateway, store)
                await net.wait_all()
                await gateway.wait_idle()
        finally:
            if setup.call_control is not None:
                await setup.call_control.aclose()


# -- the audit from the far side ------------------------------------------------------------

def as_placed(calls: Sequence[PlacedCall]) -> list[ApiCall]:
    """The network's calls in the shape :func:`gateway.rig.campaign_audit.audit` reads."""
    out = []
    for c in calls:
        status = c.final_status or DialStatus.FAILED
        end = c.real_end if c.real_end is not None else c.real_at
        out.append(ApiCall(c.sid, "", c.to, {}, c.at, c.real_at,
                           Outcome(status, None, 0.0, end - c.real_at)))
    return out


@dataclass(frozen=True, slots=True)
class FarSide:
    """The window and rate as the network saw the calls arrive, and the dials table.

    Each call reaches the network some time after its attempt was written down (the lag, on
    the campaign's clock: a fast clock multiplies it). Arrivals in any span of 60 s less the
    lag's spread come from attempts written within 60 s, so there may be at most the rate of
    them; a call is outside its window for certain when its arrival less the least and less
    the most lag both are."""

    max_per_minute: int  # arrivals in any (60 s - lag spread) of the campaign's clock
    span_s: float  # that span
    outside_window: int  # calls that reached the network outside their contact's window
    outside_for_certain: int  # ... even allowing for the lag
    lag_min_s: float  # campaign-clock seconds from an attempt written to the network
    lag_max_s: float
    unfinished: int  # calls the network never ended
    dials: int  # rows in the gateway's dials table
    dials_placed: int  # of them with the network's call id
    dials_not_placed: int  # rows without one (refused, or never asked): should be none here
    dials_disagree: int  # rows whose call the network does not have, or ended otherwise
    callbacks_lost: int  # calls ended at the network whose row is not final


async def far_side(net: FakeTwilioNetwork, store: SqliteStore, contacts: Sequence[Contact],
                   window: Window) -> FarSide:
    calls = list(net.calls.values())
    # Each call's contact: through the dials table (carrier call id -> the dial's id).
    rows = await store.fetch("SELECT id, status, carrier_call_id FROM dials")
    by_sid = {r["carrier_call_id"]: r for r in rows if r["carrier_call_id"]}
    attempt_at: dict[str, tuple[Contact, float]] = {}
    for c in contacts:
        for dial_id, at in zip(c.dial_ids, c.dial_times, strict=False):
            attempt_at[dial_id] = (c, at)
    matched: list[tuple[float, tuple[str, ...]]] = []
    lags = []
    for call in calls:
        row = by_sid.get(call.sid)
        found = attempt_at.get(row["id"]) if row is not None else None
        if found is None:
            continue  # counted below as a disagreement, or unknown to the runner
        contact, written = found
        lags.append(call.at - written)
        matched.append((call.at, contact.zones))
    low, high = (min(lags), max(lags)) if lags else (0.0, 0.0)
    outside = sum(1 for at, zones in matched if not window.inside(at, zones))
    certain = sum(1 for at, zones in matched if not window.inside(at - low, zones)
                  and not window.inside(at - high, zones))
    span = MINUTE - (high - low)
    arrivals = sorted(c.at for c in calls)
    most = first = 0
    for last, at in enumerate(arrivals):
        while arrivals[first] <= at - span:
            first += 1
        most = max(most, last - first + 1)
    disagree = lost = 0
    for call in calls:
        row = by_sid.get(call.sid)
        ended = call.final_status
        if row is None:
            disagree += 1
        elif ended is not None and DialStatus(row["status"]) is not ended:
            if DialStatus(row["status"]).final:
                disagree += 1
            else:
                lost += 1
    kinds = Counter(bool(r["carrier_call_id"]) for r in rows)
    never_ended = sum(1 for c in calls if c.real_end is None)
    orphans = len(by_sid.keys() - net.calls.keys())  # rows naming a call the network lacks
    return FarSide(most, span, outside, certain, low, high, never_ended, len(rows),
                   kinds[True], kinds[False], disagree + orphans, lost)
