"""``voicegw serve --loop`` and the other commands: which event loop they run on."""

from __future__ import annotations

import asyncio

import pytest

from gateway.eventloop import loop_factory


def test_asyncio_is_asyncio_and_auto_picks_uvloop_where_installed() -> None:
    assert loop_factory("asyncio") is None  # asyncio.Runner's default loop
    for choice in ("auto", "uvloop"):
        factory = loop_factory(choice)
        assert factory is not None
        loop = factory()
        try:
            assert type(loop).__module__.startswith("uvloop")
            assert loop.run_until_complete(asyncio.sleep(0, "ran")) == "ran"
        finally:
            loop.close()


def test_uvloop_asked_for_but_missing_is_a_configuration_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from gateway.errors import ConfigError

    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop now raises ImportError
    assert loop_factory("auto") is None
    with pytest.raises(ConfigError, match="uvloop is not installed"):
        loop_factory("uvloop")
