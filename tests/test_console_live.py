"""The console's live views: the monitor's events as server-sent events over a real socket,
comment lines that keep an idle stream open, and streams that end at shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from pathlib import Path
from typing import Any

import aiohttp

from gateway.ending import EndKind, EndReason
from gateway.monitor import Speaking
from gateway.record import TranscriptLine
from tests.console_kit import TOKEN, console_settings, served_gateway
from tests.store_data import summary

BEARER = {"Authorization": f"Bearer {TOKEN}"}


async def next_event(response: aiohttp.ClientResponse, *,
                     comments: bool = False) -> dict[str, Any] | str | None:
    """The next event's data (parsed), a comment line if ``comments``, or None at the end."""
    data: list[str] = []
    while True:
        raw = await response.content.readline()
        if not raw:
            return None
        line = raw.decode().rstrip("\n")
        if line.startswith(":"):
            if comments:
                return line
            continue
        if line.startswith("data: "):
            data.append(line[len("data: "):])
        elif line == "" and data:
            parsed: dict[str, Any] = json.loads("\n".join(data))
            return parsed


def ended(sid: str) -> Any:
    return dataclasses.replace(summary(sid), end=EndReason(EndKind.CALLER_HUNG_UP, "bye"))


async def test_the_all_calls_stream_shows_calls_start_change_and_end(tmp_path: Path) -> None:
    async with served_gateway(tmp_path, console=console_settings()) as s:
        s.monitor.call_started(summary("CA1"))
        headers = await s.sign_in()
        async with s.http.get(s.base + "/console/api/live", headers=headers) as r:
            assert r.headers["Content-Type"] == "text/event-stream"
            assert r.headers["Cache-Control"] == "no-store"
            assert "Content-Security-Policy" in r.headers
            snapshot = await next_event(r)
            assert isinstance(snapshot, dict)
            assert [c["call_id"] for c in snapshot["calls"]] == ["CA1"]
            s.monitor.call_started(summary("CA2"))
            s.monitor.speaking("CA2", Speaking.AGENT)
            s.monitor.call_ended(ended("CA2"))
            events = [await next_event(r) for _ in range(3)]
    assert [e["type"] for e in events if isinstance(e, dict)] == ["call", "call", "ended"]
    assert events[1]["call"]["speaking"] == "agent"  # type: ignore[index]
    assert "15550100" not in json.dumps([*events, snapshot])  # no numbers, ever


async def test_a_call_stream_delivers_its_transcript_and_tools_and_ends_with_it(
        tmp_path: Path) -> None:
    async with served_gateway(tmp_path, console=console_settings()) as s:
        s.monitor.call_started(summary("CA3"))
        s.monitor.transcript("CA3", 0, TranscriptLine(0.5, "caller", "A table"))
        async with s.http.get(s.base + "/console/api/live/CA3", headers=BEARER) as r:
            snapshot = await next_event(r)
            assert isinstance(snapshot, dict) and snapshot["type"] == "snapshot"
            assert snapshot["transcript"][0]["text"] == "A table"
            s.monitor.transcript("CA3", 0, TranscriptLine(0.5, "caller", "A table for two"))
            s.monitor.tool_started("CA3", "t1", "book", {"people": 2})
            s.monitor.tool_finished("CA3", "t1", outcome="ok", result={"ok": True},
                                    error=None, latency_ms=12.0)
            s.monitor.call_ended(ended("CA3"))
            events = []
            while (event := await next_event(r)) is not None:
                events.append(event)
        assert [e["type"] for e in events if isinstance(e, dict)] == [
            "transcript", "tool_call", "tool_result", "ended"]
        assert events[0]["text"] == "A table for two"  # type: ignore[index]
        async with s.http.get(s.base + "/console/api/live/CA3", headers=BEARER) as r:
            assert r.status == 404  # no longer in progress
        async with s.http.get(s.base + "/console/api/live") as r:
            assert r.status == 401


async def test_an_idle_stream_gets_comment_lines_and_ends_at_shutdown(tmp_path: Path) -> None:
    async with contextlib.AsyncExitStack() as outer:
        http = await outer.enter_async_context(aiohttp.ClientSession())
        stack = contextlib.AsyncExitStack()
        s = await stack.enter_async_context(
            served_gateway(tmp_path, console=console_settings(("127.0.0.1", 0))))
        assert s.gateway.console is not None
        s.gateway.console.live.keepalive_s = 0.05
        r = await http.get(s.base + "/console/api/live", headers=BEARER)
        assert isinstance(await next_event(r), dict)
        assert await next_event(r, comments=True) == ": keep-alive"
        assert await next_event(r, comments=True) == ": keep-alive"
        s.gateway.console.live.keepalive_s = 60.0
        # Shutting down ends the stream at once (not at aiohttp's shutdown timeout).
        await asyncio.wait_for(stack.aclose(), timeout=10)
        rest = await asyncio.wait_for(r.content.read(), timeout=10)
        assert rest.replace(b": keep-alive\n", b"").strip(b"\n") == b""  # and then the end
        assert r.content.at_eof()
        r.release()
