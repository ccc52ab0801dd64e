"""Vonage's part in calls the gateway places (test and demo tooling): its Voice API as
:class:`FakeVonage` checks it (an RS256 application JWT used once; ``to``, ``from``,
``answer_url``), answered with the call's ``uuid``; then its events as JSON to ``event_url``
(``started``, ``ringing``, ``answered``, ``busy``, ``timeout``, ``failed``, ``cancelled``,
``completed``) and, with ``advanced_machine_detection``, ``human`` or ``machine`` (with
``sub_state`` ``beep_start``), each a signed callback (``Authorization: Bearer`` an HS256 JWT
with the payload's hash); the answer fetched with ``GET`` (``answer_method``), signed the
same way, by Vonage's rig peer.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.carriers.core import Carrier
from gateway.carriers.vonage_hooks import SIGNATURE_HEADER
from gateway.dialing.model import AnsweredBy
from gateway.rig.dialing.network import FakeNetwork, PlacedCall, Plan, Progress, inbound_request
from gateway.rig.peers import HttpRequest, PhonePeer
from gateway.rig.peers.registry import new_peer
from gateway.rig.peers.vonage import signed_callback
from gateway.rig.rest_fakes import Recorded
from gateway.rig.rest_fakes.vonage import FakeVonage

WORDS: Final = {
    Progress.INITIATED: "started", Progress.RINGING: "ringing",
    Progress.ANSWERED: "answered", Progress.BUSY: "busy", Progress.NO_ANSWER: "timeout",
    Progress.FAILED: "failed", Progress.CANCELED: "cancelled", Progress.COMPLETED: "completed",
}


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class VonagePart:
    secret: str  # the account's signature secret
    application_id: str = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
    key: rsa.RSAPrivateKey = field(default_factory=_key)
    carrier: Carrier = Carrier.VONAGE
    conversations: dict[str, str] = field(default_factory=dict)

    def app(self, network: FakeNetwork) -> web.Application:
        return FakeVonage(self.application_id, self.key.public_key(), network=network).app()

    def plan(self, sid: str, request: Recorded) -> Plan:
        body = request.json
        self.conversations[sid] = f"CON-{uuid.uuid4()}"
        url = body["event_url"][0] if body.get("event_url") else ""
        return Plan("+" + body["to"][0]["number"], "+" + body["from"]["number"], url,
                    int(body.get("ringing_timer") or 60),
                    url if body.get("advanced_machine_detection") else None)

    def inbound(self, to: str, from_: str, answer_url: str) -> tuple[str, Recorded]:
        return str(uuid.uuid4()), inbound_request(data={
            "to": [{"type": "phone", "number": to.removeprefix("+")}],
            "from": {"type": "phone", "number": from_.removeprefix("+")},
            "answer_url": [answer_url]})

    def _event(self, call: PlacedCall, url: str, **fields: Any) -> HttpRequest:
        body = json.dumps({
            "uuid": call.sid, "conversation_uuid": self.conversations[call.sid],
            "direction": "outbound", "from": call.from_.removeprefix("+"),
            "to": call.to.removeprefix("+"), "timestamp": time.strftime(
                "%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()), **fields}).encode()
        return HttpRequest("POST", url, {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signed_callback(self.secret, body,
                                              application_id=self.application_id)}, body)

    def status(self, call: PlacedCall, progress: Progress) -> HttpRequest | None:
        url = call.plan.status_url
        if not url:
            return None
        extra = {"detail": "invalid_number"} if progress is Progress.FAILED else {}
        return self._event(call, url, status=WORDS[progress], **extra)

    def detection(self, call: PlacedCall, by: AnsweredBy, beep: bool) -> HttpRequest | None:
        if call.plan.amd_url is None:
            return None
        word = "machine" if by is AnsweredBy.MACHINE else "human"
        extra = {"sub_state": "beep_start"} if word == "machine" and beep else {}
        return self._event(call, call.plan.amd_url, status=word, **extra)

    def answering(self, call: PlacedCall) -> tuple[PhonePeer, str, str | None]:
        peer = new_peer(self.carrier, {"From": call.from_, "To": call.to}, call.sid)
        return peer, str(call.request.json["answer_url"][0]), self.secret

    def environment(self, api_url: str) -> dict[str, str]:
        pem = self.key.private_bytes(serialization.Encoding.PEM,
                                     serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()).decode()
        return {"VONAGE_APPLICATION_ID": self.application_id, "VONAGE_PRIVATE_KEY": pem,
                "VONAGE_SIGNATURE_SECRET": self.secret, "VOICEGW_VONAGE_API_URL": api_url}
