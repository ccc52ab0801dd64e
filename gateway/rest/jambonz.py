"""jambonz's REST API, for placing, hanging up and transferring calls: a thin typed client.

Both are ``PUT /v1/Accounts/{account_sid}/Calls/{call_sid}`` with a JSON body (jambonz's API
server also takes ``POST`` there, for older clients; ``PUT`` is the documented method).
``{"call_status": "completed"}`` ends the call. A transfer is a redirect:
``{"call_hook": {"url": ..., "method": "POST"}}`` makes jambonz fetch new verbs from that URL
and run them instead of the ``listen`` (which closes the media socket). That URL is the
gateway's own ``/jambonz/transfer``, in a link that names the number and is signed by the
gateway (:class:`gateway.carriers.transfer_links.TransferLinks`), answering a ``dial``. A warm
transfer's join is the same redirect to a link to ``/jambonz/join``, answering a
``conference`` verb.

Placing a call is ``POST /v1/Accounts/{account_sid}/Calls`` (201 with the call's ``sid``):
``from``, ``to`` (a ``phone`` target), ``call_hook`` (the gateway's answer URL, which answers
the ``listen`` verb as for an inbound call), ``call_status_hook`` (the gateway's status URL,
posted at every change of ``call_status``), ``timeout`` (seconds to ring) and, where set,
``application_sid`` (``VOICEGW_JAMBONZ_APPLICATION_SID``: the application whose speech and
carrier settings the call takes). jambonz's own detection is its ``amd``: it listens beside the
call and posts each finding (``amd_human_detected``, ``amd_machine_detected``,
``amd_tone_detected``...) to its ``actionHook``, the status URL too. Hanging up sends
``call_status`` ``completed``; jambonz documents ``no-answer`` for cancelling a call that
still rings, which the gateway does not send yet (a ringing call ends at its ``timeout``).

jambonz is self-hosted (or its hosted service at an address of the operator's account), so
the API's base URL is always configured: ``VOICEGW_JAMBONZ_API_URL`` (a trailing ``/v1`` is
taken off; the client adds it). Requests carry the account's API key as a Bearer token. A call
jambonz no longer knows is a 404: it is gone, not an error.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from gateway.carriers.jambonz import SID_RE
from gateway.carriers.transfer_links import TransferLinks
from gateway.dialing.model import PlaceCall
from gateway.errors import CallControlError, ConfigError
from gateway.faults import REST_RETRY, RetryPolicy
from gateway.log import register_secret
from gateway.rest.http import RestTransport, created_id

_ACCOUNT_SID: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,79}\Z")
_VARIABLES: Final = ("JAMBONZ_ACCOUNT_SID", "JAMBONZ_API_KEY", "VOICEGW_JAMBONZ_API_URL")


@dataclass(frozen=True, slots=True)
class JambonzCredentials:
    account_sid: str
    api_key: str = field(repr=False)
    base_url: str

    def __post_init__(self) -> None:
        if not _ACCOUNT_SID.match(self.account_sid):
            raise ConfigError("JAMBONZ_ACCOUNT_SID does not look like an account sid")
        if not self.api_key:
            raise ConfigError("jambonz credentials need the API key")
        if not self.base_url.startswith(("https://", "http://")):
            raise ConfigError("VOICEGW_JAMBONZ_API_URL must be an http(s) URL")
        register_secret(self.api_key)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> JambonzCredentials | None:
        """From ``JAMBONZ_ACCOUNT_SID``, ``JAMBONZ_API_KEY`` and ``VOICEGW_JAMBONZ_API_URL``:
        None when none is set (call control disabled), all three or a ConfigError."""
        account, key, url = (env.get(name, "").strip() for name in _VARIABLES)
        if not (account or key or url):
            return None
        if not (account and key and url):
            raise ConfigError("jambonz's REST API needs JAMBONZ_ACCOUNT_SID, JAMBONZ_API_KEY "
                              "and VOICEGW_JAMBONZ_API_URL together")
        return cls(account, key, url.rstrip("/").removesuffix("/v1"))


class JambonzRest:
    """:class:`gateway.callctl.CallControlApi` for jambonz. Without ``links`` (no public URL
    for jambonz to fetch the transfer's verbs from) it can hang up but not transfer."""

    def __init__(self, credentials: JambonzCredentials, *, links: TransferLinks | None = None,
                 join_links: TransferLinks | None = None,
                 application_sid: str | None = None, timeout_s: float = 10.0,
                 retry: RetryPolicy = REST_RETRY, log: Any = None,
                 clock: Callable[[], float] = time.time) -> None:
        if application_sid is not None and not SID_RE.match(application_sid):
            raise ConfigError("VOICEGW_JAMBONZ_APPLICATION_SID does not look like a sid")
        self.application_sid = application_sid
        self.credentials = credentials
        self.links = links
        self.join_links = join_links
        self._clock = clock
        headers = {"Authorization": f"Bearer {credentials.api_key}"}
        self.http = RestTransport(credentials.base_url, lambda: headers, carrier="jambonz",
                                  timeout_s=timeout_s, retry=retry, log=log)

    async def aclose(self) -> None:
        await self.http.aclose()

    def _path(self, call: str) -> str:
        if not SID_RE.match(call):
            raise ValueError(f"not a call sid: {call[:40]!r}")
        return f"/v1/Accounts/{self.credentials.account_sid}/Calls/{call}"

    async def hang_up(self, call: str) -> bool:
        """End a call in progress. False if jambonz no longer knows it (already over)."""
        return await self.http.request("PUT", self._path(call), action="hang_up", call=call,
                                       json={"call_status": "completed"}) is not None

    async def place(self, call: PlaceCall) -> str:
        """Create the call; its sid."""
        body: dict[str, Any] = {
            "from": call.from_, "to": {"type": "phone", "number": call.to},
            "call_hook": {"url": call.answer_url, "method": "POST"},
            "call_status_hook": {"url": call.status_url, "method": "POST"},
            "timeout": call.timeout_s}
        if self.application_sid:
            body["application_sid"] = self.application_sid
        if call.carrier_amd:
            body["amd"] = {"actionHook": {"url": call.status_url, "method": "POST"}}
        reply = await self.http.request(
            "POST", f"/v1/Accounts/{self.credentials.account_sid}/Calls", action="place",
            call=call.dial_id, json=body)
        return created_id(reply, "jambonz", SID_RE, ("sid",))

    @property
    def transfers(self) -> bool:
        return self.links is not None  # jambonz fetches the dial from the gateway

    async def transfer(self, call: str, to: str) -> bool:
        """Make the call dial ``to`` (E.164 or ``sip:``). False if the call was over."""
        if self.links is None:
            raise CallControlError("jambonz transfers need VOICEGW_PUBLIC_URL: jambonz fetches "
                                   "the transfer's verbs from the gateway")
        return await self._redirect(call, self.links.link(to, self._clock()), "transfer")

    @property
    def joins(self) -> bool:
        return self.join_links is not None  # jambonz fetches the conference from the gateway

    async def join(self, call: str, room: str) -> bool:
        """Move the call into conference ``room`` (its stream ends). False if it was over."""
        if self.join_links is None:
            raise CallControlError("jambonz joins need VOICEGW_PUBLIC_URL: jambonz fetches "
                                   "the conference verb from the gateway")
        return await self._redirect(call, self.join_links.link(room, self._clock()), "join")

    async def _redirect(self, call: str, url: str, action: str) -> bool:
        path = self._path(call)
        body = {"call_hook": {"url": url, "method": "POST"}}
        return await self.http.request("PUT", path, action=action, call=call,
                                       json=body) is not None
