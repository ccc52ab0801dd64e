"""Voicemail messages after the beep, through the whole stack at real time.

Places calls through the gateway's ``POST /v1/calls`` (``machine_detection: leave_message``)
to Twilio's faked network, where each number is a voicemail: a greeting of several phrases
(the bundled speech fixtures), then a beep of its own pitch and length, then it records. The
simulated Live server makes the message. Prints, from the callee's side: how long after the
beep's end the message's first audio arrived (median, p95, max), whether any audio played
over the greeting, and what the gateway recorded (who answered, when, the beep).

    .venv/bin/python benchmarks/voicemail.py [--calls 24] [--speed 1]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from gateway import log as gwlog
from gateway.agent import Agent
from gateway.rig.campaign_stack import StackSettings, campaign_stack
from gateway.rig.dialing.callees import Callee, book, machine

TOKEN = "voicemail-benchmark-api-token"
MESSAGE = "Hello, this is the clinic. Your appointment is tomorrow at ten. Please call us back."
PITCHES = (440.0, 600.0, 850.0, 1000.0, 1400.0, 2000.0)
LENGTHS_MS = (150, 300, 500, 800)


def voicemails(n: int) -> dict[str, Callee]:
    return {f"+1415555{2000 + i:04d}": machine(beep_hz=PITCHES[i % len(PITCHES)],
                                                beep_ms=LENGTHS_MS[i // len(PITCHES)
                                                                   % len(LENGTHS_MS)])
            for i in range(n)}


async def run(calls: int, speed: float) -> dict[str, Any]:
    numbers = voicemails(calls)
    agent = Agent(name="clinic", instructions="Remind patients of appointments.")
    with tempfile.TemporaryDirectory() as folder:
        settings = StackSettings(TOKEN, Path(folder) / "calls.db", agent,
                                 max_calls=calls * 2, speed=speed)
        async with (campaign_stack(settings, book(numbers), time.time) as stack,
                    aiohttp.ClientSession() as http):
            headers = {"Authorization": f"Bearer {TOKEN}"}

            async def place(number: str) -> str:
                body = {"to": number, "agent": "clinic", "machine_detection": "leave_message",
                        "voicemail_message": MESSAGE}
                async with http.post(f"{stack.url}/v1/calls", json=body,
                                     headers=headers) as resp:
                    return str((await resp.json())["id"])

            ids = await asyncio.gather(*(place(n) for n in numbers))
            await stack.net.wait_all()
            await stack.gateway.wait_idle()
            assert stack.gateway.dialing is not None
            records = [await stack.gateway.dialing.get(i) for i in ids]
    delays, over_greeting, missing = [], 0, 0
    for call in stack.net.calls.values():
        beep_end = call.callee.beep_end_ms
        assert call.result is not None
        assert beep_end is not None
        heard = [t for t, what in call.result.timeline if what == "media"]
        if not heard:
            missing += 1
            continue
        over_greeting += sum(1 for t in heard if t < beep_end)
        # Call time is the callee's audio clock; at --speed N a real delay reads N times longer.
        delays.append((heard[0] - beep_end) / speed)
    decided = [r.amd.decided_ms for r in records if r and r.amd]
    machines = sum(1 for r in records if r and r.amd and r.amd.answered_by.value == "machine")
    beeps = sum(1 for r in records if r and r.amd and r.amd.beep_ms is not None)
    delays.sort()
    return {"calls": calls, "messages heard": len(delays), "no message": missing,
            "audio frames over a greeting": over_greeting,
            "beep end -> message start, median ms": round(statistics.median(delays)),
            "p95 ms": round(delays[int(0.95 * (len(delays) - 1))]),
            "max ms": round(delays[-1]), "within 500 ms": sum(d <= 500 for d in delays),
            "answered by a machine": machines, "beeps on the record": beeps,
            "decision median ms": round(statistics.median(decided)) if decided else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=24)
    parser.add_argument("--speed", type=float, default=1.0,
                        help="the callee's audio and the simulator, x real time")
    args = parser.parse_args()
    gwlog.configure("warning")
    for name, value in asyncio.run(run(args.calls, args.speed)).items():
        print(f"{name}: {value}")


if __name__ == "__main__":
    main()
