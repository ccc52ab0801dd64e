"""Talk-page latency as the page itself measures it, in headless Chromium.

Debian's Chromium (Playwright) opens the console's talk page against a real gateway with the
simulated Live server on loopback (gateway/rig/console_stack.py); its fake microphone plays
the bundled caller recordings (gateway/rig/chromium.py): the caller listens to the greeting,
asks for a table, talks over the reply (a barge-in) and listens to the next one. WebAudio
analysers on the page's microphone and playback paths, read every 10 ms, give:

* speech end -> first reply audio: the microphone falls quiet -> the playback path is loud.
  It includes the simulator's 500 ms end-of-speech silence and its 300 ms response delay
  (the same as a phone call's), the page's 60 ms jitter buffer and the audio output.
* barge-in -> silence: the caller's speech starts over the reply -> the playback path falls
  quiet. It includes the simulator's 60 ms speech onset, the gateway's clear and the page's.
* clear -> silence: the `clear` reaches the page -> the playback path falls quiet (the page's
  own part; an analyser reading spans ~21 ms and is taken every 10 ms).

Each figure carries the analyser's granularity (up to ~30 ms). Calls run at real time.

Run: .venv/bin/python benchmarks/console_latency.py [--calls 3] [--format pcm16 mulaw8k]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from typing import Any

import structlog

from gateway.rig.console_pages import console_page, sign_in, talk
from gateway.rig.console_stack import AGENT

KEYS = {"speech_end_to_reply_ms": "speech end -> first reply audio",
        "barge_in_to_silence_ms": "barge-in -> reply silent",
        "clear_to_silence_ms": "clear -> reply silent (the page's part)"}


def _line(label: str, values: list[float]) -> str:
    if not values:
        return f"  {label:<42} (none)"
    return (f"  {label:<42} n={len(values):<3} median {statistics.median(values):6.0f} ms  "
            f"min {min(values):6.0f}  max {max(values):6.0f}")


async def run(calls: int, formats: list[str]) -> dict[str, dict[str, list[float]]]:
    out: dict[str, dict[str, list[float]]] = {}
    async with console_page() as (_, page):
        await sign_in(page)
        await page.wait_for_selector("#start")
        for fmt in formats:
            got: dict[str, list[float]] = {k: [] for k in KEYS}
            for _ in range(calls):
                figures: dict[str, Any] = await talk(page, AGENT, fmt)
                for key in KEYS:
                    got[key] += figures[key]
            out[fmt] = got
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=3, help="calls per format")
    parser.add_argument("--format", nargs="+", default=["pcm16", "mulaw8k"],
                        choices=["pcm16", "mulaw8k"])
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    results = asyncio.run(run(args.calls, args.format))
    print(f"talk page, measured in the page (headless Chromium), {args.calls} call(s) "
          f"per format, real time")
    for fmt, got in results.items():
        print(f"{fmt}:")
        for key, label in KEYS.items():
            print(_line(label, got[key]))


if __name__ == "__main__":
    main()
