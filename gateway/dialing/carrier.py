"""What placing calls needs from a carrier: its REST client's ``place``, and a reader of its
status callbacks. Each provider implements both in its own modules (``gateway.rest.NAME`` and
``gateway.carriers.NAME_hooks``); the dial service never names a provider."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from gateway.carriers.hooks import WebhookRequest
from gateway.dialing.model import CallProgress, PlaceCall


class Dialer(Protocol):
    """A carrier's REST API for new calls (``gateway.rest``)."""

    async def place(self, call: PlaceCall) -> str:
        """Ask the carrier to place ``call``; the id it knows the call by (for hanging up and
        in its callbacks). Raises :class:`gateway.errors.CallControlError` if refused."""

    async def hang_up(self, call: str) -> bool:
        """End (or cancel, while ringing) the call; False if it was already over."""


# Reads one status callback; :class:`gateway.carriers.hooks.WebhookError` if it names no call.
ReadProgress = Callable[[WebhookRequest], CallProgress]
