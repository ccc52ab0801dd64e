"""The gateway's own counters, from its ``GET /metrics``, to check frames end to end.

The phone can only say a frame was written to its socket; the gateway's
``voicegw_caller_frames_total`` says it arrived and was parsed. Read before and after the run,
the difference is what this load delivered, provided nothing else calls the gateway meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from urllib.parse import parse_qs, urlsplit, urlunsplit

import aiohttp

FRAMES: str = "voicegw_caller_frames_total"
ACTIVE: str = "voicegw_active_calls"


def metrics_url(media_url: str, given: str | None = None) -> str:
    """``ws://host:port/twilio/media`` -> ``http://host:port/metrics`` (wss -> https). An
    AudioSocket call's is on the gateway's HTTP side: ``given``'s ``?http=BASE``."""
    parts = urlsplit(media_url)
    if parts.scheme == "tcp":
        http = parse_qs(urlsplit(given or "").query).get("http", [""])[0]
        return f"{http.rstrip('/')}/metrics" if http else ""
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, "/metrics", "", ""))


def parse_metrics(text: str) -> dict[str, float]:
    """Samples of the Prometheus text format, name -> value, summed over their labels (the
    caller frames of every carrier)."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        if "{" in line:
            name, _, rest = line.partition("{")
            rest = rest.rpartition("}")[2]
        else:
            name, _, rest = line.partition(" ")
        with contextlib.suppress(ValueError, IndexError):
            values[name] = values.get(name, 0.0) + float(rest.split()[0])
    return values


async def scrape(url: str, timeout_s: float = 5.0) -> dict[str, float] | None:
    """The metrics, or None if the endpoint is not reachable (a remote gateway may hide it)."""
    if not url:
        return None
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as s, \
                s.get(url) as resp:
            if resp.status != 200:
                return None
            return parse_metrics(await resp.text())
    except (aiohttp.ClientError, TimeoutError):
        return None


async def scrape_settled(url: str, wait_s: float = 5.0) -> dict[str, float] | None:
    """Scrape once the gateway has finished its calls (it counts a call's last frames when
    the call ends, a moment after the phone hangs up)."""
    deadline = time.monotonic() + wait_s
    while True:
        values = await scrape(url)
        if values is None or values.get(ACTIVE, 0.0) == 0.0 or time.monotonic() > deadline:
            return values
        await asyncio.sleep(0.2)  # polling: the gateway has no "idle" event to wait for
