"""Plivo's part in calls the gateway places (test and demo tooling): its Call API as
:class:`FakePlivo` checks it (Basic auth, JSON ``from``, ``to``, ``answer_url``), answered
with the request's ``request_uuid``; then what Plivo posts: ``ring_url`` when it rings, the
answer fetched with ``POST`` (``answer_method``) once answered (Plivo posts no other word of
the answer), ``hangup_url`` at the end (``CallStatus`` with its ``HangupCause``), and
``Event=MachineDetection`` to ``machine_detection_url``; each form names the call by its
``RequestUUID`` and ``CallUUID`` and is signed V3 (``X-Plivo-Signature-V3`` with a nonce).
A live call is ended by its CallUUID only; a ringing one by cancelling its request.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from aiohttp import web

from gateway.carriers.core import Carrier
from gateway.carriers.plivo_hooks import NONCE_HEADER, SIGNATURE_HEADER, compute_signature
from gateway.dialing.model import AnsweredBy
from gateway.rig.dialing.network import (
    FakeNetwork,
    PlacedCall,
    Plan,
    Progress,
    form_request,
    inbound_request,
)
from gateway.rig.peers import HttpRequest, PhonePeer
from gateway.rig.peers.registry import new_peer
from gateway.rig.rest_fakes import Recorded
from gateway.rig.rest_fakes.plivo import FakePlivo

# (CallStatus, HangupCause, Event) for each step Plivo posts; it posts no "initiated" and no
# "answered": the answer URL's fetch is its word that the call was answered.
WORDS: Final = {
    Progress.RINGING: ("ringing", "", "Ring"),
    Progress.BUSY: ("busy", "USER_BUSY", "Hangup"),
    Progress.NO_ANSWER: ("timeout", "NO_ANSWER", "Hangup"),
    Progress.FAILED: ("failed", "UNALLOCATED_NUMBER", "Hangup"),
    Progress.CANCELED: ("cancel", "ORIGINATOR_CANCEL", "Hangup"),
    Progress.COMPLETED: ("completed", "NORMAL_CLEARING", "Hangup"),
}


@dataclass
class PlivoPart:
    auth_id: str
    token: str
    carrier: Carrier = Carrier.PLIVO
    call_uuids: dict[str, str] = field(default_factory=dict)  # request_uuid -> CallUUID
    fake: FakePlivo | None = None

    def app(self, network: FakeNetwork) -> web.Application:
        self.fake = FakePlivo(self.auth_id, self.token, network=network)
        return self.fake.app()

    def plan(self, sid: str, request: Recorded) -> Plan:
        body = request.json
        self.call_uuids[sid] = str(uuid.uuid4())
        amd = body.get("machine_detection_url") if body.get("machine_detection") == "true" \
            else None
        return Plan("+" + body["to"], "+" + body["from"], body.get("ring_url", ""),
                    int(body.get("ring_timeout") or 60), amd)

    def inbound(self, to: str, from_: str, answer_url: str) -> tuple[str, Recorded]:
        return str(uuid.uuid4()), inbound_request(data={
            "to": to.removeprefix("+"), "from": from_.removeprefix("+"),
            "answer_url": answer_url})

    def _signed(self, url: str, fields: Mapping[str, str]) -> HttpRequest:
        nonce = str(secrets.randbelow(10**20))
        signature = compute_signature(self.token, "POST", url, nonce, fields.items())
        return form_request(url, fields, {SIGNATURE_HEADER: signature, NONCE_HEADER: nonce})

    def _fields(self, call: PlacedCall) -> dict[str, str]:
        return {"RequestUUID": call.sid, "CallUUID": self.call_uuids[call.sid],
                "From": call.from_.removeprefix("+"), "To": call.to.removeprefix("+"),
                "Direction": "outbound"}

    def status(self, call: PlacedCall, progress: Progress) -> HttpRequest | None:
        body = call.request.json
        if progress not in WORDS:
            return None
        word, cause, event = WORDS[progress]
        url = body.get("ring_url") if event == "Ring" else body.get("hangup_url")
        if not url:
            return None
        fields = {**self._fields(call), "CallStatus": word, "Event": event}
        if cause:
            fields["HangupCause"] = cause
        return self._signed(url, fields)

    def detection(self, call: PlacedCall, by: AnsweredBy, beep: bool) -> HttpRequest | None:
        if call.plan.amd_url is None:
            return None
        machine = "true" if by is AnsweredBy.MACHINE else "false"
        return self._signed(call.plan.amd_url, {**self._fields(call),
                                                "Event": "MachineDetection", "Machine": machine})

    def answering(self, call: PlacedCall) -> tuple[PhonePeer, str, str | None]:
        call_uuid = self.call_uuids[call.sid]
        if self.fake is not None:
            self.fake.live[call_uuid] = call.sid  # a live call now, ended by its CallUUID
        peer = new_peer(self.carrier, {"From": call.from_, "To": call.to}, call_uuid)
        return peer, str(call.request.json["answer_url"]), self.token

    def environment(self, api_url: str) -> dict[str, str]:
        return {"PLIVO_AUTH_ID": self.auth_id, "PLIVO_AUTH_TOKEN": self.token,
                "VOICEGW_PLIVO_API_URL": api_url}
