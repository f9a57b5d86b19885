"""results.md (benchmarks/report.py) shows every ratio, and renders a run that stopped early."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import ratios, report

DATA = Path(__file__).resolve().parent / "data"


def test_a_run_that_stopped_in_setup_still_renders_every_ratio_as_not_measured() -> None:
    results = {
        "config": {"quick": True, "candidates": 20_000, "workers": 2, "writers": 1},
        "failed": {"phase": "setup", "error": "ServiceError: initdb failed"},
        "wrk": {"path": None, "note": "wrk is not installed"},
    }
    results["ratios"] = ratios.compute(results)
    text = report.render(results)
    for key in ratios.KEYS:
        assert f"| `{key}` | null (not measured) |" in text
    assert "The run stopped in phase `setup`" in text
    assert "wrk figures skipped: wrk is not installed" in text
    assert "BENCH_QUICK" in text


def test_measured_ratios_are_shown_with_their_values_and_a_zero_is_not_missing() -> None:
    values = {**dict.fromkeys(ratios.KEYS), "accept_vs_naive": 3.0, "lost": 0}
    values["season_seconds"] = 600.5
    text = report.render({"ratios": values})
    assert "| `accept_vs_naive` | 3.0 |" in text
    assert "| `lost` | 0 |" in text
    assert "| `season_seconds` | 600.5 |" in text
    assert "| `duplicated` | null (not measured) |" in text


def test_a_real_quick_run_renders_every_section_side_by_side() -> None:
    # results.json of a BENCH_QUICK=1 run on the shared 2-core machine (noisy figures).
    results = json.loads((DATA / "results-quick.json").read_text())
    assert list(results["ratios"]) == list(ratios.KEYS)
    text = report.render(results)
    for heading in ("## Ratios", "## Accept, side by side", "## Spike, side by side"):
        assert heading in text
    assert "| | examreg | naive (INSERT per request) | hello-world |" in text
    for key, value in results["ratios"].items():
        assert f"| `{key}` | {value:,} |" in text
    knee = results["accept"]["examreg"]["max_rate"]
    assert f"| open-loop knee (p99 < 100 ms, no refusal) | {knee:,}/s |" in text
    assert "CPU µs/request at the knee: writer" in text
    assert "GET /api/v1/me p99, during the login storm" in text
