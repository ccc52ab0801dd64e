"""The HTML report: the summary table and matplotlib plots as inline base64 PNGs.

One self-contained file (mail it, attach it to CI) from the JSON report alone. matplotlib is
the ``loadtest`` extra, imported here only; ``Figure`` without pyplot needs no GUI backend
and keeps no global state between plots.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

from gateway.errors import ConfigError

from .report import print_table


def _figure(width: float, height: float) -> Any:
    try:
        from matplotlib.figure import Figure  # noqa: PLC0415 - optional extra
    except ImportError as exc:
        raise ConfigError("--html-out needs matplotlib: pip install "
                          "'voice-gateway[loadtest]'") from exc
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def require_matplotlib() -> None:
    _figure(1, 1)


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def latency_plot(report: dict[str, Any]) -> str:
    calls = report["calls_detail"]
    series = [
        ("response (end of speech -> reply heard)", "response",
         [ms for c in calls for ms in c["response_ms"]]),
        ("barge-in (talk-over -> reply silent)", "barge_in",
         [ms for c in calls for ms in c["barge_in_ms"]]),
        ("connect (WebSocket upgrade)", "connect",
         [c["connect_ms"] for c in calls if c["connect_ms"] is not None]),
    ]
    fig = _figure(11, 3.4)
    axes = fig.subplots(1, 3)
    for ax, (title, key, values) in zip(axes, series, strict=True):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("ms")
        if values:
            ax.hist(values, bins=min(40, max(5, len(values) // 3)), color="#3b75af")
            for q, style in (("p50", "-"), ("p95", "--"), ("p99", ":")):
                v = report["latency_ms"][key][q]
                if v is not None:
                    ax.axvline(v, color="#c44e52", linestyle=style, label=f"{q} {v:.0f}")
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    return _png(fig)


def timeline_plot(report: dict[str, Any]) -> str:
    timeline = report["timeline"]
    fig = _figure(11, 6)
    top, bottom = fig.subplots(2, 1, sharex=True)
    t = [s["t"] for s in timeline]
    top.step(t, [s["active_calls"] for s in timeline], where="post", color="black",
             label="concurrent calls")
    top.set_ylabel("concurrent calls")
    top.set_ylim(bottom=0, top=max([s["active_calls"] for s in timeline] + [1]) * 1.15)
    cpu_ax = top.twinx()
    for name, color in (("gateway", "#3b75af"), ("simulator", "#dd8452"),
                        ("loadgen", "#55a868")):
        points = [(s["t"], s["cpu_pct"][name]) for s in timeline if name in s["cpu_pct"]]
        if points:
            cpu_ax.plot(*zip(*points, strict=True), color=color, label=f"{name} CPU %")
    cpu_ax.set_ylabel("CPU % of one core")
    cpu_ax.set_ylim(bottom=0)
    lines = top.get_legend_handles_labels()[0] + cpu_ax.get_legend_handles_labels()[0]
    top.legend(lines, [str(x.get_label()) for x in lines], fontsize=8, loc="upper left")
    top.set_title("Concurrency and CPU over time", fontsize=10)
    calls = report["calls_detail"]
    ok = [(c["ended_s"], c["response_ms"][0]) for c in calls if c["response_ms"]]
    if ok:
        bottom.scatter(*zip(*ok, strict=True), s=8, color="#3b75af",
                       label="first response per call")
    bad = [c["ended_s"] for c in calls if not c["ok"]]
    if bad:
        bottom.scatter(bad, [0] * len(bad), marker="x", color="#c44e52", label="failed call")
    bottom.set_ylabel("response latency, ms")
    bottom.set_xlabel("seconds since start (call end)")
    bottom.legend(fontsize=8, loc="upper left")
    return _png(fig)


def render_html(report: dict[str, Any]) -> str:
    table = io.StringIO()
    print_table(report, table)
    plots = [("Latency distributions", latency_plot(report)),
             ("Concurrency, CPU and latency over time", timeline_plot(report))]
    body = "\n".join(f"<h2>{html.escape(title)}</h2>\n"
                     f'<img alt="{html.escape(title)}" src="data:image/png;base64,{png}">'
                     for title, png in plots)
    summary = {k: v for k, v in report.items() if k not in ("timeline", "calls_detail")}
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>voicegw load test</title>
<style>body{{font-family:sans-serif;margin:2em}}img{{max-width:100%}}
pre{{background:#f4f4f4;padding:1em}}</style></head>
<body><h1>voicegw load test</h1>
<pre>{html.escape(table.getvalue())}</pre>
{body}
<h2>Figures</h2>
<pre>{html.escape(json.dumps(summary, indent=2))}</pre>
</body></html>
"""


def write_html(report: dict[str, Any], path: Path) -> None:
    path.write_text(render_html(report), encoding="utf-8")
