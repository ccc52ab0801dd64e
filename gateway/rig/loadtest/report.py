"""The load test's report: figures from the run, SLO verdicts, and the table on stdout.

The JSON report is the source of truth; the table and the HTML are views of it.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, TextIO

from . import at_gateway
from .added import table_rows
from .monitor import usage
from .runner import LoadRun
from .stats import summarize

PROCESSES = ("gateway", "simulator", "loadgen")


@dataclass(frozen=True, slots=True)
class Slo:
    """A ceiling on one report figure, given as ``path`` into the report (dotted)."""

    name: str
    path: str
    limit: float


def build_report(run: LoadRun, *, source: str, target: str,
                 gateway_frames: float | None = None,
                 added: dict[str, Any] | None = None,
                 at_gateway: dict[str, Any] | None = None) -> dict[str, Any]:
    """``added``: :meth:`gateway.rig.loadtest.added.AddedLatency.as_dict`, when traced;
    ``at_gateway``: :func:`gateway.rig.loadtest.at_gateway.analyse_at_gateway`, when the gateway
    was traced too."""
    records = run.records
    failed = [r for r in records if not r.ok]
    response = [ms for r in records for ms in r.response_ms]
    barge_in = [ms for r in records for ms in r.barge_in_ms]
    connect = [r.connect_ms for r in records if r.connect_ms is not None]
    sent = sum(r.frames_sent for r in records)
    attempted = sum(r.frames_attempted for r in records)
    cfg = run.config
    report: dict[str, Any] = {
        "tool": "voicegw loadtest",
        "target": target,
        "config": {"url": cfg.url, "calls": cfg.calls, "ramp_s": cfg.ramp_s,
                   "duration_s": cfg.duration_s, "count": cfg.count, "speed": cfg.speed,
                   "timeout_s": cfg.timeout_s, "source": source,
                   "barge_in": cfg.plan.barge_in, "carrier": cfg.plan.carrier.value,
                   "signed": cfg.plan.secret is not None,
                   "line": None if cfg.plan.line is None else str(cfg.plan.line)},
        "wall_s": round(run.wall_s, 2),
        "calls": {"started": run.started, "completed": len(records),
                  "ok": len(records) - len(failed), "failed": len(failed),
                  "error_rate": round(len(failed) / len(records), 4) if records else None,
                  "peak_concurrency": max((s.active_calls for s in run.samples), default=0)},
        "errors": dict(Counter(r.error for r in failed if r.error)),
        # Call time (20 ms ticks of the phone's clock), so the same whatever --speed.
        "latency_ms": {"connect": summarize(connect).as_dict(),
                       "response": summarize(response).as_dict(),
                       "barge_in": summarize(barge_in).as_dict()},
        "playback": {"underruns_total": sum(r.underruns for r in records),
                     "calls_with_underruns": sum(1 for r in records if r.underruns),
                     "underruns_per_call": summarize(r.underruns for r in records).as_dict()},
        "frames": {"sent": sent, "attempted": attempted,
                   "dtmf_sent": sum(r.dtmf_sent for r in records),
                   "written_ratio": round(sent / attempted, 6) if attempted else None,
                   "gateway_received": None if gateway_frames is None else int(gateway_frames),
                   "gateway_missing": None if gateway_frames is None
                   else int(sent - gateway_frames)},
        "resources": {name: usage(run.samples, name).as_dict() for name in PROCESSES
                      if any(name in s.cpu for s in run.samples)},
        "timeline": [{"t": round(s.t, 2), "active_calls": s.active_calls,
                      "cpu_pct": {k: round(v, 1) for k, v in s.cpu.items()},
                      "rss_mb": {k: round(v, 1) for k, v in s.rss_mb.items()}}
                     for s in run.samples],
        "calls_detail": [r.as_dict() for r in records],
    }
    if added is not None:
        report["added_latency"] = added
    if at_gateway is not None:
        report["added_at_gateway"] = at_gateway
    report["warnings"] = warnings(report)
    return report


def warnings(report: dict[str, Any]) -> list[str]:
    out = []
    for name, res in report["resources"].items():
        if res.get("saturated"):
            who = {"simulator": "the simulator is the bottleneck, not the gateway",
                   "loadgen": "the load generator is the bottleneck: use fewer calls per "
                              "process or several machines",
                   "gateway": "the gateway is saturated"}[name]
            out.append(f"{name} CPU p95 above 80% of a core: {who}")
    missing = report["frames"]["gateway_missing"]
    if missing:
        out.append(f"the gateway counted {missing} fewer caller frames than were sent")
    out.extend(report.get("added_latency", {}).get("warnings", []))
    out.extend(report.get("added_at_gateway", {}).get("warnings", []))
    return out


def lookup(report: dict[str, Any], path: str) -> float | None:
    value: Any = report
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return float(value) if isinstance(value, int | float) else None


def check_slos(report: dict[str, Any], slos: list[Slo]) -> dict[str, Any]:
    checks = []
    for slo in slos:
        value = lookup(report, slo.path)
        # A figure that could not be measured cannot be within its objective.
        ok = value is not None and not math.isnan(value) and value <= slo.limit
        checks.append({"name": slo.name, "limit": slo.limit, "value": value, "ok": ok})
    completed_any = bool(report["calls"]["ok"])
    return {"checks": checks, "passed": completed_any and all(c["ok"] for c in checks),
            "no_call_succeeded": not completed_any}


def _ms(summary: dict[str, Any]) -> str:
    if not summary["count"]:
        return "-"
    return (f"{summary['p50']:.0f} / {summary['p95']:.0f} / {summary['p99']:.0f} / "
            f"{summary['max']:.0f}  (n={summary['count']})")


def print_table(report: dict[str, Any], out: TextIO) -> None:
    c, f, lat, pb = report["calls"], report["frames"], report["latency_ms"], report["playback"]
    cfg = report["config"]
    rows: list[tuple[str, str]] = [
        ("target", f"{report['target']}  {cfg['url']}"),
        ("load", f"{cfg['calls']} concurrent, ramp {cfg['ramp_s']:g} s, speed {cfg['speed']:g}x,"
                 f" {report['wall_s']:.1f} s wall"),
        ("calls", f"{c['completed']} done, {c['ok']} ok, {c['failed']} failed "
                  f"(error rate {100 * (c['error_rate'] or 0):.2f}%), peak {c['peak_concurrency']}"
                  " up"),
        ("errors", ", ".join(f"{k} {v}" for k, v in sorted(report["errors"].items())) or "none"),
        ("connect ms  p50/p95/p99/max", _ms(lat["connect"])),
        ("response ms p50/p95/p99/max", _ms(lat["response"])),
        ("barge-in ms p50/p95/p99/max", _ms(lat["barge_in"])),
        *(table_rows(report["added_latency"]) if "added_latency" in report else []),
        *(at_gateway.table_rows(report["added_at_gateway"])
          if "added_at_gateway" in report else []),
        ("underruns", f"{pb['underruns_total']} in {pb['calls_with_underruns']} calls"),
        ("frames", f"{f['sent']} written of {f['attempted']} attempted" +
                   ("" if f["gateway_received"] is None
                    else f"; gateway received {f['gateway_received']}")),
    ]
    for name, res in report["resources"].items():
        if res["cpu_mean_pct"] is None:
            continue
        per_call = res["cpu_pct_per_call"]
        rows.append((f"{name} cpu/rss",
                     f"mean {res['cpu_mean_pct']:.1f}% max {res['cpu_max_pct']:.1f}% of a core"
                     + (f", {per_call:.2f}% per call" if per_call is not None else "")
                     + f"; rss max {res['rss_max_mb']:.0f} MB"))
    width = max(len(k) for k, _ in rows)
    print("", file=out)
    for key, value in rows:
        print(f"  {key:<{width}}  {value}", file=out)
    for w in report["warnings"]:
        print(f"  WARNING: {w}", file=out)
    slo = report.get("slo")
    if slo is not None:
        for check in slo["checks"]:
            value = "n/a" if check["value"] is None else f"{check['value']:g}"
            mark = "ok  " if check["ok"] else "FAIL"
            print(f"  SLO {mark} {check['name']}: {value} <= {check['limit']:g}", file=out)
        if slo["no_call_succeeded"]:
            print("  no call succeeded", file=out)
        verdict = "GREEN: all SLOs met" if slo["passed"] else "RED: SLO not met"
        print(f"\n  {verdict}", file=out)
