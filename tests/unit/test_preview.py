"""Unit tests of dashboards/preview.py: reading the panels of the real dashboards (units, value
mappings, legend placement, grid positions), legends, range-query URLs, parsing Prometheus
answers, values in words, axis units, and the PNGs of both dashboards rendered from a synthetic
deadline rush to test-artifacts/preview/ (matplotlib comes with the test extra), to look at."""

from __future__ import annotations

import importlib.util
import json
import math
import random
import re
import sys
import urllib.parse
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType

import pytest

from tests.prometheus_bin import DASHBOARDS, ROOT

ARTIFACTS = ROOT / "test-artifacts" / "preview"
VIETNAM = timezone(timedelta(hours=7))


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dashboards_preview", DASHBOARDS / "preview.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


preview = _load()


def _capacity() -> dict[str, object]:
    board: dict[str, object] = json.loads(preview.DEFAULT_DASHBOARD.read_text())
    return board


def test_the_panels_of_the_capacity_dashboard_come_in_grafana_order_with_units() -> None:
    found = preview.panels(_capacity())
    assert found[0].title == "Arrivals"  # top-left
    assert [p.title for p in found[:6]] == [
        "Arrivals",
        "Drain",
        "Backlog",
        "Time to shedding limit",
        "Headroom",
        "Expected wait (Little's law)",
    ]
    assert all(p.unit and p.queries for p in found)
    headroom = next(p for p in found if p.title == "Headroom" and p.kind == "timeseries")
    assert headroom.bounds == (0, 10)  # the axis Grafana shows, kept in the preview
    arrivals_vs_drain = next(p for p in found if p.title == "Arrivals vs drain")
    assert [q.expr for q in arrivals_vs_drain.queries][:2] == [
        "examreg:arrivals:rate1m",
        "examreg:drain:rate1m",
    ]


def test_legends_fill_grafana_templates_or_show_the_labels() -> None:
    assert preview.legend("shard {{shard}}", {"shard": "3"}) == "shard 3"
    assert preview.legend("{{ status }} {{route}}", {"status": "503", "route": "/x"}) == "503 /x"
    assert preview.legend("", {"b": "2", "a": "1"}) == "{a=1, b=2}"


def test_the_range_query_url_carries_the_expression_and_the_range() -> None:
    url = preview.query_url("http://127.0.0.1:9090/", 'sum(rate(x{a="b"}[5m]))', 100.0, 400.0, 15)
    base, query = url.split("?")
    assert base == "http://127.0.0.1:9090/api/v1/query_range"
    assert urllib.parse.parse_qs(query) == {
        "query": ['sum(rate(x{a="b"}[5m]))'],
        "start": ["100.0"],
        "end": ["400.0"],
        "step": ["15"],
    }


def test_a_matrix_answer_becomes_series_without_unplottable_points() -> None:
    body = {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [
                {
                    "metric": {"__name__": "x", "shard": "1"},
                    "values": [[100, "5"], [115, "NaN"], [130, "+Inf"], [145, "7.5"]],
                },
                {"metric": {"shard": "2"}, "values": []},
            ],
        },
    }
    series = preview.parse_matrix(body, "shard {{shard}}")
    assert [s.label for s in series] == ["shard 1", "shard 2"]
    assert series[0].times == [100.0, 145.0] and series[0].values == [5.0, 7.5]
    with pytest.raises(ValueError, match="parse error"):
        preview.parse_matrix({"status": "error", "error": "parse error"}, "")


def test_layout_scales_and_latest_values() -> None:
    assert preview.grid(19) == (7, 3)
    assert preview.grid(2) == (1, 2)
    assert preview.scale("percentunit") == (100.0, "%")
    assert preview.scale("suffix:×") == (1.0, "×")
    two = [preview.Series("a", [1, 2], [0.1, 0.25]), preview.Series("b", [1], [0.9])]
    assert preview.latest(two, "percentunit") == "25%"
    assert preview.latest([preview.Series("a", [1], [123456.0])], "short") == "123,456"
    assert preview.latest([], "s") == "no data"
    # A value in the title only where Grafana shows one: a stat, or a single series.
    stat = preview.Panel("Backlog", "short", "stat", (preview.Query("x", ""),))
    chart = preview.Panel("Shards", "short", "timeseries", (preview.Query("x", ""),))
    assert preview.heading(stat, two) == "Backlog: 0.25"
    assert preview.heading(chart, two) == "Shards"
    assert preview.heading(chart, two[:1]) == "Shards: 0.25"
    assert preview.heading(chart, []) == "Shards: no data"


def test_the_png_renders(tmp_path: Path) -> None:
    charts = [
        (panel, [preview.Series("x", [0.0, 60.0], [1.0, 2.0])])
        for panel in preview.panels(_capacity())
    ]
    out = tmp_path / "capacity.png"
    preview.render(charts, out, "test")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _panel(board: str, title: str) -> object:
    found = preview.panels(json.loads((preview.BOARDS / board).read_text()))
    return next(p for p in found if p.title == title)


def test_values_read_in_words_with_their_units() -> None:
    assert preview.format_value(8100, "s") == "2 h 15 min"
    assert preview.format_value(0.25, "percentunit") == "25%"
    assert preview.format_value(1234, "count:entries") == "1,234 entries"
    assert preview.format_value(98.47, "count:entries/s") == "98.5 entries/s"
    assert preview.format_value(512 * 2**20, "bytes") == "512 MiB"
    assert preview.format_value(1.2249, "suffix:×") == "1.22×"
    assert preview.format_value(12.5, "reqps") == "12.5 req/s"


def test_stats_show_the_dashboards_mappings_and_no_value_text() -> None:
    headroom = _panel("capacity.json", "Headroom")
    assert headroom.kind == "stat"
    one = [preview.Series("headroom", [0.0], [10.0])]
    assert preview.heading(headroom, one) == "Headroom: > 10× (ample)"
    idle = [preview.Series("headroom", [0.0], [11.0])]
    assert preview.heading(headroom, idle) == "Headroom: ample (nothing arrives)"
    tight = [preview.Series("headroom", [0.0], [1.15])]
    assert preview.heading(headroom, tight) == "Headroom: 1.15×"
    limit = _panel("capacity.json", "Time to shedding limit")
    assert preview.heading(limit, []) == "Time to shedding limit: not at this rate"
    assert preview.heading(limit, [preview.Series("x", [0.0], [8100.0])]).endswith(": 2 h 15 min")


def test_axes_name_their_unit_at_the_scale_of_the_data() -> None:
    assert preview.axis_scale("s", [0.02, 0.4]) == (1000.0, "milliseconds")
    assert preview.axis_scale("s", [3, 90]) == (1.0, "seconds")
    assert preview.axis_scale("s", [600, 3000]) == (1 / 60, "minutes")
    assert preview.axis_scale("s", [20_000]) == (1 / 3600, "hours")
    assert preview.axis_scale("count:entries/s", [5]) == (1.0, "entries/s")
    assert preview.axis_scale("percentunit", [0.5]) == (100.0, "%")
    assert preview.axis_scale("bytes", [3 * 2**30]) == (2**-30, "GiB")
    assert preview.axis_scale("reqps", [1]) == (1.0, "requests/s")


def test_the_title_gives_the_clock_time_range() -> None:
    start = datetime(2026, 6, 20, 8, 0, tzinfo=UTC).timestamp()
    title = preview.window_title({"title": "examreg / Capacity"}, start, start + 3600, VIETNAM)
    assert title == "examreg / Capacity: 2026-06-20 15:00 to 16:00 (UTC+07:00)"


def test_the_x_axis_reads_clock_time_with_seconds_only_for_a_few_minutes() -> None:
    assert preview.clock_format(3600) == "%H:%M"
    assert preview.clock_format(180) == "%H:%M:%S"


def test_panels_keep_their_grid_position_and_legend_placement() -> None:
    shards = _panel("capacity.json", "Backlog by shard")
    assert shards.position == (12, 4, 12, 8) and shards.legend_placement == "right"
    assert _panel("capacity.json", "Arrivals vs drain").legend_placement == "bottom"


def _inside(inner: object, outer: object) -> bool:
    return (
        inner.left >= outer.left - 1e-9
        and inner.top >= outer.top - 1e-9
        and inner.left + inner.width <= outer.left + outer.width + 1e-9
        and inner.top + inner.height <= outer.top + outer.height + 1e-9
    )


def _apart(a: object, b: object) -> bool:
    return (
        a.left + a.width <= b.left
        or b.left + b.width <= a.left
        or a.top + a.height <= b.top
        or b.top + b.height <= a.top
    )


@pytest.mark.parametrize("board", ["capacity.json", "service.json"])
def test_legends_sit_beside_or_below_the_plot_never_over_it(board: str) -> None:
    for panel in preview.panels(json.loads((preview.BOARDS / board).read_text())):
        if panel.kind != "timeseries":
            continue
        cell = preview.cell(panel)
        for rows in (1, 3, 9, 16):
            plot, legend = preview.split(panel, rows)
            assert legend is not None and plot.height > 1.0 and plot.width > 3.0, panel.title
            assert _inside(plot, cell) and _inside(legend, cell), (panel.title, rows)
            assert _apart(plot, legend), (panel.title, rows)
    # Cells do not overlap either: the figure follows Grafana's grid.
    cells = [
        preview.cell(p) for p in preview.panels(json.loads((preview.BOARDS / board).read_text()))
    ]
    assert all(_apart(a, b) for i, a in enumerate(cells) for b in cells[i + 1 :])


def test_a_legend_is_a_table_of_last_and_largest_values() -> None:
    series = [
        preview.Series("shard 0", [0, 1], [1200.0, 2478.0]),
        preview.Series("total", [0, 1], [9000.0, 18969.0]),
        preview.Series("empty"),
    ]
    header, rows = preview.legend_rows(series, "count:entries")
    assert header.split() == ["last", "max"]
    assert rows[0].split() == ["shard", "0", "2,478", "2,478"]
    assert rows[1].split() == ["total", "18,969", "18,969"]
    assert rows[2].split() == ["empty", "no", "data"]
    assert len({len(header), *map(len, rows[:2])}) == 1  # columns line up


def test_a_legend_longer_than_its_room_ends_with_a_count() -> None:
    room = preview.Box(0, 0, 4, 10 * preview.LINE_INCHES + 0.1)  # the header and 9 rows
    rows = [f"pending {i}" for i in range(30)]
    shown = preview.fitted(rows, room)
    assert len(shown) == 9 and shown[-1] == "… and 22 more"
    assert preview.fitted(rows[:9], room) == rows[:9]


# -- both dashboards rendered from a synthetic deadline rush -------------------------------------

LABELS = {
    "shard": [str(s) for s in range(8)],
    "reason": ["backlog", "redis_memory"],
    "status": ["429", "503"],
    "route": ["/api/v1/me/registration", "/api/v1/auth/login", "/api/v1/me"],
    "method": ["PUT", "POST", "GET"],
    "result": ["success", "failure", "throttled"],
    "outcome": ["committed", "split"],
    "kind": ["database"],
    "state": ["in_use", "idle"],
    "operation": ["verify", "hash"],
}


def _shape(expr: str, unit: str, t: float, k: int) -> float:
    """A plausible value at fraction t ∈ [0, 1] of an hour of rising load, for series k."""
    rush = 80 + 260 * t**2  # submissions/s, rising to the deadline
    known = [
        ("time_to_limit", 7000 - 5200 * t),
        ("headroom", min(10.0, 1500 / rush)),
        ("fill", 0.04 + 0.5 * t**3 + 0.01 * k),
        ("wait", max(0.0, 60 * (t - 0.45))),
        ("backlog", max(0.0, 35_000 * (t - 0.45)) / (8 if "shard" in expr else 1)),
        ("saturation", 0.1 + 0.6 * t),
        ("utilisation", 0.2 + 0.5 * t),
        ("redis_memory_fill", 0.15 + 0.4 * t),
        ("cpu_per_accept", 0.003),
        ("oldest_pending", max(0.5, 90 * (t - 0.45))),
        ("writers", 2 + (t > 0.6) * 2 if "writers" in expr else 2),
        ("api_workers", 2),
        ("db_pool_max", 20),
        ("db_pool_connections", 6 + 10 * t if k == 0 else 14 - 10 * t),
        ("dead_letters", 0 if k else (t > 0.7) * 3),
        ("errors_total", 0.2 * (t > 0.8)),
        ("arrivals", rush),
        ("drain", min(rush, 240)),
        ("drain_capacity", 240 + 120 * (t > 0.6)),
    ]
    for needle, value in known:
        if needle in expr:
            return value
    defaults = {
        "s": 0.04 * (1 + k) * (1 + 2 * t),
        "percentunit": 0.002 + 0.01 * t,
        "bytes": (150 + 450 * t) * 2**20,
        "reqps": rush / (1 + k),
        "suffix:×": 2.0,
    }
    return defaults.get(unit, (rush / (2 + k)) if unit.endswith("/s") else 40 * (1 + k))


def synthetic(panel: object, start: float, end: float, step: float) -> list[object]:
    """An hour of a deadline rush for every query of `panel`, one series per label value."""
    rng = random.Random(panel.title)
    found = []
    for index, query in enumerate(panel.queries):
        names = re.findall(r"\{\{\s*(\w+)\s*\}\}", query.legend)
        count = max((len(LABELS.get(n, ["x"])) for n in names), default=1)
        for k in range(count):
            labels = {n: LABELS.get(n, ["x"])[k % len(LABELS.get(n, ["x"]))] for n in names}
            series = preview.Series(preview.legend(query.legend, labels))
            phase, stamp = rng.uniform(0, 2 * math.pi), start
            while stamp <= end:
                t = (stamp - start) / (end - start)
                wobble = 1 + 0.03 * math.sin(phase + 25 * t) + 0.01 * rng.uniform(-1, 1)
                value = _shape(query.expr, panel.unit, t, k + index) * wobble
                if "clamp_max" in query.expr:
                    value = min(value, 10.0)
                series.times.append(stamp)
                series.values.append(value)
                stamp += step
            found.append(series)
    return found


@pytest.mark.parametrize("board", ["capacity.json", "service.json"])
def test_both_dashboards_render_to_test_artifacts(board: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    dashboard = json.loads((preview.BOARDS / board).read_text())
    end = datetime(2026, 6, 20, 10, 0, tzinfo=UTC).timestamp()  # 17:00 in Vietnam
    out = ARTIFACTS / f"preview-{board.removesuffix('.json')}.png"
    out.unlink(missing_ok=True)
    count = preview.preview(
        dashboard, synthetic, out, start=end - 3600, end=end, step=30, zone=VIETNAM
    )
    assert count == len(preview.panels(dashboard)) > 15
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width == 2200 and height > 1500


def test_the_command_draws_both_dashboards_by_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Nothing listens on port 1: every panel reads "no data", and both PNGs are still drawn.
    assert preview.main(["--prometheus", "http://127.0.0.1:1", "--out-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert (
        f"wrote {tmp_path / 'capacity.png'}" in out and f"wrote {tmp_path / 'service.png'}" in out
    )
    for name in ("capacity.png", "service.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(SystemExit):
        preview.main(["--out", str(tmp_path / "one.png")])  # two dashboards, one file
