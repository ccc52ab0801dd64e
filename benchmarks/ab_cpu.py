"""Two revisions of the gateway side by side: CPU per call, both measured in the same window.

On this shared machine the same code reads up to about 20 % apart from one run to the next,
which hides any change smaller than that when revisions are run one after the other. Here
both gateways run at once, pinned to the same core (CPU 0), each carrying the same number of
calls from its own load tester, against one simulated Live server (TLS) on CPU 1. Whatever
the machine does during the window, it does to both; the ratio is what to read.

Each revision is checked out into a temporary git worktree (``--a``/``--b``: any commit;
``WORKTREE`` is the working tree as it stands, uncommitted changes included) and run from
there. ``PIPECAT`` instead runs Pipecat's Twilio bot (``benchmarks/pipecat/``), so the ratio
against Pipecat is measured the same way: run one after the other, that ratio moved between
2.9x and 4.0x in three runs of ``calls_per_core.py``. Rounds swap which one starts first.

Run: .venv/bin/python benchmarks/ab_cpu.py --a HEAD --b WORKTREE [--calls 25] [--rounds 3]
     .venv/bin/python benchmarks/ab_cpu.py --a PIPECAT --b HEAD --calls 25 --rounds 4
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from calls_per_core import (
    RAMP_PER_CALL_S,
    ROOT,
    audio_received_s,
    conversation,
    cpu_seconds,
    running,
    spawn,
    spawn_pipecat,
    spawn_simulator,
    spawn_voicegw,
    tls_files,
    wait_port,
)

from gateway.rig.loadtest.local import free_port

WORKTREE = "WORKTREE"
PIPECAT = "PIPECAT"


@contextmanager
def checkout(rev: str, work: Path) -> Iterator[Path | None]:
    """A directory holding ``rev``'s gateway package (None for Pipecat)."""
    if rev == PIPECAT:
        yield None
        return
    if rev == WORKTREE:
        yield ROOT
        return
    path = work / f"rev-{rev.replace('/', '_')}"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--force",
                    str(path), rev], check=True, capture_output=True)
    try:
        if (path / "setup.py").exists():
            # The revision's compiled resampler kernel, built where it runs from; without
            # it the revision would be measured on its slower numpy fallback.
            subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
                           cwd=path, check=True, capture_output=True)
        yield path
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)],
                       check=False, capture_output=True)


def start_gateway(code: Path | None, name: str, *, sim_port: int, ca_file: Path, calls: int,
                  work: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    log = work / f"gateway-{name}.log"
    if code is None:
        proc = spawn_pipecat(port, sim_port=sim_port, ca_file=ca_file, log=log)
    else:
        proc = spawn_voicegw(port, sim_port=sim_port, ca_file=ca_file, calls=calls, log=log,
                             database=work / f"calls-{name}.db", code=code)
    wait_port(port, proc, log)
    return proc, port


def one_round(order: list[tuple[str, Path | None]], args: argparse.Namespace, work: Path,
              track: list[Path], tls: tuple[Path, Path, Path]) -> dict[str, float]:
    ca_file = tls[0]
    sim_trace, sim_log = work / "sim.jsonl", work / "sim.log"
    sim, sim_port = spawn_simulator(work, tls, sim_trace, sim_log)
    procs = [sim]
    per_call: dict[str, float] = {}
    with running(procs):
        wait_port(sim_port, sim, sim_log)
        gateways = {}
        for name, code in order:
            proc, port = start_gateway(code, name, sim_port=sim_port, ca_file=ca_file,
                                       calls=args.calls, work=work)
            procs.append(proc)
            gateways[name] = proc
            wav_args = [a for p in track for a in ("--wav", str(p))]
            ramp = args.calls * RAMP_PER_CALL_S
            load = spawn([sys.executable, "-m", "gateway", "--log-level", "warning", "loadtest",
                          "--url", f"ws://127.0.0.1:{port}/media", "--calls", str(args.calls),
                          "--ramp", str(ramp), "--count", str(args.calls), *wav_args,
                          "--timeout", "300", "--barge-in-ms", "1500"],
                         cpu=1, log=work / f"loadtest-{name}.log")
            procs.append(load)
        time.sleep(2 * args.calls * RAMP_PER_CALL_S + 3)  # both ramps done, with a margin
        c0 = {n: sum(cpu_seconds(p.pid)) for n, p in gateways.items()}
        w0 = time.monotonic()
        time.sleep(args.window)
        c1 = {n: sum(cpu_seconds(p.pid)) for n, p in gateways.items()}
        w1 = time.monotonic()
    # Both gateways' calls reach the one simulator: each streams `calls` when nothing holds
    # frames back, and the check below says when something did.
    streaming = audio_received_s(sim_trace, w0, w1) / (w1 - w0)
    if streaming < 2 * args.calls * 0.98:
        print(f"  warning: only {streaming:.1f} of {2 * args.calls} calls streaming",
              file=sys.stderr)
    for name in gateways:
        per_call[name] = (c1[name] - c0[name]) / (w1 - w0) * 100 / args.calls
    return per_call


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--a", default="HEAD", help="a commit, WORKTREE or PIPECAT")
    ap.add_argument("--b", default=WORKTREE, help="a commit, WORKTREE or PIPECAT")
    ap.add_argument("--calls", type=int, default=25, help="calls on each gateway")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--window", type=float, default=30.0, help="seconds of CPU measured")
    args = ap.parse_args()
    track, speaking = conversation()
    with tempfile.TemporaryDirectory(prefix="ab-cpu-") as tmp:
        work = Path(tmp)
        tls = tls_files(work)
        with checkout(args.a, work) as code_a, checkout(args.b, work) as code_b:
            ratios = []
            print(f"{args.calls} calls on each gateway, model speaking {speaking:.0%} of the "
                  f"time; CPU % of a core per call:")
            for r in range(args.rounds):
                order = [("a", code_a), ("b", code_b)]
                if r % 2:
                    order.reverse()
                got = one_round(order, args, work, track, tls)
                ratios.append(got["b"] / got["a"])
                print(f"  round {r + 1}: a ({args.a}) {got['a']:.3f}  b ({args.b}) "
                      f"{got['b']:.3f}  b/a {ratios[-1]:.3f}", flush=True)
    mean = statistics.mean(ratios)
    print(f"b/a over {args.rounds} rounds: mean {mean:.3f}, "
          f"min {min(ratios):.3f}, max {max(ratios):.3f} (a/b {1 / mean:.2f}x)")


if __name__ == "__main__":
    main()
