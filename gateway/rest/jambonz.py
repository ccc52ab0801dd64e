"""jambonz's REST API, for hanging up and transferring: a thin typed client.

Both are ``PUT /v1/Accounts/{account_sid}/Calls/{call_sid}`` with a JSON body (jambonz's API
server also takes ``POST`` there, for older clients; ``PUT`` is the documented method).
``{"call_status": "completed"}`` ends the call. A transfer is a redirect:
``{"call_hook": {"url": ..., "method": "POST"}}`` makes jambonz fetch new verbs from that URL
and run them instead of the ``listen`` (which closes the media socket). That URL is the
gateway's own ``/jambonz/transfer``, in a link that names the number and is signed by the
gateway (:class:`gateway.carriers.transfer_links.TransferLinks`), answering a ``dial``.

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
from gateway.errors import CallControlError, ConfigError
from gateway.faults import REST_RETRY, RetryPolicy
from gateway.log import register_secret
from gateway.rest.http import RestTransport

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
                 timeout_s: float = 10.0, retry: RetryPolicy = REST_RETRY, log: Any = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.credentials = credentials
        self.links = links
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

    @property
    def transfers(self) -> bool:
        return self.links is not None  # jambonz fetches the dial from the gateway

    async def transfer(self, call: str, to: str) -> bool:
        """Make the call dial ``to`` (E.164 or ``sip:``). False if the call was over."""
        if self.links is None:
            raise CallControlError("jambonz transfers need VOICEGW_PUBLIC_URL: jambonz fetches "
                                   "the transfer's verbs from the gateway")
        path = self._path(call)
        body = {"call_hook": {"url": self.links.link(to, self._clock()), "method": "POST"}}
        return await self.http.request("PUT", path, action="transfer", call=call,
                                       json=body) is not None
