"""``voicegw loadtest``'s arguments: argparse only, so ``voicegw --help`` imports nothing heavy."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser("loadtest", help="many concurrent simulated phone calls against a "
                       "gateway; latency, errors, CPU; exit 1 if an SLO is missed")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="the gateway: http(s)://HOST:PORT (each call fetches "
                        "the carrier's answer document there first, as the carrier does), "
                        "or a media socket's URL, ws://HOST:PORT/NAME/media, to connect to "
                        "directly (a gateway that checks no signatures)")
    target.add_argument("--local", action="store_true", help="start the simulated Live server "
                        "and a gateway as subprocesses on free loopback ports, and test those")
    p.add_argument("--carrier", default="twilio", help="the carrier every call comes through "
                   "(twilio, signalwire, telnyx, plivo, vonage, exotel, jambonz, asterisk, "
                   "audiosocket; default twilio)")
    p.add_argument("--calls", type=int, default=10, help="concurrent calls (default 10)")
    p.add_argument("--ramp", type=float, default=0.0, metavar="S",
                   help="seconds over which the concurrent calls are started")
    stop = p.add_mutually_exclusive_group()
    stop.add_argument("--duration", type=float, metavar="S",
                      help="start calls for this long (calls in flight then finish)")
    stop.add_argument("--count", type=int, metavar="K", help="place K calls in total "
                      "(default: --calls, without --duration)")
    audio = p.add_mutually_exclusive_group()
    audio.add_argument("--wav", type=Path, action="append", help="the caller's recording "
                       "(default: a bundled caller utterance); repeat it for a conversation: "
                       "each further one is said once the agent's reply has been heard")
    audio.add_argument("--capture", type=Path, help="a captured call (.jsonl) to replay")
    p.add_argument("--barge-in-ms", type=int, metavar="D",
                   help="speak over the agent's reply D ms after it starts")
    p.add_argument("--line", metavar="SPEC", help="every call over a simulated line: "
                   "echo of what the phone played, background noise, a G.711 leg, e.g. "
                   "echo=12dB@120ms,noise=babble@15dB,codec=ulaw (see gateway/rig/line_spec.py)")
    p.add_argument("--dtmf", default="", metavar="DIGITS", help="keypad digits to press with "
                   "the first utterance")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="a custom parameter for every stream (repeatable; over a capture's "
                   "own)")
    p.add_argument("--speed", type=float, default=1.0, help="play faster than real time (the "
                   "Live server must pace at the same speed; --local does)")
    p.add_argument("--secret", default=None, help="sign each webhook and stream as the "
                   "carrier would, with its signing secret (default: the carrier's variable, "
                   "e.g. TWILIO_AUTH_TOKEN; Exotel's USER:PASSWORD, from EXOTEL_STREAM_USER "
                   "and EXOTEL_STREAM_PASSWORD); with --local, fresh credentials are made")
    p.add_argument("--pid", type=int, help="sample this gateway process's CPU and memory")
    p.add_argument("--timeout", type=float, default=120.0, metavar="S",
                   help="wall-clock limit per call (default 120)")
    p.add_argument("--reply-wait", type=float, default=10.0, metavar="S",
                   help="call-time seconds without a reply before a call counts as no_reply")
    p.add_argument("--trace", type=Path, metavar="PATH", help="write the phones' timing "
                   "trace (JSON lines: frames sent, reply audio and clears received); with a "
                   "simulator trace too, the report gains the gateway's added latency")
    p.add_argument("--sim-trace", type=Path, metavar="PATH", help="the simulator's trace "
                   "(voicegw simulate-live --trace) on this machine, read after the run; with "
                   "--local, where the simulator it starts writes it (default with --trace: "
                   "next to it, NAME.sim.jsonl)")
    p.add_argument("--gateway-trace", type=Path, metavar="PATH", help="the gateway's trace "
                   "(voicegw serve --trace), read after the run: with the two traces above, "
                   "the report also times each path to the gateway's own write, free of the "
                   "rig's read delays; with --local, where the gateway it starts writes it "
                   "(default with --trace: NAME.gateway.jsonl)")
    p.add_argument("--json-out", type=Path, help="write the full report as JSON")
    p.add_argument("--html-out", type=Path, help="write an HTML report with plots "
                   "(needs matplotlib: the 'loadtest' extra)")
    p.add_argument("--slo-response-p95-ms", type=float, metavar="MS")
    p.add_argument("--slo-barge-in-p95-ms", type=float, metavar="MS")
    p.add_argument("--slo-error-rate", type=float, metavar="FRACTION",
                   help="e.g. 0.01 for at most 1%% of calls failed")
