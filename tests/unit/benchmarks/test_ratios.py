"""results.json's `ratios` (benchmarks/ratios.py): every key, null where not measured."""

from __future__ import annotations

from typing import Any

from benchmarks import ratios

REQUIRED = {
    "accept_vs_hello",
    "accept_vs_naive",
    "drain_vs_copy",
    "drain_grown_vs_empty",
    "season_seconds",
    "lost",
    "duplicated",
    "spike_admitted_p99_ms",
    "me_p99_ms_during_login_storm",
}


def _results() -> dict[str, Any]:
    def peer(knee: float | None, wrk: float, cpu: float) -> dict[str, Any]:
        return {
            "max_rate": knee,
            "wrk": {"ok_per_s": wrk},
            "cpu_at_max": {"us_per_request": {"total": cpu}},
        }

    return {
        "accept": {
            "examreg": peer(3000, 4000.0, 400.0),
            "naive": peer(1000, 1000.0, 800.0),
            "hello": peer(6000, 16000.0, 100.0),
        },
        "drain": {"writer_rows_per_s": 40_000, "copy_rows_per_s": 160_000},
        "growth": {"drain_at_target": {"writer_rows_per_s": 30_000}},
        "season": {"wall_seconds": 612.5, "lost": 0, "duplicated": 0},
        "spike": {"examreg": {"admitted_p99_ms": 85.2}, "naive": {"admitted_p99_ms": 9000.0}},
        "logins": {"me_alone": {"p99_ms": 4.5}, "me_during": {"p99_ms": 31.0}},
        "scale": {
            "drain": {"1": {"writer_rows_per_s": 12_000}, "4": {"writer_rows_per_s": 18_000}},
            "accept": {"1": {"max_rate": 2000}, "2": {"max_rate": 3000}},
            "cluster": {
                "single": {"per_second": 10_000.0},
                "cluster_waitaof": {"per_second": 2_500.0},
                "waitaof_cost": {"added_p99_ms": 110.5},
            },
        },
    }


def test_every_ratio_of_a_full_run_is_computed_from_its_phases() -> None:
    values = ratios.compute(_results())
    assert set(values) >= REQUIRED and list(values) == list(ratios.KEYS)
    assert values == {
        "accept_vs_hello": 0.5,
        "accept_vs_naive": 3.0,
        "wrk_accept_vs_hello": 0.25,
        "wrk_accept_vs_naive": 4.0,
        "cpu_vs_naive": 0.5,
        "cpu_vs_hello": 4.0,
        "drain_vs_copy": 0.25,
        "drain_grown_vs_empty": 0.75,
        "season_seconds": 612.5,
        "lost": 0,
        "duplicated": 0,
        "spike_admitted_p99_ms": 85.2,
        "spike_admitted_p99_ms_naive": 9000.0,
        "me_p99_ms_alone": 4.5,
        "me_p99_ms_during_login_storm": 31.0,
        "scale_drain_4_vs_1_writers": 1.5,
        "scale_accept_2_vs_1_api": 1.5,
        "cluster_vs_single": 0.25,
        "waitaof_added_p99_ms": 110.5,
    }


def test_zero_lost_is_a_measured_zero_not_a_missing_value() -> None:
    values = ratios.compute(_results())
    assert values["lost"] == 0 and values["lost"] is not None
    assert values["duplicated"] == 0 and values["duplicated"] is not None


def test_a_run_that_stopped_after_setup_still_has_every_key_all_null() -> None:
    values = ratios.compute({"config": {}, "seed_seconds": 12.0})
    assert list(values) == list(ratios.KEYS)
    assert set(values.values()) == {None}


def test_a_peer_without_a_knee_or_a_skipped_phase_gives_null_never_a_made_up_number() -> None:
    results = _results()
    results["accept"]["naive"]["max_rate"] = None  # held no rate at all
    results["accept"]["hello"]["max_rate"] = 0
    results["accept"]["examreg"]["wrk"] = {"skipped": "wrk is not installed"}
    results["spike"] = {"skipped": "examreg held no rate in the accept phase"}
    del results["growth"]
    values = ratios.compute(results)
    assert values["accept_vs_naive"] is None
    assert values["accept_vs_hello"] is None
    assert values["wrk_accept_vs_naive"] is None and values["wrk_accept_vs_hello"] is None
    assert values["spike_admitted_p99_ms"] is None
    assert values["drain_grown_vs_empty"] is None
    assert values["drain_vs_copy"] == 0.25  # what did run still counts


def test_a_null_p99_of_admitted_requests_stays_null() -> None:
    results = _results()
    results["spike"]["naive"]["admitted_p99_ms"] = None  # nothing admitted
    assert ratios.compute(results)["spike_admitted_p99_ms_naive"] is None
