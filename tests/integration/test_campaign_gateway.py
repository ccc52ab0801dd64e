"""Campaigns against the gateway itself: its /v1/calls refuses a number on the do-not-call
list campaigns keep (``voicegw dnc add``) with 403, and a small campaign runs through the
dial service to Twilio's faked network, the simulated Live server answering."""

from __future__ import annotations

import time
from pathlib import Path

from gateway.campaign.api import GatewayCalls
from gateway.campaign.clock import SystemClock
from gateway.campaign.model import CallSettings, Result, RetryPolicy
from gateway.campaign.plan import Limits
from gateway.campaign.results import open_campaign
from gateway.campaign.runner import CampaignRunner, RunSettings
from gateway.campaign.window import Window
from gateway.dialing.model import MachineDetection
from gateway.rig.dialing.callees import Callee, CalleeKind, book, machine, person
from gateway.store.campaigns import CampaignStore
from tests.integration.test_outbound_call import (
    API_TOKEN,
    BUSY,
    PERSON,
    VOICEMAIL,
    call_to,
    outbound,
)

BLOCKED, SILENT = "+14155550155", "+14155550188"


def busy() -> Callee:
    return Callee(CalleeKind.BUSY)


async def test_a_number_on_the_do_not_call_list_is_refused_with_403(tmp_path: Path) -> None:
    async with outbound(tmp_path, book({PERSON: person()})) as ob:
        await CampaignStore(ob.store).dnc_add(PERSON, "asked not to be called", time.time())
        status, body = await ob.post(call_to(PERSON), key="campaign:c1:1:1")
        assert (status, body["field"]) == (403, "to")
        assert ob.net.calls == {}


async def test_a_campaign_through_the_gateway(tmp_path: Path) -> None:
    # A person, a voicemail, a busy line and one nobody answers (each retried once), and a
    # number on the list: through the real /v1/calls, the dial service and the faked network.
    callees = book({PERSON: person(then="caller_goodbye"), VOICEMAIL: machine(),
                    BUSY: busy(), SILENT: Callee(CalleeKind.NO_ANSWER)})
    contacts = (f"number,patient\n{PERSON},Ada\n{VOICEMAIL},Bo\n{BUSY},Cy\n{BLOCKED},Di\n"
                f"{SILENT},Ed\n".encode())
    async with outbound(tmp_path, callees) as ob:
        db = CampaignStore(ob.store)
        await db.dnc_add(BLOCKED, "asked", time.time())
        call = CallSettings("reminder", machine_detection=MachineDetection.HANGUP)
        opened = await open_campaign(db, name="clinic", source="clinic.csv", data=contacts,
                                     call=call, now=time.time())
        api = GatewayCalls(ob.url, API_TOKEN)
        settings = RunSettings(Limits(4, 600, Window.parse("00:00-24:00")),
                               RetryPolicy(max_attempts=2, delay_s=0.2), poll_s=0.05)
        try:
            report = await CampaignRunner(db, api, opened.campaign, settings,
                                          SystemClock()).run()
        finally:
            await api.aclose()
        done = {c.number: c for c in await db.contacts(opened.campaign.id)}
    assert report.finished
    assert {n: (c.result, c.attempts) for n, c in done.items()} == {
        PERSON: (Result.ANSWERED, 1), VOICEMAIL: (Result.MACHINE, 1), BUSY: (Result.BUSY, 2),
        SILENT: (Result.NO_ANSWER, 2), BLOCKED: (Result.DO_NOT_CALL, 0)}
    assert sorted(c.to for c in ob.net.calls.values()) == sorted([PERSON, VOICEMAIL, BUSY,
                                                                  BUSY, SILENT, SILENT])
