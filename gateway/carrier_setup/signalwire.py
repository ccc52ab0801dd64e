"""SignalWire: cXML answer, Media Streams as Twilio's, its own signing key, its LaML API (which
places calls as Twilio's Calls API does, and posts Twilio's status and AsyncAmd callbacks)."""

from __future__ import annotations

import functools
from collections.abc import Mapping

from gateway.carrier_setup.base import CarrierSetup
from gateway.carriers.core import Carrier
from gateway.carriers.signalwire import (
    SignalWireSignature,
    join_links,
    signalwire_hooks,
    transfer_links,
)
from gateway.carriers.twilio import TwilioStream
from gateway.carriers.twilio_hooks import read_progress
from gateway.errors import ConfigError
from gateway.log import register_secret
from gateway.rest.twilio import TwilioCredentials, TwilioRest


def from_env(env: Mapping[str, str]) -> CarrierSetup:
    """``SIGNALWIRE_SIGNING_KEY`` signs the webhooks. With ``SIGNALWIRE_PROJECT_ID``,
    ``SIGNALWIRE_API_TOKEN`` and ``SIGNALWIRE_SPACE_URL`` (``example.signalwire.com``) the
    gateway places calls and hangs up through the space's compatibility API
    (``VOICEGW_SIGNALWIRE_API_URL`` overrides its base), and, given ``VOICEGW_PUBLIC_URL``
    for SignalWire to fetch the transfer's cXML from, transfers (and joins a warm transfer's
    two calls in a conference)."""
    key = env.get("SIGNALWIRE_SIGNING_KEY", "").strip()
    verify = None
    if key:
        register_secret(key)
        verify = SignalWireSignature(key)
    project = env.get("SIGNALWIRE_PROJECT_ID", "").strip()
    token = env.get("SIGNALWIRE_API_TOKEN", "").strip()
    space = env.get("SIGNALWIRE_SPACE_URL", "").strip().removeprefix("https://").rstrip("/")
    base = env.get("VOICEGW_SIGNALWIRE_API_URL", "").strip() or (
        f"https://{space}/api/laml" if space else "")
    rest = links = joins = None
    if project or token:
        if not (project and token and base):
            raise ConfigError("SignalWire's API needs SIGNALWIRE_PROJECT_ID, "
                              "SIGNALWIRE_API_TOKEN and SIGNALWIRE_SPACE_URL together")
        public_url = env.get("VOICEGW_PUBLIC_URL", "").strip()
        links = transfer_links(token, public_url) if public_url else None
        joins = join_links(token, public_url) if public_url else None
        rest = TwilioRest(TwilioCredentials(project, project, token), base_url=base,
                          carrier=Carrier.SIGNALWIRE, links=links, join_links=joins)
    return CarrierSetup(
        carrier=Carrier.SIGNALWIRE,
        new_stream=functools.partial(TwilioStream, carrier=Carrier.SIGNALWIRE),
        hooks=signalwire_hooks(), verify=verify, call_control=rest, dialer=rest,
        read_progress=read_progress,
        extra_hooks={"transfer": links.dial, "join": joins.dial}
        if links is not None and joins is not None else {})
