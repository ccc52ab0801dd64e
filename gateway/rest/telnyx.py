"""Telnyx's Call Control API, for hanging up and transferring, and its TeXML Calls API, for
placing calls: a thin typed client.

Both are commands on the call's ``call_control_id`` (``Started.control_id``), JSON posted with
``Authorization: Bearer <API key>``: ``POST /v2/calls/{id}/actions/hangup`` and
``POST /v2/calls/{id}/actions/transfer`` with ``{"to": "+1..."}`` (a number or a ``sip:``
URI; ``to`` is the one field the transfer requires). Each command carries a ``command_id``
that stays the same across retries: Telnyx ignores a command whose ``command_id`` it has
already seen for that call, so a retry after a lost reply cannot act twice. A call that has
already ended is refused with 422 and Telnyx's error code 90018 ("Call has already ended"):
that is the call being gone (False), not an error. Calls a TeXML application answered take
Call Control commands too.

**Placing calls** goes through the TeXML application the gateway answers with:
``POST /v2/texml/Accounts/{account_sid}/Calls`` with a JSON body in Twilio's field names
(``ApplicationSid``, ``To``, ``From``, ``Url``, ``StatusCallback``, ``StatusCallbackEvent``
as one space-separated string, ``Timeout``), and for Telnyx's own detection
``MachineDetection=DetectMessageEnd`` with ``AsyncAmd`` (the call streams to us while it
listens; ``AnsweredBy`` goes to ``AsyncAmdStatusCallback``). Telnyx then fetches ``Url`` as
it does an inbound call's, and posts TeXML status callbacks (Twilio's fields) to the gateway.
The answer names the call by ``call_sid``, its Call Control id, so hanging it up (also while
it rings) is the same ``hangup`` command as for any call. ``account_sid`` is the account's id
(``AccountSid`` in Telnyx's webhooks), ``ApplicationSid`` the TeXML application's.

**A warm transfer's join** is the TeXML call update,
``POST /v2/texml/Accounts/{account_sid}/Calls/{call_sid}`` with ``Texml``: inline TeXML
(``<Dial><Conference>``, as Twilio's) that replaces what the call is doing, which ends its
stream. The body is JSON, as Telnyx's own SDK sends it. It needs the account's id, so calls
are joined only where the gateway places calls too.

Why not the official ``telnyx`` package: it is generated for every Telnyx product (over 3,000
modules, about a second to import, on httpx rather than the gateway's aiohttp pool), and two
commands do not need it. It
remains the oracle for webhook signatures in the tests, and a check that the fake API in the
tests takes what the SDK sends.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from gateway.carriers.twilio_hooks import conference_twiml
from gateway.dialing.model import PlaceCall
from gateway.errors import CallControlError, ConfigError
from gateway.faults import REST_RETRY, RetryPolicy
from gateway.log import register_secret
from gateway.rest.http import RestTransport, created_id, error_code

DEFAULT_BASE_URL: Final = "https://api.telnyx.com"
ALREADY_ENDED: Final = "90018"  # Telnyx's code for a command on a call that has ended
# The same id shape the stream core accepts: no separators, no dots, so no path tricks.
_CALL_ID: Final = re.compile(r"^[A-Za-z0-9:_\-]{1,200}\Z")
# E.164, or a SIP URI without spaces or quotes.
_DESTINATION: Final = re.compile(r"^(\+[1-9][0-9]{6,14}|sips?:[^\s\"<>]{3,250})\Z")
# Ids that go into a path: letters, digits, dashes (account UUIDs, numeric application ids).
_PATH_ID: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,79}\Z")
# Every status the TeXML API can post for a placed call (it posts only those asked for).
STATUS_EVENTS: Final = "initiated ringing answered completed"


@dataclass(frozen=True, slots=True)
class TexmlApp:
    """What placing calls needs beside the API key: the account's id and the TeXML
    application's (``VOICEGW_TELNYX_ACCOUNT_SID``, ``VOICEGW_TELNYX_APPLICATION_ID``)."""

    account_sid: str
    application_id: str

    def __post_init__(self) -> None:
        for name, value in (("VOICEGW_TELNYX_ACCOUNT_SID", self.account_sid),
                            ("VOICEGW_TELNYX_APPLICATION_ID", self.application_id)):
            if not _PATH_ID.match(value):
                raise ConfigError(f"{name} does not look like a Telnyx id")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TexmlApp | None:
        """Both, or None when neither is set (no calls placed)."""
        account = env.get("VOICEGW_TELNYX_ACCOUNT_SID", "").strip()
        app = env.get("VOICEGW_TELNYX_APPLICATION_ID", "").strip()
        if not (account or app):
            return None
        if not (account and app):
            raise ConfigError("placing Telnyx calls needs VOICEGW_TELNYX_ACCOUNT_SID and "
                              "VOICEGW_TELNYX_APPLICATION_ID together")
        return cls(account, app)


def call_gone(status: int, body: Mapping[str, Any]) -> bool:
    """Telnyx's way of saying the call is over: 404, or 422 with code 90018."""
    return status == 404 or (status == 422 and str(error_code(body)) == ALREADY_ENDED)


def api_key_from_env(env: Mapping[str, str] | None = None) -> str | None:
    """``TELNYX_API_KEY``; None when unset (call control disabled)."""
    env = os.environ if env is None else env
    return env.get("TELNYX_API_KEY", "").strip() or None


class TelnyxRest:
    """:class:`gateway.callctl.CallControlApi` for Telnyx's Call Control."""

    def __init__(self, api_key: str, *, base_url: str = DEFAULT_BASE_URL,
                 texml: TexmlApp | None = None, timeout_s: float = 10.0,
                 retry: RetryPolicy = REST_RETRY, log: Any = None) -> None:
        self.texml = texml
        if not api_key:
            raise ConfigError("Telnyx call control needs an API key (TELNYX_API_KEY)")
        register_secret(api_key)
        auth = {"Authorization": f"Bearer {api_key}"}
        self.http = RestTransport(base_url, lambda: auth, carrier="telnyx",
                                  timeout_s=timeout_s, retry=retry, log=log, gone=call_gone)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def hang_up(self, call: str) -> bool:
        """End a call in progress. False if Telnyx says it is already over."""
        return await self._command(call, "hangup", {})

    @property
    def transfers(self) -> bool:
        return True

    async def transfer(self, call: str, to: str) -> bool:
        """Dial ``to`` (E.164 or ``sip:``) and connect the caller to it."""
        target = to.strip()
        if not _DESTINATION.match(target):
            raise ValueError("transfer destination must be E.164 (+15550100) or a sip: URI")
        return await self._command(call, "transfer", {"to": target})

    @property
    def joins(self) -> bool:
        return self.texml is not None  # the update's path names the account

    async def join(self, call: str, room: str) -> bool:
        """Move the call into conference ``room`` (its stream ends); False if it was over."""
        if self.texml is None:
            raise CallControlError("joining Telnyx calls needs VOICEGW_TELNYX_ACCOUNT_SID")
        if not _CALL_ID.match(call):
            raise ValueError(f"not a call control id: {call[:40]!r}")
        path = f"/v2/texml/Accounts/{self.texml.account_sid}/Calls/{call}"
        return await self.http.request("POST", path, action="join", call=call,
                                       json={"Texml": conference_twiml(room)}) is not None

    async def place(self, call: PlaceCall) -> str:
        """Create the call through the TeXML application; its Call Control id."""
        if self.texml is None:
            raise CallControlError("placing Telnyx calls needs VOICEGW_TELNYX_ACCOUNT_SID and "
                                   "VOICEGW_TELNYX_APPLICATION_ID")
        body: dict[str, Any] = {
            "ApplicationSid": self.texml.application_id, "To": call.to, "From": call.from_,
            "Url": call.answer_url, "UrlMethod": "POST", "StatusCallback": call.status_url,
            "StatusCallbackMethod": "POST", "StatusCallbackEvent": STATUS_EVENTS,
            "Timeout": call.timeout_s}
        if call.carrier_amd:
            body |= {"MachineDetection": "DetectMessageEnd", "AsyncAmd": True,
                     "AsyncAmdStatusCallback": call.status_url,
                     "AsyncAmdStatusCallbackMethod": "POST"}
        reply = await self.http.request(
            "POST", f"/v2/texml/Accounts/{self.texml.account_sid}/Calls", action="place",
            call=call.dial_id, json=body)
        return created_id(reply, "telnyx", _CALL_ID, ("call_sid",), ("data", "call_sid"),
                          ("sid",))

    async def _command(self, call: str, action: str, body: Mapping[str, str]) -> bool:
        if not _CALL_ID.match(call):
            raise ValueError(f"not a call control id: {call[:40]!r}")
        command = {**body, "command_id": str(uuid.uuid4())}  # one per command, kept on retry
        reply = await self.http.request("POST", f"/v2/calls/{call}/actions/{action}",
                                        action=action, call=call, json=command)
        return reply is not None
