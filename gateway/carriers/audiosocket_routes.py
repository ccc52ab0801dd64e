"""Which agent an AudioSocket call is for, from its UUID. Pure: no I/O.

AudioSocket carries nothing but the UUID, so the dialplan tells the gateway the rest before it
connects: it registers the call (``POST /audiosocket/calls`` with ``uuid``, and ``agent``,
``from``, ``to`` and any other field as a parameter for the agent), typically with Asterisk's
``CURL()`` dialplan function and the dialplan's own variables. The :class:`RouteBook` keeps each
registration until the call's socket takes it (once) or it expires; it is bounded, and a full
book refuses new registrations rather than forget ones already made.

Where registering from the dialplan does not suit, the operator's own lookup answers instead
(:mod:`gateway.audiosocket_server`); a call found by neither goes to the default agent.
"""

from __future__ import annotations

import re
import time
import uuid as uuidlib
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Final

from gateway.carriers.audiosocket import Route
from gateway.carriers.core import scalar_text
from gateway.carriers.hooks import AnswerDocument, WebhookError, WebhookRequest, json_body

TTL_S: Final = 120.0  # a registration the call never took is forgotten after this
MAX_ROUTES: Final = 10_000
MAX_PARAMETERS: Final = 32
MAX_VALUE_CHARS: Final = 256
_NAME: Final = re.compile(r"^[A-Za-z0-9_.-]{1,64}\Z")
_OWN: Final = frozenset({"uuid", "agent", "from", "to"})


def canonical_uuid(text: str) -> str | None:
    """``text`` as the UUID AudioSocket sends (lower case, hyphenated), or None."""
    try:
        return str(uuidlib.UUID(text.strip()))
    except (ValueError, AttributeError):
        return None


def route_from_fields(fields: Mapping[str, Any], where: str) -> Route:
    """A route from a registration's (or a lookup's) fields; :class:`WebhookError` on a field
    that is not usable."""
    agent = scalar_text(fields.get("agent")).strip() or None
    if agent is not None and not _NAME.match(agent):
        raise WebhookError(f"{where}: agent must be 1-64 letters, digits, '_', '.' or '-'")
    params_in = fields.get("parameters")
    extra = {k: v for k, v in fields.items() if k not in _OWN and k != "parameters"}
    if isinstance(params_in, dict):
        extra.update(params_in)
    elif params_in is not None:
        raise WebhookError(f"{where}: parameters must be an object")
    if len(extra) > MAX_PARAMETERS:
        raise WebhookError(f"{where}: at most {MAX_PARAMETERS} parameters")
    params: dict[str, str] = {}
    for key, value in extra.items():
        text = scalar_text(value)
        if not _NAME.match(str(key)) or len(text) > MAX_VALUE_CHARS:
            raise WebhookError(f"{where}: parameter names are 1-64 letters, digits, '_', '.' "
                               f"or '-', values at most {MAX_VALUE_CHARS} characters")
        params[str(key)] = text
    caller = scalar_text(fields.get("from")).strip()[:64] or None
    callee = scalar_text(fields.get("to")).strip()[:64] or None
    return Route(agent=agent, caller=caller, callee=callee, parameters=params)


def registration_fields(request: WebhookRequest) -> dict[str, Any]:
    """A registration's fields: form or query fields, or a JSON object body."""
    fields: dict[str, Any] = dict((*request.query, *request.form))
    body = None if request.form else json_body(request)
    if body is not None:
        fields.update(body)  # a lookup-style object: "parameters" may nest
    return fields


class RouteBook:
    """Registered calls by UUID, each taken once, within :data:`TTL_S`."""

    def __init__(self, *, ttl_s: float = TTL_S, max_routes: int = MAX_ROUTES) -> None:
        self.ttl_s = ttl_s
        self.max_routes = max_routes
        self._routes: OrderedDict[str, tuple[float, Route]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._routes)

    def register(self, call: str, route: Route, now: float) -> None:
        self._expire(now)
        if call not in self._routes and len(self._routes) >= self.max_routes:
            raise WebhookError("too many calls registered and not yet connected")
        self._routes[call] = (now + self.ttl_s, route)
        self._routes.move_to_end(call)

    def take(self, call: str, now: float) -> Route | None:
        self._expire(now)
        entry = self._routes.pop(call, None)
        return entry[1] if entry is not None else None

    def _expire(self, now: float) -> None:
        # Insertion order is expiry order (every registration gets the same TTL).
        while self._routes:
            call, (expires, _) = next(iter(self._routes.items()))
            if expires > now:
                break
            del self._routes[call]

    def hook(self, request: WebhookRequest) -> AnswerDocument:
        """``POST /audiosocket/calls``: register a call; 204, or 400 naming the fault."""
        fields = registration_fields(request)
        call = canonical_uuid(scalar_text(fields.get("uuid")))
        if call is None:
            raise WebhookError("registration: uuid must be a UUID")
        self.register(call, route_from_fields(fields, "registration"),
                      request.now or time.time())
        return AnswerDocument("", "text/plain")
