"""``voicegw campaign`` and ``voicegw dnc`` from the command line, against the stand-in API."""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.rig.calls_api import FakeCallsApi, mixed_outcomes

TOKEN = "cli-test-token"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VOICEGW_DATABASE", str(tmp_path / "calls.db"))
    monkeypatch.setenv("VOICEGW_API_TOKEN", TOKEN)
    contacts = tmp_path / "spring.csv"
    contacts.write_text("number,timezone,name\n+442071838710,,Ada\n+442071838711,,Bo\n"
                        "+12125550150,America/New_York,Cy\nnope,,Di\n")
    return contacts


async def voicegw(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


async def test_run_status_and_do_not_call(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeCallsApi(TOKEN, mixed_outcomes(scale_s=0.005))
    async with fake.serve() as url:
        assert await voicegw("dnc", "add", "+442071838711", "--reason", "asked") == 0
        assert await voicegw("dnc", "add", "555") == 2  # not a number: said, not a traceback
        args = ["campaign", "run", str(env), "--gateway", url, "--window", "00:00-24:00",
                "--rate", "6000", "--retry-delay", "0s", "--poll", "0.01", "--no-progress"]
        assert await voicegw(*args, "--agent", "concierge") == 0
        # The same name again resumes (nothing left); other call settings are refused.
        assert await voicegw(*args) == 0
        assert await voicegw(*args, "--agent", "other") == 1
        assert await voicegw("campaign", "status") == 0
        assert await voicegw("campaign", "status", "spring") == 0
        assert await voicegw("dnc", "list") == 0
        assert await voicegw("dnc", "remove", "+442071838711") == 0
    out, err = capsys.readouterr()
    assert "row 4: skipped: number" in err
    assert "campaign spring: finished; results in" in err
    assert "agent was 'concierge'" in err
    assert "spring: 4/4 contacts ended, finished" in out
    assert "do_not_call 1" in out and "invalid 1" in out
    assert "********711\t" in out  # listed, masked
    assert {c.to for c in fake.placed} == {"+442071838710", "+12125550150"}
    assert all(c.body["parameters"]["name"] in ("Ada", "Cy") for c in fake.placed)
    with (env.parent / "spring-results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["result"] for r in rows][1::2] == ["do_not_call", "invalid"]
    assert len(rows) == 4


async def test_without_a_token_it_says_so(env: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("VOICEGW_API_TOKEN")
    assert await voicegw("campaign", "run", str(env), "--agent", "concierge") == 2
    assert "VOICEGW_API_TOKEN is not set" in capsys.readouterr().err
