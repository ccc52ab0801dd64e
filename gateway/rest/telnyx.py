"""Telnyx's Call Control API, for hanging up and transferring: a thin typed client.

Both are commands on the call's ``call_control_id`` (``Started.control_id``), JSON posted with
``Authorization: Bearer <API key>``: ``POST /v2/calls/{id}/actions/hangup`` and
``POST /v2/calls/{id}/actions/transfer`` with ``{"to": "+1..."}`` (a number or a ``sip:``
URI; ``to`` is the one field the transfer requires). Each command carries a ``command_id``
that stays the same across retries: Telnyx ignores a command whose ``command_id`` it has
already seen for that call, so a retry after a lost reply cannot act twice. A call that has
already ended is refused with 422 and Telnyx's error code 90018 ("Call has already ended"):
that is the call being gone (False), not an error. Calls a TeXML application answered take
Call Control commands too.

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
from typing import Any, Final

from gateway.errors import ConfigError
from gateway.faults import REST_RETRY, RetryPolicy
from gateway.log import register_secret
from gateway.rest.http import RestTransport, error_code

DEFAULT_BASE_URL: Final = "https://api.telnyx.com"
ALREADY_ENDED: Final = "90018"  # Telnyx's code for a command on a call that has ended
# The same id shape the stream core accepts: no separators, no dots, so no path tricks.
_CALL_ID: Final = re.compile(r"^[A-Za-z0-9:_\-]{1,200}\Z")
# E.164, or a SIP URI without spaces or quotes.
_DESTINATION: Final = re.compile(r"^(\+[1-9][0-9]{6,14}|sips?:[^\s\"<>]{3,250})\Z")


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
                 timeout_s: float = 10.0, retry: RetryPolicy = REST_RETRY,
                 log: Any = None) -> None:
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

    async def _command(self, call: str, action: str, body: Mapping[str, str]) -> bool:
        if not _CALL_ID.match(call):
            raise ValueError(f"not a call control id: {call[:40]!r}")
        command = {**body, "command_id": str(uuid.uuid4())}  # one per command, kept on retry
        reply = await self.http.request("POST", f"/v2/calls/{call}/actions/{action}",
                                        action=action, call=call, json=command)
        return reply is not None
