"""Numbers as an operator reads them: durations, due times, rates, counts and ratios in words.

Owns the wording every operator surface shares (`examreg capacity`, the `display` object of
`GET /api/v1/ops/capacity`): "in 2 h 15 min" rather than 8,100 s, "not at this rate" for an event
beyond the horizon that matters (the window's close, or 30 days without one) instead of a
541,976,190 s extrapolation, "> 10× (ample)" rather than a headroom of 80,000×, "not measured yet"
where a rate needs a second sample. Pure functions of their arguments: no clock, no IO.
"""

from __future__ import annotations

import math
from datetime import datetime

from engine.settings import VIETNAM

# With no window configured, an event further away than this is "not at this rate": a whole
# registration window is 7-10 days (domain.md), so a month is beyond anything an operator plans.
DEFAULT_HORIZON_SECONDS = 30 * 86_400.0
# Headroom above this is shown as ample: past ten times the arrivals, the exact figure says
# more about how quiet the minute was than about the writers.
HEADROOM_CAP = 10.0

NOT_AT_THIS_RATE = "not at this rate"
NOT_MEASURED = "not measured yet"

_MINUTE, _HOUR, _DAY = 60, 3_600, 86_400


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def duration(seconds: float) -> str:
    """A span of time in the two largest units that matter: "45 s", "2 min 30 s", "12 min",
    "2 h 15 min", "3 d 4 h". Rounded to the smaller unit shown, never "60 min" or "24 h"."""
    seconds = max(0.0, seconds)
    if seconds < 1:
        return "under 1 s"
    if seconds < 10 * _MINUTE:
        total = round(seconds)
        if total < _MINUTE:
            return f"{total} s"
        minutes, rest = divmod(total, _MINUTE)
        return f"{minutes} min" + (f" {rest} s" if rest else "")
    if seconds < _HOUR:
        minutes = round(seconds / _MINUTE)
        if minutes < 60:
            return f"{minutes} min"
    if seconds < _DAY:
        hours, minutes = divmod(round(seconds / _MINUTE), 60)
        if hours < 24:
            return f"{hours} h" + (f" {minutes} min" if minutes else "")
    days, hours = divmod(round(seconds / _HOUR), 24)
    return f"{days} d" + (f" {hours} h" if hours else "")


def due(seconds: float | None, horizon: float = DEFAULT_HORIZON_SECONDS) -> str:
    """When something happens at the current rate: "now", "in 2 h 15 min", or "not at this
    rate" when it never does (None, infinite) or only beyond `horizon` seconds."""
    if not _finite(seconds) or seconds is None or seconds > horizon:
        return NOT_AT_THIS_RATE
    if seconds <= 0:
        return "now"
    return f"in {duration(seconds)}"


def horizon(now: datetime, closes_at: datetime | None) -> float:
    """Seconds that matter from `now`: until the window's close while it is open, else 30 days."""
    if closes_at is not None and closes_at > now:
        return (closes_at - now).total_seconds()
    return DEFAULT_HORIZON_SECONDS


def _number(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:,.1f}".removesuffix(".0")
    return f"{value:.2g}"


def rate(per_second: float | None, unit: str = "entries") -> str:
    """A rate: "1,234 entries/s", "2.5 entries/s", "0.4 entries/s", "none", "not measured yet"."""
    if not _finite(per_second) or per_second is None:
        return NOT_MEASURED
    if per_second <= 0:
        return "none"
    return f"{_number(per_second)} {unit}/s"


def count(value: float | None, unit: str = "entries") -> str:
    """A count with thousands separators and its unit as given: "12,345 entries"."""
    if not _finite(value) or value is None:
        return "unknown"
    return f"{value:,.0f} {unit}"


def ratio(value: float | None, *, arrivals: float | None, cap: float = HEADROOM_CAP) -> str:
    """Headroom (drain capacity over arrivals): "1.15×", "> 10× (ample)", "ample" when nothing
    arrives, "not measured yet" before a rate exists, "unknown" without a capacity figure."""
    if arrivals is None:
        return NOT_MEASURED
    if arrivals <= 0:
        return "ample (nothing arrives)"
    if not _finite(value) or value is None:
        return "unknown"
    if value >= cap:
        return f"> {cap:g}× (ample)"
    return f"{value:.2f}×"


def instant(moment: datetime) -> str:
    """A moment in Vietnam's time, where the exam and its deadlines live: "2026-06-01 17:00
    (UTC+07:00)"."""
    return f"{moment.astimezone(VIETNAM):%Y-%m-%d %H:%M} (UTC+07:00)"
