"""``voicegw serve --loop`` and the other commands: which event loop they run on; the
simulator's worker options."""

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


@pytest.mark.parametrize(("argv", "message"), [
    (["--port", "0", "--workers", "2"], "--workers needs a fixed --port"),
    (["--workers", "0"], "--workers must be at least 1"),
])
def test_simulator_workers_need_a_shared_port_and_a_count(
        argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    from gateway.cli import main

    assert main(["simulate-live", *argv]) == 2
    assert message in capsys.readouterr().err
