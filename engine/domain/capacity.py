"""The capacity forecast and the polite `Retry-After`: pure arithmetic over sampled counters.

Owns the model of docs/capacity.md: arrivals (entries added to the streams) against drain (entries
persisted and acknowledged), the backlog between them, Little's law for the wait a new entry faces,
the time until a shard reaches the shedding limit at the current trend, the backlog projected to the
window's close from the arrival curve so far, and how many writer processes and API workers the
measured per-process rates say are needed. No IO: callers (`engine.adapters.telemetry`,
`engine.http.ops`, `examreg capacity`) take the samples; everything here is testable on synthetic
series, including the deadline projection. The same figures in words:
`engine.domain.capacity_report`."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from engine.domain import display

# The projection integrates in at most this many steps: fine enough for a 10-day window at
# ~90 s resolution, cheap enough to run on every request.
_PROJECTION_STEPS = 10_000


@dataclass(frozen=True, slots=True)
class ShardSample:
    """One shard's stream at one instant, as Redis reports it."""

    shard: int
    added: int  # entries ever added (XINFO STREAM entries-added): the arrivals counter
    length: int  # entries in the stream: what the shedding limit is compared with
    backlog: int  # accepted, not yet persisted: group lag + pending


@dataclass(frozen=True, slots=True)
class Sample:
    """Everything the forecast needs from one instant.

    The process-side totals come from the metrics of the process tree (multiprocess mode); they are
    None where no metrics are at hand (e.g. `examreg capacity` on a host without the API). Only
    their ratios are used, so totals covering part of a multi-host deployment are still honest.
    """

    at: float  # epoch seconds
    shards: tuple[ShardSample, ...]
    writers: int  # writer processes that read a shard recently (distinct consumers)
    rows_persisted: float | None = None  # examreg_writer_rows_persisted_total
    batch_seconds: float | None = None  # examreg_writer_batch_duration_seconds_sum
    accepted: float | None = None  # examreg_submissions_accepted_total
    api_cpu_seconds: float | None = None  # examreg_api_cpu_seconds_total
    api_workers: int | None = None  # examreg_api_processes

    @property
    def arrivals(self) -> int:
        return sum(s.added for s in self.shards)

    @property
    def backlog(self) -> int:
        return sum(s.backlog for s in self.shards)

    @property
    def drained(self) -> int:
        """Entries that left the queue (persisted, or dead-lettered): arrivals minus backlog."""
        return self.arrivals - self.backlog


@dataclass(frozen=True, slots=True)
class Model:
    """The limits and targets the forecast is measured against."""

    shards: int
    max_backlog_per_shard: int
    closes_at: datetime | None
    target_seconds: float = 60.0  # accept-to-persist target for the recommendation
    rate_window: float = 60.0  # seconds of samples behind the "current" rates
    trend_window: float = 600.0  # seconds behind the arrival trend and the shard growth
    plan_horizon: float = 3600.0  # recommend for the rate expected this far ahead
    margin: float = 1.25  # headroom kept above the planned arrival rate
    api_utilisation: float = 0.7  # CPU share of a core an API worker is planned to use
    # A shard counts as growing only once its fitted line rises by this many entries over the
    # samples: writers trim after each commit, so a shard that keeps up holds the few entries in
    # flight, and one of them seen in the second of two samples is not a trend (it made
    # `examreg capacity --interval 10` print "time to limit 23 d 4 h" for a backlog of 2).
    min_growth_entries: float = 10.0


@dataclass(frozen=True, slots=True)
class Projection:
    """The backlog at the window's close if arrivals follow their trend and drain stays put."""

    closes_at: datetime
    seconds_to_close: float
    arrival_rate_now: float  # the trend line's value now, entries/s
    arrival_rate_at_close: float  # entries/s, never negative
    arrivals_until_close: float
    assumed_drain_rate: float  # entries/s the current writers are assumed to sustain
    backlog_at_close: float
    peak_backlog: float
    limit_reached_at: datetime | None  # when the projected backlog fills the shards, if it does


@dataclass(frozen=True, slots=True)
class Recommendation:
    """Processes needed to keep accept-to-persist under the target at the planned arrival rate."""

    target_seconds: float
    planned_arrival_rate: float  # entries/s: max(now, trend at the plan horizon)
    required_drain_rate: float  # margin × planned arrivals + backlog / target
    writer_capacity: float | None  # entries/s one writer process sustains (measured)
    writer_capacity_source: str  # "batch_time", "observed_drain" or "unknown"
    writers: int
    writers_needed: int | None
    more_writers: int | None
    api_cpu_per_accept: float | None  # API CPU seconds per accepted submission (today's mix)
    api_workers: int | None
    api_workers_needed: int | None
    more_api_workers: int | None


@dataclass(frozen=True, slots=True)
class Forecast:
    """The answer of `GET /api/v1/ops/capacity` and `examreg capacity`."""

    at: datetime
    samples: int
    span_seconds: float  # time covered by the samples behind the current rates
    arrival_rate: float | None  # entries/s
    drain_rate: float | None  # entries/s
    backlog: int
    backlog_limit: int  # the shedding limit over all shards
    expected_wait_seconds: float | None  # Little's law: backlog / drain rate
    time_to_drain_seconds: float | None  # at drain minus arrivals; None when it is not shrinking
    time_to_limit_seconds: float | None  # first shard to reach the limit at its current growth
    limit_shard: int | None
    headroom: float | None  # drain capacity / arrival rate
    projection: Projection | None
    recommendation: Recommendation
    notes: tuple[str, ...] = field(default_factory=tuple)
    # Events further away than this are "not at this rate": the window's close, else 30 days.
    horizon_seconds: float = display.DEFAULT_HORIZON_SECONDS

    def to_json(self) -> dict[str, Any]:
        """The raw numbers as plain JSON types; instants as ISO 8601 in UTC, durations in seconds
        (`engine.domain.capacity_report.to_json` adds the same figures in words)."""
        body: dict[str, Any] = _jsonable(asdict(self))
        return body


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# -- series arithmetic ---------------------------------------------------------------------------


def increase(values: Sequence[float]) -> float:
    """Growth of a counter over consecutive readings, a drop counting as a reset (as in PromQL)."""
    total = 0.0
    for before, after in itertools.pairwise(values):
        total += after - before if after >= before else after
    return total


def slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of y over x; 0 with fewer than two distinct x."""
    if len(points) < 2:
        return 0.0
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if spread == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread


def _within(samples: Sequence[Sample], seconds: float) -> list[Sample]:
    last = samples[-1].at
    return [s for s in samples if s.at >= last - seconds]


def _rate(samples: Sequence[Sample], read: Any) -> float | None:
    """Per-second increase of `read(sample)` over the samples; None if unknown."""
    values = [read(s) for s in samples]
    if len(samples) < 2 or any(v is None for v in values):
        return None
    span = samples[-1].at - samples[0].at
    return increase(values) / span if span > 0 else None


def _ratio(samples: Sequence[Sample], numerator: Any, denominator: Any) -> float | None:
    """Increase of one counter per unit increase of another (e.g. rows per batch-second)."""
    nums = [numerator(s) for s in samples]
    dens = [denominator(s) for s in samples]
    if len(samples) < 2 or any(v is None for v in (*nums, *dens)):
        return None
    grown = increase(dens)
    return increase(nums) / grown if grown > 0 else None


def arrival_trend(samples: Sequence[Sample]) -> tuple[float, float] | None:
    """(rate now, change of rate per second) from a line fitted to the interval arrival rates.

    Fitting the rates (not the cumulative curve) lets a deadline rush show as a rising line; each
    interval's rate is placed at its midpoint and the fitted line is read at the last sample.
    """
    points = []
    for before, after in itertools.pairwise(samples):
        span = after.at - before.at
        if span > 0:
            grown = increase([before.arrivals, after.arrivals])
            points.append(((before.at + after.at) / 2 - samples[-1].at, grown / span))
    if not points:
        return None
    change = slope(points)
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    return max(0.0, mean_y - change * mean_x), change


# -- the forecast -----------------------------------------------------------------------------


def time_to_limit(
    samples: Sequence[Sample], limit: int, *, min_rise: float = 0.0
) -> tuple[float | None, int | None]:
    """Seconds until the first shard's length reaches `limit` at its fitted growth, and which.

    0 when a shard is at the limit already; None when no shard is growing, i.e. no shard's fitted
    line rises by more than `min_rise` entries over the samples (entries in flight are not growth).
    """
    last = samples[-1]
    span = last.at - samples[0].at
    best: tuple[float | None, int | None] = (None, None)
    for shard in last.shards:
        if shard.length >= limit:
            return 0.0, shard.shard
        points = [
            (s.at - last.at, float(x.length))
            for s in samples
            for x in s.shards
            if x.shard == shard.shard
        ]
        growth = slope(points)
        if growth > 0 and growth * span >= min_rise:
            seconds = (limit - shard.length) / growth
            if best[0] is None or seconds < best[0]:
                best = (seconds, shard.shard)
    return best


def project(
    *,
    now: datetime,
    closes_at: datetime,
    backlog: float,
    rate_now: float,
    rate_change: float,
    drain_rate: float,
    limit_total: float,
) -> Projection:
    """Integrate d(backlog)/dt = arrivals(t) − drain, arrivals(t) = max(0, rate_now + change·t).

    The backlog never goes below zero (idle writers do not bank capacity for later).
    """
    horizon = max(0.0, (closes_at - now).total_seconds())
    steps = max(1, min(_PROJECTION_STEPS, math.ceil(horizon / 60)))
    dt = horizon / steps
    level = peak = float(backlog)
    arrived = 0.0
    reached: datetime | None = now if backlog >= limit_total else None
    for i in range(steps):
        # Midpoint rate: exact for the linear part of the arrival line.
        rate = max(0.0, rate_now + rate_change * (i + 0.5) * dt)
        arrived += rate * dt
        level = max(0.0, level + (rate - drain_rate) * dt)
        peak = max(peak, level)
        if reached is None and level >= limit_total:
            reached = now + timedelta(seconds=(i + 1) * dt)
    return Projection(
        closes_at=closes_at,
        seconds_to_close=horizon,
        arrival_rate_now=rate_now,
        arrival_rate_at_close=max(0.0, rate_now + rate_change * horizon),
        arrivals_until_close=arrived,
        assumed_drain_rate=drain_rate,
        backlog_at_close=level,
        peak_backlog=peak,
        limit_reached_at=reached,
    )


def _writer_capacity(
    history: Sequence[Sample], drain: float | None, writers: int
) -> tuple[float | None, str]:
    """Entries/s one writer process sustains, and where the figure comes from.

    Rows per second of batch-writing time is what a writer achieves while busy; a process whose
    shard loops overlap their database waits does better, which the observed drain per writer
    then shows. The larger of the two is a measured lower bound of the true capacity. Batch time
    is read over the whole trend window: capacity belongs to the writers, not to the last
    minute's load, and a quiet minute must not make it unknown.
    """
    per_busy_second = _ratio(history, lambda s: s.rows_persisted, lambda s: s.batch_seconds)
    per_writer = drain / writers if drain and writers else None
    if per_busy_second is not None and (per_writer is None or per_busy_second >= per_writer):
        return per_busy_second, "batch_time"
    if per_writer is not None:
        return per_writer, "observed_drain"
    return None, "unknown"


def recommend(
    *,
    model: Model,
    arrival_rate: float,
    planned_rate: float,
    backlog: int,
    writers: int,
    writer_capacity: float | None,
    writer_capacity_source: str,
    api_cpu_per_accept: float | None,
    api_workers: int | None,
) -> Recommendation:
    """How many writers and API workers the measured rates call for.

    To keep accept-to-persist under T an entry arriving now must be persisted within T: the
    writers must clear today's backlog B within T while keeping up with arrivals λ, so the drain
    must reach margin·λ + B/T (docs/capacity.md). API workers scale with the CPU each accepted
    submission costs; a worker is planned at `api_utilisation` of one core.
    """
    required = model.margin * max(arrival_rate, planned_rate) + backlog / model.target_seconds
    writers_needed = more_writers = None
    if writer_capacity:
        writers_needed = max(1, math.ceil(required / writer_capacity)) if required > 0 else writers
        more_writers = max(0, writers_needed - writers)
    elif writers == 0 and required > 0:
        writers_needed, more_writers = 1, 1  # nothing drains: at least one writer, whatever else
    api_needed = more_api = None
    if api_cpu_per_accept:
        per_worker = model.api_utilisation / api_cpu_per_accept
        api_needed = max(1, math.ceil(model.margin * planned_rate / per_worker))
        if api_workers is not None:
            more_api = max(0, api_needed - api_workers)
    return Recommendation(
        target_seconds=model.target_seconds,
        planned_arrival_rate=planned_rate,
        required_drain_rate=required,
        writer_capacity=writer_capacity,
        writer_capacity_source=writer_capacity_source,
        writers=writers,
        writers_needed=writers_needed,
        more_writers=more_writers,
        api_cpu_per_accept=api_cpu_per_accept,
        api_workers=api_workers,
        api_workers_needed=api_needed,
        more_api_workers=more_api,
    )


def _deadline(
    model: Model,
    now: datetime,
    trend_samples: Sequence[Sample],
    arrival: float | None,
    *,
    backlog: int,
    rate_now: float,
    rate_change: float,
    drain_rate: float,
    notes: list[str],
) -> Projection | None:
    """The projection to the close, or None with a note saying why there is none."""
    if model.closes_at is None:
        notes.append("EXAMREG_CLOSES_AT is not set: no deadline projection")
        return None
    if model.closes_at <= now:
        notes.append("the window has closed: no deadline projection")
        return None
    if arrival is None:
        notes.append("no arrival rate yet: no deadline projection")
        return None
    projection = project(
        now=now,
        closes_at=model.closes_at,
        backlog=backlog,
        rate_now=rate_now,
        rate_change=rate_change,
        drain_rate=drain_rate,
        limit_total=model.max_backlog_per_shard * model.shards,
    )
    history = trend_samples[-1].at - trend_samples[0].at
    if projection.seconds_to_close > 10 * max(history, 1.0):
        notes.append(
            f"the close is {projection.seconds_to_close / 3600:.1f} h away but the trend rests "
            f"on {history / 60:.0f} min of samples: read the projection as a trend, not a plan"
        )
    return projection


def forecast(samples: Sequence[Sample], model: Model) -> Forecast:
    """The capacity picture at the last sample.

    Args:
        samples: snapshots in time order (a ring of recent ones; two a few seconds apart suffice
            for rates, the trend and the projection improve with more).
        model: limits, the window's close and the targets.

    Raises:
        ValueError: no samples at all.
    """
    if not samples:
        raise ValueError("the forecast needs at least one sample")
    notes: list[str] = []
    last = samples[-1]
    now = datetime.fromtimestamp(last.at, UTC)
    recent = _within(samples, model.rate_window)
    trend_samples = _within(samples, model.trend_window)
    arrival = _rate(recent, lambda s: s.arrivals)
    drain = _rate(recent, lambda s: s.drained)
    if arrival is None:
        notes.append("one sample only: rates need a second one a few seconds later")
    backlog = last.backlog
    limit_total = model.max_backlog_per_shard * model.shards

    expected_wait = time_to_drain = None
    if backlog == 0:
        expected_wait = time_to_drain = 0.0
    elif drain:
        expected_wait = backlog / drain
        if arrival is not None and drain > arrival:
            time_to_drain = backlog / (drain - arrival)
    ttl, limit_shard = time_to_limit(
        trend_samples, model.max_backlog_per_shard, min_rise=model.min_growth_entries
    )

    capacity, source = _writer_capacity(trend_samples, drain, last.writers)
    if source == "unknown" and last.backlog:
        notes.append("writer capacity unknown: no batch timings and nothing drained")
    total_capacity = capacity * last.writers if capacity is not None else None
    headroom = (
        max(total_capacity, drain or 0.0) / arrival
        if total_capacity is not None and arrival
        else None
    )

    trend = arrival_trend(trend_samples)
    rate_now, rate_change = trend if trend is not None else (arrival or 0.0, 0.0)
    projection = _deadline(
        model,
        now,
        trend_samples,
        arrival,
        backlog=backlog,
        rate_now=rate_now,
        rate_change=rate_change,
        drain_rate=max(total_capacity or 0.0, drain or 0.0),
        notes=notes,
    )

    horizon = model.plan_horizon
    if model.closes_at is not None and model.closes_at > now:
        horizon = min(horizon, (model.closes_at - now).total_seconds())
    planned = max(arrival or 0.0, rate_now + rate_change * horizon, 0.0)
    recommendation = recommend(
        model=model,
        arrival_rate=arrival or 0.0,
        planned_rate=planned,
        backlog=backlog,
        writers=last.writers,
        writer_capacity=capacity,
        writer_capacity_source=source,
        api_cpu_per_accept=_ratio(recent, lambda s: s.api_cpu_seconds, lambda s: s.accepted),
        api_workers=last.api_workers,
    )
    if recommendation.api_cpu_per_accept is None:
        notes.append("API cost per submission unknown: no API metrics or no accepted submissions")
    return Forecast(
        at=now,
        samples=len(samples),
        span_seconds=recent[-1].at - recent[0].at,
        arrival_rate=arrival,
        drain_rate=drain,
        backlog=backlog,
        backlog_limit=limit_total,
        expected_wait_seconds=expected_wait,
        time_to_drain_seconds=time_to_drain,
        time_to_limit_seconds=ttl,
        limit_shard=limit_shard,
        headroom=headroom,
        projection=projection,
        recommendation=recommendation,
        notes=tuple(notes),
        horizon_seconds=display.horizon(now, model.closes_at),
    )


# -- polite overload ------------------------------------------------------------------------------


def retry_after(
    *,
    excess: float,
    drain_rate: float | None,
    floor: int,
    ceiling: int = 120,
    jitter: float = 0.5,
    rng: random.Random,
) -> int:
    """Seconds a refused client should wait before retrying, for a `Retry-After` header.

    The wait is the time the writers need to persist `excess` entries at `drain_rate`, never less
    than `floor`, then stretched by a random factor in [1, 1 + jitter] so the refused clients do
    not all come back in the same second. Nothing draining (writers down) means a long wait; an
    unknown drain rate (no samples yet) means the configured floor.

    Args:
        excess: entries that must be persisted before there is room again.
        drain_rate: entries/s the writers currently persist from that backlog, if known.
        floor: the shortest wait (EXAMREG_RETRY_AFTER_SECONDS).
        ceiling: the longest wait ever advised.
        jitter: how far above the computed wait a client may be sent.
        rng: the randomness (seeded in tests).
    """
    if drain_rate is None:
        wait = float(floor)
    elif drain_rate <= 0:
        wait = float(ceiling)
    else:
        wait = max(float(floor), excess / drain_rate)
    wait *= 1 + jitter * rng.random()
    return max(1, min(ceiling, math.ceil(wait)))
