"""Unit tests of `engine.domain.display`: durations in the two units that matter, due times that
say "not at this rate" past the horizon, rates and counts with their units, headroom capped and
"ample" without arrivals, instants in Vietnam's time."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from engine.domain import display


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.2, "under 1 s"),
        (45, "45 s"),
        (59.6, "1 min"),
        (150, "2 min 30 s"),
        (599.7, "10 min"),
        (12 * 60 + 20, "12 min"),
        (3599, "1 h"),
        (2 * 3600 + 15 * 60, "2 h 15 min"),
        (5 * 3600, "5 h"),
        (86_399, "1 d"),
        (3 * 86_400 + 4 * 3600 + 10 * 60, "3 d 4 h"),
        (541_976_190, "6272 d 21 h"),
    ],
)
def test_a_duration_reads_in_the_two_largest_units(seconds: float, text: str) -> None:
    assert display.duration(seconds) == text


def test_a_due_time_is_in_so_long_or_not_at_this_rate_past_the_horizon() -> None:
    assert display.due(45) == "in 45 s"
    assert display.due(2 * 3600 + 15 * 60) == "in 2 h 15 min"
    assert display.due(3 * 86_400 + 4 * 3600) == "in 3 d 4 h"
    assert display.due(0) == "now"
    # Never, or only after what matters (30 days; or the window's close when one is given).
    assert display.due(None) == "not at this rate"
    assert display.due(math.inf) == "not at this rate"
    assert display.due(541_976_190) == "not at this rate"
    assert display.due(5 * 3600, horizon=4 * 3600) == "not at this rate"
    assert display.due(3 * 3600, horizon=4 * 3600) == "in 3 h"


def test_the_horizon_is_the_windows_close_while_it_is_ahead_else_thirty_days() -> None:
    now = datetime(2026, 6, 1, 3, 0, tzinfo=UTC)
    assert display.horizon(now, now + timedelta(hours=7)) == 7 * 3600
    assert display.horizon(now, None) == 30 * 86_400
    assert display.horizon(now, now - timedelta(minutes=1)) == 30 * 86_400


def test_rates_and_counts_name_their_units() -> None:
    assert display.rate(1234.4) == "1,234 entries/s"
    assert display.rate(98.47) == "98.5 entries/s"
    assert display.rate(2.0) == "2 entries/s"
    assert display.rate(0.4703) == "0.47 entries/s"
    assert display.rate(12, "rows") == "12 rows/s"
    assert display.rate(0) == "none"
    assert display.rate(None) == "not measured yet"
    assert display.count(1_600_000) == "1,600,000 entries"
    assert display.count(684_101.6, "submissions") == "684,102 submissions"


def test_headroom_is_capped_and_ample_without_arrivals() -> None:
    assert display.ratio(1.2249, arrivals=98.5) == "1.22×"
    assert display.ratio(0.8, arrivals=150) == "0.80×"
    # 80,000× says how quiet the minute was, not how strong the writers are.
    assert display.ratio(80_000, arrivals=0.002) == "> 10× (ample)"
    assert display.ratio(10, arrivals=5) == "> 10× (ample)"
    assert display.ratio(None, arrivals=0) == "ample (nothing arrives)"
    assert display.ratio(None, arrivals=None) == "not measured yet"
    assert display.ratio(None, arrivals=3) == "unknown"


def test_instants_are_shown_in_vietnams_time() -> None:
    closes = datetime(2026, 6, 20, 10, 0, tzinfo=UTC)
    assert display.instant(closes) == "2026-06-20 17:00 (UTC+07:00)"
