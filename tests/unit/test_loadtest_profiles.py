"""Load profiles, schedules, arrival logs and gates of loadtest/profiles.py (pure, no Locust)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from loadtest import profiles
from loadtest.profiles import (
    DAY,
    DEFAULT_MIN_REQUESTS,
    HOUR,
    MINUTE,
    PROFILES,
    Arrival,
    Limits,
    arrival_times,
    cumulative_share,
    gate_limits,
    parse_arrivals,
    replay_schedule,
    synthetic_log,
    users_at,
    violations,
)

DATA = Path(__file__).resolve().parents[2] / "loadtest" / "data"
SAMPLE_LOG = DATA / "arrivals-window-opening.tsv"


def test_season_follows_2023_with_37_percent_in_the_first_day_and_three_quarters() -> None:
    season = PROFILES["season"]
    share = cumulative_share(season, 1.75 / 10, steps=50_000)
    assert share == pytest.approx(0.37, abs=0.01)


def test_season_is_quiet_at_night_busy_in_school_hours_and_closed_after_the_deadline() -> None:
    density = profiles.season_density
    assert density(2 * DAY + 3 * HOUR) < density(2 * DAY + 9 * HOUR) / 10
    last_day = 9 * DAY
    assert density(last_day + 16.5 * HOUR) > density(last_day + 11 * HOUR)  # the final rush
    assert density(last_day + 17 * HOUR + MINUTE) == 0.0
    assert density(-1.0) == 0.0 and density(10 * DAY) == 0.0


def test_window_opening_is_a_herd_in_the_first_minutes() -> None:
    opening = PROFILES["window_opening"]
    herd = opening.relative(2 * MINUTE / opening.span)
    assert herd > 0.9
    assert opening.relative(60 * MINUTE / opening.span) < herd / 3


def test_school_periods_burst_every_45_minutes() -> None:
    periods = PROFILES["school_periods"]
    at = [periods.relative(t / periods.span) for t in (45 * MINUTE, 67 * MINUTE, 90 * MINUTE)]
    assert at[0] > 0.95 and at[2] > 0.95
    assert at[1] < 0.4


def test_deadline_rush_rises_to_17_00_and_stops_there() -> None:
    rush = PROFILES["deadline_rush"]
    assert rush.relative(0.1) < rush.relative(0.5) < rush.relative(0.97)
    assert rush.raw(6 * HOUR) == 0.0


def test_every_profile_peaks_at_one() -> None:
    for profile in PROFILES.values():
        if profile.name == "season":
            continue  # its 3-minute bursts fall between the samples; its shape is tested above
        peak = max(profile.relative(i / 2000) for i in range(2001))
        assert peak == pytest.approx(1.0, abs=0.02), profile.name


def test_arrivals_are_deterministic_and_follow_the_rate() -> None:
    constant = PROFILES["constant"]
    times = list(arrival_times(constant, 100.0, 50.0, seed=3))
    assert times == list(arrival_times(constant, 100.0, 50.0, seed=3))
    assert len(times) == pytest.approx(5000, rel=0.05)
    assert times == sorted(times) and times[0] >= 0 and times[-1] < 100
    opening = list(arrival_times(PROFILES["window_opening"], 100.0, 50.0, seed=3))
    first, last = (sum(1 for t in opening if lo <= t < lo + 10) for lo in (0, 90))
    assert first > 2 * last  # the herd comes first
    assert list(arrival_times(constant, 100.0, 50.0, seed=3, limit=7)) == times[:7]


def test_closed_loop_users_follow_the_profile_with_at_least_one() -> None:
    rush = PROFILES["deadline_rush"]
    assert users_at(rush, 0.0, 600, 100) < users_at(rush, 590, 600, 100)
    assert users_at(PROFILES["window_opening"], 0.0, 600, 100) == 1


def test_replay_compresses_a_log_by_the_factor() -> None:
    log = [Arrival(1000.0, "GET", "/a", 200), Arrival(1060.0, "PUT", "/b", 202)]
    assert replay_schedule(log, 60) == [
        Arrival(0.0, "GET", "/a", 200),
        Arrival(1.0, "PUT", "/b", 202),
    ]
    assert replay_schedule([], 10) == []
    with pytest.raises(ValueError):
        replay_schedule(log, 0)


def test_arrival_log_lines_round_trip_and_junk_is_skipped() -> None:
    line = profiles.format_arrival(Arrival(1.5, "PUT", "/api/v1/me/registration", 202))
    parsed = list(parse_arrivals([profiles.LOG_HEADER, line, "garbage\n", "x\tGET\t/a\t200\n"]))
    assert parsed == [Arrival(1.5, "PUT", "/api/v1/me/registration", 202)]


def test_the_shipped_log_is_the_synthetic_window_opening_and_holds_no_personal_data() -> None:
    text = SAMPLE_LOG.read_text(encoding="utf-8")
    shipped = list(parse_arrivals(text.splitlines(keepends=True)))
    regenerated = synthetic_log(PROFILES["window_opening"], span=120, journeys_per_second=3)
    assert [profiles.format_arrival(a) for a in shipped] == [
        profiles.format_arrival(a) for a in regenerated
    ]
    assert len(shipped) > 500
    assert {a.route for a in shipped} <= {route for _, _, route in profiles.JOURNEY}
    for arrival in shipped:
        assert not re.search(r"\d{6,}", arrival.route)  # templates, never IDs


def test_gate_reports_each_broken_limit() -> None:
    limits = Limits(max_fail_ratio=0.01, max_p95_ms=200, max_p99_ms=500)
    assert violations(limits, 0.0, 100, 400, requests=1000) == []
    assert len(violations(limits, 0.02, 250, 600, requests=1000)) == 3
    assert violations(Limits(), 1.0, 1e9, 1e9, requests=1000) == []


def test_a_run_below_the_minimum_request_count_cannot_pass() -> None:
    limits = Limits(max_fail_ratio=0.01, min_requests=100)
    assert violations(limits, 0.0, 1, 1, requests=20) == [
        "only 20 requests: not enough to judge (--min-requests 100)"
    ]
    assert violations(limits, 0.0, 1, 1, requests=100) == []
    assert violations(limits, 0.0, 1, 1, requests=1) == [
        "only 1 request: not enough to judge (--min-requests 100)"
    ]
    assert violations(Limits(min_requests=0), 0.0, 1, 1, requests=0) == ["no requests were made"]


def test_asking_for_any_limit_brings_the_default_minimum_request_count() -> None:
    assert gate_limits(None, None, None, None) is None  # no gate: Locust's exit code stands
    assert gate_limits(0.01, None, None, None) == Limits(0.01, min_requests=DEFAULT_MIN_REQUESTS)
    assert gate_limits(None, None, 500, None) == Limits(max_p99_ms=500, min_requests=100)
    assert gate_limits(None, None, None, 5000) == Limits(min_requests=5000)
    assert gate_limits(0.01, None, None, 0) == Limits(0.01, min_requests=0)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert profiles.percentile(values, 0.99) == 99.0
    assert profiles.percentile(values, 0.5) == 50.0
    assert profiles.percentile([], 0.99) == 0.0
