"""Outbound calls' configuration, from the environment: ``VOICEGW_API_TOKEN`` turns the
``/v1/calls`` API on, ``VOICEGW_<CARRIER>_FROM`` is the number each carrier dials from when a
request names none. The carriers that can dial are those served with REST credentials
(:attr:`gateway.carrier_setup.CarrierSetup.dialer`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.carrier_setup import CarrierSetup
from gateway.carriers.core import Carrier
from gateway.dialing.books import MemoryDials, StoredDials
from gateway.dialing.model import DialInputError, e164
from gateway.dialing.service import Blocked, DialService
from gateway.errors import ConfigError
from gateway.log import register_secret
from gateway.store import dials
from gateway.store.base import CallStore


@dataclass(frozen=True, slots=True)
class OutboundSettings:
    api_token: str | None = field(default=None, repr=False)
    default_from: Mapping[Carrier, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OutboundSettings:
        env = os.environ if env is None else env
        token = env.get("VOICEGW_API_TOKEN", "").strip() or None
        if token is not None:
            if len(token) < 16:
                raise ConfigError("VOICEGW_API_TOKEN must be at least 16 characters")
            register_secret(token)
        numbers = {}
        for carrier in Carrier:
            name = f"VOICEGW_{carrier.name}_FROM"
            if value := env.get(name, "").strip():
                try:
                    numbers[carrier] = e164(value, name)
                except DialInputError as exc:
                    raise ConfigError(str(exc)) from None
        return cls(token, numbers)


def build_dial_service(carriers: Mapping[Carrier, CarrierSetup], store: CallStore | None,
                       public_url: str | None, settings: OutboundSettings, *,
                       blocked: Blocked | None = None) -> DialService | None:
    """The dial service, when some carrier can dial and carriers can reach the gateway."""
    dialers = {c: s.dialer for c, s in carriers.items() if s.dialer is not None}
    if not dialers:
        return None
    if not public_url:
        raise ConfigError("placing calls needs VOICEGW_PUBLIC_URL: the carrier fetches the "
                          "call's answer and posts its status there")
    book = StoredDials(store) if store is not None else MemoryDials()
    return DialService(book, dialers, public_url, blocked=blocked,
                       default_from=settings.default_from, fingerprint=dials.fingerprint)
