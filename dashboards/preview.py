"""Render Grafana dashboards' queries against a Prometheus to PNGs, for a look without Grafana.

    python dashboards/preview.py --prometheus http://127.0.0.1:9090 --out-dir previews/

Reads the dashboards (default: both, Capacity and Service; `--dashboard` picks one or more),
runs every panel's PromQL as a range query over the last `--minutes`, and draws each panel where
Grafana's grid puts it: a stat as its value in words (with the dashboard's value mappings and "no
value" text, e.g. "not at this rate", "> 10× (ample)") over a sparkline, a time series against
clock time (HH:MM in the local zone), its unit named on the axis and its legend, a table of the
last and largest values, below or beside the plot as the dashboard places it, never over the
data. Needs matplotlib: install the optional extra, `pip install -e '.[preview]'`. Fetching and
shaping the data is plain code (tested in tests/unit/test_preview.py, which also renders both
dashboards from synthetic series to test-artifacts/); only `render` touches matplotlib.
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

from engine.domain import display

HERE = Path(__file__).resolve().parent
BOARDS = HERE / "grafana" / "dashboards"
DEFAULT_DASHBOARD = BOARDS / "capacity.json"
DEFAULT_DASHBOARDS = (DEFAULT_DASHBOARD, BOARDS / "service.json")


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class ValueText:
    """A Grafana value mapping: values in [low, high] are shown as `text`."""

    low: float
    high: float
    text: str


@dataclass(frozen=True)
class Panel:
    title: str
    unit: str
    kind: str  # "timeseries" or "stat"
    queries: tuple[Query, ...]
    bounds: tuple[float | None, float | None] = (None, None)  # the axis' min and max, if fixed
    mappings: tuple[ValueText, ...] = ()
    no_value: str = ""  # what a stat shows without data
    legend_placement: str = "bottom"  # "bottom" or "right", as in the dashboard
    position: tuple[int, int, int, int] = (0, 0, 24, 8)  # Grafana's gridPos: x, y, w, h


@dataclass
class Series:
    label: str
    times: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)


# A source of data: the series of one panel between two instants, one point per step.
Source = Callable[[Panel, float, float, float], list["Series"]]


def _mappings(defaults: dict[str, Any]) -> tuple[ValueText, ...]:
    found = []
    for mapping in defaults.get("mappings", []):
        options = mapping.get("options", {})
        if mapping.get("type") == "range":
            low, high = options.get("from"), options.get("to")
            found.append(
                ValueText(
                    -math.inf if low is None else float(low),
                    math.inf if high is None else float(high),
                    options["result"]["text"],
                )
            )
        elif mapping.get("type") == "value":
            for raw, result in options.items():
                found.append(ValueText(float(raw), float(raw), result["text"]))
    return tuple(found)


def _panel(item: dict[str, Any]) -> Panel | None:
    targets = item.get("targets", [])
    queries = tuple(Query(t["expr"], t.get("legendFormat", "")) for t in targets if "expr" in t)
    if not queries:
        return None
    defaults = item.get("fieldConfig", {}).get("defaults", {})
    grid = item.get("gridPos", {})
    return Panel(
        item.get("title", ""),
        defaults.get("unit", ""),
        item.get("type", ""),
        queries,
        (defaults.get("min"), defaults.get("max")),
        _mappings(defaults),
        defaults.get("noValue", ""),
        item.get("options", {}).get("legend", {}).get("placement", "bottom"),
        (grid.get("x", 0), grid.get("y", 0), grid.get("w", 24), grid.get("h", 8)),
    )


def panels(dashboard: dict[str, Any]) -> list[Panel]:
    """The dashboard's panels with queries, top to bottom and left to right as Grafana lays them."""
    items = sorted(
        dashboard.get("panels", []),
        key=lambda p: (p.get("gridPos", {}).get("y", 0), p.get("gridPos", {}).get("x", 0)),
    )
    return [panel for panel in map(_panel, items) if panel is not None]


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


# -- units -------------------------------------------------------------------------------------

_SCALES = {"percentunit": (100.0, "%"), "ops": (1.0, "/s"), "reqps": (1.0, "req/s")}
_WORDS = {"s": "s", "bytes": "B", "short": "", "none": ""}
_TIGHT = {"%", "×", "", "/s"}  # suffixes written without a space


def scale(unit: str) -> tuple[float, str]:
    """Multiplier and suffix for a Grafana unit ("count:rows" is a count of rows)."""
    if unit in _SCALES:
        return _SCALES[unit]
    for prefix in ("suffix:", "count:"):
        if unit.startswith(prefix):
            return 1.0, unit.removeprefix(prefix)
    return 1.0, _WORDS.get(unit, unit)


def _number(value: float) -> str:
    return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def format_value(value: float, unit: str) -> str:
    """One value as Grafana would print it, in words for durations: "2 h 15 min", "25%",
    "1,234 entries", "98.5 entries/s", "512 MiB"."""
    if unit == "s":
        if value == 0:
            return "0 s"
        if abs(value) < 1:
            return f"{_number(value * 1000)} ms"
        return display.duration(value)
    if unit == "bytes":
        for size, name in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
            if abs(value) >= size:
                return f"{_number(value / size)} {name}"
        return f"{_number(value)} B"
    factor, suffix = scale(unit)
    text = _number(value * factor)
    return f"{text}{suffix}" if suffix in _TIGHT else f"{text} {suffix}"


def mapped(panel: Panel, value: float) -> str:
    """The value as the panel shows it: a value mapping's text where one applies."""
    for mapping in panel.mappings:
        if mapping.low <= value <= mapping.high:
            return mapping.text
    return format_value(value, panel.unit)


def latest(series: list[Series], unit: str) -> str:
    """The newest value of the panel's first series with data, formatted for its title."""
    first = next((s for s in series if s.values), None)
    if first is None:
        return "no data"
    return format_value(first.values[-1], unit)


def heading(panel: Panel, series: list[Series]) -> str:
    """The chart's title: a stat panel's or a single series' latest value, as Grafana shows it."""
    first = next((s for s in series if s.values), None)
    if panel.kind == "stat" or len(series) == 1:
        shown = mapped(panel, first.values[-1]) if first else (panel.no_value or "no data")
        return f"{panel.title}: {shown}"
    return panel.title if first else f"{panel.title}: no data"


def axis_scale(unit: str, values: Sequence[float]) -> tuple[float, str]:
    """Multiplier and the axis' unit name for the values drawn: seconds become minutes or hours
    when they are large, bytes MiB or GiB; a count is named by what it counts."""
    top = max((abs(v) for v in values), default=0.0)
    if unit == "s":
        for threshold, size, name in (
            (7200, 3600, "hours"),
            (120, 60, "minutes"),
            (1, 1, "seconds"),
        ):
            if top >= threshold:
                return 1 / size, name
        return 1000.0, "milliseconds"
    if unit == "bytes":
        return (2**-30, "GiB") if top >= 2**30 else (2**-20, "MiB")
    factor, suffix = scale(unit)
    names = {"%": "%", "×": "× (capped at 10)", "req/s": "requests/s", "/s": "per second"}
    return factor, names.get(suffix, suffix)


# -- layout (pure: inches on the figure) ---------------------------------------------------------

WIDTH_INCHES = 22.0  # Grafana's 24 columns
ROW_INCHES = 0.5  # one Grafana grid row
HEADER_INCHES = 0.6  # the figure's title
PAD, TITLE, YAXIS, XAXIS = 0.12, 0.32, 0.8, 0.32  # inside a cell: gap, title, tick labels
LINE_INCHES = 0.14  # one legend row at 7 pt
NAME_CHARS = 30  # legend names are cut beyond this


@dataclass(frozen=True)
class Box:
    """A rectangle in inches from the figure's top-left corner."""

    left: float
    top: float
    width: float
    height: float


def figure_inches(charts: Sequence[Panel]) -> tuple[float, float]:
    rows = max((p.position[1] + p.position[3] for p in charts), default=8)
    return WIDTH_INCHES, HEADER_INCHES + rows * ROW_INCHES


def cell(panel: Panel) -> Box:
    """The panel's place on Grafana's grid, less a small gap all round."""
    x, y, w, h = panel.position
    column = WIDTH_INCHES / 24
    return Box(
        x * column + PAD,
        HEADER_INCHES + y * ROW_INCHES + PAD,
        w * column - 2 * PAD,
        h * ROW_INCHES - 2 * PAD,
    )


def split(panel: Panel, rows: int) -> tuple[Box, Box | None]:
    """The plot's box and the legend's (None without one), side by side or one above the other
    as the dashboard places the legend; the legend never overlaps the plot. A bottom legend
    that would take more than half the cell goes to the right."""
    box = cell(panel)
    if rows == 0:
        return Box(
            box.left + YAXIS, box.top + TITLE, box.width - YAXIS, box.height - TITLE - XAXIS
        ), None
    needed = (rows + 1) * LINE_INCHES + 0.1
    if panel.legend_placement == "right" or needed > box.height / 2:
        side = min(0.45 * box.width, 4.2)
        plot = Box(
            box.left + YAXIS,
            box.top + TITLE,
            box.width - YAXIS - side - 0.1,
            box.height - TITLE - XAXIS,
        )
        return plot, Box(box.left + box.width - side, box.top + TITLE, side, box.height - TITLE)
    plot_height = box.height - TITLE - XAXIS - needed
    plot = Box(box.left + YAXIS, box.top + TITLE, box.width - YAXIS, plot_height)
    legend_box = Box(
        box.left + YAXIS, box.top + TITLE + plot_height + XAXIS, box.width - YAXIS, needed
    )
    return plot, legend_box


def bare(value: float, unit: str) -> str:
    """A value for a legend's table, the unit left to the axis label: "2,478", "54%", "45 s"."""
    if unit.startswith("count:") or unit in ("reqps", "ops", "short", "none"):
        return _number(value * scale(unit)[0])
    return format_value(value, unit)


def legend_rows(series: Sequence[Series], unit: str) -> tuple[str, list[str]]:
    """A legend as a table: its header and one row per series (name, last value, largest)."""
    names = [
        s.label if len(s.label) <= NAME_CHARS else s.label[: NAME_CHARS - 1] + "…" for s in series
    ]
    cells = [
        (bare(s.values[-1], unit), bare(max(s.values), unit)) if s.values else ("no data", "")
        for s in series
    ]
    name_width = max([len(n) for n in names] + [4])
    width = max([len(c) for pair in cells for c in pair] + [4])
    header = f"{'':<{name_width}}  {'last':>{width}}  {'max':>{width}}"
    rows = [
        f"{name:<{name_width}}  {last:>{width}}  {top:>{width}}"
        for name, (last, top) in zip(names, cells, strict=True)
    ]
    return header, rows


def fitted(rows: list[str], room: Box) -> list[str]:
    """The legend's rows that fit in `room` below the header; the rest counted in a last row,
    so a long legend never runs over the next panel."""
    capacity = max(1, int((room.height - 0.1) / LINE_INCHES) - 1)
    if len(rows) <= capacity:
        return rows
    return [*rows[: capacity - 1], f"… and {len(rows) - capacity + 1} more"]


def clock_format(seconds: float) -> str:
    """The x axis' clock format: HH:MM, with seconds for a range of a few minutes."""
    return "%H:%M:%S" if seconds <= 600 else "%H:%M"


def value_text(panel: Panel, series: Sequence[Series]) -> str:
    first = next((s for s in series if s.values), None)
    return mapped(panel, first.values[-1]) if first else (panel.no_value or "no data")


# -- drawing (matplotlib) ------------------------------------------------------------------------


def _axes(figure: Any, box: Box) -> Any:
    width, height = figure.get_size_inches()
    return figure.add_axes(
        (
            box.left / width,
            1 - (box.top + box.height) / height,
            box.width / width,
            box.height / height,
        )
    )


def _draw_stat(
    figure: Any, panel: Panel, series: list[Series], span: tuple[float, float] | None
) -> None:
    box = cell(panel)
    axis = _axes(figure, Box(box.left, box.top + TITLE, box.width, box.height - TITLE))
    axis.set_xticks([])
    axis.set_yticks([])
    for side in axis.spines.values():
        side.set_color("#cccccc")
    axis.set_title(panel.title, fontsize=9, loc="left")
    first = next((s for s in series if s.values), None)
    if first is not None:
        axis.fill_between(first.times, first.values, color="#9ecae1", alpha=0.35, linewidth=0)
        low, high = min(first.values), max(first.values)
        spread = high - low or abs(high) or 1.0
        axis.set_ylim(low - 0.05 * spread, high + 0.9 * spread)
        if span is not None:
            axis.set_xlim(*span)
        elif first.times[-1] > first.times[0]:
            axis.set_xlim(first.times[0], first.times[-1])
    text = value_text(panel, series)
    axis.text(
        0.5,
        0.6,
        text,
        ha="center",
        va="center",
        fontsize=15,
        weight="bold",
        transform=axis.transAxes,
    )


def _draw_chart(
    figure: Any,
    panel: Panel,
    series: list[Series],
    zone: tzinfo,
    span: tuple[float, float] | None,
) -> None:
    import matplotlib.dates as mdates
    import matplotlib.lines

    plot_box, legend_box = split(panel, len(series))
    axis = _axes(figure, plot_box)
    drawn = [v for s in series for v in s.values]
    factor, name = axis_scale(panel.unit, drawn or [b for b in panel.bounds if b is not None])
    lines = []
    for item in series:
        stamps = [datetime.fromtimestamp(t, zone) for t in item.times]
        # A series of a few points (a fresh Prometheus) is drawn with its points, so it shows.
        marker = "o" if len(stamps) < 4 else None
        (line,) = axis.plot(
            stamps, [v * factor for v in item.values], linewidth=1.2, marker=marker, markersize=3
        )
        lines.append(line)
    if span is not None:  # the whole range asked for, as Grafana shows it
        axis.set_xlim(*(datetime.fromtimestamp(t, zone) for t in span))
    low, high = panel.bounds
    if low is not None or high is not None:
        axis.set_ylim(
            bottom=None if low is None else low * factor,
            top=None if high is None else high * factor,
        )
    axis.set_title(heading(panel, series), fontsize=9, loc="left")
    axis.set_ylabel(name, fontsize=8)
    shown = span or (
        min((s.times[0] for s in series if s.times), default=0.0),
        max((s.times[-1] for s in series if s.times), default=3600.0),
    )
    axis.xaxis.set_major_formatter(mdates.DateFormatter(clock_format(shown[1] - shown[0]), tz=zone))
    axis.tick_params(labelsize=7)
    axis.grid(alpha=0.3)
    if not any(s.values for s in series):
        axis.text(0.5, 0.5, "no data", ha="center", va="center", transform=axis.transAxes)
    if legend_box is not None:
        header, rows = legend_rows(series, panel.unit)
        rows = fitted(rows, legend_box)
        blank = matplotlib.lines.Line2D([], [], alpha=0)
        # The header is a row with an invisible handle, so its columns line up with the rows'.
        handles = [blank, *lines[: len(rows)]]
        if len(rows) < len(series):
            handles[-1] = blank
        holder = _axes(figure, legend_box)
        holder.axis("off")
        mono = {"family": "monospace", "size": 7}
        holder.legend(
            handles,
            [header, *rows],
            loc="upper left",
            frameon=False,
            borderaxespad=0,
            prop=mono,
            alignment="left",
            handlelength=1.5,
            labelspacing=0.25,
        )


def render(
    charts: list[tuple[Panel, list[Series]]],
    out: Path,
    title: str,
    zone: tzinfo | None = None,
    span: tuple[float, float] | None = None,
) -> None:
    """Draw the charts into one PNG at `out`, laid out on Grafana's grid (needs matplotlib),
    over the time range `span` (default: the data's)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise SystemExit(
            "preview needs matplotlib: pip install -e '.[preview]' (or pip install matplotlib)"
        ) from exc
    zone = zone or _local_zone()
    figure = plt.figure(figsize=figure_inches([p for p, _ in charts]), dpi=100)
    for panel, series in charts:
        if panel.kind == "stat":
            _draw_stat(figure, panel, series, span)
        else:
            _draw_chart(figure, panel, series, zone, span)
    figure.suptitle(title, fontsize=13, y=1 - 0.2 / figure.get_size_inches()[1])
    figure.savefig(out)
    plt.close(figure)


def _local_zone() -> tzinfo:
    """This machine's time zone, as Grafana uses the browser's."""
    return datetime.now().astimezone().tzinfo or UTC


def window_title(dashboard: dict[str, Any], start: float, end: float, zone: tzinfo) -> str:
    """The figure's title: the dashboard and the clock-time range it shows."""
    first, last = datetime.fromtimestamp(start, zone), datetime.fromtimestamp(end, zone)
    offset = first.strftime("%z")
    return (
        f"{dashboard.get('title', 'dashboard')}: {first:%Y-%m-%d %H:%M} to {last:%H:%M} "
        f"(UTC{offset[:3]}:{offset[3:]})"
    )


def preview(
    dashboard: dict[str, Any],
    source: Source,
    out: Path,
    *,
    start: float,
    end: float,
    step: float,
    zone: tzinfo | None = None,
) -> int:
    """Fetch every panel of `dashboard` from `source` and render it to `out`; the panel count."""
    zone = zone or _local_zone()
    charts = []
    for panel in panels(dashboard):
        try:
            charts.append((panel, source(panel, start, end, step)))
        except (OSError, ValueError) as exc:
            print(f"preview: {panel.title}: {exc}", file=sys.stderr)
            charts.append((panel, []))
    render(charts, out, window_title(dashboard, start, end, zone), zone, (start, end))
    return len(charts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090", help="Prometheus URL")
    parser.add_argument(
        "--dashboard",
        type=Path,
        action="append",
        help="dashboard JSON (repeatable; default: Capacity and Service)",
    )
    parser.add_argument("--minutes", type=float, default=60.0, help="time range, ending now")
    parser.add_argument("--step", type=float, default=None, help="seconds between points")
    parser.add_argument("--out", type=Path, default=None, help="PNG path (one dashboard only)")
    parser.add_argument("--out-dir", type=Path, default=Path("."), help="PNGs: <dashboard>.png")
    args = parser.parse_args(argv)
    boards = args.dashboard or list(DEFAULT_DASHBOARDS)
    if args.out is not None and len(boards) != 1:
        parser.error("--out names one PNG: give one --dashboard, or use --out-dir")
    end = time.time()
    start = end - args.minutes * 60
    step = args.step or max(1.0, args.minutes * 60 / 240)

    def source(panel: Panel, start: float, end: float, step: float) -> list[Series]:
        return fetch(args.prometheus, panel, start, end, step)

    for path in boards:
        out = args.out or args.out_dir / f"{path.stem}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        count = preview(json.loads(path.read_text()), source, out, start=start, end=end, step=step)
        print(f"wrote {out} ({count} panels)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
