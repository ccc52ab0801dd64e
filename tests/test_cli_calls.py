"""``voicegw calls list`` / ``show``, and where records go by the environment."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from gateway import cli
from gateway.store.postgres import PostgresStore, safe_url
from gateway.store.sqlite import SqliteStore
from gateway.store.target import DEFAULT_PATH, store_from_env
from tests.store_data import T0, record


def _fill(path: Path) -> None:
    async def write() -> None:
        store = SqliteStore(path)
        await store.open()
        await store.write([record("CAold", started=T0, turns=4),
                           record("CAnew", started=T0 + 60, ended=False, turns=2)])
        await store.aclose()

    asyncio.run(write())


@pytest.fixture(autouse=True)
def _unconfigure_logging() -> Iterator[None]:
    # cli.main points structlog at this test's captured stderr, which is closed afterwards.
    yield
    structlog.reset_defaults()


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "calls.db"
    _fill(path)
    monkeypatch.setenv("VOICEGW_DATABASE", str(path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return path


def test_list_is_newest_first_with_masked_numbers(db: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["calls", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["CALL", "SID", "CARRIER", "STARTED"]
    assert lines[1].split()[1] == "twilio"
    assert lines[1].startswith("CAnew") and "(no end recorded)" in lines[1]
    assert lines[2].startswith("CAold") and lines[2].endswith("caller hung up")
    assert "*****100" in lines[2] and "+15550100" not in "".join(lines)
    assert cli.main(["calls", "list", "--limit", "1", "--json"]) == 0
    [only] = json.loads(capsys.readouterr().out)
    assert only["call_sid"] == "CAnew" and only["turns"] == 2 and only["ended"] is False
    assert only["carrier"] == "twilio" and only["end_kind"] is None


def test_show_prints_the_transcript_with_what_was_heard(
        db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["calls", "show", "CAold"]) == 0
    out = capsys.readouterr().out
    assert "call CAold" in out and "caller hung up" in out
    assert "   2.00s  agent  We have seven or nine o'clock.  [interrupted; heard: 'We have']" \
        in out
    assert "response latency per turn (ms): 812, 790" in out
    assert "tokens prompt 100, response 40, total 140" in out
    assert "live reconnects 1 (longest gap 250 ms" in out
    assert 'book({"people": 2, "when": "20:00"}) -> {"ok": true}  [12 ms]' in out
    assert "lookup(" in out and "error: lookup failed: boom" in out
    assert "slow({}) cancelled" in out
    assert cli.main(["calls", "show", "CAold", "--json", "--full-numbers"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["caller"] == "+15550100" and data["turns"][1]["heard"] == "We have"
    assert data["tool_calls"][2]["outcome"] == "cancelled"


def test_show_of_an_unknown_call_and_of_no_database(
        db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["calls", "show", "CAnope"]) == 1
    assert "no call CAnope" in capsys.readouterr().err
    monkeypatch.setenv("VOICEGW_DATABASE", str(tmp_path / "none.db"))
    assert cli.main(["calls", "list"]) == 1
    assert "no call records at" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()  # reading never creates a database
    monkeypatch.setenv("VOICEGW_DATABASE", "off")
    assert cli.main(["calls", "list"]) == 2


def test_where_records_go() -> None:
    pg = "postgresql://gw:s3cret@db:5432/calls"
    assert store_from_env({"VOICEGW_DATABASE": "off", "DATABASE_URL": pg}) is None
    default = store_from_env({})
    assert isinstance(default, SqliteStore) and default.path == DEFAULT_PATH
    assert isinstance(store_from_env({"DATABASE_URL": pg}), PostgresStore)
    # Someone else's DATABASE_URL is left alone.
    assert isinstance(store_from_env({"DATABASE_URL": "mysql://x/y"}), SqliteStore)
    chosen = store_from_env({"VOICEGW_DATABASE": "/var/lib/x.db", "DATABASE_URL": pg})
    assert isinstance(chosen, SqliteStore) and chosen.path == Path("/var/lib/x.db")
    assert store_from_env({"VOICEGW_DATABASE": pg}).where == safe_url(pg)  # type: ignore[union-attr]
    assert "s3cret" not in safe_url(pg) and safe_url(pg) == "postgresql://gw:***@db:5432/calls"
