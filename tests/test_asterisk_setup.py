"""Serving Asterisk's WebSocket channel driver, from the environment: Basic credentials on the
media upgrade, no answer webhook, no stream tokens, marks that can be left to the gateway."""

from __future__ import annotations

import pytest

from gateway.carrier_setup import all_setups, enabled
from gateway.carrier_setup.asterisk import from_env
from gateway.carriers.asterisk import AsteriskStream
from gateway.carriers.basic_auth import BasicAuthCheck
from gateway.carriers.core import Carrier
from gateway.errors import ConfigError

START = ("MEDIA_START connection_id:c1 channel:WebSocket/c1/0x1 channel_id:pbx-1.1 "
         "format:ulaw optimal_frame_size:160 ptime:20")


def test_credentials_sign_the_upgrade_and_nothing_else_is_needed() -> None:
    setup = from_env({"ASTERISK_WS_USER": "pbx", "ASTERISK_WS_PASSWORD": "s3cret"})
    assert setup.carrier is Carrier.ASTERISK
    assert setup.hooks is None and setup.verify is None and setup.call_control is None
    assert setup.verify_upgrade == BasicAuthCheck("pbx", "s3cret")
    assert setup.signed and not setup.needs_token
    assert enabled({Carrier.ASTERISK: setup}, allow_unsigned=False, loopback=False)


def test_without_credentials_it_is_served_only_unsigned() -> None:
    setup = all_setups({})[Carrier.ASTERISK]
    assert not setup.signed
    with pytest.raises(ConfigError, match="ASTERISK_WS_USER"):
        enabled({Carrier.ASTERISK: setup}, allow_unsigned=False, loopback=False)


@pytest.mark.parametrize("env", [{"ASTERISK_WS_USER": "pbx"},
                                 {"ASTERISK_WS_PASSWORD": "s3cret"},
                                 {"ASTERISK_WS_USER": "p:bx", "ASTERISK_WS_PASSWORD": "x"}])
def test_half_a_pair_of_credentials_is_refused(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        from_env(env)


def test_each_socket_gets_its_urls_parameters() -> None:
    setup = from_env({})
    stream = setup.open_stream({"agent": "desk"})
    assert isinstance(stream, AsteriskStream)
    [start] = stream.receive(START)
    assert start.parameters == {"agent": "desk"}  # type: ignore[union-attr]
    assert setup.new_stream().caps.marks is True


def test_marks_can_be_turned_off_for_releases_before_mark_media() -> None:
    stream = from_env({"VOICEGW_ASTERISK_MARKS": "off"}).open_stream({})
    stream.receive(START)
    assert stream.caps.marks is False
