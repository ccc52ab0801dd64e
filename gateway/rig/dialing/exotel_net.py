"""Exotel's part in calls the gateway places (test and demo tooling): its
``Calls/connect.json`` as :class:`FakeExotel` checks it (Basic auth with the API key and
token; a form with ``From``, the number dialled, ``CallerId`` and the flow's ``Url``),
answered with the call's ``Sid``; then the ``answered`` and ``terminal`` events asked for in
``StatusCallbackEvents``, as JSON (``StatusCallbackContentType``) with ``CallSid``,
``EventType`` and ``Status``, sent with the Basic credentials the status URL's userinfo holds
(Exotel signs nothing). Once answered, the flow's Voicebot applet fetches its own fixed URL,
the gateway's ``/exotel/answer`` (``applet_url``), with ``GET`` and the call's fields, never
the dial's id, and streams through Exotel's rig peer. Exotel has no detection of its own and
no API that ends a call.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.parse
import uuid
from dataclasses import dataclass
from typing import Final

from aiohttp import web

from gateway.carriers.core import Carrier
from gateway.dialing.model import AnsweredBy
from gateway.rig.dialing.network import FakeNetwork, PlacedCall, Plan, Progress, inbound_request
from gateway.rig.peers import HttpRequest, PhonePeer
from gateway.rig.peers.registry import new_peer
from gateway.rig.rest_fakes import Recorded
from gateway.rig.rest_fakes.exotel import FakeExotel

# (EventType, Status) for each step Exotel posts (only these two events exist).
WORDS: Final = {
    Progress.ANSWERED: ("answered", "in-progress"),
    Progress.BUSY: ("terminal", "busy"), Progress.NO_ANSWER: ("terminal", "no-answer"),
    Progress.FAILED: ("terminal", "failed"), Progress.CANCELED: ("terminal", "failed"),
    Progress.COMPLETED: ("terminal", "completed"),
}


@dataclass
class ExotelPart:
    account_sid: str
    api_key: str
    api_token: str
    stream_user: str
    stream_password: str
    applet_url: str  # the Voicebot applet's URL: the gateway's /exotel/answer
    flow_id: str = "774411"
    carrier: Carrier = Carrier.EXOTEL

    def app(self, network: FakeNetwork) -> web.Application:
        return FakeExotel(self.account_sid, self.api_key, self.api_token,
                          network=network).app()

    def plan(self, sid: str, request: Recorded) -> Plan:
        form = request.form
        return Plan(form["From"], form["CallerId"], form.get("StatusCallback", ""),
                    int(form.get("TimeOut") or 60))

    def inbound(self, to: str, from_: str, answer_url: str) -> tuple[str, Recorded]:
        # Exotel names a call's numbers from the flow's side: the stream's From is the
        # other party (here the caller), its To the flow's number; the applet's URL is fixed.
        return uuid.uuid4().hex, inbound_request({"From": from_, "CallerId": to})

    def status(self, call: PlacedCall, progress: Progress) -> HttpRequest | None:
        form = call.request.form
        asked = {v for k, v in form.items() if k.startswith("StatusCallbackEvents")}
        if progress not in WORDS or not call.plan.status_url or WORDS[progress][0] not in asked:
            return None
        event, word = WORDS[progress]
        body = json.dumps({"CallSid": call.sid, "EventType": event, "Status": word,
                           "From": call.to, "To": call.from_, "Direction": "outbound-api",
                           "CustomField": form.get("CustomField", ""),
                           "DateUpdated": time.strftime("%Y-%m-%d %H:%M:%S")}).encode()
        parts = urllib.parse.urlsplit(call.plan.status_url)
        headers = {"Content-Type": "application/json"}
        if parts.username is not None:  # as any HTTP client sends a URL's userinfo
            pair = f"{urllib.parse.unquote(parts.username)}:" \
                   f"{urllib.parse.unquote(parts.password or '')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        url = urllib.parse.urlunsplit(parts._replace(netloc=parts.hostname + (
            f":{parts.port}" if parts.port else "") if parts.hostname else parts.netloc))
        return HttpRequest("POST", url, headers, body)

    def detection(self, call: PlacedCall, by: AnsweredBy, beep: bool) -> HttpRequest | None:
        return None  # Exotel has no machine detection

    def answering(self, call: PlacedCall) -> tuple[PhonePeer, str, str | None]:
        peer = new_peer(self.carrier, {"From": call.to, "To": call.from_}, call.sid)
        return peer, self.applet_url, f"{self.stream_user}:{self.stream_password}"

    def environment(self, api_url: str) -> dict[str, str]:
        return {"EXOTEL_ACCOUNT_SID": self.account_sid, "EXOTEL_API_KEY": self.api_key,
                "EXOTEL_API_TOKEN": self.api_token, "VOICEGW_EXOTEL_FLOW_ID": self.flow_id,
                "VOICEGW_EXOTEL_API_URL": api_url, "EXOTEL_STREAM_USER": self.stream_user,
                "EXOTEL_STREAM_PASSWORD": self.stream_password}
