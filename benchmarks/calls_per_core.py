"""Gateway CPU per concurrent full-duplex call, pinned to one core; optionally beside Pipecat.

For each load (default 50, 100 and 200 calls) and each target, on this 2-core machine:

- the simulated Live server runs on CPU 1 (with TLS: Google's SDK, which Pipecat uses, only
  speaks ``wss://`` to a custom base URL, so both targets get the same TLS simulator);
- the target runs alone on CPU 0 (``taskset -c 0``): ``voicegw serve``, or Pipecat 1.14's
  Twilio pipeline with its Gemini Live service (``benchmarks/pipecat/``, in its own venv);
- ``voicegw loadtest`` runs on CPU 1 and places the calls: a conversation of about a minute,
  eight caller turns each said once the agent's reply has been heard, so the model speaks
  about half the time while the caller's 20 ms frames never stop (as Twilio's don't).

The target's CPU is read from /proc over a window in which every call is up (after the ramp,
before the first call ends), so call setup and teardown are not billed. CPU per call is that
window's CPU divided by the calls streaming: the caller audio the simulator received in the
window (from its trace) per second, which equals the calls placed when every frame flows and
is lower when something held frames back. Calls per core is its inverse. Latency figures are the
load tester's (at the phone), plus the gateway's own histograms from ``/metrics`` for ours.

Run: .venv/bin/python benchmarks/calls_per_core.py [--loads 50,100,200] [--targets voicegw]
     [--targets voicegw,pipecat] [--window 30] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import trustme
from prometheus_client.parser import text_string_to_metric_families

from gateway.rig.loadtest.local import free_port
from gateway.rig.loadtest.scrape import metrics_url
from gateway.rig.loadtest.timelines import read_sim
from gateway.rig.loadtest.trace import read_jsonl
from gateway.rig.phone import load_utterance
from gateway.rig.simulator.speech import speech_dir

ROOT = Path(__file__).resolve().parent.parent
TURNS = (("caller_book_table", "agent_greeting"), ("caller_seven_thirty", "agent_options"),
         ("caller_barge_in", "agent_moved"), ("caller_goodbye", "agent_goodbye"))
RAMP_PER_CALL_S = 0.05  # 20 new calls a second: a burst, but each still its own setup


def conversation(cycles: int = 2) -> tuple[list[Path], float]:
    """The caller's recordings, said in turn, and the share of the call the agent speaks."""
    speech = speech_dir()
    paths, caller_s, agent_s = [], 0.0, 0.0
    for _ in range(cycles):
        for caller, agent in TURNS:
            paths.append(speech / f"{caller}.wav")
            caller_s += load_utterance(speech / f"{caller}.wav").seconds
            with wave.open(str(speech / f"{agent}.wav")) as w:
                agent_s += w.getnframes() / w.getframerate()
    # Per turn: end of turn (500 ms) + response delay (300 ms) before the reply, the phone's
    # 600 ms beat after it.
    waits = len(paths) * (0.5 + 0.3 + 0.6)
    return paths, agent_s / (caller_s + agent_s + waits)


def tls_files(work: Path) -> tuple[Path, Path, Path]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ca_file, cert_file, key_file = work / "ca.pem", work / "cert.pem", work / "key.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    cert.private_key_pem.write_to_path(str(key_file))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    return ca_file, cert_file, key_file


def spawn(args: list[str], *, cpu: int | str, log: Path, env: dict[str, str] | None = None,
          cwd: Path | None = None) -> subprocess.Popen[bytes]:
    taskset = shutil.which("taskset")
    prefix = [taskset, "-c", str(cpu)] if taskset else []
    with log.open("wb") as out:
        return subprocess.Popen([*prefix, *args], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env or dict(os.environ), cwd=cwd)


def wait_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    import socket  # noqa: PLC0415

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited at startup: {log.read_text(errors='replace')[-1500:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)  # polling a child process that offers no readiness event
    raise RuntimeError(f"no listener on {port}: {log.read_text(errors='replace')[-1500:]}")


@contextmanager
def running(procs: list[subprocess.Popen[bytes]]) -> Iterator[None]:
    try:
        yield
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def spawn_simulator(work: Path, tls: tuple[Path, Path, Path], trace: Path, log: Path, *,
                    workers: int = 1) -> tuple[subprocess.Popen[bytes], int]:
    """The TLS simulator on CPU 1, writing ``trace``; its port (wait for it in ``running``)."""
    _, cert, key = tls
    port = free_port()
    scenario = work / "scenario.yaml"
    scenario.write_text("name: calls-per-core\nspeed: 1\n", encoding="utf-8")
    # More than one worker may use both cores: the simulator then competes with the target,
    # whose CPU figure is no longer its own (the table says so).
    proc = spawn([sys.executable, "-m", "gateway", "--log-level", "warning", "simulate-live",
                  "--port", str(port), "--tls-cert", str(cert), "--tls-key", str(key),
                  "--scenario", str(scenario), "--trace", str(trace),
                  "--workers", str(workers)], cpu=1 if workers == 1 else "0,1", log=log)
    return proc, port


def spawn_voicegw(port: int, *, sim_port: int, ca_file: Path, calls: int, log: Path,
                  database: Path, code: Path | None = None,
                  trace: Path | None = None) -> subprocess.Popen[bytes]:
    """``voicegw serve`` on CPU 0 against the simulator; from the checkout ``code`` if given,
    writing its timing trace to ``trace`` if given."""
    env = dict(os.environ, SSL_CERT_FILE=str(ca_file), VOICEGW_DATABASE=str(database))
    env.pop("TWILIO_AUTH_TOKEN", None)
    if code is not None:
        # `python -m` puts the working directory first on sys.path: run from the checkout so
        # its package is the one imported.
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(code), os.environ.get("PYTHONPATH")) if p)
    return spawn([sys.executable, "-m", "gateway", "--log-level", "warning", "serve",
                  "--port", str(port), "--live-url", f"wss://127.0.0.1:{sim_port}",
                  "--max-calls", str(calls + 10),
                  *(["--trace", str(trace)] if trace else [])], cpu=0, log=log, env=env, cwd=code)


def spawn_pipecat(port: int, *, sim_port: int, ca_file: Path,
                  log: Path) -> subprocess.Popen[bytes]:
    """Pipecat's Twilio bot on CPU 0, its venv made first if need be."""
    launch = _pipecat_launch()
    launch.ensure_venv()
    # uvloop, as our gateway runs by default: the same loop for both.
    proc: subprocess.Popen[bytes] = launch.start_bot(
        port, f"https://127.0.0.1:{sim_port}", ca_file, cpu=0, log=log, uvloop=True)
    return proc


def start_target(name: str, *, sim_port: int, ca_file: Path, calls: int,
                 work: Path, trace: Path | None = None) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    log = work / f"{name}-{calls}.log"
    if name == "voicegw":
        proc = spawn_voicegw(port, sim_port=sim_port, ca_file=ca_file, calls=calls, log=log,
                             database=work / f"calls-{calls}.db", trace=trace)
    elif name == "pipecat":
        proc = spawn_pipecat(port, sim_port=sim_port, ca_file=ca_file, log=log)
    else:
        raise SystemExit(f"unknown target {name!r}")
    wait_port(port, proc, log)
    return proc, port


@functools.cache  # one module object for the bot and the resampler measurement
def _pipecat_launch() -> Any:
    # By path: a package named "pipecat" on sys.path would shadow the real one.
    spec = importlib.util.spec_from_file_location("pipecat_launch",
                                                  ROOT / "benchmarks/pipecat/launch.py")
    if spec is None or spec.loader is None:
        raise SystemExit("benchmarks/pipecat/launch.py is missing")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def audio_received_s(sim_trace: Path, t0: float, t1: float) -> float:
    """Caller audio the simulator received between t0 and t1 (monotonic), all sessions."""
    sessions = read_sim(read_jsonl(sim_trace))
    return sum(s.received.total_at(t1) - s.received.total_at(t0) for s in sessions) / 1000


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process so far."""
    t = psutil.Process(pid).cpu_times()
    return float(t.user), float(t.system)


def sim_cpu_seconds(pid: int) -> float:
    """CPU seconds of the simulator so far, its workers included."""
    proc = psutil.Process(pid)
    return sum(sum(cpu_seconds(p.pid)) for p in (proc, *proc.children(recursive=True)))


def histogram_p(text: str, name: str, q: float) -> float | None:
    """Upper bound (ms) of the Prometheus bucket holding quantile ``q``: coarse, never low."""
    buckets = [(float(s.labels["le"]), s.value)
               for family in text_string_to_metric_families(text)
               if family.name == f"voicegw_{name}"
               for s in family.samples if s.name.endswith("_bucket")]
    if not buckets or buckets[-1][1] == 0:
        return None
    total = buckets[-1][1]
    for le, cum in buckets:
        if cum >= q * total:
            return le * 1000
    return None


async def fetch(url: str) -> str:
    import aiohttp  # noqa: PLC0415

    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return await r.text()


def run_one(target: str, calls: int, args: argparse.Namespace, work: Path,
            track: list[Path], tls: tuple[Path, Path, Path]) -> dict[str, Any]:
    ca_file = tls[0]
    sim_log = work / f"sim-{target}-{calls}.log"
    sim_trace = work / f"sim-{target}-{calls}.jsonl"
    sim, sim_port = spawn_simulator(work, tls, sim_trace, sim_log, workers=args.sim_workers)
    procs = [sim]
    with running(procs):
        wait_port(sim_port, sim, sim_log)
        # Our gateway can stamp its own writes (Pipecat cannot): paths timed to them.
        gw_trace = (work / f"gateway-{calls}.jsonl"
                    if args.gateway_trace and target == "voicegw" else None)
        proc, port = start_target(target, sim_port=sim_port, ca_file=ca_file, calls=calls,
                                  work=work, trace=gw_trace)
        procs.append(proc)
        report_file = work / f"report-{target}-{calls}.json"
        ramp = calls * RAMP_PER_CALL_S
        url = f"ws://127.0.0.1:{port}/media"
        wav_args = [a for p in track for a in ("--wav", str(p))]
        load = spawn([sys.executable, "-m", "gateway", "--log-level", "warning", "loadtest",
                      "--url", url, "--calls", str(calls), "--ramp", str(ramp),
                      "--count", str(calls), *wav_args, "--pid", str(proc.pid),
                      "--timeout", "300", "--barge-in-ms", "1500", "--json-out", str(report_file),
                      "--trace", str(work / f"phone-{target}-{calls}.jsonl"),
                      "--sim-trace", str(sim_trace),
                      *(["--gateway-trace", str(gw_trace)] if gw_trace else [])],
                     cpu=1, log=work / f"loadtest-{target}-{calls}.log")
        procs.append(load)
        # The window: every call up (ramp done, plus a margin for the slowest setups) and
        # none ended (a call lasts about a minute).
        time.sleep(ramp + 3)
        c0, s0, w0 = cpu_seconds(proc.pid), sim_cpu_seconds(sim.pid), time.monotonic()
        if args.profile:
            profile(proc.pid, args.window, work / f"profile-{target}-{calls}.txt")
        else:
            time.sleep(args.window)
        c1, s1, w1 = cpu_seconds(proc.pid), sim_cpu_seconds(sim.pid), time.monotonic()
        load.wait(400)
        # After the run: each call's barge-in comes with its last utterance.
        hist = asyncio.run(fetch(metrics_url(url))) if target == "voicegw" else ""
        report = json.loads(report_file.read_text())
    cpu_pct = (sum(c1) - sum(c0)) / (w1 - w0) * 100
    # The kernel's share (socket calls, loopback TCP) is out of reach of anything in Python.
    sys_pct = (c1[1] - c0[1]) / (w1 - w0) * 100
    # Calls as the model heard them: caller audio that reached the simulator per second of
    # the window. Equal to `calls` when every frame flows; lower when anything (the target,
    # or the load generator on a saturated core) held frames back, so CPU per call is never
    # flattered by frames that were not sent.
    live_calls = audio_received_s(sim_trace, w0, w1) / (w1 - w0)
    per_call = cpu_pct / live_calls if live_calls else None
    lat = report["latency_ms"]
    row = {
        "target": target, "calls": calls, "cpu_pct": round(cpu_pct, 1),
        "sys_pct": round(sys_pct, 1),
        "calls_streaming": round(live_calls, 1),
        "cpu_pct_per_call": None if per_call is None else round(per_call, 3),
        "calls_per_core": round(100 / per_call) if per_call else None,
        "sim_cpu_pct": round((s1 - s0) / (w1 - w0) * 100, 1),
        "loadgen_cpu_pct": report["resources"].get("loadgen", {}).get("cpu_mean_pct"),
        "response_p50_ms": lat["response"]["p50"], "response_p99_ms": lat["response"]["p99"],
        "barge_in_p50_ms": lat["barge_in"]["p50"], "barge_in_p99_ms": lat["barge_in"]["p99"],
        "errors": report["calls"]["failed"],
        "underruns": report["playback"]["underruns_total"],
        "frames_sent": report["frames"]["sent"],
        "frames_missing": report["frames"]["gateway_missing"],
    }
    if hist:
        row["inbound_forward_p99_ms"] = histogram_p(hist, "inbound_forward_latency_seconds",
                                                    0.99)
        row["interrupted_to_clear_p99_ms"] = histogram_p(hist, "barge_in_reaction_seconds",
                                                         0.99)
    added = report.get("added_latency")
    if added:
        for what in ("inbound", "reply", "barge_in"):
            row[f"added_{what}_p50_ms"] = added[f"{what}_ms"]["p50"]
            row[f"added_{what}_p99_ms"] = added[f"{what}_ms"]["p99"]
        row["added_matched"] = f"{added['matched']}/{added['phone_calls']}"
        row["simulator_late_p99_ms"] = added["simulator_late_ms"]["p99"]
    at_gw = report.get("added_at_gateway")
    if at_gw:
        for what in ("inbound", "reply", "barge_in"):
            row[f"at_gw_{what}_p99_ms"] = at_gw[f"{what}_ms"]["p99"]
    return row


COLUMNS = (("target", "target"), ("calls", "calls"), ("cpu %", "cpu_pct"),
           ("of it sys", "sys_pct"),
           ("streaming", "calls_streaming"), ("%/call", "cpu_pct_per_call"),
           ("calls/core", "calls_per_core"),
           ("sim %", "sim_cpu_pct"), ("load %", "loadgen_cpu_pct"),
           ("resp p50", "response_p50_ms"), ("resp p99", "response_p99_ms"),
           ("barge p99", "barge_in_p99_ms"), ("+in p99", "added_inbound_p99_ms"),
           ("+reply p99", "added_reply_p99_ms"), ("+barge p99", "added_barge_in_p99_ms"),
           ("sim late", "simulator_late_p99_ms"),
           ("gw +in p99", "at_gw_inbound_p99_ms"), ("gw +rep p99", "at_gw_reply_p99_ms"),
           ("gw +brg p99", "at_gw_barge_in_p99_ms"), ("errors", "errors"),
           ("underruns", "underruns"))


def profile(pid: int, seconds: float, out: Path) -> None:
    """Sample the target with py-spy for the window: native frames, main thread, collapsed.

    Sampling costs the target a little CPU, so a profiled run's figures are read apart from
    unprofiled ones.
    """
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
    subprocess.run([spy, "record", "--pid", str(pid), "--duration", str(int(seconds)),
                    "--rate", "250", "--native", "--format", "raw", "--output", str(out)],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(f"profile of pid {pid}: {out}", file=sys.stderr)


def print_table(rows: list[dict[str, Any]]) -> None:
    print("  ".join(f"{h:>10}" for h, _ in COLUMNS))
    for r in rows:
        print("  ".join(f"{r.get(k)!s:>10}" for _, k in COLUMNS))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--loads", default="50,100,200", help="concurrent calls, comma-separated")
    ap.add_argument("--targets", default="voicegw", help="voicegw, pipecat or both")
    ap.add_argument("--pipecat-loads", default="25,50", help="the loads Pipecat is run at "
                    "(it saturates its core at 50 calls; higher loads only fail)")
    ap.add_argument("--window", type=float, default=30.0, help="seconds of CPU measured")
    ap.add_argument("--json-out", type=Path)
    ap.add_argument("--sim-workers", type=int, default=1, help="simulator processes; more "
                    "than one runs on both cores, beside the target")
    ap.add_argument("--gateway-trace", action="store_true", help="have our gateway stamp "
                    "its own writes (serve --trace), and time each path to them as well: free "
                    "of the rig's late reads, at the cost of a line per frame in the gateway")
    ap.add_argument("--profile", action="store_true", help="sample the target with py-spy "
                    "during the window (collapsed stacks kept beside the reports)")
    ap.add_argument("--keep", type=Path, metavar="DIR", help="keep every run's load-test "
                    "report, traces and logs in DIR (default: a temporary directory)")
    args = ap.parse_args()
    targets = args.targets.split(",")
    pipecat_loads = {int(x) for x in args.pipecat_loads.split(",")}
    loads = sorted({int(x) for x in args.loads.split(",")}
                   | (pipecat_loads if "pipecat" in targets else set()))
    rows = []
    with tempfile.TemporaryDirectory(prefix="calls-per-core-") as tmp:
        work = Path(tmp) if args.keep is None else args.keep
        work.mkdir(parents=True, exist_ok=True)
        track, share = conversation()
        tls = tls_files(work)
        print(f"{len(track)} caller turns a call, the agent speaking {share:.0%} of the time; "
              "target on CPU 0, simulator and load on CPU 1")
        for calls in loads:
            for target in targets:
                if target == "pipecat" and calls not in pipecat_loads:
                    continue
                if target == "voicegw" and str(calls) not in args.loads.split(","):
                    continue
                row = run_one(target, calls, args, work, track, tls)
                rows.append(row)
                print(json.dumps(row), flush=True)
    print()
    print_table(rows)
    delays = resampler_delays("pipecat" in targets)
    print("\nresampler delay, ms (algorithmic; held back mean / max), 20 ms chunks:")
    for name, by_dir in delays.items():
        print(f"  {name:8}" + "".join(
            f"  {d}: {v['algorithmic_ms']:g}; {v['held_mean_ms']:g} / {v['held_max_ms']:g}"
            for d, v in by_dir.items()))
    if args.json_out:
        args.json_out.write_text(json.dumps({"runs": rows, "resampler_delay": delays},
                                            indent=2) + "\n")


def resampler_delays(pipecat: bool) -> dict[str, Any]:
    """Both resamplers under benchmarks/resampler_delay.py, Pipecat's in its own venv."""
    from resampler_delay import ours  # noqa: PLC0415 - a sibling script, not a package

    out: dict[str, Any] = {"voicegw": ours()}
    if pipecat:
        python = _pipecat_launch().ensure_venv()
        done = subprocess.run([str(python), str(ROOT / "benchmarks/pipecat/resampler_delay.py")],
                              capture_output=True, text=True, check=True)
        out["pipecat"] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


if __name__ == "__main__":
    main()
