"""``voicegw demo``: a whole phone call through the gateway, against the simulated Live server.

Starts the simulator and the gateway on free loopback ports in this process, places a bundled
multi-turn call (booking a table, with one barge-in) as the chosen carrier would (its answer
webhook signed, the stream carrying the per-call token the answer minted), writes what the
caller said and heard to a stereo WAV, and prints the transcript and the measured figures.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

from gateway.audiosocket_server import AudioSocketConfig, registration_auth
from gateway.carrier_setup import all_setups
from gateway.carriers.core import Carrier
from gateway.config import Settings as GatewaySettings
from gateway.config import custom_endpoint
from gateway.record import CallSummary
from gateway.rig.line_spec import LineSpec
from gateway.rig.peers.browser import operator_check
from gateway.rig.peers.registry import new_peer, test_credentials
from gateway.rig.phone import CallResult, Utterance, When, load_utterance, place_call
from gateway.rig.simulator import SimulatorServer, bundled_scenario, load_scenario
from gateway.rig.simulator.speech import speech_dir
from gateway.server import Gateway, running


@dataclass(frozen=True, slots=True)
class DemoReport:
    result: CallResult
    summary: CallSummary
    simulator_audio_chunks: int
    simulator_audio_chunks_after_interrupt: int

    def figures(self) -> dict[str, Any]:
        r, s = self.result, self.summary.stats
        return {
            "carrier": self.summary.carrier,
            "call_seconds": round(r.said_fmt.ms(len(r.said)) / 1000, 2),
            "caller_frames_sent": r.frames_sent,
            "caller_frames_forwarded_by_gateway": s.frames_forwarded,
            "caller_audio_messages_received_by_live": self.simulator_audio_chunks,
            "reply_media_messages_heard_path": r.media_received,
            "clears": r.clears,
            "marks_sent_by_gateway": s.marks_sent,
            "marks_echoed_by_phone": r.marks_echoed,
            "response_latency_ms_at_phone": r.response_ms,
            "barge_in_ms_at_phone": r.barge_in_ms,
            "gateway_barge_in_reaction": s.barge_in.summary().format(),
            "gateway_inbound_forwarding": s.forward_latency.summary().format(),
            "gateway_reply_forwarding": s.reply_latency.summary().format(),
            "playback_underruns": r.underruns,
            "end_reason": self.summary.end_reason,
        }


def demo_call() -> list[Utterance]:
    speech = speech_dir()

    def say(name: str, when: When, delay_ms: int, text: str) -> Utterance:
        return Utterance(load_utterance(speech / name), when, delay_ms, text)

    return [
        say("caller_book_table.wav", When.START, 500,
            "Hi, I'd like to book a table for two tomorrow evening."),
        say("caller_seven_thirty.wav", When.AFTER_REPLY, 600, "Seven thirty would be great."),
        say("caller_barge_in.wav", When.BARGE_IN, 2500,
            "Actually, wait, can we make it eight?"),
        say("caller_goodbye.wav", When.AFTER_REPLY, 700, "Thanks, goodbye."),
    ]


async def run_demo(*, speed: float = 1.0, scenario_path: Path | None = None,
                   carrier: Carrier = Carrier.TWILIO, line: LineSpec | None = None
                   ) -> DemoReport:
    # The simulator paces replies and the phone paces frames; both run at the same speed.
    scenario = replace(load_scenario(scenario_path or bundled_scenario("demo")), speed=speed)
    env, secret = test_credentials(carrier)
    async with SimulatorServer(scenario) as sim:
        settings = GatewaySettings(endpoint=custom_endpoint(sim.url, "demo-model"))
        gateway = demo_gateway(settings, carrier, env)
        async with running(gateway) as port:
            peer = new_peer(carrier, {"From": "+15550100", "To": "+15550199"})
            media, answer = call_urls(gateway, port, carrier)
            result = await place_call(media, demo_call(), speed=speed, peer=peer,
                                      secret=secret, answer_url=answer, line=line)
            await sim.wait_until(lambda: bool(sim.sessions) and
                                 sim.sessions[-1].closed is not None, timeout=10)
        session = sim.sessions[-1]
    sent = session.sent
    after = sent[sent.index("interrupted"):].count("audio") if "interrupted" in sent else 0
    return DemoReport(result, gateway.finished[-1], session.audio_chunks, after)


def demo_gateway(settings: GatewaySettings, carrier: Carrier,
                 env: dict[str, str]) -> Gateway:
    """A gateway serving ``carrier`` alone, with the credentials in ``env``."""
    if carrier is Carrier.AUDIOSOCKET:
        return Gateway(settings, carriers={},
                       audiosocket=AudioSocketConfig("127.0.0.1", 0),
                       audiosocket_auth=registration_auth(env))
    if carrier is Carrier.BROWSER:  # the talk page: behind the console's operator check
        return Gateway(settings, carriers={},
                       browser=operator_check(env["VOICEGW_CONSOLE_TOKEN"]))
    return Gateway(settings, carriers={carrier: all_setups(env)[carrier]})


def call_urls(gateway: Gateway, port: int, carrier: Carrier) -> tuple[str, str]:
    """Where the phone connects, and the webhook it calls first (the answer, or for
    AudioSocket the dialplan's registration)."""
    http = f"http://127.0.0.1:{port}/{carrier.value}"
    if carrier is Carrier.AUDIOSOCKET:
        return f"tcp://127.0.0.1:{gateway.audiosocket_port}", f"{http}/calls"
    return f"ws://127.0.0.1:{port}/{carrier.value}/media", f"{http}/answer"


def print_report(report: DemoReport, wav: Path, out: TextIO = sys.stdout) -> None:
    print("\nTranscript (from the Live session's transcriptions):", file=out)
    for line in report.summary.transcript:
        cut = "  [interrupted by the caller]" if line.interrupted else ""
        print(f"  {line.at:6.2f}s  {line.role:>6}: {line.text.strip()}{cut}", file=out)
    print("\nMeasured:", file=out)
    for key, value in report.figures().items():
        print(f"  {key}: {value}", file=out)
    print(f"\nCaller-side audio (left: caller, right: what the caller heard): {wav}", file=out)


def figures_json(report: DemoReport) -> str:
    return json.dumps(report.figures(), indent=2)
