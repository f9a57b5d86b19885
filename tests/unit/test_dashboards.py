"""The ops artefacts under dashboards/ hold together: promtool accepts the scrape config, the rules
and every dashboard query; the rules' unit tests pass and cover every alert both ways; every metric
they name exists in engine/metrics.py; every alert has its labels, annotations and runbook section;
the dashboards have stable uids, a unit on every panel and the provisioned datasource by uid.

promtool comes from Debian's `prometheus` package (tests/prometheus_bin.py installs it when it
can, and fails saying what to install when it cannot)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import Counter, Gauge, Histogram

from engine.adapters import metrics
from engine.adapters.streams import ShardStats
from tests import prometheus_bin
from tests.prometheus_bin import DASHBOARDS, ROOT, run_promtool

PROMETHEUS = DASHBOARDS / "prometheus"
RULES = PROMETHEUS / "rules.yml"
RULE_TESTS = PROMETHEUS / "rules.test.yml"
GRAFANA = DASHBOARDS / "grafana"
BOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
RUNBOOK = ROOT / "docs" / "runbook.md"

# Identifiers in PromQL: raw metrics (examreg_…) and recorded series (level:metric:operation).
RAW_NAME = re.compile(r"(?<![\w:])(examreg_[a-z0-9_]+)(?![\w:])")
RECORDED_NAME = re.compile(r"(?<![\w:])((?:examreg|shard|route_status):[a-z0-9_:]+)")


def _board(path: Path) -> dict[str, Any]:
    board: dict[str, Any] = json.loads(path.read_text())
    return board


def _dashboard_exprs() -> list[tuple[str, str, str]]:
    """(dashboard file, panel title, expr) for every query of every dashboard."""
    return [
        (path.name, panel["title"], target["expr"])
        for path in BOARDS
        for panel in _board(path)["panels"]
        for target in panel.get("targets", [])
    ]


def _alerts() -> list[str]:
    """The text of each alert rule in rules.yml (from its `- alert:` line to the next rule)."""
    text = RULES.read_text()
    return re.findall(r"^ *- alert: .*?(?=^ *- (?:alert|record):|\Z)", text, re.M | re.S)


def _alert_names() -> set[str]:
    return set(re.findall(r"^ *- alert: (\w+)", RULES.read_text(), re.M))


def _recorded() -> set[str]:
    return set(re.findall(r"^ *- record: (\S+)", RULES.read_text(), re.M))


def _exposed_names() -> set[str]:
    """Every sample name examreg can expose: the registered metrics and the scrape-time gauges."""
    names = set()
    for value in vars(metrics).values():
        if isinstance(value, (Counter, Gauge, Histogram)):
            for family in value.describe():
                if family.type == "counter":
                    names.add(family.name + "_total")
                elif family.type == "histogram":
                    names |= {family.name + s for s in ("_bucket", "_sum", "_count")}
                else:
                    names.add(family.name)
    collector = metrics.QueueCollector(
        [ShardStats(0, 1, 1, 0, 0.0, 0)],
        (1, 2),
        backlog_limit=10,
        writers=1,
        reconcile={"counts": {"missing": 0}, "at": "2026-12-01T10:00:00Z", "ok": True},
    )
    names |= {sample.name for family in collector.collect() for sample in family.samples}
    return names


def test_the_scrape_config_and_the_rules_it_loads_are_valid() -> None:
    result = run_promtool("check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout  # check config also checked rules.yml


def test_the_rules_are_valid() -> None:
    result = run_promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_rule_unit_tests_pass() -> None:
    result = run_promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_rejects_a_broken_expression(tmp_path: Path) -> None:
    # The dashboard check below is only worth something if promtool really parses expressions.
    broken = tmp_path / "broken.yml"
    broken.write_text(
        json.dumps(
            {"groups": [{"name": "x", "rules": [{"record": "a:b", "expr": "sum(rate(x[5m])"}]}]}
        )
    )
    assert run_promtool("check", "rules", str(broken)).returncode != 0


def test_every_dashboard_expression_parses(tmp_path: Path) -> None:
    exprs = _dashboard_exprs()
    assert len(exprs) > 20
    rules = [
        {"record": f"dashboard:check_{i}:expr", "expr": e} for i, (_, _, e) in enumerate(exprs)
    ]
    # JSON is YAML, so the expressions go to promtool as recording rules without a YAML library.
    path = tmp_path / "dashboard-exprs.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboard-exprs", "rules": rules}]}))
    result = run_promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(exprs)} rules found" in result.stdout


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    tests = RULE_TESTS.read_text()
    quiet = set(re.findall(r"alertname: (\w+)\n\s+exp_alerts: \[\]", tests))
    firing = set(re.findall(r"alertname: (\w+)\n\s+exp_alerts:\n\s+- exp_labels:", tests))
    alerts = _alert_names()
    assert len(alerts) >= 10
    assert alerts - quiet == set(), "alerts never shown quiet on a healthy series"
    assert alerts - firing == set(), "alerts never shown firing"


def _runbook_base() -> str:
    """The external label `runbook_base` of the committed prometheus.yml."""
    found = re.search(
        r"^\s+runbook_base: (\S+)$", (PROMETHEUS / "prometheus.yml").read_text(), re.M
    )
    assert found, "prometheus.yml sets no external label runbook_base"
    return found[1]


def test_every_alert_carries_severity_summary_description_and_a_runbook_section() -> None:
    headings = re.findall(r"^## (.+)$", RUNBOOK.read_text(), re.M)
    # GitHub's anchors: lower case, spaces to dashes, punctuation dropped.
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in headings}
    base = _runbook_base()
    assert re.fullmatch(r"https://[^\s#]+", base), "runbook_base must be an absolute URL"
    for alert in _alerts():
        name = re.search(r"- alert: (\w+)", alert)
        assert name
        assert re.search(r"^\s+severity: (warning|critical)$", alert, re.M), name[1]
        assert re.search(r"^\s+summary: \S", alert, re.M), name[1]
        assert re.search(r"^\s+description: \S", alert, re.M), name[1]
        # Absolute: the external label runbook_base, or the same default when it is not set.
        runbook = re.search(
            r"^\s+runbook_url: '\{\{ or \$externalLabels\.runbook_base \"(\S+)\" \}\}#(\S+)'$",
            alert,
            re.M,
        )
        assert runbook, name[1]
        assert runbook[1] == base, name[1]
        assert runbook[2] == name[1].lower() and runbook[2] in anchors, name[1]


def test_the_rule_tests_expect_absolute_runbook_urls() -> None:
    # promtool compares the rendered annotations exactly: these are the URLs an operator clicks.
    expected = re.findall(r"^\s+runbook_url: '(\S+)'$", RULE_TESTS.read_text(), re.M)
    assert len(expected) >= len(_alert_names())
    for url in expected:
        assert url.startswith(_runbook_base() + "#"), url
    assert "docs/runbook.md#" not in RULES.read_text().replace(_runbook_base(), "")


def test_every_metric_a_rule_a_test_or_a_dashboard_names_exists() -> None:
    exposed = _exposed_names()
    texts = {
        "rules.yml": RULES.read_text(),
        "rules.test.yml": RULE_TESTS.read_text(),
        **{
            path.name: "\n".join(e for f, _, e in _dashboard_exprs() if f == path.name)
            for path in BOARDS
        },
    }
    assert len(set(RAW_NAME.findall(texts["rules.yml"]))) > 15  # the scan finds names at all
    assert len(set(RECORDED_NAME.findall(texts["capacity.json"]))) > 10
    for source, text in texts.items():
        unknown = set(RAW_NAME.findall(text)) - exposed
        assert unknown == set(), f"{source} names metrics engine/metrics.py does not define"
        unrecorded = set(RECORDED_NAME.findall(text)) - _recorded()
        assert unrecorded == set(), f"{source} names series no rule records"


def test_the_metric_check_catches_a_misspelt_name() -> None:
    assert "examreg_queue_lag" in _exposed_names()
    assert "examreg_writer_rows_persisted_total" in _exposed_names()
    assert "examreg_queue_lagg" not in _exposed_names()


@pytest.mark.parametrize("path", BOARDS, ids=[p.name for p in BOARDS])
def test_dashboards_have_a_stable_uid_a_unit_on_every_panel_and_the_datasource_by_uid(
    path: Path,
) -> None:
    provisioned = re.search(
        r"^\s+uid: (\S+)$",
        (GRAFANA / "provisioning" / "datasources" / "examreg.yml").read_text(),
        re.M,
    )
    assert provisioned
    board = _board(path)
    assert board["uid"] == f"examreg-{path.stem}"
    assert board["panels"]
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert panel["fieldConfig"]["defaults"].get("unit"), panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": provisioned[1]}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == provisioned[1], panel["title"]
            assert "$" not in target["expr"], "no Grafana variables: preview.py runs them verbatim"


def test_the_capacity_dashboard_shows_what_an_operator_watches() -> None:
    exprs = "\n".join(e for f, _, e in _dashboard_exprs() if f == "capacity.json")
    for needed in (
        "examreg:arrivals:rate1m",
        "examreg:drain:rate1m",
        "examreg:backlog:entries",
        "examreg:time_to_limit:seconds",
        "examreg:headroom:ratio5m",
        "examreg_submissions_shed_total",
        "route_status:examreg_http_refused:rate5m",
        "examreg:login_saturation:ratio",
    ):
        assert needed in exprs, needed


def test_the_dashboard_provider_loads_a_directory() -> None:
    provider = (GRAFANA / "provisioning" / "dashboards" / "examreg.yml").read_text()
    assert re.search(r"^\s+type: file$", provider, re.M)
    assert re.search(r"^\s+path: /\S+$", provider, re.M)


def test_a_missing_promtool_fails_saying_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    # Not root (or no apt-get): no install attempt, and never a silent skip.
    monkeypatch.setattr(prometheus_bin.shutil, "which", lambda name: None)
    monkeypatch.setattr(prometheus_bin.os, "geteuid", lambda: 1000)
    with pytest.raises(pytest.fail.Exception, match=r"sudo apt-get install -y prometheus"):
        prometheus_bin.binary("promtool")


# Units an operator can read on an axis: Grafana's named ones, or a named count ("count:rows"
# is shown as "1.2K rows"); never "short", "none" or "ops", which leave the reader guessing.
NAMED_UNITS = {"s", "reqps", "percentunit", "bytes", "suffix:×"}
NAMED_COUNT = re.compile(r"count:[a-z]+(/s)?")


def _panels() -> list[tuple[str, dict[str, Any]]]:
    return [(path.name, panel) for path in BOARDS for panel in _board(path)["panels"]]


@pytest.mark.parametrize("path", BOARDS, ids=[p.name for p in BOARDS])
def test_every_panel_names_its_unit(path: Path) -> None:
    for panel in _board(path)["panels"]:
        unit = panel["fieldConfig"]["defaults"]["unit"]
        assert unit in NAMED_UNITS or NAMED_COUNT.fullmatch(unit), (panel["title"], unit)


def test_legends_are_tables_below_or_beside_the_plot() -> None:
    charts = [(f, p) for f, p in _panels() if p["type"] == "timeseries"]
    assert len(charts) > 25
    for board, panel in charts:
        legend = panel["options"]["legend"]
        assert legend["showLegend"] and legend["displayMode"] == "table", (board, panel["title"])
        assert legend["placement"] in {"bottom", "right"}, (board, panel["title"])
        assert "lastNotNull" in legend["calcs"], (board, panel["title"])


@pytest.mark.parametrize("path", BOARDS, ids=[p.name for p in BOARDS])
def test_time_series_keep_grafanas_clock_time_axis(path: Path) -> None:
    # Grafana draws a time series against clock time in the viewer's zone unless a panel picks
    # another x field, shifts its range or transforms the frame away from time.
    board = _board(path)
    assert board["timezone"] == "browser" and board["time"]["from"].startswith("now-")
    for panel in board["panels"]:
        assert "transformations" not in panel, panel["title"]
        assert "xField" not in panel.get("options", {}), panel["title"]
        assert not {"timeFrom", "timeShift"} & set(panel), panel["title"]


def test_headroom_is_capped_at_ten_and_ample_without_arrivals() -> None:
    panels = [p for _, p in _panels() if "examreg:headroom:ratio5m" in json.dumps(p["targets"])]
    assert {p["type"] for p in panels} == {"stat", "timeseries"}
    for panel in panels:
        for target in panel["targets"]:
            assert "clamp_max(examreg:headroom:ratio5m, 10)" in target["expr"], panel["title"]
        if panel["type"] == "timeseries":
            assert panel["fieldConfig"]["defaults"]["max"] == 10
            continue
        mappings = panel["fieldConfig"]["defaults"]["mappings"]
        texts = json.dumps(mappings, ensure_ascii=False)
        assert "> 10× (ample)" in texts and "ample (nothing arrives)" in texts
        # The 'nothing arrives' value is the one the expression gives when arrivals are zero.
        assert "(examreg:arrivals:rate5m == 0) + 11" in panel["targets"][0]["expr"]
        assert any(m["type"] == "value" and "11" in m["options"] for m in mappings)


def test_the_time_to_the_limit_is_not_at_this_rate_beyond_thirty_days() -> None:
    stat = next(p for _, p in _panels() if p["title"] == "Time to shedding limit")
    assert stat["targets"][0]["expr"] == f"examreg:time_to_limit:seconds <= {30 * 86400}"
    assert stat["fieldConfig"]["defaults"]["noValue"] == "not at this rate"
