"""The rig's commands: ``simulate-live``, ``call``, ``loadtest`` and ``demo``.

``voicegw`` (:mod:`gateway.cli`) adds these to its parser and hands them over here, so the
product's own commands never import the rig.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from gateway import eventloop
from gateway.errors import ConfigError


def add_commands(sub: Any) -> None:
    sim = sub.add_parser("simulate-live", help="run the SIMULATED Live server (a test and demo "
                         "tool, not Google's service)")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=8765)
    sim.add_argument("--tls-cert", type=Path)
    sim.add_argument("--tls-key", type=Path)
    sim.add_argument("--scenario", type=Path, help="JSON or YAML scenario file")
    sim.add_argument("--rest-port", type=int, default=0, help="port of the REST side "
                     "(POST /v1alpha/auth_tokens, ephemeral tokens); default: any free port")
    sim.add_argument("--trace", type=Path, metavar="PATH", help="write a JSON-lines timing "
                     "trace (sessions, audio in and out, interruptions) for measuring a "
                     "gateway's added latency with 'voicegw loadtest --sim-trace'")
    sim.add_argument("--workers", type=int, default=1, metavar="N",
                     help="run N simulator processes on the one port (SO_REUSEPORT) and the "
                     "one trace, for loads one process cannot carry; needs a fixed --port")
    sim.add_argument("--worker", help=argparse.SUPPRESS)  # K/N: set by --workers for each

    call = sub.add_parser("call", help="play a recording into a gateway as a carrier would "
                          "and save what came back")
    call.add_argument("wav", type=Path, help="the caller's recording (PCM16 or mu-law WAV), "
                      "or a capture (.jsonl) to replay")
    call.add_argument("--url", required=True, help="the gateway: http(s)://HOST:PORT (the "
                      "call fetches the carrier's answer document there first, as the "
                      "carrier does), or a media socket, ws://HOST:PORT/NAME/media")
    call.add_argument("--carrier", default=None, help="the carrier to play (twilio, "
                      "signalwire, telnyx, plivo, vonage, exotel, jambonz, asterisk, audiosocket; "
                      "default twilio, or a capture's; audiosocket's --url is tcp://HOST:PORT)")
    call.add_argument("--secret", default=None, help="sign the webhook and the stream as the "
                      "carrier would (default: the carrier's variable, e.g. TWILIO_AUTH_TOKEN; "
                      "for Exotel and AudioSocket, USER:PASSWORD, default from their two "
                      "variables, e.g. EXOTEL_STREAM_USER and EXOTEL_STREAM_PASSWORD)")
    call.add_argument("--out", type=Path, default=Path("reply.wav"),
                      help="stereo WAV: caller left, what the caller heard right")
    call.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                      help="a custom parameter for the stream (repeatable)")
    call.add_argument("--speed", type=float, default=1.0, help="play faster than real time")
    call.add_argument("--wait", type=float, default=10.0,
                      help="seconds to wait for a reply before hanging up")
    call.add_argument("--line", metavar="SPEC", help=_LINE_HELP)

    from gateway.rig.loadtest.args import add_parser as add_loadtest  # noqa: PLC0415

    add_loadtest(sub)

    demo = sub.add_parser("demo", help="a whole call through the gateway against the "
                          "simulated Live server")
    demo.add_argument("--carrier", default="twilio", help="the carrier the call comes through "
                      "(twilio, signalwire, telnyx, plivo, vonage, exotel, jambonz, asterisk, "
                      "audiosocket; default twilio)")
    demo.add_argument("--out", type=Path, default=Path("demo-call.wav"))
    demo.add_argument("--speed", type=float, default=1.0)
    demo.add_argument("--json", action="store_true", help="print the figures as JSON only")
    demo.add_argument("--line", metavar="SPEC", help=_LINE_HELP)


_LINE_HELP = ("the call goes over a simulated line: echo of what the phone played, background "
              "noise, a G.711 leg, e.g. echo=12dB@120ms,noise=babble@15dB,codec=ulaw (see "
              "gateway/rig/line_spec.py); the WAV's left channel is what the line delivered")


def run(args: argparse.Namespace) -> int:
    if args.command == "simulate-live":
        return _simulate(args)
    if args.command == "call":
        return asyncio.run(_call(args))
    if args.command == "demo":
        return asyncio.run(_demo(args))
    from gateway.rig.loadtest.command import main as loadtest  # noqa: PLC0415

    return loadtest(args)


def _simulate(args: argparse.Namespace) -> int:
    from gateway.rig.simulator import run_simulator  # noqa: PLC0415

    if (args.tls_cert is None) != (args.tls_key is None):
        raise ConfigError("--tls-cert and --tls-key go together")
    if args.workers < 1:
        raise ConfigError("--workers must be at least 1")
    if args.workers > 1:
        return _simulate_workers(args)
    worker = (0, 1)
    if args.worker:
        k, _, n = args.worker.partition("/")
        worker = (int(k), int(n))
    eventloop.run(run_simulator(args.host, args.port, scenario_path=args.scenario,
                                tls_cert=args.tls_cert, tls_key=args.tls_key,
                                trace=args.trace, worker=worker, rest_port=args.rest_port))
    return 0


def _simulate_workers(args: argparse.Namespace) -> int:
    from gateway.rig.simulator.workers import run_workers, worker_argv  # noqa: PLC0415

    if args.port == 0:
        raise ConfigError("--workers needs a fixed --port: the workers share it")
    base = ["--log-level", args.log_level, "simulate-live", "--host", args.host,
            "--port", str(args.port)]
    for flag, value in (("--tls-cert", args.tls_cert), ("--tls-key", args.tls_key),
                        ("--scenario", args.scenario), ("--trace", args.trace)):
        if value is not None:
            base += [flag, str(Path(value).resolve())]
    if args.trace is not None:
        args.trace.write_bytes(b"")  # one run, one trace: the workers append to it
    argvs = [worker_argv(base, k, args.workers) for k in range(args.workers)]
    return eventloop.run(run_workers(argvs))


async def _call(args: argparse.Namespace) -> int:
    import os  # noqa: PLC0415

    from gateway.rig.line_spec import parse_line  # noqa: PLC0415
    from gateway.rig.loadtest.command import targets  # noqa: PLC0415
    from gateway.rig.peers import parse_parameters  # noqa: PLC0415
    from gateway.rig.peers.registry import carrier, env_secret, new_peer  # noqa: PLC0415
    from gateway.rig.phone import Speech, Utterance, When, load_utterance, place_call  # noqa: PLC0415

    params = parse_parameters(args.param)
    line = None if args.line is None else parse_line(args.line)
    which = carrier(args.carrier or "twilio")
    if args.wav.suffix == ".jsonl":
        from gateway.rig.capture import load_capture  # noqa: PLC0415

        capture = load_capture(args.wav)
        assert capture.fmt is not None
        which = carrier(args.carrier) if args.carrier else capture.carrier
        params = capture.parameters | params  # --param overrides what was captured
        utterance = Utterance(Speech(bytes(capture.audio), capture.fmt), When.START, 0)
        if capture.dtmf:
            print(f"note: {len(capture.dtmf)} keypad presses in the capture are not replayed",
                  file=sys.stderr)
    else:
        utterance = Utterance(load_utterance(args.wav), When.START, 300)
    secret = args.secret or env_secret(which, os.environ)
    media_url, answer_url = targets(args.url, which.value)
    result = await place_call(media_url, [utterance], speed=args.speed,
                              reply_wait_s=args.wait, peer=new_peer(which, params),
                              answer_url=answer_url, secret=secret, line=line)
    result.write_wav(args.out)
    print(f"sent {result.frames_sent} frames, received {result.media_received} media messages, "
          f"{result.clears} clears; response latency {result.response_ms} ms; "
          f"wrote {args.out}")
    return 0 if result.media_received else 1


async def _demo(args: argparse.Namespace) -> int:
    from gateway.rig.demo import figures_json, print_report, run_demo  # noqa: PLC0415
    from gateway.rig.line_spec import parse_line  # noqa: PLC0415
    from gateway.rig.peers.registry import carrier, stream_core  # noqa: PLC0415

    line = None if args.line is None else parse_line(args.line)
    report = await run_demo(speed=args.speed, carrier=carrier(args.carrier), line=line)
    report.result.write_wav(args.out)
    if args.json:
        print(figures_json(report))
    else:
        print_report(report, args.out)
    # The caller barged in once: a carrier with a clear was sent one; where the gateway paces
    # playback instead, the barge-in shows on the call's record.
    which = carrier(args.carrier)
    barged = report.result.clears >= 1 if stream_core(which).caps.clear \
        else report.summary.stats.interruptions >= 1
    ok = (barged and report.result.media_received > 0
          and report.summary.stats.frames_forwarded == report.result.frames_sent)
    return 0 if ok else 1
