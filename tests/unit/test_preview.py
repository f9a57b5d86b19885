"""Unit tests of dashboards/preview.py's pure parts: reading the panels of the real Capacity
dashboard, legends, range-query URLs, parsing Prometheus answers, layout and value formatting.
The PNG render needs matplotlib (the optional `preview` extra), which the tests do not install:
it is exercised only where matplotlib is present, and skipped with the reason otherwise."""

from __future__ import annotations

import importlib.util
import json
import sys
import urllib.parse
from pathlib import Path
from types import ModuleType

import pytest

from tests.prometheus_bin import DASHBOARDS


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
    assert headroom.bounds == (0, 5)  # the axis Grafana shows, kept in the preview
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
