"""The console served by a whole gateway over real sockets: off means 404, on its own port
or the gateway's, security headers, the page routes, agents, the call list and records with
numbers masked, recordings with Range and nothing outside their folder, and no secret out."""

from __future__ import annotations

import dataclasses
import io
import wave
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from gateway import log as gwlog
from gateway.store.model import CallRecord
from tests.console_kit import HASH, KEY, PASSWORD, TOKEN, console_settings, served_gateway
from tests.dbs import KINDS, new_store
from tests.store_data import T0, record

BEARER = {"Authorization": f"Bearer {TOKEN}"}


async def test_a_console_not_enabled_is_not_routed(tmp_path: Path) -> None:
    async with served_gateway(tmp_path, console=None) as s:
        for path in ("/console", "/console/", "/console/api/session", "/console/api/calls",
                     "/console/api/live"):
            async with s.http.get(s.main + path, headers=BEARER) as r:
                assert r.status == 404, path
        async with s.http.post(s.main + "/console/api/session",
                               json={"password": PASSWORD}) as r:
            assert r.status == 404


async def test_pages_carry_the_security_headers_and_page_routes_fall_back_to_the_app(
        tmp_path: Path) -> None:
    async with served_gateway(tmp_path, console=console_settings()) as s:
        async with s.http.get(s.main + "/console", allow_redirects=False) as r:
            assert (r.status, r.headers["Location"]) == (302, "/console/")
        index = b""
        for path in ("/console/", "/console/index.html", "/console/calls/CA1",
                     "/console/live"):
            async with s.http.get(s.main + path) as r:
                assert r.status == 200, path
                assert r.headers["Content-Type"].startswith("text/html")
                body = await r.read()
                assert not index or body == index
                index = body
                csp = r.headers["Content-Security-Policy"]
                assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
                assert "'unsafe-inline'" not in csp
                assert "connect-src 'self' ws://127.0.0.1:9" in csp  # the model, directly
                assert "media-src 'self' blob:" in csp
                assert r.headers["X-Content-Type-Options"] == "nosniff"
                assert r.headers["Referrer-Policy"] == "no-referrer"
        assert b"<script>" not in index  # no inline script: the CSP would refuse it
        for path in ("/console/missing.js", "/console/%2e%2e/%2e%2e/pyproject.toml",
                     "/console/..%2f..%2fpyproject.toml", "/console/..%2f__init__.py",
                     "/console/api/nothing"):
            # Sent as written: the client must not tidy the dots away itself.
            async with s.http.get(URL(s.main + path, encoded=True), headers=BEARER) as r:
                assert r.status == 404, path
                assert "Content-Security-Policy" in r.headers
        # The API refuses without an operator, with the headers still on.
        async with s.http.get(s.main + "/console/api/agents") as r:
            assert r.status == 401
            assert r.headers["X-Content-Type-Options"] == "nosniff"
            assert await r.json() == {"error": "sign in first"}


async def test_on_its_own_port_the_console_is_apart_from_the_webhooks(tmp_path: Path) -> None:
    async with served_gateway(tmp_path, console=console_settings(("127.0.0.1", 0))) as s:
        assert s.base != s.main
        async with s.http.get(s.main + "/console/", headers=BEARER) as r:
            assert r.status == 404
        async with s.http.get(s.base + "/", allow_redirects=False) as r:
            assert (r.status, r.headers["Location"]) == (302, "/console/")
        async with s.http.get(s.base + "/twilio/answer") as r:
            assert r.status == 404
        async with s.http.get(s.base + "/console/api/agents", headers=BEARER) as r:
            assert r.status == 200
        headers = await s.sign_in()
        async with s.http.get(s.base + "/console/api/session", headers=headers) as r:
            assert (await r.json())["signed_in"] is True
        async with s.http.get(s.main + "/metrics") as r:
            assert 'voicegw_console_sign_ins_total{outcome="ok"} 1.0' in await r.text()


async def test_agents_are_listed_with_voice_tools_and_a_short_description(
        tmp_path: Path) -> None:
    async with served_gateway(tmp_path, console=console_settings()) as s:
        headers = await s.sign_in()
        async with s.http.get(s.base + "/console/api/agents", headers=headers) as r:
            agents = await r.json()
    assert [a["name"] for a in agents] == ["assistant", "booker"]
    assert agents[0] == {"name": "assistant", "voice": "Kore", "tools": [],
                         "description": "Answer the caller's questions. Be brief."}
    assert agents[1]["tools"] == ["book_table"] and agents[1]["voice"] == "Puck"
    assert len(agents[1]["description"]) == 160 and agents[1]["description"].endswith("…")


def calls() -> list[CallRecord]:
    out = []
    for i in range(5):
        rec = dataclasses.replace(record(f"CA{i}", started=T0 + 60 * i),
                                  agent="booker" if i % 2 else "assistant",
                                  caller="+15551234567", dialled="+442071234567")
        out.append(rec)
    return out


@pytest.mark.parametrize("kind", KINDS)
async def test_the_call_list_filters_pages_and_masks_numbers(kind: str, tmp_path: Path) -> None:
    async with new_store(kind, tmp_path, opened=False) as store, \
            served_gateway(tmp_path, console=console_settings(), store=store) as s:
        await store.write(calls())
        url = s.base + "/console/api/calls"
        async with s.http.get(url, params={"per_page": "2", "page": "2"}, headers=BEARER) as r:
            page = await r.json()
        assert (page["total"], page["page"], page["per_page"]) == (5, 2, 2)
        assert [c["call_sid"] for c in page["calls"]] == ["CA2", "CA1"]
        assert page["calls"][0]["caller"] == "+1•••••4567"
        params = {"agent": "booker", "q": "TABLE FOR", "since": "2025-06-15T15:08:00Z",
                  "numbers": "1"}
        async with s.http.get(url, params=params, headers=BEARER) as r:
            page = await r.json()
        assert [c["call_sid"] for c in page["calls"]] == ["CA3"]
        assert page["calls"][0]["caller"] == "+15551234567"
        for bad in ({"since": "yesterday"}, {"page": "0"}, {"per_page": "1000"},
                    {"page": "-1"}):
            async with s.http.get(url, params=bad, headers=BEARER) as r:
                assert r.status == 400, bad


async def test_a_call_record_masks_numbers_unless_asked_and_links_its_recording(
        tmp_path: Path) -> None:
    async with new_store("sqlite", tmp_path, opened=False) as store, \
            served_gateway(tmp_path, console=console_settings(), store=store) as s:
        await store.write(calls())
        write_wav(s.recordings / "CA1.wav")
        headers = await s.sign_in()
        async with s.http.get(s.base + "/console/api/calls/CA1", headers=headers) as r:
            text = await r.text()
            data = await r.json()
        assert (data["caller"], data["dialled"]) == ("+1•••••4567", "+4•••••4567")
        assert "1234567" not in text
        assert data["recording"] == "/console/api/calls/CA1/recording.wav"
        assert data["turns"][0]["text"] == "Hi, a table for two."
        async with s.http.get(s.base + "/console/api/calls/CA1?numbers=1",
                              headers=headers) as r:
            data = await r.json()
        assert (data["caller"], data["dialled"]) == ("+15551234567", "+442071234567")
        async with s.http.get(s.base + "/console/api/calls/CA2", headers=headers) as r:
            assert (await r.json())["recording"] is None
        async with s.http.get(s.base + "/console/api/calls/nope", headers=headers) as r:
            assert r.status == 404


def write_wav(path: Path, frames: int = 8000) -> bytes:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(bytes(range(256)) * (frames * 4 // 256))
    return path.read_bytes()


async def test_a_recording_is_served_with_range_and_nothing_outside_its_folder(
        tmp_path: Path) -> None:
    async with served_gateway(tmp_path, console=console_settings()) as s:
        whole = write_wav(s.recordings / "CA7.wav")
        (tmp_path / "secret.wav").write_bytes(b"RIFF not yours")
        (s.recordings / "CA8.wav").symlink_to(tmp_path / "secret.wav")
        url = s.base + "/console/api/calls/CA7/recording.wav"
        async with s.http.get(url, headers=BEARER) as r:
            assert (r.status, r.headers["Content-Type"]) == (200, "audio/wav")
            assert await r.read() == whole
            assert r.headers["Accept-Ranges"] == "bytes"
        async with s.http.get(url, headers={**BEARER, "Range": "bytes=1000-1999"}) as r:
            assert r.status == 206
            assert r.headers["Content-Range"] == f"bytes 1000-1999/{len(whole)}"
            assert await r.read() == whole[1000:2000]
        async with s.http.get(url, headers={"Range": "bytes=0-10"}) as r:
            assert r.status == 401
        for sid in ("CA8", "..", ".hidden", "%2e%2e%2fsecret", "..%2fsecret", "CA9"):
            async with s.http.get(s.base + f"/console/api/calls/{sid}/recording.wav",
                                  headers=BEARER) as r:
                assert r.status == 404, sid
                assert b"not yours" not in await r.read()


async def test_no_secret_reaches_a_response_or_a_log_line(tmp_path: Path) -> None:
    stream = io.StringIO()
    gwlog.configure("debug", stream=stream)
    for secret in console_settings().secrets():
        gwlog.register_secret(secret)
    seen: list[str] = []
    async with served_gateway(tmp_path, console=console_settings(("127.0.0.1", 0))) as s:
        headers = await s.sign_in()
        cookie = headers["Cookie"].partition("=")[2]
        requests = [("POST", "/console/api/session", {"password": "not-the-password"}, {}),
                    ("GET", "/console/api/session", None, headers),
                    ("GET", "/console/api/agents", None, {"Authorization": "Bearer wrong!"}),
                    ("DELETE", "/console/api/session", None, {"Cookie": headers["Cookie"]}),
                    ("GET", "/console/", None, headers)]
        for method, path, body, extra in requests:
            async with s.http.request(method, s.base + path, json=body, headers=extra) as r:
                seen.append(await r.text() + repr(dict(r.headers)))
        async with s.http.get(s.main + "/metrics") as r:
            seen.append(await r.text())
    logged = stream.getvalue()
    assert "console_sign_in" in logged and "console_listening" in logged
    for secret in (PASSWORD, "not-the-password", TOKEN, HASH, KEY.decode(), cookie):
        assert secret not in logged
        assert all(secret not in text for text in seen)


async def test_the_talk_pages_socket_is_served_where_the_console_is_and_checks_origin(
        tmp_path: Path) -> None:
    async with served_gateway(tmp_path, console=None) as s:
        r = await s.http.get(s.main + "/browser/media/assistant", headers=BEARER)
        assert r.status == 404  # no console, no browser carrier
        r.release()
    async with served_gateway(tmp_path, console=console_settings(("127.0.0.1", 0))) as s:
        async with s.http.get(s.main + "/browser/media/assistant") as r:
            assert r.status == 404  # not beside the webhooks
        headers = await s.sign_in()
        ws = s.base.replace("http", "ws") + "/browser/media/assistant"
        for extra, status in (({"Origin": "https://evil.example"}, 403), ({"Cookie": ""}, 401)):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await s.http.ws_connect(ws, headers={**headers, **extra})
            assert refused.value.status == status
