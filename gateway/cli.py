"""``voicegw``: argument parsing only; each command builds settings and runs one thing."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from gateway import __version__, eventloop
from gateway import log as gwlog
from gateway.errors import ConfigError, GatewayError
from gateway.workers.worker import SocketMode

RIG_COMMANDS = frozenset({"simulate-live", "call", "loadtest", "demo"})


def _workers(text: str) -> int:
    """``--workers``: a count, or ``auto`` for the cores this process may run on."""
    if text == "auto":
        return len(os.sched_getaffinity(0))
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number or 'auto': {text!r}") from None
    if count < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return count


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="voicegw", description="Telephony voice-agent gateway: "
                                "carriers' media streams to the Gemini Live API.")
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
                       help="serve carriers whose signing secret is not set (e.g. without "
                       "TWILIO_AUTH_TOKEN) without checking their request signatures, also "
                       "beyond loopback: for when something in front authenticates requests")
    serve.add_argument("--audiosocket", metavar="HOST:PORT",
                       help="also take Asterisk AudioSocket calls over TCP here (loopback "
                       "unless --allow-unsigned: the protocol has no authentication)")
    serve.add_argument("--console", nargs="?", const="", metavar="HOST:PORT",
                       help="serve the web console: under /console/ on the gateway's port, "
                       "or on HOST:PORT of its own (default: VOICEGW_CONSOLE, off); needs "
                       "VOICEGW_CONSOLE_PASSWORD_HASH or VOICEGW_CONSOLE_TOKEN")
    serve.add_argument("--trace", type=Path, metavar="PATH", help="write when each caller "
                       "frame, reply chunk and clear left the gateway (JSON lines), for "
                       "voicegw loadtest --gateway-trace; a measuring aid, not for production")
    serve.add_argument("--workers", type=_workers, default=1, metavar="N|auto",
                       help="gateway processes sharing the port, under a supervisor that "
                       "restarts one that dies and drains them all on SIGTERM; auto: one "
                       "per usable core (default 1: this process serves alone)")
    serve.add_argument("--workers-socket", choices=[m.value for m in SocketMode],
                       default=SocketMode.REUSEPORT.value,
                       help="how workers share the port: reuseport (each binds its own "
                       "socket with SO_REUSEPORT; the kernel spreads new connections evenly) "
                       "or inherit (all accept from one socket; an idle worker can take a "
                       "whole burst). Default reuseport: see benchmarks/workers.py")
    serve.add_argument("--loop", choices=eventloop.CHOICES, default="auto",
                       help="event loop: uvloop (C; cheaper sockets and TLS per frame) or "
                       "asyncio's; auto picks uvloop where it is installed")

    console = sub.add_parser("console", help="the web console's set-up")
    console_sub = console.add_subparsers(dest="console_command", required=True)
    console_sub.add_parser("hash-password", help="print the argon2id hash of a password "
                           "(asked for, or one line of stdin) for "
                           "VOICEGW_CONSOLE_PASSWORD_HASH")

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

    from gateway.dialing.cli import add_command as add_dial

    add_dial(sub)

    from gateway.campaign.cli import add_commands as add_campaign_commands

    add_campaign_commands(sub)

    # The rig's commands (simulator, phone calls, load test, demo): the one place the
    # product's entry point reaches into the rig, and only when one of them runs.
    from gateway.rig.cli import add_commands

    add_commands(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    gwlog.configure(args.log_level if args.command != "demo" else "warning")
    try:
        if args.command == "serve":
            return _serve(args, sys.argv[1:] if argv is None else argv)
        if args.command in RIG_COMMANDS:
            from gateway.rig.cli import run

            return run(args)
        if args.command == "calls":
            return asyncio.run(_calls(args))
        if args.command == "dial":
            from gateway.dialing.cli import run as dial

            return asyncio.run(dial(args))
        if args.command in ("campaign", "dnc"):
            from gateway.campaign.cli import run as run_campaign_command

            return run_campaign_command(args)
        if args.command == "console":
            from gateway.console.settings import hash_password

            return hash_password()
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


def _serve(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from gateway.config import load_settings
    from gateway.lifecycle import serve
    from gateway.server import Gateway, build_carriers, build_services
    from gateway.workers.worker import WorkerRole

    settings = load_settings(host=args.host, port=args.port, live_url=args.live_url,
                             model=args.model, log_level=args.log_level,
                             max_calls=args.max_calls, max_loop_lag_ms=args.max_loop_lag_ms)
    role = WorkerRole.from_env(os.environ)
    if role is None and args.workers > 1:
        return _supervise(args, argv, settings.host, settings.port, settings.max_calls)
    if role is not None:
        from structlog.contextvars import bind_contextvars

        from gateway.workers.slots import share

        # Every log line of this process names its worker (the loop's tasks copy this).
        bind_contextvars(worker=role.slot)
        settings = dataclasses.replace(
            settings, max_calls=share(settings.max_calls, role.count, role.slot))
    for secret in settings.endpoint.headers.values():
        gwlog.register_secret(secret.reveal())
        gwlog.register_secret(secret.reveal().removeprefix("Bearer "))
    if settings.stream_secret is not None:
        gwlog.register_secret(settings.stream_secret.reveal())
    from gateway.console.settings import console_settings

    console = console_settings(os.environ, args.console)
    for value in console.secrets() if console is not None else ():
        gwlog.register_secret(value)
    carriers = build_carriers(settings, allow_unsigned=args.allow_unsigned)
    gwlog.configure(settings.log_level)
    services = build_services(settings)
    if args.trace is not None:
        from gateway.timing_trace import GatewayTrace

        services = dataclasses.replace(services, trace=GatewayTrace(args.trace))
    audiosocket = audiosocket_auth = None
    if args.audiosocket:
        from gateway.audiosocket_server import AudioSocketConfig, registration_auth

        audiosocket = AudioSocketConfig.parse(args.audiosocket,
                                              allow_unsigned=args.allow_unsigned,
                                              env=os.environ)
        audiosocket_auth = registration_auth(os.environ)
    from gateway.dialing.setup import OutboundSettings

    gateway = Gateway(settings, services=services, carriers=carriers, audiosocket=audiosocket,
                      audiosocket_auth=audiosocket_auth, console=console,
                      outbound=OutboundSettings.from_env())
    eventloop.run(serve(gateway, role), args.loop)
    return 0


def _supervise(args: argparse.Namespace, argv: Sequence[str], host: str, port: int,
               max_calls: int) -> int:
    from gateway.console.settings import console_settings
    from gateway.workers.supervisor import Plan, supervise

    # Both keep state in one process that a request landing on another worker would miss:
    # an AudioSocket call is registered over HTTP (any worker) and then connects over TCP,
    # and the console's live views and talk page follow the calls of its own process.
    if args.audiosocket:
        raise ConfigError("--audiosocket needs --workers 1: a call registered on one worker "
                          "would connect to another")
    if console_settings(os.environ, args.console) is not None:
        raise ConfigError("the console needs --workers 1: it sees the calls of one process")
    # Placed calls are shared through the database, but a call's screen hears its carrier's
    # detection, and a warm transfer hears the person's call, in the process that holds them:
    # a status callback landing on another worker would not reach it.
    if os.environ.get("VOICEGW_API_TOKEN", "").strip():
        raise ConfigError("outbound calls (VOICEGW_API_TOKEN) need --workers 1: a call's "
                          "status callbacks may reach another worker than its stream")
    if max_calls < args.workers:
        raise ConfigError(f"--max-calls ({max_calls}) must be at least --workers "
                          f"({args.workers}): each worker takes its share")
    plan = Plan(argv, args.workers, host, port, SocketMode(args.workers_socket))
    return eventloop.run(supervise(plan), args.loop)


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


if __name__ == "__main__":
    sys.exit(main())
