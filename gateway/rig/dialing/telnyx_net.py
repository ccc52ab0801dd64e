"""Telnyx's part in calls the gateway places (test and demo tooling): its TeXML Calls API as
:class:`FakeTelnyx` checks it (Bearer API key, a JSON body with ``ApplicationSid``, ``To``,
``From``), TeXML status callbacks in Twilio's form fields (only the space-separated
``StatusCallbackEvent`` events asked for, the final one always) and ``AnsweredBy`` to
``AsyncAmdStatusCallback``, each signed with the account's Ed25519 key
(``telnyx-signature-ed25519`` over ``"{telnyx-timestamp}|{body}"``), and the answer fetched
with ``POST`` (``UrlMethod``) and signed the same way by Telnyx's rig peer.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

from aiohttp import web

from gateway.carriers.core import Carrier
from gateway.carriers.telnyx_hooks import SIGNATURE_HEADER, TIMESTAMP_HEADER
from gateway.dialing.model import AnsweredBy
from gateway.rig.dialing.network import (
    FakeNetwork,
    PlacedCall,
    Plan,
    Progress,
    form_request,
    inbound_request,
)
from gateway.rig.dialing.twilio_net import answered_by, status_fields, wanted
from gateway.rig.peers import HttpRequest, PhonePeer
from gateway.rig.peers.registry import new_peer
from gateway.rig.peers.telnyx import new_key_pair, sign
from gateway.rig.rest_fakes import Recorded
from gateway.rig.rest_fakes.telnyx import FakeTelnyx


@dataclass
class TelnyxPart:
    api_key: str
    account_sid: str = "6f2a3e1c-0b5e-4d5e-9a51-1c2d3e4f5a6b"
    application_id: str = "1293384261075731499"
    keys: tuple[str, str] = field(default_factory=new_key_pair)  # (public, private)
    carrier: Carrier = Carrier.TELNYX

    def app(self, network: FakeNetwork) -> web.Application:
        return FakeTelnyx(self.api_key, network=network).app()

    def plan(self, sid: str, request: Recorded) -> Plan:
        body = request.json
        amd = body.get("AsyncAmdStatusCallback") if body.get("AsyncAmd") else None
        return Plan(body["To"], body["From"], body.get("StatusCallback", ""),
                    int(body.get("Timeout") or 60), amd)

    def inbound(self, to: str, from_: str, answer_url: str) -> tuple[str, Recorded]:
        return f"v3:{uuid.uuid4().hex}", inbound_request(data={"To": to, "From": from_,
                                                               "Url": answer_url})

    def _signed(self, url: str, fields: Mapping[str, str]) -> HttpRequest:
        request = form_request(url, fields, {})
        stamp = str(int(time.time()))
        return HttpRequest(request.method, url, {
            **request.headers, TIMESTAMP_HEADER: stamp,
            SIGNATURE_HEADER: sign(self.keys[1], stamp, request.body)}, request.body)

    def status(self, call: PlacedCall, progress: Progress) -> HttpRequest | None:
        url = call.plan.status_url
        if not url or not wanted(str(call.request.json.get("StatusCallbackEvent", "")).split(),
                                 progress):
            return None
        return self._signed(url, status_fields(call, self.account_sid, progress))

    def detection(self, call: PlacedCall, by: AnsweredBy, beep: bool) -> HttpRequest | None:
        if call.plan.amd_url is None:
            return None
        return self._signed(call.plan.amd_url, {
            "CallSid": call.sid, "AccountSid": self.account_sid,
            "AnsweredBy": answered_by(by, beep), "CallStatus": "in-progress"})

    def answering(self, call: PlacedCall) -> tuple[PhonePeer, str, str | None]:
        peer = new_peer(self.carrier, {"From": call.from_, "To": call.to}, call.sid)
        return peer, str(call.request.json["Url"]), self.keys[1]

    def environment(self, api_url: str) -> dict[str, str]:
        return {"TELNYX_API_KEY": self.api_key, "TELNYX_PUBLIC_KEY": self.keys[0],
                "VOICEGW_TELNYX_API_URL": api_url,
                "VOICEGW_TELNYX_ACCOUNT_SID": self.account_sid,
                "VOICEGW_TELNYX_APPLICATION_ID": self.application_id}
