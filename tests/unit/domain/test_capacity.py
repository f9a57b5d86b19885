"""Unit tests of `engine.domain.capacity`: the forecast's arithmetic on synthetic series (rates,
Little's law, time to the shedding limit, the deadline projection against its closed form, the
recommendation), the computed Retry-After, and the raw JSON. The figures in words are tested in
test_capacity_report.py."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from engine.domain.capacity import (
    Forecast,
    Model,
    Sample,
    ShardSample,
    forecast,
    increase,
    project,
    retry_after,
    slope,
)

NOW = 1_780_000_000.0  # 2026-05-28 20:26:40 UTC, epoch seconds
SHARDS = 8


def series(
    *,
    seconds: float = 600,
    every: float = 5,
    arrivals: Callable[[float], float],
    backlog: Callable[[float], float] = lambda t: 0.0,
    writers: int = 2,
    rows_per_busy_second: float | None = None,
    cpu_per_accept: float | None = None,
    api_workers: int | None = None,
) -> list[Sample]:
    """Samples ending at NOW: `arrivals(t)` and `backlog(t)` are totals at t seconds before NOW
    (t ≤ 0), spread evenly over the shards; drained = arrivals − backlog."""
    samples = []
    steps = int(seconds / every)
    for k in range(steps + 1):
        t = -seconds + k * every
        added, waiting = arrivals(t), backlog(t)
        shards = tuple(
            ShardSample(s, round(added / SHARDS), round(waiting / SHARDS), round(waiting / SHARDS))
            for s in range(SHARDS)
        )
        drained = sum(x.added - x.backlog for x in shards)
        accepted = float(sum(x.added for x in shards))
        samples.append(
            Sample(
                at=NOW + t,
                shards=shards,
                writers=writers,
                rows_persisted=float(drained) if rows_per_busy_second else None,
                batch_seconds=drained / rows_per_busy_second if rows_per_busy_second else None,
                accepted=accepted if cpu_per_accept else None,
                api_cpu_seconds=accepted * cpu_per_accept if cpu_per_accept else None,
                api_workers=api_workers,
            )
        )
    return samples


def model(**changes: object) -> Model:
    values: dict[str, object] = {
        "shards": SHARDS,
        "max_backlog_per_shard": 200_000,
        "closes_at": None,
    }
    values.update(changes)
    return Model(**values)  # type: ignore[arg-type]


# -- series arithmetic ---------------------------------------------------------------------------


def test_increase_treats_a_drop_as_a_counter_reset() -> None:
    assert increase([10, 20, 35]) == 25
    # Redis restarted from an empty stream: 40 → 5 counts the 5 after the reset, never −35.
    assert increase([10, 40, 5, 12]) == 30 + 5 + 7


def test_slope_is_exact_on_a_line_and_zero_without_spread() -> None:
    assert slope([(0, 1), (1, 3), (2, 5)]) == pytest.approx(2)
    assert slope([(1, 1), (1, 5)]) == 0
    assert slope([(0, 7)]) == 0


# -- current rates, Little's law, time to drain and to the limit --------------------------------


def test_a_steady_system_keeps_up_with_no_backlog_and_no_limit_in_sight() -> None:
    f = forecast(series(arrivals=lambda t: 1_000_000 + 100 * t, rows_per_busy_second=500), model())
    assert f.arrival_rate == pytest.approx(100, rel=0.01)
    assert f.drain_rate == pytest.approx(100, rel=0.01)
    assert f.backlog == 0
    assert f.expected_wait_seconds == 0 and f.time_to_drain_seconds == 0
    assert f.time_to_limit_seconds is None and f.limit_shard is None
    # 500 rows per busy second × 2 writers against 100 arrivals per second.
    assert f.headroom == pytest.approx(10, rel=0.01)
    assert f.recommendation.writer_capacity_source == "batch_time"
    assert f.recommendation.more_writers == 0


def test_a_growing_backlog_gives_littles_law_wait_and_the_time_to_the_limit() -> None:
    # 150/s arrive, 100/s drain: the backlog grows by 50/s from 40,000.
    f = forecast(
        series(arrivals=lambda t: 1_000_000 + 150 * t, backlog=lambda t: 40_000 + 50 * t),
        model(),
    )
    assert f.arrival_rate == pytest.approx(150, rel=0.01)
    assert f.drain_rate == pytest.approx(100, rel=0.01)
    assert f.backlog == 40_000
    assert f.expected_wait_seconds == pytest.approx(400, rel=0.01)  # W = L / μ
    assert f.time_to_drain_seconds is None  # not shrinking
    # Each shard holds 5,000 and grows 6.25/s towards 200,000.
    assert f.time_to_limit_seconds == pytest.approx((200_000 - 5_000) / 6.25, rel=0.01)
    assert f.headroom is not None and f.headroom < 1


def test_a_shrinking_backlog_is_gone_after_backlog_over_net_drain() -> None:
    f = forecast(
        series(arrivals=lambda t: 1_000_000 + 100 * t, backlog=lambda t: 60_000 - 200 * t),
        model(),
    )
    assert f.drain_rate == pytest.approx(300, rel=0.01)
    assert f.time_to_drain_seconds == pytest.approx(60_000 / 200, rel=0.01)


def test_a_shard_at_the_limit_has_no_time_left() -> None:
    samples = series(arrivals=lambda t: 1_000 + 10 * t)
    last = samples[-1]
    full = tuple(
        ShardSample(s.shard, s.added, 200_000 if s.shard == 3 else s.length, s.backlog)
        for s in last.shards
    )
    samples[-1] = Sample(at=last.at, shards=full, writers=last.writers)
    f = forecast(samples, model())
    assert (f.time_to_limit_seconds, f.limit_shard) == (0.0, 3)


def test_one_entry_in_flight_does_not_make_a_shard_grow() -> None:
    # `examreg capacity --interval 10` on an idle demo: the second sample caught one entry
    # between its XADD and the writer's trim. A fitted growth of 1 entry per 10 s put the limit
    # "23 d 4 h" away; a rise of one entry is not a trend.
    quiet = ShardSample(4, 100, 0, 0)
    caught = ShardSample(4, 101, 1, 1)
    samples = [
        Sample(at=NOW - 10.02, shards=(quiet,), writers=1),
        Sample(at=NOW, shards=(caught,), writers=1),
    ]
    f = forecast(samples, model(shards=1))
    assert (f.time_to_limit_seconds, f.limit_shard) == (None, None)
    # A real rise over the same ten seconds still counts (a stuck shard filling at 2/s).
    filling = Sample(at=NOW, shards=(ShardSample(4, 120, 20, 20),), writers=1)
    f = forecast([samples[0], filling], model(shards=1))
    assert f.limit_shard == 4
    assert f.time_to_limit_seconds == pytest.approx((200_000 - 20) / (20 / 10.02))


def test_one_sample_gives_the_backlog_but_no_rates() -> None:
    f = forecast(series(seconds=0, arrivals=lambda t: 500, backlog=lambda t: 80), model())
    assert f.backlog == 80
    assert f.arrival_rate is None and f.drain_rate is None
    assert any("second one" in note for note in f.notes)


def test_no_sample_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one sample"):
        forecast([], model())


def test_a_redis_restart_does_not_make_rates_negative() -> None:
    samples = series(seconds=60, arrivals=lambda t: 10_000 + 100 * t)
    # From the 7th sample on, entries-added restarts from zero (a new, empty Redis).
    restarted = [
        s
        if i < 6
        else Sample(
            at=s.at,
            shards=tuple(ShardSample(x.shard, x.added - 10_000 // SHARDS, 0, 0) for x in s.shards),
            writers=2,
        )
        for i, s in enumerate(samples)
    ]
    f = forecast(restarted, model())
    assert f.arrival_rate is not None and f.arrival_rate > 0


# -- the deadline projection ---------------------------------------------------------------------


def test_the_projection_matches_the_closed_form_of_a_deadline_ramp() -> None:
    # Arrivals ramp up 0.05/s every second: 100/s now, 280/s at the close an hour from now. The
    # two writers can do 60/s each (120/s). The backlog starts growing once arrivals pass 120/s,
    # 400 s from now, and reaches ∫_400^3600 (0.05t − 20) dt = 256,000 at the close; 684,000
    # more arrive until then. Spread over 8 shards of 20,000 the limit (160,000) is hit where
    # 0.025t² − 20t + 4,000 = 160,000, i.e. t² − 800t − 6,240,000 = 0: t ≈ 2,929.8 s.
    samples = series(
        arrivals=lambda t: 1_000_000 + 100 * t + 0.025 * t * t, rows_per_busy_second=60
    )
    closes = datetime.fromtimestamp(NOW, UTC) + timedelta(hours=1)
    f = forecast(samples, model(closes_at=closes, max_backlog_per_shard=20_000))
    p = f.projection
    assert p is not None
    assert p.seconds_to_close == pytest.approx(3600)
    assert p.arrival_rate_now == pytest.approx(100, rel=0.01)
    assert p.arrival_rate_at_close == pytest.approx(280, rel=0.01)
    assert p.assumed_drain_rate == pytest.approx(120, rel=0.01)
    assert p.arrivals_until_close == pytest.approx(684_000, rel=0.01)
    assert p.backlog_at_close == pytest.approx(256_000, rel=0.02)
    assert p.peak_backlog == pytest.approx(p.backlog_at_close)
    assert p.limit_reached_at is not None
    reached = (p.limit_reached_at - datetime.fromtimestamp(NOW, UTC)).total_seconds()
    # Integrated in one-minute steps: the crossing is found within a step.
    assert reached == pytest.approx((800 + math.sqrt(800**2 + 4 * 6_240_000)) / 2, abs=60)
    # Nothing is shed yet and the queue is empty now: the forecast is what warns.
    assert f.backlog == 0 and f.time_to_limit_seconds is None


def test_a_falling_arrival_rate_drains_the_backlog_before_the_close() -> None:
    # 200/s falling 0.1/s each second against 150/s of drain: the backlog of 10,000 grows for
    # 500 s (by 12,500), then shrinks to zero and stays there (writers bank nothing).
    p = project(
        now=datetime.fromtimestamp(NOW, UTC),
        closes_at=datetime.fromtimestamp(NOW + 6 * 3600, UTC),
        backlog=10_000,
        rate_now=200,
        rate_change=-0.1,
        drain_rate=150,
        limit_total=1_600_000,
    )
    assert p.peak_backlog == pytest.approx(22_500, rel=0.01)
    assert p.backlog_at_close == 0
    assert p.arrival_rate_at_close == 0  # clamped, never negative
    assert p.arrivals_until_close == pytest.approx(200 * 2000 / 2, rel=0.01)
    assert p.limit_reached_at is None


def test_without_a_close_or_after_it_there_is_no_projection_and_the_answer_says_why() -> None:
    samples = series(arrivals=lambda t: 1_000 + 10 * t)
    f = forecast(samples, model())
    assert f.projection is None
    assert any("EXAMREG_CLOSES_AT is not set" in note for note in f.notes)
    past = datetime.fromtimestamp(NOW, UTC) - timedelta(minutes=1)
    f = forecast(samples, model(closes_at=past))
    assert f.projection is None
    assert any("closed" in note for note in f.notes)


def test_a_close_far_beyond_the_history_is_flagged_as_a_trend() -> None:
    samples = series(arrivals=lambda t: 1_000 + 10 * t)
    closes = datetime.fromtimestamp(NOW, UTC) + timedelta(days=5)
    f = forecast(samples, model(closes_at=closes))
    assert f.projection is not None
    assert any("trend, not a plan" in note for note in f.notes)


# -- the recommendation ---------------------------------------------------------------------------


def test_the_recommendation_plans_for_the_ramp_an_hour_ahead() -> None:
    samples = series(
        arrivals=lambda t: 1_000_000 + 100 * t + 0.025 * t * t,
        rows_per_busy_second=60,
        cpu_per_accept=0.003,
        api_workers=1,
    )
    closes = datetime.fromtimestamp(NOW, UTC) + timedelta(hours=1)
    r = forecast(samples, model(closes_at=closes)).recommendation
    # Planned: 280/s at the close; required drain 1.25 × 280 = 350/s; 60/s per writer → 6.
    assert r.planned_arrival_rate == pytest.approx(280, rel=0.01)
    assert r.required_drain_rate == pytest.approx(350, rel=0.01)
    assert r.writer_capacity == pytest.approx(60, rel=0.01)
    assert (r.writers, r.writers_needed, r.more_writers) == (2, 6, 4)
    # 3 ms of API CPU per submission, 70% of a core per worker: 233/s each → 2 workers.
    assert r.api_cpu_per_accept == pytest.approx(0.003, rel=0.01)
    assert (r.api_workers, r.api_workers_needed, r.more_api_workers) == (1, 2, 1)


def test_the_backlog_adds_what_clearing_it_within_the_target_takes() -> None:
    # Saturated writers (no batch timings): 2 writers drain 100/s, i.e. 50/s each. 12,000 wait;
    # clearing them within 60 s takes 200/s on top of 1.25 × 150/s of arrivals.
    samples = series(
        arrivals=lambda t: 1_000_000 + 150 * t, backlog=lambda t: 12_000 + 50 * t, writers=2
    )
    r = forecast(samples, model(target_seconds=60)).recommendation
    assert r.writer_capacity_source == "observed_drain"
    assert r.writer_capacity == pytest.approx(50, rel=0.01)
    assert r.required_drain_rate == pytest.approx(1.25 * 150 + 12_000 / 60, rel=0.01)
    assert r.writers_needed == math.ceil(r.required_drain_rate / r.writer_capacity)
    assert r.more_writers == r.writers_needed - 2


def test_a_quiet_last_minute_keeps_the_capacity_measured_before() -> None:
    # 100/s for nine minutes, then nothing: the writers' 500 rows per busy second still stand.
    samples = series(arrivals=lambda t: 1_000_000 + 100 * min(t, -60), rows_per_busy_second=500)
    f = forecast(samples, model())
    assert f.arrival_rate == 0
    assert f.recommendation.writer_capacity == pytest.approx(500, rel=0.01)
    assert f.recommendation.writer_capacity_source == "batch_time"


def test_with_no_writer_at_all_at_least_one_is_needed() -> None:
    samples = series(arrivals=lambda t: 1_000 + 10 * t, backlog=lambda t: 1_000 + 10 * t, writers=0)
    f = forecast(samples, model())
    assert f.drain_rate == pytest.approx(0, abs=0.01)
    assert f.recommendation.writer_capacity_source == "unknown"
    assert (f.recommendation.writers_needed, f.recommendation.more_writers) == (1, 1)
    assert any("writer capacity unknown" in note for note in f.notes)


# -- Retry-After --------------------------------------------------------------------------------


def test_retry_after_is_the_time_to_make_room_stretched_by_jitter() -> None:
    waits = {
        retry_after(excess=20_000, drain_rate=1_000, floor=5, rng=random.Random(seed))
        for seed in range(200)
    }
    # 20,000 entries at 1,000/s: 20 s, spread over [20, 30] so retries do not arrive together.
    assert min(waits) >= 20 and max(waits) <= 30
    assert len(waits) >= 8


def test_retry_after_respects_the_floor_and_the_ceiling() -> None:
    rng = random.Random(1)
    assert 5 <= retry_after(excess=10, drain_rate=1_000, floor=5, rng=rng) <= 8
    assert retry_after(excess=10**9, drain_rate=1, floor=5, rng=rng) == 120
    assert retry_after(excess=0, drain_rate=1_000, floor=1, jitter=0, rng=rng) == 1


def test_retry_after_without_drain_sends_clients_away_longest() -> None:
    rng = random.Random(2)
    # Writers down: nothing will make room soon.
    assert retry_after(excess=100, drain_rate=0, floor=5, rng=rng) == 120
    # No samples yet: the configured value, jittered.
    assert 5 <= retry_after(excess=100, drain_rate=None, floor=5, rng=rng) <= 8


def test_retry_after_is_reproducible_with_a_seeded_rng() -> None:
    first = [retry_after(excess=5_000, drain_rate=300, floor=5, rng=random.Random(9)) for _ in "ab"]
    assert first[0] == first[1]


# -- renderings ---------------------------------------------------------------------------------


def _ramp_forecast() -> Forecast:
    samples = series(
        arrivals=lambda t: 1_000_000 + 100 * t + 0.025 * t * t,
        backlog=lambda t: 0,
        rows_per_busy_second=60,
        cpu_per_accept=0.003,
        api_workers=1,
    )
    closes = datetime.fromtimestamp(NOW, UTC) + timedelta(hours=1)
    return forecast(samples, model(closes_at=closes, max_backlog_per_shard=20_000))


def test_the_json_is_plain_and_finite() -> None:
    body = _ramp_forecast().to_json()
    decoded = orjson.loads(orjson.dumps(body))
    assert decoded["at"] == datetime.fromtimestamp(NOW, UTC).isoformat()
    assert decoded["projection"]["closes_at"].endswith("+00:00")
    assert decoded["recommendation"]["more_writers"] == 4
    assert decoded["backlog_limit"] == 160_000
    assert set(decoded) >= {
        "arrival_rate",
        "drain_rate",
        "backlog",
        "time_to_drain_seconds",
        "time_to_limit_seconds",
        "projection",
        "recommendation",
        "notes",
    }
