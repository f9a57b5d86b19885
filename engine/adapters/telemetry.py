"""Samples for the capacity forecast: Redis facts and process totals, taken every few seconds.

Owns reading what `engine.domain.capacity` computes from: per shard the stream's `entries-added`
(arrivals ever), length and backlog (group lag + pending), the writer consumers seen recently,
and the process tree's metric totals (rows persisted, batch time, accepted submissions, API CPU).
Redis facts are global, so every API process sees the same arrivals and drain however many
processes or hosts serve; the metric totals are only used as ratios. `Sampler` keeps a ring of
samples in each API process, refreshes the per-process gauges (pool, CPU, liveness) and answers
`Retry-After` for shed requests from the latest sample without touching Redis.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, multiprocess
from redis.exceptions import RedisError

from engine.adapters import metrics, streams
from engine.adapters.backend import Redis
from engine.domain import capacity
from engine.settings import Settings

log = logging.getLogger("examreg.telemetry")

SAMPLE_SECONDS = 5.0
RING_SECONDS = 3600.0
# A writer blocked in XREADGROUP touches its consumer every EXAMREG_WRITER_BLOCK_MS; one not seen
# for this long (and at least three block periods) is taken for gone.
WRITER_SEEN_SECONDS = 15.0

_TOTALS = {
    "examreg_writer_rows_persisted_total": "rows_persisted",
    "examreg_writer_batch_duration_seconds_sum": "batch_seconds",
    "examreg_submissions_accepted_total": "accepted",
    "examreg_api_cpu_seconds_total": "api_cpu_seconds",
    "examreg_api_processes": "api_workers",
}


async def redis_sample(
    client: Redis, shards: int, *, writer_seen_ms: int
) -> tuple[tuple[capacity.ShardSample, ...], int]:
    """Every shard's arrivals, length and backlog, and the writers seen recently (one pipeline,
    `streams.read_shards`)."""
    facts = await streams.read_shards(client, shards, writer_seen_ms=writer_seen_ms)
    samples = tuple(capacity.ShardSample(f.shard, f.added, f.length, f.backlog) for f in facts)
    return samples, streams.writers_of(facts)


def process_totals(directory: Path | None = None) -> dict[str, float]:
    """Totals of the process tree's metrics that the forecast uses (see `_TOTALS`).

    Args:
        directory: a multiprocess metrics directory to read; by default PROMETHEUS_MULTIPROC_DIR
            when set (the whole process tree), else this process's own registry.
    """
    path = directory or (Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]) if _multiproc() else None)
    registry: CollectorRegistry = REGISTRY
    if path is not None:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(path))  # type: ignore[no-untyped-call]
    totals: dict[str, float] = {}
    for family in registry.collect():
        for sample in family.samples:
            key = _TOTALS.get(sample.name)
            if key is not None:
                totals[key] = totals.get(key, 0.0) + sample.value
    return totals


def _multiproc() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def build_sample(
    at: float, shards: Iterable[capacity.ShardSample], writers: int, totals: dict[str, float]
) -> capacity.Sample:
    workers = totals.get("api_workers")
    return capacity.Sample(
        at=at,
        shards=tuple(shards),
        writers=writers,
        rows_persisted=totals.get("rows_persisted"),
        batch_seconds=totals.get("batch_seconds"),
        accepted=totals.get("accepted"),
        api_cpu_seconds=totals.get("api_cpu_seconds"),
        api_workers=round(workers) if workers is not None else None,
    )


def model_for(settings: Settings, target_seconds: float | None = None) -> capacity.Model:
    """The forecast's limits from the settings (the shedding limit, the window's close)."""
    model = capacity.Model(
        shards=settings.stream_shards,
        max_backlog_per_shard=settings.max_backlog_per_shard,
        closes_at=settings.window.closes_at,
    )
    return model if target_seconds is None else replace(model, target_seconds=target_seconds)


def writer_seen_ms(settings: Settings) -> int:
    return int(max(WRITER_SEEN_SECONDS * 1000, 3 * settings.writer_block_ms))


class Sampler:
    """A ring of recent samples in one API process, and what is derived from the newest ones."""

    def __init__(
        self,
        client: Redis,
        settings: Settings,
        *,
        pool: Any = None,
        rng: random.Random | None = None,
    ) -> None:
        self._client = client
        self._settings = settings
        self._pool = pool
        self._rng = rng or random.Random()
        self._ring: deque[capacity.Sample] = deque(maxlen=int(RING_SECONDS / SAMPLE_SECONDS) + 1)
        self._cpu_seen = time.process_time()
        # Per shard (length, drain rate): refreshed at each sample, read on every shed request.
        self._shard_drain: dict[int, tuple[int, float | None]] = {}
        self._drain: float | None = None

    @property
    def samples(self) -> list[capacity.Sample]:
        return list(self._ring)

    def refresh_gauges(self) -> None:
        """This process's pool usage and CPU time, for `/metrics` (livesum over processes)."""
        cpu = time.process_time()
        metrics.API_CPU_SECONDS.inc(max(0.0, cpu - self._cpu_seen))
        self._cpu_seen = cpu
        if self._pool is not None:
            size, idle = self._pool.get_size(), self._pool.get_idle_size()
            metrics.DB_POOL_CONNECTIONS.labels("in_use").set(size - idle)
            metrics.DB_POOL_CONNECTIONS.labels("idle").set(idle)
            metrics.DB_POOL_MAX.set(self._pool.get_max_size())

    async def _take(self) -> capacity.Sample:
        self.refresh_gauges()
        async with asyncio.timeout(self._settings.io_timeout_seconds):
            shards, writers = await redis_sample(
                self._client,
                self._settings.stream_shards,
                writer_seen_ms=writer_seen_ms(self._settings),
            )
        # Reading every process's metric files takes milliseconds: off the event loop.
        totals = await asyncio.to_thread(process_totals)
        return build_sample(time.time(), shards, writers, totals)

    def _keep(self, taken: capacity.Sample) -> None:
        self._ring.append(taken)
        self._update_drain()

    async def sample(self) -> capacity.Sample:
        """Take one sample now and add it to the ring.

        Raises:
            RedisError, OSError, TimeoutError: Redis did not answer.
        """
        taken = await self._take()
        self._keep(taken)
        return taken

    def _update_drain(self) -> None:
        recent = [s for s in self._ring if s.at >= self._ring[-1].at - 60.0]
        if len(recent) < 2 or recent[-1].at <= recent[0].at:
            return
        span = recent[-1].at - recent[0].at
        self._drain = capacity.increase([s.drained for s in recent]) / span
        for last in recent[-1].shards:
            drained = [
                x.added - x.backlog for s in recent for x in s.shards if x.shard == last.shard
            ]
            self._shard_drain[last.shard] = (last.length, capacity.increase(drained) / span)

    async def run(self) -> None:
        """Sample every SAMPLE_SECONDS until cancelled; Redis trouble only skips a sample."""
        while True:
            try:
                await self.sample()
            except (RedisError, OSError, TimeoutError) as exc:
                log.debug("capacity sample skipped: %s", type(exc).__name__)
            await asyncio.sleep(SAMPLE_SECONDS)

    async def forecast(self, target_seconds: float | None = None) -> capacity.Forecast:
        """The forecast over the ring and a sample taken now.

        The fresh sample joins the ring only if the newest one is half a period old, so frequent
        requests do not crowd the hour of history out of the ring. Without Redis the forecast
        rests on the ring alone.

        Raises:
            RedisError, OSError, TimeoutError: Redis did not answer and the ring is empty.
        """
        samples = self.samples
        try:
            fresh = await self._take()
        except (RedisError, OSError, TimeoutError):
            if not samples:
                raise
        else:
            if not samples or fresh.at - samples[-1].at >= SAMPLE_SECONDS / 2:
                self._keep(fresh)
            samples.append(fresh)
        return capacity.forecast(samples, model_for(self._settings, target_seconds))

    def retry_after(self, shard: int | None = None) -> int:
        """`Retry-After` seconds for a submission shed on `shard` (None: on Redis memory).

        A full shard has room again once a tenth of its limit is persisted; Redis memory falls
        once about a tenth of the whole backlog is persisted and trimmed (docs/capacity.md).
        """
        floor = self._settings.retry_after_seconds
        if shard is not None and shard in self._shard_drain:
            length, drain = self._shard_drain[shard]
            limit = self._settings.max_backlog_per_shard
            excess = max(0.0, length - 0.9 * limit)
            return capacity.retry_after(excess=excess, drain_rate=drain, floor=floor, rng=self._rng)
        backlog = self._ring[-1].backlog if self._ring else 0
        drain = self._drain if self._ring else None
        return capacity.retry_after(
            excess=0.1 * backlog, drain_rate=drain, floor=floor, rng=self._rng
        )


async def measure(
    settings: Settings,
    *,
    interval: float,
    target_seconds: float | None = None,
    metrics_dir: Path | None = None,
) -> capacity.Forecast:
    """Two samples `interval` seconds apart, straight from Redis, and the forecast over them.

    Args:
        settings: Redis URL, shards, limits and the window.
        interval: seconds between the two samples.
        target_seconds: accept-to-persist target of the recommendation.
        metrics_dir: the API's multiprocess metrics directory on this host, for the per-process
            rates (batch time, API CPU); without it those stay unknown.

    Raises:
        RedisError, OSError, TimeoutError: Redis could not be read.
    """
    assert settings.redis_url is not None
    client = streams.connect(settings.redis_url, timeout=settings.io_timeout_seconds)
    seen_ms = writer_seen_ms(settings)
    samples = []
    try:
        for i in range(2):
            if i:
                await asyncio.sleep(interval)
            shards, writers = await redis_sample(
                client, settings.stream_shards, writer_seen_ms=seen_ms
            )
            totals = process_totals(metrics_dir) if metrics_dir is not None else {}
            samples.append(build_sample(time.time(), shards, writers, totals))
    finally:
        await client.aclose()
    return capacity.forecast(samples, model_for(settings, target_seconds))
