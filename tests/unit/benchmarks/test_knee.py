"""The open-loop knee (benchmarks/knee.py): p99 < 100 ms and no refusal, found by climbing,
halving and bisecting over an injected step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks import knee


def _step(
    rate: float, *, p99: float = 20.0, refused: int = 0, unfinished: int = 0
) -> dict[str, Any]:
    scheduled = int(rate * 5)
    answered = scheduled - unfinished
    statuses = {"202": answered - refused, **({"503": refused} if refused else {})}
    return {
        "target_rate": rate,
        "scheduled": scheduled,
        "answered": answered,
        "ok": answered - refused,
        "statuses": statuses,
        "errors": 0,
        "unfinished": unfinished,
        "p99_ms": p99,
        "achieved_rate": rate,
        "send_lag_p99_ms": 1.0,
        "dispatch_lag_max_ms": 2.0,
    }


def _server(capacity: float) -> tuple[Callable[[float], dict[str, Any]], list[float]]:
    """A fake server: p99 < 100 ms up to `capacity`, then slow and shedding."""
    tried: list[float] = []

    def step(rate: float) -> dict[str, Any]:
        tried.append(rate)
        if rate <= capacity:
            return _step(rate)
        return _step(rate, p99=400.0, refused=10)

    return step, tried


def test_a_step_passes_only_with_p99_under_100_ms_and_every_answer_2xx() -> None:
    assert knee.passes(_step(1000))
    assert not knee.passes(_step(1000, p99=100.0))
    assert not knee.passes(_step(1000, unfinished=1))
    # One refusal in 5,000 answers is a refusal: the knee is "no refusal", not "≥ 99.9% 2xx".
    assert not knee.passes(_step(1000, refused=1))
    slow_driver = {**_step(1000), "achieved_rate": 900.0}
    assert not knee.passes(slow_driver)


def test_why_names_every_reason_a_step_failed() -> None:
    text = knee.why(_step(1500, p99=250.0, refused=3))
    assert text == "at 1,500/s: p99 250 ms, 3× HTTP 503"


def test_the_search_climbs_then_bisects_to_the_highest_passing_rate() -> None:
    step, tried = _server(capacity=1000)
    found = knee.search(step, 400, bisections=2)
    # 400, 600, 900 pass; 1350 fails (retried once); bisect 1125 (fails ×2), then 1012.5 fails ×2.
    assert tried == [400, 600, 900, 1350, 1350, 1125, 1125, 1012.5, 1012.5]
    assert found["max_rate"] == 900
    assert found["first_failing_rate"] == 1012
    assert found["at_max"]["target_rate"] == 900
    assert found["first_failure"] == "at 1,350/s: p99 400 ms, 10× HTTP 503"
    assert [s["pass"] for s in found["steps"]] == [True, True, True] + [False] * 6


def test_a_failure_that_passes_when_retried_counts_as_a_pass() -> None:
    calls: list[float] = []

    def step(rate: float) -> dict[str, Any]:
        calls.append(rate)
        if rate == 600 and calls.count(600) == 1:  # a neighbour's job stole the first try
            return _step(rate, p99=300.0)
        return _step(rate) if rate < 1000 else _step(rate, p99=300.0)

    found = knee.search(step, 400, bisections=0)
    assert found["max_rate"] == 900
    assert calls == [400, 600, 600, 900, 1350, 1350]


def test_a_peer_slower_than_the_first_rate_still_gets_a_knee_by_halving() -> None:
    step, tried = _server(capacity=300)
    found = knee.search(step, 1000, bisections=1)
    assert tried[:6] == [1000, 1000, 500, 500, 250, 375]
    assert found["max_rate"] == 250
    assert found["first_failing_rate"] == 375


def test_a_peer_that_holds_no_rate_at_all_has_no_knee_not_zero() -> None:
    step, _ = _server(capacity=0)
    found = knee.search(step, 1000, bisections=2, max_down=3)
    assert found["max_rate"] is None and found["at_max"] is None
    assert found["first_failing_rate"] == 125
