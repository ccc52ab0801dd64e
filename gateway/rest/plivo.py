"""Plivo's Call API, for placing, hanging up and transferring calls: a thin typed client.

Hanging up is ``DELETE /v1/Account/{auth_id}/Call/{call_uuid}/`` (204). A transfer is
``POST`` to the same URL with ``legs=aleg`` and ``aleg_url``: Plivo fetches new XML there and
runs it instead of the stream (202). That URL is the gateway's own ``/plivo/transfer``, in a
link that names the number and is signed by the gateway
(:class:`gateway.carriers.transfer_links.TransferLinks`). A warm transfer's join is the same
request to a link to ``/plivo/join``, which answers ``<Conference>``. A call that has ended is
a 404: it is gone, not an error. Credentials are the Auth ID and Auth Token, as HTTP Basic auth.

**Placing a call** is ``POST /v1/Account/{auth_id}/Call/`` (JSON: ``from``, ``to``,
``answer_url``, ``ring_url``, ``hangup_url``, ``ring_timeout``; numbers as Plivo writes them,
without the ``+``), answered 201 with a ``request_uuid``. Plivo fetches the answer URL when
the callee picks up, posts ``ring_url`` when it rings and ``hangup_url`` when the call ends
(answered or not), all to the gateway's status URL. Its machine detection
(``machine_detection=true``) runs beside the answered call and posts ``Machine`` to
``machine_detection_url``. The call is known by its ``request_uuid`` (every callback of a call
the API placed carries it as ``RequestUUID``): hanging it up ends the call, or, while it is
still queued or ringing, cancels the request (``DELETE .../Request/{request_uuid}/``).

Why not the official ``plivo`` package: it is synchronous (``requests``), so every call would
need a thread, and it brings lxml and a client for every Plivo product; two requests do not
need it. It remains the oracle for signatures in the tests.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from gateway.carriers.transfer_links import TransferLinks
from gateway.dialing.model import PlaceCall
from gateway.errors import CallControlError, ConfigError
from gateway.faults import REST_RETRY, RetryPolicy
from gateway.log import register_secret
from gateway.rest.http import RestTransport, basic_auth, created_id

DEFAULT_BASE_URL: Final = "https://api.plivo.com"
# An account (MA...) or subaccount (SA...) Auth ID: 20 characters, as Plivo's SDK checks.
_AUTH_ID: Final = re.compile(r"^(MA|SA)[A-Za-z0-9]{18}\Z")
# Never empty: Plivo's DELETE without a call UUID hangs up every call on the account.
_CALL_UUID: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{1,63}\Z")


@dataclass(frozen=True, slots=True)
class PlivoCredentials:
    auth_id: str
    auth_token: str = field(repr=False)

    def __post_init__(self) -> None:
        if not _AUTH_ID.match(self.auth_id):
            raise ConfigError("PLIVO_AUTH_ID does not look like a Plivo Auth ID (MA... or SA..., "
                              "20 characters)")
        if not self.auth_token:
            raise ConfigError("Plivo credentials need the Auth Token")
        register_secret(self.auth_token)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PlivoCredentials | None:
        """From ``PLIVO_AUTH_ID`` and ``PLIVO_AUTH_TOKEN``; None without an Auth ID (call
        control disabled)."""
        env = os.environ if env is None else env
        auth_id = env.get("PLIVO_AUTH_ID", "").strip()
        if not auth_id:
            return None
        token = env.get("PLIVO_AUTH_TOKEN", "").strip()
        if not token:
            raise ConfigError("PLIVO_AUTH_ID is set but PLIVO_AUTH_TOKEN is not")
        return cls(auth_id, token)


class PlivoRest:
    """:class:`gateway.callctl.CallControlApi` for Plivo. Without ``links`` (no public URL
    for Plivo to fetch the transfer from) it can hang up but not transfer."""

    def __init__(self, credentials: PlivoCredentials, *, base_url: str = DEFAULT_BASE_URL,
                 links: TransferLinks | None = None,
                 join_links: TransferLinks | None = None, timeout_s: float = 10.0,
                 retry: RetryPolicy = REST_RETRY, log: Any = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.credentials = credentials
        self.links = links
        self.join_links = join_links
        self._clock = clock
        self.http = RestTransport(base_url,
                                  basic_auth(credentials.auth_id, credentials.auth_token),
                                  carrier="plivo", timeout_s=timeout_s, retry=retry, log=log)

    async def aclose(self) -> None:
        await self.http.aclose()

    def _path(self, call: str) -> str:
        if not _CALL_UUID.match(call):
            raise ValueError(f"not a call UUID: {call[:40]!r}")
        return f"/v1/Account/{self.credentials.auth_id}/Call/{call}/"

    async def hang_up(self, call: str) -> bool:
        """End a call in progress, or cancel a placed call that has not been answered (its
        request). False if Plivo knows neither (already over)."""
        if await self.http.request("DELETE", self._path(call), action="hang_up",
                                   call=call) is not None:
            return True
        path = f"/v1/Account/{self.credentials.auth_id}/Request/{call}/"
        return await self.http.request("DELETE", path, action="cancel", call=call) is not None

    async def place(self, call: PlaceCall) -> str:
        """Fire the call; its ``request_uuid``."""
        body: dict[str, str | int] = {
            "from": call.from_.removeprefix("+"), "to": call.to.removeprefix("+"),
            "answer_url": call.answer_url, "answer_method": "POST",
            "ring_url": call.status_url, "ring_method": "POST",
            "hangup_url": call.status_url, "hangup_method": "POST",
            "ring_timeout": call.timeout_s}
        if call.carrier_amd:
            body |= {"machine_detection": "true", "machine_detection_url": call.status_url,
                     "machine_detection_method": "POST"}
        reply = await self.http.request(
            "POST", f"/v1/Account/{self.credentials.auth_id}/Call/", action="place",
            call=call.dial_id, json=body)
        return created_id(reply, "plivo", _CALL_UUID, ("request_uuid",))

    @property
    def transfers(self) -> bool:
        return self.links is not None  # Plivo fetches the <Dial> from the gateway

    async def transfer(self, call: str, to: str) -> bool:
        """Make the call dial ``to`` (E.164 or ``sip:``). False if the call was over."""
        if self.links is None:
            raise CallControlError("plivo transfers need VOICEGW_PUBLIC_URL: Plivo fetches "
                                   "the transfer's XML from the gateway")
        return await self._redirect(call, self.links.link(to, self._clock()), "transfer")

    @property
    def joins(self) -> bool:
        return self.join_links is not None  # Plivo fetches the <Conference> from the gateway

    async def join(self, call: str, room: str) -> bool:
        """Move the call into conference ``room`` (its stream ends). False if it was over."""
        if self.join_links is None:
            raise CallControlError("plivo joins need VOICEGW_PUBLIC_URL: Plivo fetches the "
                                   "conference's XML from the gateway")
        return await self._redirect(call, self.join_links.link(room, self._clock()), "join")

    async def _redirect(self, call: str, url: str, action: str) -> bool:
        path = self._path(call)
        body = {"legs": "aleg", "aleg_url": url, "aleg_method": "POST"}
        return await self.http.request("POST", path, action=action, call=call,
                                       json=body) is not None
