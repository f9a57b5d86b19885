"""Load profiles of the registration season, arrival schedules and arrival logs: pure functions.

Nothing here imports Locust, gevent or `engine`: the Locust shapes (`loadtest/locustfile.py`), the
open-loop drivers and the benchmark all read the same curves, and unit tests check them directly.

A profile is a relative arrival rate (peak = 1.0) over a span of real time:

- `window_opening`: the first 2 hours after the window opens: a herd in the first minutes (whole
  schools in computer rooms), decaying towards a steady level.
- `school_periods`: a 4-hour school morning with a burst at every 45-minute period boundary.
- `deadline_rush`: the last 6 hours before the 17:00 deadline, rising towards it, nothing after.
- `season`: the whole 10-day window, shaped on 2023 (domain.md §8.1: ≈37% of all registrations
  within the first 1.75 days), with a school-hours day, period bursts and the final rush.
- `constant`: 1.0 throughout.

A run of D seconds replays the profile's span compressed into D seconds.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0
PERIOD = 45 * MINUTE  # a school period (domain.md §8.3: bursts at class-period boundaries)

# 2023 (domain.md §8.1): 383,783 of 1,025,166 registrations (≈37%) by 18:00 of day 2 of 10.
SEASON_DAYS = 10
SEASON_EARLY_SHARE = 0.37
SEASON_EARLY_SPAN = 1.75 * DAY
# Share of the season's registrations per day (day 1 … day 10), tuned so that the cumulative
# curve passes through 37% at 1.75 days with the diurnal profile below.
_DAY_SHARES = (0.215, 0.20, 0.10, 0.08, 0.07, 0.06, 0.06, 0.055, 0.06, 0.10)
# Relative activity by hour of day: quiet nights, school hours, an evening at home.
_HOURLY = (
    0.05, 0.03, 0.02, 0.02, 0.03, 0.08, 0.30, 0.90, 1.00, 1.00, 0.95, 0.70,
    0.45, 0.80, 0.95, 0.90, 0.80, 0.60, 0.50, 0.65, 0.75, 0.70, 0.45, 0.20,
)  # fmt: skip
_SCHOOL_DAY = (7 * HOUR, 17 * HOUR)
_DEADLINE = 17 * HOUR  # domain.md §6.1: every deadline is 17:00 local time
_RUSH = 6 * HOUR


def _period_bursts(t: float, start: float, end: float, sigma: float = 3 * MINUTE) -> float:
    """Gaussian bumps (height 1) at the period boundaries start + k·45 min within [start, end]."""
    if not start - 4 * sigma <= t <= end + 4 * sigma:
        return 0.0
    k = round((t - start) / PERIOD)
    total = 0.0
    for j in (k - 1, k, k + 1):
        boundary = start + j * PERIOD
        if start <= boundary <= end:
            total += math.exp(-0.5 * ((t - boundary) / sigma) ** 2)
    return total


def window_opening(t: float) -> float:
    """The first 2 hours: a one-minute ramp into the herd, then decay to a steady 25%."""
    ramp = min(1.0, t / MINUTE)
    return ramp * (0.25 + 0.75 * math.exp(-t / (10 * MINUTE)))


def school_periods(t: float) -> float:
    """A 4-hour morning from 07:00: base 35%, a burst at every 45-minute boundary."""
    return 0.35 + 0.65 * min(1.0, _period_bursts(t, 0.0, 4 * HOUR))


def deadline_rush(t: float) -> float:
    """The last 6 hours before 17:00: rising quadratically to the deadline, small period bursts."""
    if t >= _RUSH:
        return 0.0
    rising = 0.2 + 0.8 * (t / _RUSH) ** 2
    return rising * (1 + 0.25 * _period_bursts(t, 0.0, _RUSH))


def _diurnal(clock: float, last_day: bool) -> float:
    hour = int(clock // HOUR) % 24
    level = _HOURLY[hour] * (1 + 0.5 * _period_bursts(clock, *_SCHOOL_DAY))
    if last_day:
        if clock >= _DEADLINE:
            return 0.0
        if clock >= _DEADLINE - _RUSH:
            level *= 1 + 2.5 * ((clock - (_DEADLINE - _RUSH)) / _RUSH) ** 2
    return level


def _day_integrals(step: float = MINUTE) -> tuple[float, ...]:
    return tuple(
        sum(_diurnal(i * step, day == SEASON_DAYS - 1) for i in range(int(DAY / step))) * step
        for day in range(SEASON_DAYS)
    )


_DAY_INTEGRALS = _day_integrals()


def season_density(t: float) -> float:
    """Share of the whole season's registrations per second at `t` seconds after opening."""
    if not 0 <= t < SEASON_DAYS * DAY:
        return 0.0
    day = int(t // DAY)
    clock = t - day * DAY
    return _DAY_SHARES[day] * _diurnal(clock, day == SEASON_DAYS - 1) / _DAY_INTEGRALS[day]


@dataclass(frozen=True, slots=True)
class Profile:
    """A relative arrival rate (peak 1.0) over `span` seconds of real time."""

    name: str
    span: float
    raw: Callable[[float], float]
    peak: float

    def relative(self, fraction: float) -> float:
        """Relative rate at `fraction` (0…1) of the span."""
        if not 0 <= fraction <= 1:
            return 0.0
        return self.raw(min(fraction, 0.999_999) * self.span) / self.peak

    def rate(self, t: float, duration: float, peak_rate: float) -> float:
        """Arrivals per second at run time `t` when the span is compressed into `duration` s."""
        return peak_rate * self.relative(t / duration)


def _make(name: str, span: float, raw: Callable[[float], float], step: float) -> Profile:
    peak = max(raw(i * step) for i in range(int(span / step)))
    return Profile(name, span, raw, peak)


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        _make("constant", 1.0, lambda t: 1.0, 1.0),
        _make("window_opening", 2 * HOUR, window_opening, 10.0),
        _make("school_periods", 4 * HOUR, school_periods, 10.0),
        _make("deadline_rush", _RUSH, deadline_rush, 10.0),
        _make("season", SEASON_DAYS * DAY, season_density, MINUTE),
    )
}


def cumulative_share(profile: Profile, fraction: float, steps: int = 20_000) -> float:
    """Share of the profile's arrivals that fall before `fraction` of its span (numeric)."""
    total = done = 0.0
    for i in range(steps):
        f = (i + 0.5) / steps
        value = profile.relative(f)
        total += value
        if f < fraction:
            done += value
    return done / total if total else 0.0


def arrival_times(
    profile: Profile, duration: float, peak_rate: float, *, seed: int = 1, limit: int = 10_000_000
) -> Iterator[float]:
    """Arrival times (run seconds) of a Poisson process whose rate follows the profile.

    Thinning (Lewis–Shedler): candidates at the peak rate, each kept with probability
    rate(t)/peak. Deterministic for a seed; stops at `duration` or after `limit` arrivals.
    """
    if peak_rate <= 0 or duration <= 0:
        return
    rng = random.Random(seed)
    t = 0.0
    emitted = 0
    while emitted < limit:
        t += rng.expovariate(peak_rate)
        if t >= duration:
            return
        if rng.random() * peak_rate <= profile.rate(t, duration, peak_rate):
            emitted += 1
            yield t


def paced_times(rate: float, duration: float) -> Iterator[float]:
    """Constant pacing: one arrival every 1/rate seconds (the open-loop benchmark's schedule)."""
    count = int(rate * duration)
    for i in range(count):
        yield i / rate


def users_at(profile: Profile, t: float, duration: float, peak_users: int) -> int:
    """Closed-loop user count for a Locust shape: the profile scaled to `peak_users`, at least 1."""
    return max(1, round(peak_users * profile.relative(t / duration)))


# -- arrival logs --------------------------------------------------------------------------------

# What a candidate's journey sends, with the seconds after its start (real time): open the page,
# log in, load profile and reference data, submit, poll the receipt, sometimes edit, check status.
JOURNEY: tuple[tuple[float, str, str], ...] = (
    (0.0, "GET", "/api/v1/window"),
    (8.0, "POST", "/api/v1/auth/login"),
    (8.5, "GET", "/api/v1/me"),
    (8.6, "GET", "/api/v1/reference"),
    (240.0, "PUT", "/api/v1/me/registration"),
    (242.0, "GET", "/api/v1/me/receipts/{receipt_id}"),
    (250.0, "GET", "/api/v1/me/registration"),
)
EDIT: tuple[tuple[float, str, str], ...] = (
    (400.0, "PUT", "/api/v1/me/registration"),
    (402.0, "GET", "/api/v1/me/receipts/{receipt_id}"),
    (410.0, "GET", "/api/v1/me/registration"),
)
EDIT_SHARE = 0.3


@dataclass(frozen=True, slots=True, order=True)
class Arrival:
    """One anonymised request: when (epoch or run seconds), method, route template, status."""

    at: float
    method: str
    route: str
    status: int = 0


LOG_HEADER = "# examreg arrival log v1: epoch_seconds\tmethod\troute_template\tstatus\n"


def format_arrival(arrival: Arrival) -> str:
    return f"{arrival.at:.3f}\t{arrival.method}\t{arrival.route}\t{arrival.status}\n"


def parse_arrivals(lines: Iterable[str]) -> Iterator[Arrival]:
    """Lines of an arrival log (as `engine.app.ArrivalLog` writes them); junk is skipped."""
    for line in lines:
        if line.startswith("#"):
            continue
        parts = line.rstrip("\n").split("\t")
        if len(parts) != 4 or not parts[2].startswith("/"):
            continue
        try:
            yield Arrival(float(parts[0]), parts[1], parts[2], int(parts[3]))
        except ValueError:
            continue


def read_arrival_logs(paths: Iterable[Path]) -> list[Arrival]:
    """Every arrival of several per-process log files, merged in time order."""
    arrivals: list[Arrival] = []
    for path in paths:
        with path.open(encoding="utf-8") as handle:
            arrivals.extend(parse_arrivals(handle))
    arrivals.sort()
    return arrivals


def replay_schedule(arrivals: list[Arrival], factor: float) -> list[Arrival]:
    """The log as run-time offsets from its first arrival, compressed by `factor` (≥ 1 = faster)."""
    if not arrivals:
        return []
    if factor <= 0:
        raise ValueError("the replay factor must be positive")
    start = arrivals[0].at
    return [Arrival((a.at - start) / factor, a.method, a.route, a.status) for a in arrivals]


def synthetic_log(
    profile: Profile,
    *,
    span: float,
    journeys_per_second: float,
    seed: int = 1,
    start_epoch: float = 1_777_334_400.0,  # 2026-04-28 00:00 UTC: any fixed instant will do
) -> list[Arrival]:
    """An arrival log as the API would write it if candidates arrived along `profile`.

    `span` seconds of log time compress the profile; journeys start as a Poisson process at up to
    `journeys_per_second` and each expands into JOURNEY (+ EDIT for some), scaled into the span.
    """
    rng = random.Random(seed)
    scale = span / profile.span
    arrivals: list[Arrival] = []
    for start in arrival_times(profile, span, journeys_per_second, seed=seed):
        steps = JOURNEY + (EDIT if rng.random() < EDIT_SHARE else ())
        for offset, method, route in steps:
            at = start + offset * scale
            status = 202 if method == "PUT" else 200
            arrivals.append(Arrival(round(start_epoch + at, 3), method, route, status))
    arrivals.sort()
    return arrivals


def route_mix(arrivals: Iterable[Arrival]) -> dict[str, int]:
    """Counts per "METHOD route" (what a replay reports next to what it sent)."""
    mix: dict[str, int] = {}
    for a in arrivals:
        key = f"{a.method} {a.route}"
        mix[key] = mix.get(key, 0) + 1
    return mix


# -- verdicts --------------------------------------------------------------------------------


# A run below this many requests cannot be judged: its percentiles rest on a handful of samples.
DEFAULT_MIN_REQUESTS = 100


@dataclass(frozen=True, slots=True)
class Limits:
    """Pass/fail thresholds of a headless run; None means not checked."""

    max_fail_ratio: float | None = None
    max_p95_ms: float | None = None
    max_p99_ms: float | None = None
    min_requests: int | None = None


def gate_limits(
    max_fail_ratio: float | None,
    max_p95_ms: float | None,
    max_p99_ms: float | None,
    min_requests: int | None,
) -> Limits | None:
    """The gate a run asked for, or None when it asked for none.

    Asking for any limit brings a minimum request count (`DEFAULT_MIN_REQUESTS` unless given), so
    a run too small to judge cannot pass; `min_requests=0` drops it.
    """
    if (max_fail_ratio, max_p95_ms, max_p99_ms, min_requests) == (None, None, None, None):
        return None
    minimum = DEFAULT_MIN_REQUESTS if min_requests is None else min_requests
    return Limits(max_fail_ratio, max_p95_ms, max_p99_ms, minimum)


def violations(
    limits: Limits, fail_ratio: float, p95_ms: float, p99_ms: float, *, requests: int
) -> list[str]:
    """What broke the limits, one message each; empty when the run passes."""
    found = []
    if requests == 0:
        found.append("no requests were made")
    elif limits.min_requests is not None and requests < limits.min_requests:
        noun = "request" if requests == 1 else "requests"
        found.append(
            f"only {requests} {noun}: not enough to judge (--min-requests {limits.min_requests})"
        )
    if limits.max_fail_ratio is not None and fail_ratio > limits.max_fail_ratio:
        found.append(f"failure ratio {fail_ratio:.4f} > {limits.max_fail_ratio}")
    if limits.max_p95_ms is not None and p95_ms > limits.max_p95_ms:
        found.append(f"p95 {p95_ms:.0f} ms > {limits.max_p95_ms:.0f} ms")
    if limits.max_p99_ms is not None and p99_ms > limits.max_p99_ms:
        found.append(f"p99 {p99_ms:.0f} ms > {limits.max_p99_ms:.0f} ms")
    return found


def percentile(sorted_values: list[float], q: float) -> float:
    """The q-quantile (0…1) of already sorted values, nearest-rank; 0 for none."""
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[rank]
