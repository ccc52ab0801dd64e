"""Exotel's Voice v1 API, for placing calls: a thin typed client.

Exotel places a call by dialling the number and, once it answers, running one of the
account's call flows: ``POST /v1/Accounts/{sid}/Calls/connect.json`` with a form body,
``From`` the number to call, ``CallerId`` the ExoPhone it shows, ``Url`` the flow
(``http://my.exotel.com/{sid}/exoml/start_voice/{flow_id}``), ``TimeOut`` the ring timeout,
``StatusCallback`` with ``StatusCallbackEvents`` ``answered`` and ``terminal``, and
``CustomField`` (the gateway's dial id, which Exotel hands to the flow's applets). The flow's
Voicebot applet then asks the gateway's ``/exotel/answer`` where to stream, as for an inbound
call: the gateway's per-call answer URL is not Exotel's to fetch. The answer names the call by
``Call.Sid``. Credentials are the API key and token, as HTTP Basic auth.

Exotel has no answering-machine detection in this API, and no request that ends or cancels a
call: a placed call ends when the gateway closes its stream, or at its ring timeout.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote, urlsplit, urlunsplit

from gateway.dialing.model import PlaceCall
from gateway.errors import CallControlError, ConfigError
from gateway.faults import REST_RETRY, RetryPolicy
from gateway.log import register_secret
from gateway.rest.http import RestTransport, basic_auth, created_id

DEFAULT_BASE_URL: Final = "https://api.exotel.com"  # Singapore; Mumbai is api.in.exotel.com
_ID: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,79}\Z")
_VARIABLES: Final = ("EXOTEL_ACCOUNT_SID", "EXOTEL_API_KEY", "EXOTEL_API_TOKEN",
                     "VOICEGW_EXOTEL_FLOW_ID")


@dataclass(frozen=True, slots=True)
class ExotelCredentials:
    account_sid: str
    api_key: str
    api_token: str = field(repr=False)
    flow_id: str  # the call flow (App Bazaar app) whose Voicebot applet streams to us

    def __post_init__(self) -> None:
        for name, value in (("EXOTEL_ACCOUNT_SID", self.account_sid),
                            ("VOICEGW_EXOTEL_FLOW_ID", self.flow_id)):
            if not _ID.match(value):
                raise ConfigError(f"{name} does not look like an Exotel id")
        if not self.api_key or not self.api_token:
            raise ConfigError("Exotel credentials need the API key and token")
        register_secret(self.api_token)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ExotelCredentials | None:
        """From ``EXOTEL_ACCOUNT_SID``, ``EXOTEL_API_KEY``, ``EXOTEL_API_TOKEN`` and
        ``VOICEGW_EXOTEL_FLOW_ID``: None without a flow (no calls placed; the API key alone
        is no reason to), else all four or a ConfigError."""
        account, key, token, flow = (env.get(name, "").strip() for name in _VARIABLES)
        if not flow:
            return None
        if not (account and key and token and flow):
            raise ConfigError("placing Exotel calls needs EXOTEL_ACCOUNT_SID, EXOTEL_API_KEY, "
                              "EXOTEL_API_TOKEN and VOICEGW_EXOTEL_FLOW_ID together")
        return cls(account, key, token, flow)

    @property
    def flow_url(self) -> str:
        return f"http://my.exotel.com/{self.account_sid}/exoml/start_voice/{self.flow_id}"


class ExotelRest:
    """:class:`gateway.dialing.carrier.Dialer` for Exotel."""

    def __init__(self, credentials: ExotelCredentials, *, base_url: str = DEFAULT_BASE_URL,
                 timeout_s: float = 10.0, retry: RetryPolicy = REST_RETRY,
                 log: Any = None, status_credentials: tuple[str, str] | None = None) -> None:
        self.credentials = credentials
        # The Basic credentials the gateway requires of Exotel's requests: Exotel presents a
        # URL's userinfo, so they go into the status callback's URL as into the applet's.
        self._status_credentials = status_credentials
        self.http = RestTransport(base_url, basic_auth(credentials.api_key,
                                                       credentials.api_token),
                                  carrier="exotel", timeout_s=timeout_s, retry=retry, log=log)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def place(self, call: PlaceCall) -> str:
        """Dial ``call.to`` into the flow; the call's Sid. ``call.answer_url`` is not sent:
        the flow's Voicebot applet asks ``/exotel/answer`` itself."""
        form = [("From", call.to), ("CallerId", call.from_),
                ("Url", self.credentials.flow_url), ("TimeOut", str(call.timeout_s)),
                ("StatusCallback", self._status_url(call.status_url)),
                ("StatusCallbackEvents[0]", "answered"), ("StatusCallbackEvents[1]", "terminal"),
                ("StatusCallbackContentType", "application/json"),
                ("CustomField", call.dial_id)]
        path = f"/v1/Accounts/{self.credentials.account_sid}/Calls/connect.json"
        reply = await self.http.request("POST", path, action="place", call=call.dial_id,
                                        form=form)
        return created_id(reply, "exotel", _ID, ("Call", "Sid"))

    def _status_url(self, url: str) -> str:
        if self._status_credentials is None:
            return url
        user, password = (quote(part, safe="") for part in self._status_credentials)
        parts = urlsplit(url)
        return urlunsplit(parts._replace(netloc=f"{user}:{password}@{parts.netloc}"))

    async def hang_up(self, call: str) -> bool:
        """Exotel's API cannot end a call: the gateway closes the stream instead."""
        raise CallControlError("exotel has no API to end or cancel a call; the call ends "
                               "when its stream closes, or at its ring timeout")
