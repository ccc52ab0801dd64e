"""``voicegw``: argument parsing only; each command builds settings and runs one thing."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

from gateway import __version__, eventloop
from gateway import log as gwlog
from gateway.errors import ConfigError, GatewayError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="voicegw", description="Telephony voice-agent gateway: "
                                "Twilio Media Streams to the Gemini Live API.")
    p.add_argument("--version", action="version", version=f"voicegw {__version__}")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gateway (reads GEMINI_API_KEY or Vertex "
                           "settings from the environment)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--live-url", help="ws:// or wss:// URL of a Live server to use instead "
                       "of Google's (e.g. the simulator)")
    serve.add_argument("--model", help="Live model id (default: VOICEGW_MODEL or the built-in)")
    serve.add_argument("--max-calls", type=int, help="concurrent calls before callers hear "
                       "'all lines are busy' (default: VOICEGW_MAX_CALLS or 100)")
    serve.add_argument("--max-loop-lag-ms", type=float, help="event-loop lag (median over "
                       "about a second) past which new callers hear 'all lines are busy'; "
                       "0 turns it off (default: VOICEGW_MAX_LOOP_LAG_MS or 100)")
    serve.add_argument("--allow-unsigned", action="store_true",
                       help="serve on a non-loopback address without TWILIO_AUTH_TOKEN, i.e. "
                       "without checking Twilio's request signatures")
    serve.add_argument("--trace", type=Path, metavar="PATH", help="write when each caller "
                       "frame, reply chunk and clear left the gateway (JSON lines), for "
                       "voicegw loadtest --gateway-trace; a measuring aid, not for production")
    serve.add_argument("--loop", choices=eventloop.CHOICES, default="auto",
                       help="event loop: uvloop (C; cheaper sockets and TLS per frame) or "
                       "asyncio's; auto picks uvloop where it is installed")

    sim = sub.add_parser("simulate-live", help="run the SIMULATED Live server (a test and demo "
                         "tool, not Google's service)")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=8765)
    sim.add_argument("--tls-cert", type=Path)
    sim.add_argument("--tls-key", type=Path)
    sim.add_argument("--scenario", type=Path, help="JSON or YAML scenario file")
    sim.add_argument("--trace", type=Path, metavar="PATH", help="write a JSON-lines timing "
                     "trace (sessions, audio in and out, interruptions) for measuring a "
                     "gateway's added latency with 'voicegw loadtest --sim-trace'")
    sim.add_argument("--workers", type=int, default=1, metavar="N",
                     help="run N simulator processes on the one port (SO_REUSEPORT) and the "
                     "one trace, for loads one process cannot carry; needs a fixed --port")
    sim.add_argument("--worker", help=argparse.SUPPRESS)  # K/N: set by --workers for each

    call = sub.add_parser("call", help="play a recording into a gateway as Twilio would and "
                          "save what came back")
    call.add_argument("wav", type=Path, help="the caller's recording (PCM16 or mu-law WAV), "
                      "or a capture (.jsonl) to replay")
    call.add_argument("--url", required=True, help="the gateway's media URL, ws://HOST:PORT/media")
    call.add_argument("--out", type=Path, default=Path("reply.wav"),
                      help="stereo WAV: caller left, what the caller heard right")
    call.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                      help="a <Parameter> for the stream's start message (repeatable)")
    call.add_argument("--speed", type=float, default=1.0, help="play faster than real time")
    call.add_argument("--wait", type=float, default=10.0,
                      help="seconds to wait for a reply before hanging up")

    agents = sub.add_parser("agents", help="list the agents and their tools' declarations")
    agents.add_argument("--json", action="store_true", help="machine-readable output")

    calls = sub.add_parser("calls", help="the call records (VOICEGW_DATABASE or DATABASE_URL; "
                           "default ./voicegw-calls.db)")
    calls_sub = calls.add_subparsers(dest="calls_command", required=True)
    calls_list = calls_sub.add_parser("list", help="the newest calls, newest first")
    calls_list.add_argument("--limit", type=int, default=20)
    calls_show = calls_sub.add_parser("show", help="one call: figures, transcript, tool calls")
    calls_show.add_argument("call_sid")
    for cmd in (calls_list, calls_show):
        cmd.add_argument("--json", action="store_true", help="machine-readable output")
        cmd.add_argument("--full-numbers", action="store_true",
                         help="print phone numbers whole (masked by default, as in the logs)")

    from gateway.loadtest.args import add_parser as add_loadtest

    add_loadtest(sub)

    demo = sub.add_parser("demo", help="a whole call through the gateway against the "
                          "simulated Live server")
    demo.add_argument("--out", type=Path, default=Path("demo-call.wav"))
    demo.add_argument("--speed", type=float, default=1.0)
    demo.add_argument("--json", action="store_true", help="print the figures as JSON only")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    gwlog.configure(args.log_level if args.command != "demo" else "warning")
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "simulate-live":
            return _simulate(args)
        if args.command == "call":
            return asyncio.run(_call(args))
        if args.command == "demo":
            return asyncio.run(_demo(args))
        if args.command == "loadtest":
            from gateway.loadtest.command import main as loadtest

            return loadtest(args)
        if args.command == "calls":
            return asyncio.run(_calls(args))
        if args.command == "agents":
            from gateway.registry import describe_agents, discover_agents

            print(describe_agents(discover_agents().values(), as_json=args.json), end="")
            return 0
    except ConfigError as exc:
        print(f"voicegw: configuration error: {exc}", file=sys.stderr)
        return 2
    except GatewayError as exc:
        print(f"voicegw: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 2


def _serve(args: argparse.Namespace) -> int:
    from gateway.config import check_exposure, load_settings
    from gateway.lifecycle import serve
    from gateway.server import Gateway, build_services

    settings = load_settings(host=args.host, port=args.port, live_url=args.live_url,
                             model=args.model, log_level=args.log_level,
                             max_calls=args.max_calls, max_loop_lag_ms=args.max_loop_lag_ms)
    check_exposure(settings, allow_unsigned=args.allow_unsigned)
    for secret in settings.endpoint.headers.values():
        gwlog.register_secret(secret.reveal())
        gwlog.register_secret(secret.reveal().removeprefix("Bearer "))
    if settings.twilio_auth_token is not None:
        gwlog.register_secret(settings.twilio_auth_token.reveal())
    gwlog.configure(settings.log_level)
    services = build_services(settings)
    if args.trace is not None:
        from gateway.timing_trace import GatewayTrace

        services = dataclasses.replace(services, trace=GatewayTrace(args.trace))
    gateway = Gateway(settings, services=services)
    eventloop.run(serve(gateway), args.loop)
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from gateway.simulator import run_simulator

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
                                trace=args.trace, worker=worker))
    return 0


def _simulate_workers(args: argparse.Namespace) -> int:
    from gateway.simulator.workers import run_workers, worker_argv

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
    from gateway.phone import Utterance, When, load_utterance, place_call
    from gateway.twilio_peer import parse_parameters

    params = parse_parameters(args.param)
    if args.wav.suffix == ".jsonl":
        from gateway.capture import load_capture

        capture = load_capture(args.wav)
        params = capture.parameters | params  # --param overrides what was captured
        utterance = Utterance(bytes(capture.ulaw), When.START, 0)
        if capture.dtmf:
            print(f"note: {len(capture.dtmf)} keypad presses in the capture are not replayed",
                  file=sys.stderr)
    else:
        utterance = Utterance(load_utterance(args.wav), When.START, 300)
    result = await place_call(args.url, [utterance], speed=args.speed, parameters=params,
                              reply_wait_s=args.wait)
    result.write_wav(args.out)
    print(f"sent {result.frames_sent} frames, received {result.media_received} media messages, "
          f"{result.clears} clears; response latency {result.response_ms} ms; "
          f"wrote {args.out}")
    return 0 if result.media_received else 1


async def _calls(args: argparse.Namespace) -> int:
    from gateway.store import report, store_from_env

    store = store_from_env(create=False)
    if store is None:
        raise ConfigError("call records are off (VOICEGW_DATABASE=off)")
    await store.open()
    try:
        full = args.full_numbers
        if args.calls_command == "list":
            calls = await store.list_calls(max(args.limit, 1))
            print((report.list_json if args.json else report.list_text)(calls,
                                                                        full_numbers=full),
                  end="")
            return 0
        record = await store.get_call(args.call_sid)
        if record is None:
            print(f"voicegw: no call {args.call_sid} in {store.where}", file=sys.stderr)
            return 1
        print((report.show_json if args.json else report.show_text)(record, full_numbers=full),
              end="")
        return 0
    finally:
        await store.aclose()


async def _demo(args: argparse.Namespace) -> int:
    from gateway.demo import figures_json, print_report, run_demo

    report = await run_demo(speed=args.speed)
    report.result.write_wav(args.out)
    if args.json:
        print(figures_json(report))
    else:
        print_report(report, args.out)
    ok = (report.result.clears >= 1 and report.result.media_received > 0
          and report.summary.stats.frames_forwarded == report.result.frames_sent)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
