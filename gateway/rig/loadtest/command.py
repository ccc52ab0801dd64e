"""``voicegw loadtest``: its arguments, and the run from setup to the exit code."""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.parse
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from gateway import eventloop
from gateway.carriers.core import Carrier
from gateway.errors import ConfigError
from gateway.rig.line_spec import parse_line
from gateway.rig.peers import parse_parameters
from gateway.rig.peers.registry import carrier, env_secret, test_credentials

from .added import measure
from .at_gateway import analyse_at_gateway
from .calls import build_plan
from .local import LocalStack
from .monitor import ProcessMonitor
from .progress import ProgressLine
from .report import Slo, build_report, check_slos, print_table
from .runner import LoadConfig, run_load
from .scrape import FRAMES, metrics_url, scrape, scrape_settled
from .timelines import read_phone, read_sim
from .trace import PhoneTrace, read_jsonl, settled, trace_beside


def _slos(args: argparse.Namespace) -> list[Slo]:
    slos = []
    if args.slo_response_p95_ms is not None:
        slos.append(Slo("response p95 ms", "latency_ms.response.p95", args.slo_response_p95_ms))
    if args.slo_barge_in_p95_ms is not None:
        slos.append(Slo("barge-in p95 ms", "latency_ms.barge_in.p95", args.slo_barge_in_p95_ms))
    if args.slo_error_rate is not None:
        slos.append(Slo("error rate", "calls.error_rate", args.slo_error_rate))
    return slos


def _sim_trace(args: argparse.Namespace) -> Path | None:
    if args.sim_trace is not None and args.trace is None:
        raise ConfigError("--sim-trace needs --trace (the phones' side of the measurement)")
    return _peer_trace(args, args.sim_trace, "sim", who="simulator",
                       command="voicegw simulate-live")


def _gateway_trace(args: argparse.Namespace, sim_trace: Path | None) -> Path | None:
    if args.gateway_trace is not None and (args.trace is None or sim_trace is None):
        raise ConfigError("--gateway-trace needs --trace and the simulator's trace: it times "
                          "what the gateway wrote against what they wrote")
    return _peer_trace(args, args.gateway_trace, "gateway", who="gateway",
                       command="voicegw serve")


def _peer_trace(args: argparse.Namespace, given: Path | None, kind: str, *, who: str,
                command: str) -> Path | None:
    """Where another process's trace is: with --local, where the one started here writes it
    (beside --trace by default); else the file given, which must already be there."""
    if args.local and given is None and args.trace is not None:
        return trace_beside(args.trace, kind)
    if not args.local and given is not None and not given.exists():
        raise ConfigError(f"--{kind}-trace {given}: no such file (start the {who} with "
                          f"'{command} --trace PATH' first)")
    return given


def _monitor(pids: dict[str, int], required: bool) -> ProcessMonitor | None:
    try:
        return ProcessMonitor(pids)
    except ConfigError:
        if required:
            raise
        return None  # only the load generator itself would have been watched


def _check(args: argparse.Namespace) -> None:
    """Everything that can be refused before anything starts."""
    if args.calls < 1 or (args.count is not None and args.count < 1):
        raise ConfigError("--calls and --count must be at least 1")
    if not args.speed > 0:
        raise ConfigError("--speed must be > 0")
    if args.html_out is not None:
        from .html import require_matplotlib  # noqa: PLC0415 - fail before the run, not after

        require_matplotlib()


async def run(args: argparse.Namespace) -> int:
    _check(args)
    which = carrier(args.carrier)
    params = parse_parameters(args.param)  # before anything starts: a typo fails at once
    line = None if args.line is None else parse_line(args.line)
    sim_trace = _sim_trace(args)
    gateway_trace = _gateway_trace(args, sim_trace)
    phone_trace = None if args.trace is None else PhoneTrace(args.trace)
    async with AsyncExitStack() as stack:
        if phone_trace is not None:
            phone_trace.start()
            stack.push_async_callback(phone_trace.aclose)
        secret: str | None
        if args.local:
            env, secret = test_credentials(which)
            local = await stack.enter_async_context(LocalStack(
                speed=args.speed, max_calls=max(100, args.calls), env=env,
                sim_trace=sim_trace, gateway_trace=gateway_trace,
                audiosocket=which is Carrier.AUDIOSOCKET))
            url, target, pids = local.base_url, "local subprocesses", local.pids
            if which is Carrier.AUDIOSOCKET:
                url = f"tcp://127.0.0.1:{local.audiosocket_port}?http={local.base_url}"
        else:
            url, target, pids = args.url, "remote", {}
            secret = args.secret or env_secret(which, os.environ)
            if args.pid is not None:
                pids["gateway"] = args.pid
        media_url, answer_url = targets(url, which.value)
        pids["loadgen"] = os.getpid()
        monitor = _monitor(pids, required=args.local or args.pid is not None)
        plan = build_plan(wav=args.wav, capture=args.capture, barge_in_ms=args.barge_in_ms,
                          dtmf=args.dtmf, secret=secret, parameters=params, carrier=which,
                          answer_url=answer_url, line=line)
        # Neither --duration nor --count: one call per slot.
        count = args.count if args.count is not None or args.duration is not None \
            else args.calls
        config = LoadConfig(url=media_url, plan=plan, calls=args.calls, ramp_s=args.ramp,
                            duration_s=args.duration, count=count, speed=args.speed,
                            timeout_s=args.timeout, reply_wait_s=args.reply_wait,
                            trace=phone_trace)
        murl = metrics_url(media_url, url)
        before = await scrape(murl)
        progress = ProgressLine()
        try:
            result = await run_load(config, monitor=monitor, progress=progress)
        finally:
            progress.finish()
        after = await scrape_settled(murl) if before is not None else None
        if not args.local:  # another process's: let its last buffer land
            for path in (sim_trace, gateway_trace):
                if path is not None:
                    await settled(path)
    # Here the local simulator has been stopped, and has written out its trace.
    added, at_gw = _analyse(args.trace, sim_trace, gateway_trace)
    frames = None
    if before is not None and after is not None and FRAMES in after:
        frames = after[FRAMES] - before.get(FRAMES, 0.0)
    report = build_report(result, source=plan.source, target=target, gateway_frames=frames,
                          added=added, at_gateway=at_gw)
    report["slo"] = check_slos(report, _slos(args))
    _write(report, args)
    return 0 if report["slo"]["passed"] else 1


def _analyse(phone: Path | None, sim: Path | None, gateway: Path | None
             ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The report's added-latency sections, from the traces there are."""
    if phone is None or sim is None:
        return None, None
    calls, sessions = read_phone(read_jsonl(phone)), read_sim(read_jsonl(sim))
    added = measure(calls, sessions).as_dict()
    print(f"  traces: {phone}, {sim}", file=sys.stderr)
    if gateway is None:
        return added, None
    print(f"  gateway trace: {gateway}", file=sys.stderr)
    return added, analyse_at_gateway(calls, sessions, read_jsonl(gateway))


def _write(report: dict[str, Any], args: argparse.Namespace) -> None:
    print_table(report, sys.stdout)
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"  JSON report: {args.json_out}")
    if args.html_out is not None:
        from .html import write_html  # noqa: PLC0415 - matplotlib is an optional extra

        write_html(report, args.html_out)
        print(f"  HTML report: {args.html_out}")


def targets(url: str, carrier: str) -> tuple[str, str | None]:
    """The media URL to call and the answer URL to fetch first (None: connect directly).

    A bare gateway address (``http://HOST:PORT``) means the carrier's own way: answer first.
    AudioSocket's is ``tcp://HOST:PORT``, with ``?http=BASE`` where the call is registered
    first at ``BASE/audiosocket/calls`` (as the dialplan would), and else connects at once.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "tcp":
        http = urllib.parse.parse_qs(parts.query).get("http", [""])[0]
        media = urllib.parse.urlunsplit(("tcp", parts.netloc, "", "", ""))
        return media, f"{http.rstrip('/')}/{carrier}/calls" if http else None
    if parts.path not in ("", "/"):
        return url, None
    secure = parts.scheme in ("https", "wss")
    http = ("https" if secure else "http") + f"://{parts.netloc}"
    ws = ("wss" if secure else "ws") + f"://{parts.netloc}"
    return f"{ws}/{carrier}/media", f"{http}/{carrier}/answer"


def main(args: argparse.Namespace) -> int:
    return eventloop.run(run(args))
