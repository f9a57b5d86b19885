"""results.md (benchmarks/report.py) shows every ratio, and renders a run that stopped early."""

from __future__ import annotations

from benchmarks import ratios, report


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
