"""jambonz's part in calls the gateway places (test and demo tooling): its REST API as
:class:`FakeJambonz` checks it (the account's API key as a Bearer token; ``from``, a ``to``
target, a ``call_hook``), answered with the call's ``sid``; then each ``call_status`` as JSON
to ``call_status_hook`` (trying, ringing, in-progress, completed; busy, no-answer, failed with
their SIP status: 487 for a call cancelled) and each ``amd`` finding (``type``
amd_human_detected, amd_machine_detected, amd_tone_detected) to its ``actionHook``, signed
``Jambonz-Signature: t=...,v1=...``; the call hook fetched with ``POST`` by jambonz's rig peer.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

from gateway.carriers.core import Carrier
from gateway.carriers.jambonz_hooks import SIGNATURE_HEADER, signature_header
from gateway.dialing.model import AnsweredBy
from gateway.rig.dialing.network import FakeNetwork, PlacedCall, Plan, Progress, inbound_request
from gateway.rig.peers import HttpRequest, PhonePeer
from gateway.rig.peers.registry import new_peer
from gateway.rig.rest_fakes import Recorded
from gateway.rig.rest_fakes.jambonz import FakeJambonz

# (call_status, sip_status) for each step.
WORDS: Final = {
    Progress.INITIATED: ("trying", 100), Progress.RINGING: ("ringing", 180),
    Progress.ANSWERED: ("in-progress", 200), Progress.BUSY: ("busy", 486),
    Progress.NO_ANSWER: ("no-answer", 480), Progress.FAILED: ("failed", 404),
    Progress.CANCELED: ("failed", 487), Progress.COMPLETED: ("completed", 200),
}


def _hook(hook: Any) -> str:
    return str(hook.get("url", "") if isinstance(hook, dict) else hook or "")


@dataclass
class JambonzPart:
    account_sid: str
    api_key: str
    secret: str  # the account's webhook secret
    carrier: Carrier = Carrier.JAMBONZ

    def app(self, network: FakeNetwork) -> web.Application:
        return FakeJambonz(self.account_sid, self.api_key, network=network).app()

    def plan(self, sid: str, request: Recorded) -> Plan:
        body = request.json
        amd = body.get("amd")
        return Plan(body["to"]["number"], body["from"], _hook(body.get("call_status_hook")),
                    int(body.get("timeout") or 60),
                    _hook(amd.get("actionHook")) or None if isinstance(amd, dict) else None)

    def inbound(self, to: str, from_: str, answer_url: str) -> tuple[str, Recorded]:
        return str(uuid.uuid4()), inbound_request(data={
            "from": from_, "to": {"type": "phone", "number": to},
            "call_hook": {"url": answer_url, "method": "POST"}})

    def _post(self, call: PlacedCall, url: str, **fields: Any) -> HttpRequest:
        body = json.dumps({"call_sid": call.sid, "direction": "outbound", "from": call.from_,
                           "to": call.to, "account_sid": self.account_sid,
                           **fields}).encode()
        return HttpRequest("POST", url, {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature_header(self.secret, int(time.time()), body)}, body)

    def status(self, call: PlacedCall, progress: Progress) -> HttpRequest | None:
        if not call.plan.status_url:
            return None
        word, sip = WORDS[progress]
        return self._post(call, call.plan.status_url, call_status=word, sip_status=sip)

    def detection(self, call: PlacedCall, by: AnsweredBy, beep: bool) -> HttpRequest | None:
        if call.plan.amd_url is None:
            return None
        kind = "amd_human_detected" if by is not AnsweredBy.MACHINE else \
            "amd_tone_detected" if beep else "amd_machine_detected"
        return self._post(call, call.plan.amd_url, type=kind)

    def answering(self, call: PlacedCall) -> tuple[PhonePeer, str, str | None]:
        peer = new_peer(self.carrier, {"From": call.from_, "To": call.to}, call.sid)
        return peer, _hook(call.request.json.get("call_hook")), self.secret

    def environment(self, api_url: str) -> dict[str, str]:
        return {"JAMBONZ_ACCOUNT_SID": self.account_sid, "JAMBONZ_API_KEY": self.api_key,
                "JAMBONZ_WEBHOOK_SECRET": self.secret, "VOICEGW_JAMBONZ_API_URL": api_url}
