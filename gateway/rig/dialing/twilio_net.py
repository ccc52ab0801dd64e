"""Twilio's part in calls the gateway places (test and demo tooling), and SignalWire's, whose
LaML API is the same under ``/api/laml``: the Calls API as :class:`FakeTwilio` checks it
(Basic auth, ``To``, ``From``, ``Url``), status callbacks as forms with ``CallStatus`` (only the
``StatusCallbackEvent`` events asked for, the final one always) and AsyncAmd's ``AnsweredBy``,
signed as the carrier signs (``X-Twilio-Signature``, SignalWire's signing key under
``X-SignalWire-Signature``), and the answer fetched with ``POST`` and the call's form, signed
the same way, by the carrier's rig peer.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Final

from aiohttp import web

from gateway.carriers.core import Carrier
from gateway.carriers.signalwire import SIGNATURE_HEADER as SIGNALWIRE_HEADER
from gateway.carriers.twilio_hooks import SIGNATURE_HEADER, compute_signature
from gateway.dialing.model import AnsweredBy
from gateway.rig.dialing.callees import Book
from gateway.rig.dialing.network import (
    FakeNetwork,
    PlacedCall,
    Plan,
    Progress,
    fake_network,
    form_request,
    inbound_request,
)
from gateway.rig.peers import HttpRequest, PhonePeer
from gateway.rig.peers.registry import new_peer
from gateway.rig.rest_fakes import Recorded
from gateway.rig.rest_fakes.twilio import FakeTwilio

# The CallStatus word for each step, and the StatusCallbackEvent that asks for it.
WORDS: Final = {
    Progress.INITIATED: "initiated", Progress.RINGING: "ringing",
    Progress.ANSWERED: "in-progress", Progress.BUSY: "busy", Progress.NO_ANSWER: "no-answer",
    Progress.FAILED: "failed", Progress.CANCELED: "canceled", Progress.COMPLETED: "completed",
}
EVENTS: Final = {Progress.INITIATED: "initiated", Progress.RINGING: "ringing",
                 Progress.ANSWERED: "answered"}  # the rest are final: always posted


def answered_by(by: AnsweredBy, beep: bool) -> str:
    """AsyncAmd's ``AnsweredBy`` word (with ``MachineDetection=DetectMessageEnd``)."""
    if by is AnsweredBy.MACHINE:
        return "machine_end_beep" if beep else "machine_end_silence"
    return by.value


def status_fields(call: PlacedCall, account: str, progress: Progress) -> dict[str, str]:
    fields = {"CallSid": call.sid, "AccountSid": account, "CallStatus": WORDS[progress],
              "From": call.from_, "To": call.to, "Direction": "outbound-api"}
    if progress is Progress.FAILED:
        fields["SipResponseCode"] = "404"
    return fields


def wanted(events: list[str], progress: Progress) -> bool:
    return progress not in EVENTS or EVENTS[progress] in events


@dataclass
class TwimlPart:
    """``api_token`` authenticates the API; callbacks are signed with ``signing_key`` (Twilio:
    the same auth token; SignalWire: the space's signing key)."""

    account: str
    api_token: str
    signing_key: str
    carrier: Carrier = Carrier.TWILIO

    @property
    def prefix(self) -> str:
        return "/api/laml" if self.carrier is Carrier.SIGNALWIRE else ""

    @property
    def header(self) -> str:
        return SIGNALWIRE_HEADER if self.carrier is Carrier.SIGNALWIRE else SIGNATURE_HEADER

    def app(self, network: FakeNetwork) -> web.Application:
        return FakeTwilio(self.account, self.account, self.api_token, prefix=self.prefix,
                          network=network).app()

    def plan(self, sid: str, request: Recorded) -> Plan:
        form = request.form
        amd = form.get("AsyncAmdStatusCallback") if form.get("AsyncAmd") == "true" else None
        return Plan(form["To"], form["From"], form.get("StatusCallback", ""),
                    int(form.get("Timeout") or 60), amd)

    def inbound(self, to: str, from_: str, answer_url: str) -> tuple[str, Recorded]:
        return "CA" + uuid.uuid4().hex, inbound_request({"To": to, "From": from_,
                                                         "Url": answer_url})

    def signed(self, url: str, fields: Mapping[str, str]) -> HttpRequest:
        signature = compute_signature(self.signing_key, url, fields.items())
        return form_request(url, fields, {self.header: signature})

    def status(self, call: PlacedCall, progress: Progress) -> HttpRequest | None:
        url = call.plan.status_url
        if not url or not wanted(call.form.get("StatusCallbackEvent", []), progress):
            return None
        return self.signed(url, status_fields(call, self.account, progress))

    def detection(self, call: PlacedCall, by: AnsweredBy, beep: bool) -> HttpRequest | None:
        if call.plan.amd_url is None:
            return None
        return self.signed(call.plan.amd_url, {
            "CallSid": call.sid, "AccountSid": self.account,
            "AnsweredBy": answered_by(by, beep), "CallStatus": "in-progress"})

    def answering(self, call: PlacedCall) -> tuple[PhonePeer, str, str | None]:
        peer = new_peer(self.carrier, {"From": call.from_, "To": call.to}, call.sid)
        return peer, call.first("Url"), self.signing_key

    def environment(self, api_url: str) -> dict[str, str]:
        if self.carrier is Carrier.SIGNALWIRE:
            return {"SIGNALWIRE_PROJECT_ID": self.account,
                    "SIGNALWIRE_API_TOKEN": self.api_token,
                    "SIGNALWIRE_SPACE_URL": "example.signalwire.com",
                    "SIGNALWIRE_SIGNING_KEY": self.signing_key,
                    "VOICEGW_SIGNALWIRE_API_URL": api_url + self.prefix}
        return {"TWILIO_ACCOUNT_SID": self.account, "TWILIO_AUTH_TOKEN": self.api_token,
                "VOICEGW_TWILIO_API_URL": api_url}


class FakeTwilioNetwork(FakeNetwork):
    """Twilio's network (the account's auth token signs its callbacks)."""

    def __init__(self, account: str, token: str, callees: Book | None = None, *,
                 prefix: str = "", ring_speed: float = 1.0, speed: float = 1.0,
                 clock: Callable[[], float] = time.time) -> None:
        carrier = Carrier.SIGNALWIRE if prefix else Carrier.TWILIO
        super().__init__(TwimlPart(account, token, token, carrier), callees,
                         ring_speed=ring_speed, speed=speed, clock=clock)


@contextlib.asynccontextmanager
async def fake_twilio_network(account: str, token: str, callees: Book | None = None, *,
                              prefix: str = "", ring_speed: float = 1.0, speed: float = 1.0,
                              clock: Callable[[], float] = time.time
                              ) -> AsyncIterator[tuple[FakeTwilioNetwork, str]]:
    """The network and its API's base URL (for ``VOICEGW_TWILIO_API_URL``); ``clock``
    stamps each call asked for."""
    net = FakeTwilioNetwork(account, token, callees, prefix=prefix, ring_speed=ring_speed,
                            speed=speed, clock=clock)
    async with fake_network(net.part, network=net) as (_, url):
        yield net, url
