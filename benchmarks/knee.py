"""The open-loop knee: the highest arrival rate a server holds with p99 < 100 ms and no refusal.

Pure: `search` drives an injected `step(rate) -> result` (the driver's JSON summary of one
constant-rate step), judges it with `passes` and decides what to try next. It climbs ×`factor`
from `start` until a step fails; when the very first step fails it halves instead, so a peer
slower than the starting rate still gets a knee; then it bisects between the highest passing and
the lowest failing rate.
A failing step is run once more before it counts (a neighbour's job may have stolen it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

P99_LIMIT_MS = 100.0
STEP_KEYS = (
    "target_rate",
    "p99_ms",
    "ok",
    "scheduled",
    "statuses",
    "errors",
    "unfinished",
    "send_lag_p99_ms",
    "dispatch_lag_max_ms",
    "pass",
)

Step = Callable[[float], dict[str, Any]]


def passes(step: dict[str, Any]) -> bool:
    """p99 < 100 ms and no refusal: every request answered, every answer 2xx (no 503/429 shed,
    no 4xx), no connection error, and the driver held ≥ 97% of the target rate."""
    answered = step["answered"]
    return bool(
        step["p99_ms"] < P99_LIMIT_MS
        and step["unfinished"] == 0
        and step["errors"] == 0
        and answered == step["scheduled"]
        and step["ok"] == answered
        and step["achieved_rate"] >= 0.97 * step["target_rate"]
    )


def why(step: dict[str, Any]) -> str:
    """Why a step failed, in a few words for the table."""
    reasons = [f"p99 {step['p99_ms']:,.0f} ms"] if step["p99_ms"] >= P99_LIMIT_MS else []
    refused = {s: n for s, n in step["statuses"].items() if not s.startswith("2")}
    reasons += [f"{n:,}× HTTP {s}" for s, n in refused.items()]
    if step["unfinished"] or step["errors"]:
        reasons.append(f"{step['unfinished'] + step['errors']:,} unanswered")
    if step["achieved_rate"] < 0.97 * step["target_rate"]:
        reasons.append(f"achieved {step['achieved_rate']:,.0f}/s")
    return f"at {step['target_rate']:,.0f}/s: " + ", ".join(reasons or ["?"])


def search(
    step: Step,
    start: float,
    *,
    bisections: int,
    factor: float = 1.5,
    max_up: int = 14,
    max_down: int = 5,
) -> dict[str, Any]:
    """The knee (`max_rate`, None when not even start / 2**max_down passed) and every step."""
    steps: list[dict[str, Any]] = []

    def attempt(rate: float) -> dict[str, Any]:
        for _ in range(2):
            result = {**step(rate), "target_rate": rate}
            result["pass"] = passes(result)
            steps.append(result)
            if result["pass"]:
                break
        return result

    good: dict[str, Any] | None = None
    low, high = 0.0, 0.0
    rate = start
    for _ in range(max_up):
        result = attempt(rate)
        if not result["pass"]:
            high = rate
            break
        good, low = result, rate
        rate *= factor
    if good is None:
        for _ in range(max_down):
            rate /= 2
            result = attempt(rate)
            if result["pass"]:
                good, low = result, rate
                break
            high = rate
    for _ in range(bisections if good is not None and high else 0):
        middle = (low + high) / 2
        result = attempt(middle)
        if result["pass"]:
            low, good = middle, result
        else:
            high = middle
    failing = [s for s in steps if not s["pass"]]
    return {
        "max_rate": round(low) if good is not None else None,
        "at_max": good,
        "first_failing_rate": round(high) if high else None,
        "first_failure": why(failing[0]) if failing else None,
        "steps": [{k: s.get(k) for k in STEP_KEYS} for s in steps],
    }
