"""Unit tests of `engine.domain.capacity_report`: the forecast in words, once for both surfaces,
the `display` object of `GET /api/v1/ops/capacity` (beside the raw numbers) and the page
`examreg capacity` prints. Synthetic series come from test_capacity.py."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import orjson

from engine.domain.capacity import Sample, ShardSample, forecast
from engine.domain.capacity_report import figures, report, to_json
from tests.unit.domain.test_capacity import NOW, _ramp_forecast, model, series


def one_shard(
    arrivals: Callable[[float], float],
    backlog: Callable[[float], float],
    *,
    writers: int = 1,
    rows_per_busy_second: float | None = None,
) -> list[Sample]:
    """Ten minutes of samples every 5 s of a single shard (no rounding over eight shards)."""
    samples = []
    for k in range(121):
        t = -600 + 5 * k
        added, waiting = round(arrivals(t)), round(backlog(t))
        drained = float(added - waiting)
        samples.append(
            Sample(
                at=NOW + t,
                shards=(ShardSample(0, added, waiting, waiting),),
                writers=writers,
                rows_persisted=drained if rows_per_busy_second else None,
                batch_seconds=drained / rows_per_busy_second if rows_per_busy_second else None,
            )
        )
    return samples


def test_the_report_reads_as_a_page_for_operators() -> None:
    text = report(_ramp_forecast())
    # The current rate is the last minute's average: 100/s now, 98.5/s over the minute.
    assert "arrivals        98.5 entries/s" in text
    assert "window closes" in text
    # Crossed ≈2,930 s from now (test_capacity's closed form), shown as the wait and the moment.
    assert "shedding limit reached: in 49 min, 2026-05-29 04:15 (UTC+07:00)" in text
    assert "writers       2 running, 6 needed: add 4" in text
    assert "API workers   1 running, 2 needed: add 1" in text
    quiet = report(forecast(series(seconds=0, arrivals=lambda t: 0), model()))
    assert "needed unknown" in quiet and "EXAMREG_CLOSES_AT is not set" in quiet


def test_the_json_carries_the_raw_numbers_and_their_display_beside_them() -> None:
    f = _ramp_forecast()
    body = orjson.loads(orjson.dumps(to_json(f)))
    raw = orjson.loads(orjson.dumps(f.to_json()))
    assert {k: v for k, v in body.items() if k != "display"} == raw
    shown = body["display"]
    assert shown["arrival_rate"] == "98.5 entries/s"
    assert shown["headroom"] == "1.22×"
    assert shown["time_to_limit"] == "not at this rate"
    assert shown["horizon"] == "1 h, the window's close"
    assert shown["projection"]["closes_at"] == "2026-05-29 04:26 (UTC+07:00)"
    assert shown["projection"]["closes_in"] == "in 1 h"
    assert shown["projection"]["backlog_at_close"] == "256,089 entries"
    assert shown["recommendation"]["writers"] == "2 running, 6 needed: add 4"
    assert shown["recommendation"]["target"] == "1 min"


def test_a_far_off_time_to_the_limit_is_not_at_this_rate() -> None:
    # One shard grows 0.5 entries/s towards 200,000 (a noisy idle system): ~4.6 days away.
    samples = series(arrivals=lambda t: 1_000_000 + 100 * t, backlog=lambda t: 40_000 + 4 * t)
    far = forecast(samples, model())
    assert far.time_to_limit_seconds is not None and far.time_to_limit_seconds > 4 * 86_400
    assert figures(far)["time_to_limit"].startswith("in 4 d")  # within 30 days: shown
    closes = datetime.fromtimestamp(NOW, UTC) + timedelta(days=2)
    near_close = forecast(samples, model(closes_at=closes))
    # The window closes first: the limit is never reached at this rate.
    assert figures(near_close)["time_to_limit"] == "not at this rate"
    assert "time to limit   not at this rate" in report(near_close)


def test_a_quiet_system_reads_idle_and_ample_not_as_silly_numbers() -> None:
    # 100/s for nine minutes, then nothing for a minute: the writers' capacity still stands.
    samples = series(arrivals=lambda t: 1_000_000 + 100 * min(t, -60), rows_per_busy_second=500)
    shown = figures(forecast(samples, model()))
    assert shown["drain_rate"] == "idle"
    assert shown["arrival_rate"] == "none"
    assert shown["headroom"] == "ample (nothing arrives)"
    assert shown["expected_wait"] == "none: nothing waits"
    assert shown["time_to_drain"] == "nothing to drain"
    assert shown["horizon"] == "30 d (no window's close ahead)"


def test_a_quiet_minute_after_a_spike_caps_the_headroom() -> None:
    # 0.05 entries/s arrive, the writer could do 1,000/s: 20,000× is shown as ample.
    samples = one_shard(lambda t: 1_000 + 0.05 * t, lambda t: 0, rows_per_busy_second=1_000)
    f = forecast(samples, model(shards=1))
    assert f.headroom is not None and f.headroom > 10_000
    assert figures(f)["headroom"] == "> 10× (ample)"
    assert "headroom        > 10× (ample)" in report(f)


def test_before_a_second_sample_rates_and_waits_are_not_measured_yet() -> None:
    one = forecast([Sample(at=NOW, shards=(ShardSample(0, 50, 2, 2),), writers=1)], model())
    shown = figures(one)
    assert shown["arrival_rate"] == shown["drain_rate"] == "not measured yet"
    assert shown["expected_wait"] == shown["time_to_drain"] == "not measured yet"
    assert shown["headroom"] == "not measured yet"
    assert "(1 sample)" in report(one)


def test_a_backlog_that_does_not_drain_is_not_a_number_of_days() -> None:
    # Two entries wait and nothing drained in the last minute (no writer): no silly wait.
    stuck = one_shard(lambda t: 1_000, lambda t: 2, writers=0)
    shown = figures(forecast(stuck, model(shards=1)))
    assert shown["expected_wait"] == "not at this rate: nothing drains"
    assert shown["time_to_drain"] == "not at this rate"
    # A trickle that drains: the wait for two entries is seconds.
    trickle = forecast(one_shard(lambda t: 1_000 + 0.5 * t, lambda t: 2), model(shards=1))
    assert trickle.expected_wait_seconds is not None and trickle.expected_wait_seconds < 10
    assert figures(trickle)["expected_wait"] == "4 s"
