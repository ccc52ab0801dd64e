"""Plivo: Plivo XML answer, bidirectional audio streams, V3 signatures, the Call API."""

from __future__ import annotations

import functools
from collections.abc import Mapping

from gateway.carrier_setup.base import CarrierSetup
from gateway.carriers.core import Carrier
from gateway.carriers.plivo import DEFAULT_CONTENT_TYPE, ContentType, PlivoStream
from gateway.carriers.plivo_hooks import (
    PlivoHooks,
    PlivoSignature,
    join_links,
    read_progress,
    transfer_links,
)
from gateway.errors import ConfigError
from gateway.log import register_secret
from gateway.rest.plivo import DEFAULT_BASE_URL, PlivoCredentials, PlivoRest

_OFF = frozenset({"0", "false", "no", "off"})


def content_type(env: Mapping[str, str]) -> ContentType:
    """``VOICEGW_PLIVO_CONTENT_TYPE``: one of the ``<Stream contentType>`` values."""
    text = env.get("VOICEGW_PLIVO_CONTENT_TYPE", "").strip().lower().replace(" ", "")
    if not text:
        return DEFAULT_CONTENT_TYPE
    try:
        return ContentType(text)
    except ValueError:
        raise ConfigError(f"VOICEGW_PLIVO_CONTENT_TYPE must be one of "
                          f"{', '.join(c.value for c in ContentType)}") from None


def from_env(env: Mapping[str, str]) -> CarrierSetup:
    """``PLIVO_AUTH_TOKEN`` signs (webhooks, the stream's upgrade unless
    ``VOICEGW_PLIVO_CHECK_UPGRADE=off``); with ``PLIVO_AUTH_ID`` the gateway also places calls
    and hangs up,
    through ``VOICEGW_PLIVO_API_URL`` (default Plivo's), and, given ``VOICEGW_PUBLIC_URL``
    for Plivo to fetch the transfer's XML from, transfers (and joins a warm transfer's two
    calls in a conference). ``VOICEGW_PLIVO_CONTENT_TYPE``
    picks the audio (default L16 at 16 kHz)."""
    content = content_type(env)
    token = env.get("PLIVO_AUTH_TOKEN", "").strip()
    verify = upgrade = None
    if token:
        register_secret(token)
        verify = PlivoSignature(token)
        if env.get("VOICEGW_PLIVO_CHECK_UPGRADE", "").strip().lower() not in _OFF:
            upgrade = PlivoSignature(token, upgrade=True)
    credentials = PlivoCredentials.from_env(env)
    public_url = env.get("VOICEGW_PUBLIC_URL", "").strip()
    # The REST client mints the transfer links and the route checks them: one object, one
    # key, so the two cannot disagree.
    links = joins = None
    if credentials is not None and public_url:
        links = transfer_links(credentials.auth_token, public_url)
        joins = join_links(credentials.auth_token, public_url)
    base = env.get("VOICEGW_PLIVO_API_URL", "").strip() or DEFAULT_BASE_URL
    rest = PlivoRest(credentials, base_url=base, links=links, join_links=joins) \
        if credentials is not None else None
    return CarrierSetup(
        carrier=Carrier.PLIVO,
        new_stream=functools.partial(PlivoStream, content=content),
        hooks=PlivoHooks(content), verify=verify, verify_upgrade=upgrade,
        call_control=rest, dialer=rest, read_progress=read_progress,
        extra_hooks={"transfer": links.dial, "join": joins.dial}
        if links is not None and joins is not None else {})
