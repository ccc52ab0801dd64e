"""jambonz: a listen verb answer, its bidirectional stream, signed webhooks, the REST API's
calls (placed, hung up, transferred)."""

from __future__ import annotations

from collections.abc import Mapping

from gateway.carrier_setup.base import CarrierSetup
from gateway.carriers.basic_auth import BasicAuthCheck
from gateway.carriers.core import Carrier
from gateway.carriers.jambonz import DEFAULT_RATE, RATES, SUBPROTOCOLS, JambonzStream
from gateway.carriers.jambonz_hooks import (
    JambonzHooks,
    JambonzSignature,
    WsAuth,
    join_links,
    read_progress,
    transfer_links,
)
from gateway.errors import ConfigError
from gateway.log import register_secret
from gateway.rest.jambonz import JambonzCredentials, JambonzRest


def sample_rate(env: Mapping[str, str]) -> int:
    """``VOICEGW_JAMBONZ_SAMPLE_RATE``: the listen verb's rate, both ways (default 16000)."""
    text = env.get("VOICEGW_JAMBONZ_SAMPLE_RATE", "").strip()
    if not text:
        return DEFAULT_RATE
    if not text.isdigit() or int(text) not in RATES:
        raise ConfigError(f"VOICEGW_JAMBONZ_SAMPLE_RATE must be one of "
                          f"{', '.join(str(r) for r in sorted(RATES))}")
    return int(text)


def ws_auth(env: Mapping[str, str]) -> WsAuth | None:
    user = env.get("JAMBONZ_WS_USER", "").strip()
    password = env.get("JAMBONZ_WS_PASSWORD", "").strip()
    if not (user or password):
        return None
    if not (user and password) or ":" in user:
        raise ConfigError("JAMBONZ_WS_USER (without ':') and JAMBONZ_WS_PASSWORD go together")
    register_secret(password)
    return WsAuth(user, password)


def from_env(env: Mapping[str, str]) -> CarrierSetup:
    """``JAMBONZ_WEBHOOK_SECRET`` checks the webhooks' ``Jambonz-Signature``;
    ``JAMBONZ_WS_USER`` with ``JAMBONZ_WS_PASSWORD`` are the Basic credentials the listen verb
    makes jambonz send on the media socket's upgrade, which the gateway then requires.
    ``JAMBONZ_ACCOUNT_SID``, ``JAMBONZ_API_KEY`` and ``VOICEGW_JAMBONZ_API_URL`` place calls
    (with ``VOICEGW_JAMBONZ_APPLICATION_SID``, where set, as the application whose speech and
    carrier settings a placed call takes) and hang up, and,
    given ``VOICEGW_PUBLIC_URL`` for jambonz to fetch the transfer's verbs from, transfer (and
    join a warm transfer's two calls in a conference).
    ``VOICEGW_JAMBONZ_SAMPLE_RATE`` picks the audio rate (default 16000)."""
    rate = sample_rate(env)
    secret = env.get("JAMBONZ_WEBHOOK_SECRET", "").strip()
    verify = None
    if secret:
        register_secret(secret)
        verify = JambonzSignature(secret)
    auth = ws_auth(env)
    credentials = JambonzCredentials.from_env(env)
    public_url = env.get("VOICEGW_PUBLIC_URL", "").strip()
    # The REST client mints the transfer links and the route checks them: one object, one
    # key, so the two cannot disagree.
    links = joins = None
    if credentials is not None and public_url:
        links = transfer_links(credentials.api_key, public_url)
        joins = join_links(credentials.api_key, public_url)
    application = env.get("VOICEGW_JAMBONZ_APPLICATION_SID", "").strip() or None
    rest = JambonzRest(credentials, links=links, join_links=joins,
                       application_sid=application) \
        if credentials else None
    return CarrierSetup(
        carrier=Carrier.JAMBONZ, new_stream=JambonzStream,
        hooks=JambonzHooks(rate, auth), verify=verify,
        verify_upgrade=BasicAuthCheck(auth.username, auth.password) if auth else None,
        call_control=rest, dialer=rest, read_progress=read_progress,
        subprotocols=SUBPROTOCOLS,
        extra_hooks={"transfer": links.dial, "join": joins.dial}
        if links is not None and joins is not None else {})
