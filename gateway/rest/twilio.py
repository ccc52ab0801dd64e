"""Twilio's Calls API, for placing, hanging up and transferring calls: a thin typed client.

Both are ``POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json`` with a form body:
``Status=completed`` ends the call, ``Twiml=<Response>...`` replaces what the call is doing
(for a transfer, a ``<Dial>``), which also ends the Media Stream. Credentials are the account's
Auth Token or an API key (``TWILIO_API_KEY``/``TWILIO_API_SECRET``), sent as HTTP Basic auth.
SignalWire's compatibility API takes the same requests under its space's ``/api/laml``, with
the project id and an API token; it takes no inline ``Twiml``, so a transfer there redirects
the call to a signed link on the gateway (``links``) that answers the ``<Dial>``, and a warm
transfer's join to one (``join_links``) that answers the ``<Dial><Conference>``.

Why not the official ``twilio`` package: its async client is a thin layer over the same
request, and the package (every Twilio product's generated API) costs more to import than the
whole gateway; two calls do not need it. It remains the oracle for signatures in the tests.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from xml.sax.saxutils import escape

from gateway.carriers.core import Carrier
from gateway.carriers.transfer_links import TransferLinks
from gateway.carriers.twilio_hooks import conference_twiml
from gateway.dialing.model import PlaceCall
from gateway.errors import CallControlError, ConfigError
from gateway.faults import REST_RETRY, RetryPolicy
from gateway.log import register_secret
from gateway.rest.http import RestTransport, basic_auth

DEFAULT_BASE_URL: Final = "https://api.twilio.com"
_SID: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{1,63}$")
# Every status Twilio can post for a placed call (it posts none it is not asked for).
_STATUS_EVENTS: Final = ("initiated", "ringing", "answered", "completed")


@dataclass(frozen=True, slots=True)
class TwilioCredentials:
    account_sid: str
    username: str  # the AccountSid, or an API key SID (SK...)
    password: str = field(repr=False)  # the Auth Token or the API key secret

    def __post_init__(self) -> None:
        if not _SID.match(self.account_sid):
            raise ConfigError("the account SID does not look like one")
        if not self.username or not self.password:
            raise ConfigError("Twilio credentials need a user name and a secret")
        register_secret(self.password)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TwilioCredentials | None:
        """From ``TWILIO_ACCOUNT_SID`` plus ``TWILIO_AUTH_TOKEN`` or ``TWILIO_API_KEY`` and
        ``TWILIO_API_SECRET``; None when no account is configured (call control disabled)."""
        env = os.environ if env is None else env
        account = env.get("TWILIO_ACCOUNT_SID", "").strip()
        if not account:
            return None
        key, secret = env.get("TWILIO_API_KEY", "").strip(), env.get("TWILIO_API_SECRET", "")
        if key and secret:
            return cls(account, key, secret.strip())
        token = env.get("TWILIO_AUTH_TOKEN", "").strip()
        if not token:
            raise ConfigError("TWILIO_ACCOUNT_SID is set but neither TWILIO_AUTH_TOKEN nor "
                              "TWILIO_API_KEY/TWILIO_API_SECRET is")
        return cls(account, account, token)


def dial_twiml(number: str) -> str:
    """TwiML that connects the call to ``number`` (E.164) or a ``sip:`` address."""
    target = number.strip()
    if not target:
        raise ValueError("empty transfer destination")
    if target.lower().startswith("sip:"):
        return f"<Response><Dial><Sip>{escape(target)}</Sip></Dial></Response>"
    return f"<Response><Dial>{escape(target)}</Dial></Response>"


class TwilioRest:
    """:class:`gateway.callctl.CallControlApi` for Twilio (and SignalWire's LaML API)."""

    def __init__(self, credentials: TwilioCredentials, *, base_url: str = DEFAULT_BASE_URL,
                 carrier: Carrier = Carrier.TWILIO, links: TransferLinks | None = None,
                 join_links: TransferLinks | None = None, timeout_s: float = 10.0,
                 retry: RetryPolicy = REST_RETRY, log: Any = None) -> None:
        self.carrier = carrier
        self.credentials = credentials
        self.links = links
        self.join_links = join_links
        self.http = RestTransport(base_url,
                                  basic_auth(credentials.username, credentials.password),
                                  carrier=carrier.value, timeout_s=timeout_s, retry=retry,
                                  log=log)

    @property
    def transfers(self) -> bool:
        # Twilio takes the <Dial> inline; SignalWire only through a link to the gateway.
        return self.carrier is Carrier.TWILIO or self.links is not None

    async def __aenter__(self) -> TwilioRest:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def hang_up(self, call: str) -> bool:
        """End a call in progress. False if the carrier no longer knows it (already over)."""
        return await self._update(call, {"Status": "completed"}, "hang_up")

    async def redirect(self, call: str, twiml: str) -> bool:
        """Make the call execute ``twiml`` now. False if the call has already ended."""
        return await self._update(call, {"Twiml": twiml}, "redirect")

    async def transfer(self, call: str, to: str) -> bool:
        """Redirect the call to ``<Dial>to</Dial>``: inline, or through a signed link."""
        if self.links is not None:
            link = self.links.link(to, time.time())
            return await self._update(call, {"Url": link, "Method": "POST"}, "redirect")
        return await self.redirect(call, dial_twiml(to))

    @property
    def joins(self) -> bool:
        # A conference takes inline TwiML; SignalWire's API takes only a URL to fetch it from.
        return self.carrier is Carrier.TWILIO or self.join_links is not None

    async def join(self, call: str, room: str) -> bool:
        """Move the call into conference ``room`` (its media stream ends); False if over."""
        if self.join_links is not None:
            link = self.join_links.link(room, time.time())
            return await self._update(call, {"Url": link, "Method": "POST"}, "join")
        if self.carrier is not Carrier.TWILIO:
            raise CallControlError(f"{self.carrier.value} joins calls only through a link to "
                                   "the gateway: VOICEGW_PUBLIC_URL is not set")
        return await self._update(call, {"Twiml": conference_twiml(room)}, "join")

    async def place(self, call: PlaceCall) -> str:
        """Create the call (``POST .../Calls.json``); its SID. Twilio fetches ``answer_url``
        once the callee answers and posts each status change to ``status_url``; with
        ``carrier_amd`` its asynchronous detection posts ``AnsweredBy`` there too, while the
        call already streams to us (the synchronous kind would hold the call silent until it
        decides)."""
        form: list[tuple[str, str]] = [
            ("To", call.to), ("From", call.from_), ("Url", call.answer_url), ("Method", "POST"),
            ("StatusCallback", call.status_url), ("StatusCallbackMethod", "POST"),
            *(("StatusCallbackEvent", event) for event in _STATUS_EVENTS),
            ("Timeout", str(call.timeout_s)),
        ]
        if call.carrier_amd:
            form += [("MachineDetection", "DetectMessageEnd"), ("AsyncAmd", "true"),
                     ("AsyncAmdStatusCallback", call.status_url),
                     ("AsyncAmdStatusCallbackMethod", "POST")]
        path = f"/2010-04-01/Accounts/{self.credentials.account_sid}/Calls.json"
        reply = await self.http.request("POST", path, action="place", call=call.dial_id,
                                        form=form)
        sid = reply.body.get("sid") if reply is not None else None
        if not isinstance(sid, str) or not _SID.match(sid):
            raise CallControlError(f"{self.carrier.value} accepted the call but named no "
                                   f"call SID", status=reply.status if reply else 404)
        return sid

    async def _update(self, call: str, form: Mapping[str, str], action: str) -> bool:
        if not _SID.match(call):
            raise ValueError(f"not a call SID: {call[:40]!r}")
        path = f"/2010-04-01/Accounts/{self.credentials.account_sid}/Calls/{call}.json"
        return await self.http.request("POST", path, action=action, call=call,
                                       form=form) is not None
