"""What benchmarks/run.py keeps of the driver's summaries: no made-up percentile."""

from __future__ import annotations

from benchmarks.run import _admitted_p99, _latency


def _summary(**overrides: object) -> dict[str, object]:
    summary: dict[str, object] = {
        "target_rate": 150.0,
        "achieved_rate": 150.0,
        "measured": 600,
        "p50_ms": 3.0,
        "p99_ms": 12.0,
        "ok": 750,
        "admitted_measured": 600,
        "admitted_p99_ms": 12.0,
        "scheduled": 750,
        "statuses": {"200": 750},
        "unfinished": 0,
        "errors": 0,
    }
    return {**summary, **overrides}


def test_a_p99_of_admitted_requests_is_kept_when_some_were_measured() -> None:
    assert _admitted_p99(_summary()) == 12.0


def test_2xx_answers_only_in_the_warm_up_give_no_p99_not_the_drivers_zero() -> None:
    # A login storm: 46 logins succeeded, all of them sent during the unmeasured first second.
    storm = _summary(ok=46, admitted_measured=0, admitted_p99_ms=0.0)
    assert _admitted_p99(storm) is None


def test_a_run_with_nothing_measured_has_null_percentiles() -> None:
    empty = _latency(_summary(measured=0, p50_ms=0.0, p99_ms=0.0, ok=0, admitted_measured=0))
    assert empty["p50_ms"] is None and empty["p99_ms"] is None
    assert empty["admitted_p99_ms"] is None
