"""Vonage's Voice API, for placing, hanging up and transferring calls: a thin typed client.

Both are ``PUT /v1/calls/{uuid}`` with a JSON body: ``{"action": "hangup"}`` ends the call;
``{"action": "transfer", "destination": {"type": "ncco", "ncco": [...]}}`` replaces what the
call is doing with a new NCCO (for a transfer, a ``connect`` to the number, which also ends
the media socket). A warm transfer's join is a transfer to an NCCO of one ``conversation``
action naming the room. Vonage writes phone numbers in E.164 without the ``+``.

Placing a call is ``POST /v1/calls`` (201 with the call's ``uuid``): ``to`` a ``phone``
endpoint, ``from`` one of the application's numbers, ``answer_url`` (fetched with ``GET``, as
an inbound call's answer is), ``event_url`` for every event of the call (``POST``), and
``ringing_timer`` as the ring timeout. Vonage's own detection is its advanced machine
detection in ``default`` mode (asynchronous, with beep detection): the NCCO runs while it
listens, and it posts ``human`` or ``machine`` (then ``machine`` with ``sub_state``
``beep_start``) to the event URL.

Each request is authorised by a fresh JWT, signed RS256 with the Vonage application's private
key, with the claims Vonage's own SDK (``vonage-jwt``) puts in one: ``application_id``,
``iat``, ``exp`` and a unique ``jti``. A new one per request (:class:`RestTransport`'s
``authorise`` callback) keeps each short-lived and never reused.

Why not the official ``vonage`` package: it is synchronous (``requests``), so every call
would block the event loop or need a thread, and it pulls in every Vonage product's client;
two requests do not need it. Its ``vonage-jwt`` and ``vonage-voice`` parts are the tests'
oracles for the signature check and the NCCO.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from gateway.carriers.core import Carrier
from gateway.carriers.vonage import UUID_RE
from gateway.carriers.vonage_hooks import conversation_ncco, msisdn
from gateway.dialing.model import PlaceCall
from gateway.errors import ConfigError
from gateway.faults import REST_RETRY, RetryPolicy
from gateway.log import register_secret
from gateway.rest.http import RestTransport, created_id

DEFAULT_BASE_URL: Final = "https://api.nexmo.com"
BEEP_TIMEOUT_S: Final = 45  # the least Vonage takes: a greeting's beep comes early or never
TOKEN_TTL_S: Final = 300  # each token is used once, right away; a short life is enough
_APPLICATION_ID: Final = UUID_RE


@dataclass(frozen=True, slots=True)
class VonageCredentials:
    application_id: str
    private_key: RSAPrivateKey = field(repr=False)

    def __post_init__(self) -> None:
        if not _APPLICATION_ID.match(self.application_id):
            raise ConfigError("VONAGE_APPLICATION_ID does not look like an application id")

    @classmethod
    def from_pem(cls, application_id: str, pem: str | bytes) -> VonageCredentials:
        text = pem.decode() if isinstance(pem, bytes) else pem
        # Line by line: a log line could only ever hold a piece of the key.
        for line in text.splitlines():
            if not line.startswith("-----"):
                register_secret(line.strip())
        try:
            key = load_pem_private_key(text.encode(), password=None)
        except (ValueError, TypeError) as exc:
            # Never the key, nor the parser's words about it.
            raise ConfigError("VONAGE_PRIVATE_KEY is not an unencrypted PEM private key") \
                from exc
        if not isinstance(key, RSAPrivateKey):
            raise ConfigError("VONAGE_PRIVATE_KEY is not an RSA key (Vonage signs RS256)")
        return cls(application_id, key)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> VonageCredentials | None:
        """From ``VONAGE_APPLICATION_ID`` and ``VONAGE_PRIVATE_KEY`` (the PEM text, or the
        path of a file holding it); None when no application is configured."""
        env = os.environ if env is None else env
        app = env.get("VONAGE_APPLICATION_ID", "").strip()
        key = env.get("VONAGE_PRIVATE_KEY", "").strip()
        if not app and not key:
            return None
        if not app or not key:
            raise ConfigError("VONAGE_APPLICATION_ID and VONAGE_PRIVATE_KEY go together")
        if "-----BEGIN" not in key:
            try:
                key = Path(key).expanduser().read_text()
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"cannot read VONAGE_PRIVATE_KEY file: "
                                  f"{type(exc).__name__}") from exc
        return cls.from_pem(app, key.replace("\\n", "\n"))

    def token(self, now: float | None = None) -> str:
        """A new application JWT."""
        issued = int(time.time() if now is None else now)
        claims = {"application_id": self.application_id, "iat": issued,
                  "exp": issued + TOKEN_TTL_S, "jti": str(uuid.uuid4())}
        return jwt.encode(claims, self.private_key, algorithm="RS256")


def transfer_ncco(to: str, caller_id: str | None = None) -> list[dict[str, Any]]:
    """An NCCO that connects the call to ``to``: E.164 (with or without ``+``) or ``sip:``."""
    target = to.strip()
    if not target:
        raise ValueError("empty transfer destination")
    if target.lower().startswith(("sip:", "sips:")):
        endpoint = {"type": "sip", "uri": target}
    else:
        endpoint = {"type": "phone", "number": msisdn(target)}
    action: dict[str, Any] = {"action": "connect", "endpoint": [endpoint]}
    if caller_id:
        action["from"] = msisdn(caller_id)
    return [action]


class VonageRest:
    """:class:`gateway.callctl.CallControlApi` for Vonage. ``caller_id`` (a number of the
    application's, ``VONAGE_TRANSFER_FROM``) is the caller id a transferred call shows; without
    it Vonage's default applies."""

    def __init__(self, credentials: VonageCredentials, *, base_url: str = DEFAULT_BASE_URL,
                 caller_id: str | None = None, timeout_s: float = 10.0,
                 retry: RetryPolicy = REST_RETRY, log: Any = None) -> None:
        self.carrier = Carrier.VONAGE
        self.credentials = credentials
        if caller_id:
            try:
                msisdn(caller_id)
            except ValueError as exc:
                raise ConfigError("VONAGE_TRANSFER_FROM is not an E.164 number") from exc
        self.caller_id = caller_id or None
        self.http = RestTransport(base_url, self._authorise, carrier=self.carrier.value,
                                  timeout_s=timeout_s, retry=retry, log=log)

    def _authorise(self) -> Mapping[str, str]:
        return {"Authorization": f"Bearer {self.credentials.token()}"}

    async def aclose(self) -> None:
        await self.http.aclose()

    async def hang_up(self, call: str) -> bool:
        """End a call in progress. False if Vonage no longer knows it (already over)."""
        return await self._update(call, {"action": "hangup"}, "hang_up")

    @property
    def transfers(self) -> bool:
        return True

    async def transfer(self, call: str, to: str) -> bool:
        """Connect the caller to ``to`` instead of the gateway."""
        ncco = transfer_ncco(to, self.caller_id)
        return await self._update(call, {"action": "transfer",
                                         "destination": {"type": "ncco", "ncco": ncco}},
                                  "transfer")

    @property
    def joins(self) -> bool:
        return True

    async def join(self, call: str, room: str) -> bool:
        """Move the call into conversation ``room`` (its socket closes); False if over."""
        return await self._update(call, {"action": "transfer", "destination": {
            "type": "ncco", "ncco": conversation_ncco(room)}}, "join")

    async def place(self, call: PlaceCall) -> str:
        """Create the call; its uuid."""
        body: dict[str, Any] = {
            "to": [{"type": "phone", "number": msisdn(call.to)}],
            "from": {"type": "phone", "number": msisdn(call.from_)},
            "answer_url": [call.answer_url], "answer_method": "GET",
            "event_url": [call.status_url], "event_method": "POST",
            "ringing_timer": call.timeout_s}
        if call.carrier_amd:
            body["advanced_machine_detection"] = {
                "behavior": "continue", "mode": "default", "beep_timeout": BEEP_TIMEOUT_S}
        reply = await self.http.request("POST", "/v1/calls", action="place",
                                        call=call.dial_id, json=body)
        return created_id(reply, self.carrier.value, UUID_RE, ("uuid",))

    async def _update(self, call: str, body: Mapping[str, Any], action: str) -> bool:
        if not UUID_RE.match(call):
            raise ValueError(f"not a call uuid: {call[:40]!r}")
        return await self.http.request("PUT", f"/v1/calls/{call}", action=action, call=call,
                                       json=body) is not None
