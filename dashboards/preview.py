"""Render a Grafana dashboard's queries against a Prometheus to one PNG, for a look without Grafana.

    python dashboards/preview.py --prometheus http://127.0.0.1:9090 --out capacity.png

Reads the dashboard JSON (default: the Capacity dashboard), runs every panel's PromQL as a range
query over the last `--minutes`, and draws one small chart per panel, in the dashboard's order,
with the panel's unit on the axis and the latest value in the title. Needs matplotlib: install the
optional extra, `pip install -e '.[preview]'`. Fetching and shaping the data is plain code (tested
in tests/unit/test_preview.py); only `render` touches matplotlib.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_DASHBOARD = HERE / "grafana" / "dashboards" / "capacity.json"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    title: str
    unit: str
    kind: str  # "timeseries" or "stat"
    queries: tuple[Query, ...]
    bounds: tuple[float | None, float | None] = (None, None)  # the axis' min and max, if fixed


@dataclass
class Series:
    label: str
    times: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)


def panels(dashboard: dict[str, Any]) -> list[Panel]:
    """The dashboard's panels with queries, top to bottom and left to right as Grafana lays them."""
    found = []
    for item in sorted(
        dashboard.get("panels", []),
        key=lambda p: (p.get("gridPos", {}).get("y", 0), p.get("gridPos", {}).get("x", 0)),
    ):
        targets = item.get("targets", [])
        queries = tuple(Query(t["expr"], t.get("legendFormat", "")) for t in targets if "expr" in t)
        if queries:
            defaults = item.get("fieldConfig", {}).get("defaults", {})
            bounds = (defaults.get("min"), defaults.get("max"))
            kind = item.get("type", "")
            found.append(
                Panel(item.get("title", ""), defaults.get("unit", ""), kind, queries, bounds)
            )
    return found


def legend(template: str, labels: dict[str, str]) -> str:
    """Grafana's `{{label}}` legend templating; the label set itself when there is no template."""
    if template:
        return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template)
    return "{" + ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) + "}"


def query_url(base: str, expr: str, start: float, end: float, step: float) -> str:
    query = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    return f"{base.rstrip('/')}/api/v1/query_range?{query}"


def parse_matrix(body: dict[str, Any], template: str) -> list[Series]:
    """Series from a query_range answer (NaN and ±Inf samples are dropped: they cannot be drawn).

    Raises:
        ValueError: Prometheus answered with an error.
    """
    if body.get("status") != "success":
        raise ValueError(body.get("error", "Prometheus answered with an error"))
    result = []
    for item in body["data"]["result"]:
        labels = {k: v for k, v in item.get("metric", {}).items() if k != "__name__"}
        series = Series(legend(template, labels))
        for stamp, raw in item.get("values", []):
            value = float(raw)
            if math.isfinite(value):
                series.times.append(float(stamp))
                series.values.append(value)
        result.append(series)
    return result


def fetch(base: str, panel: Panel, start: float, end: float, step: float) -> list[Series]:
    """Every query of `panel` as range queries against the Prometheus at `base`."""
    series = []
    for query in panel.queries:
        url = query_url(base, query.expr, start, end, step)
        with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - the operator's URL
            series += parse_matrix(json.load(response), query.legend)
    return series


def grid(count: int, columns: int = 3) -> tuple[int, int]:
    """Rows and columns for `count` charts."""
    columns = max(1, min(columns, count))
    return max(1, math.ceil(count / columns)), columns


_SCALES = {"percentunit": (100.0, "%"), "ops": (1.0, "/s"), "reqps": (1.0, "req/s")}


def scale(unit: str) -> tuple[float, str]:
    """Multiplier and axis suffix for a Grafana unit."""
    if unit in _SCALES:
        return _SCALES[unit]
    if unit.startswith("suffix:"):
        return 1.0, unit.removeprefix("suffix:")
    return 1.0, {"s": "s", "bytes": "B", "short": "", "none": ""}.get(unit, unit)


def latest(series: list[Series], unit: str) -> str:
    """The newest value of the panel's first series with data, formatted for its title."""
    first = next((s for s in series if s.values), None)
    if first is None:
        return "no data"
    factor, suffix = scale(unit)
    value = first.values[-1] * factor
    return f"{value:,.3g}{suffix}" if abs(value) < 1000 else f"{value:,.0f}{suffix}"


def heading(panel: Panel, series: list[Series]) -> str:
    """The chart's title: a stat panel's or a single series' latest value, as Grafana shows it."""
    if panel.kind == "stat" or len(series) == 1:
        return f"{panel.title}: {latest(series, panel.unit)}"
    return panel.title if any(s.values for s in series) else f"{panel.title}: no data"


def render(charts: list[tuple[Panel, list[Series]]], out: Path, title: str) -> None:
    """Draw the charts into one PNG at `out` (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise SystemExit(
            "preview needs matplotlib: pip install -e '.[preview]' (or pip install matplotlib)"
        ) from exc
    rows, columns = grid(len(charts))
    figure, axes = plt.subplots(rows, columns, figsize=(6 * columns, 3.2 * rows), squeeze=False)
    for index, (panel, series) in enumerate(charts):
        axis = axes[index // columns][index % columns]
        factor, suffix = scale(panel.unit)
        start = min((s.times[0] for s in series if s.times), default=0.0)
        for item in series:
            minutes = [(t - start) / 60 for t in item.times]
            axis.plot(minutes, [v * factor for v in item.values], label=item.label, linewidth=1)
        low, high = panel.bounds
        if low is not None or high is not None:
            axis.set_ylim(
                bottom=None if low is None else low * factor,
                top=None if high is None else high * factor,
            )
        axis.set_title(heading(panel, series), fontsize=9)
        axis.set_xlabel("minutes", fontsize=8)
        axis.set_ylabel(suffix or panel.unit, fontsize=8)
        axis.tick_params(labelsize=7)
        if any(s.values for s in series):
            axis.legend(fontsize=6, loc="upper left")
        else:
            axis.text(0.5, 0.5, "no data", ha="center", va="center", transform=axis.transAxes)
    for index in range(len(charts), rows * columns):
        axes[index // columns][index % columns].axis("off")
    figure.suptitle(title)
    figure.tight_layout(rect=(0, 0, 1, 0.98))  # keep the suptitle clear of the first row
    figure.savefig(out, dpi=100)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090", help="Prometheus URL")
    parser.add_argument("--dashboard", type=Path, default=DEFAULT_DASHBOARD, help="dashboard JSON")
    parser.add_argument("--minutes", type=float, default=60.0, help="time range, ending now")
    parser.add_argument("--step", type=float, default=None, help="seconds between points")
    parser.add_argument("--out", type=Path, default=Path("capacity-preview.png"), help="PNG path")
    args = parser.parse_args(argv)
    dashboard = json.loads(args.dashboard.read_text())
    end = time.time()
    start = end - args.minutes * 60
    step = args.step or max(1.0, args.minutes * 60 / 240)
    charts = []
    for panel in panels(dashboard):
        try:
            charts.append((panel, fetch(args.prometheus, panel, start, end, step)))
        except (OSError, ValueError) as exc:
            print(f"preview: {panel.title}: {exc}", file=sys.stderr)
            charts.append((panel, []))
    render(charts, args.out, f"{dashboard.get('title', 'dashboard')} (last {args.minutes:g} min)")
    print(f"wrote {args.out} ({len(charts)} panels)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
