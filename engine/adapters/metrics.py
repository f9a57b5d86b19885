"""Prometheus metrics of the API and the writers (architecture §6.4).

Owns every metric's name, unit, labels and buckets, and the rendering of `/metrics`. Labels are of
bounded cardinality only: route templates, status codes, reasons, shard numbers — never a candidate
or a national ID. In multiprocess mode (`PROMETHEUS_MULTIPROC_DIR` set by the supervisor before
any worker starts) each process writes its own files and any process can render the sum; files of
dead workers stay, so counters never go backwards when a worker restarts.
"""

from __future__ import annotations

import bisect
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from engine.types import ShardStats

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
PERSIST_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0)
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)

HTTP_REQUESTS = Counter(
    "examreg_http_requests_total", "HTTP requests answered.", ["route", "method", "status"]
)
HTTP_LATENCY = Histogram(
    "examreg_http_request_duration_seconds",
    "Time from request to response.",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
)
SUBMISSIONS_ACCEPTED = Counter(
    "examreg_submissions_accepted_total", "Registrations durably enqueued.", ["phase"]
)
SUBMISSIONS_REJECTED = Counter(
    "examreg_submissions_rejected_total", "Registrations refused, by reason.", ["reason"]
)
SUBMISSIONS_REPLAYED = Counter(
    "examreg_submissions_replayed_total", "Retries answered with the original receipt."
)
SUBMISSIONS_SHED = Counter(
    "examreg_submissions_shed_total", "Registrations refused because of overload.", ["reason"]
)
ENQUEUE_UNREPLICATED = Counter(
    "examreg_enqueue_unreplicated_total",
    "Submissions appended on a cluster master but refused (503) because WAITAOF did not prove"
    " them fsynced on a replica in time.",
)
ENQUEUE_BATCH_SIZE = Histogram(
    "examreg_enqueue_batch_size",
    "Submissions coalesced into one Redis pipeline.",
    buckets=BATCH_BUCKETS,
)
PHOTOS = Counter(
    "examreg_photos_total",
    "Photo uploads, by result: stored (new bytes), existing (same hash already stored), or the "
    "refusal's code.",
    ["result"],
)
PHOTO_CPU_SECONDS = Histogram(
    "examreg_photo_cpu_seconds",
    "CPU time of decoding, checking and re-encoding one photo (the worker thread's own).",
    buckets=LATENCY_BUCKETS,
)
PHOTO_STORED_BYTES = Counter(
    "examreg_photo_stored_bytes_total", "Bytes of new photos written to the photo store."
)
LOGINS = Counter("examreg_logins_total", "Login attempts, by result.", ["kind", "result"])
PASSWORD_HASH_SECONDS = Histogram(
    "examreg_password_hash_seconds",
    "Time to hash or verify a password (argon2id).",
    ["operation"],
    buckets=LATENCY_BUCKETS,
)
LOGIN_IN_FLIGHT = Gauge(
    "examreg_login_hashes_in_flight",
    "Password hashes running or waiting, per process.",
    multiprocess_mode="livesum",
)

LOGIN_HASH_SLOTS = Gauge(
    "examreg_login_hash_slots",
    "Password hashes that may run at once (EXAMREG_LOGIN_CONCURRENCY), summed over processes.",
    multiprocess_mode="livesum",
)
LOGIN_HASH_LIMIT = Gauge(
    "examreg_login_hashes_limit",
    "Hashes running or waiting past which logins get 503 (EXAMREG_LOGIN_QUEUE_LIMIT), summed.",
    multiprocess_mode="livesum",
)
API_PROCESSES = Gauge(
    "examreg_api_processes", "API worker processes alive.", multiprocess_mode="livesum"
)
API_EVENT_LOOP_LAG = Gauge(
    "examreg_api_event_loop_lag_seconds",
    "How late the event loop ran a 20 ms timer, last sample; the worst live API process.",
    multiprocess_mode="livemax",
)
API_REQUESTS_SHED = Counter(
    "examreg_api_requests_shed_total",
    "API requests answered 503 by the overload gate, by cause (queue_delay: the event loop's "
    "queueing delay stood above its target; loop_lag: the hard lag bound; in_flight: the ceiling).",
    ["cause"],
)
API_CPU_SECONDS = Counter(
    "examreg_api_cpu_seconds_total", "CPU time of the API worker processes, all threads."
)
DB_POOL_CONNECTIONS = Gauge(
    "examreg_db_pool_connections",
    "PostgreSQL connections of the API processes' pools, by state (in_use, idle).",
    ["state"],
    multiprocess_mode="livesum",
)
DB_POOL_MAX = Gauge(
    "examreg_db_pool_max_connections",
    "PostgreSQL connections the API processes' pools may open (EXAMREG_DB_POOL_SIZE), summed.",
    multiprocess_mode="livesum",
)

WRITER_BATCHES = Counter(
    "examreg_writer_batches_total", "Batches written, by outcome.", ["outcome"]
)
WRITER_BATCH_SIZE = Histogram(
    "examreg_writer_batch_size", "Entries per committed batch.", buckets=BATCH_BUCKETS
)
WRITER_BATCH_SECONDS = Histogram(
    "examreg_writer_batch_duration_seconds",
    "Time to persist one batch (COPY, history, upsert, commit).",
    buckets=LATENCY_BUCKETS,
)
ROWS_PERSISTED = Counter(
    "examreg_writer_rows_persisted_total", "History rows inserted into PostgreSQL."
)
ACCEPT_TO_PERSIST = Histogram(
    "examreg_accept_to_persist_seconds",
    "Time from the 202 to the committed history row.",
    buckets=PERSIST_BUCKETS,
)
DEAD_LETTERS = Counter(
    "examreg_writer_dead_letters_total", "Entries moved to the dead-letter stream.", ["reason"]
)
WRITER_ERRORS = Counter("examreg_writer_errors_total", "Writer failures, by kind.", ["kind"])
MARKERS_RELEASED = Counter(
    "examreg_reconcile_markers_released_total",
    "Queued markers of versions already persisted, released by the reconciliation sweep.",
)
ENTRIES_CLAIMED = Counter(
    "examreg_writer_entries_claimed_total", "Entries taken over from a dead writer."
)


# Label values known in advance exist from the start, at 0, in every process. A series that first
# appears already incremented gives rate() no earlier sample to compare with, so the first burst of
# arrivals or sheds after a start would never show in a rate, a dashboard or an alert.
for _phase in ("trial", "official"):
    SUBMISSIONS_ACCEPTED.labels(_phase)
for _reason in ("backlog", "redis_memory", "busy"):
    SUBMISSIONS_SHED.labels(_reason)
for _kind in ("candidate", "staff"):
    for _result in ("success", "failure", "throttled"):
        LOGINS.labels(_kind, _result)
LOGINS.labels("any", "shed")
for _cause in ("queue_delay", "loop_lag", "in_flight"):
    API_REQUESTS_SHED.labels(_cause)
for _outcome in ("committed", "split", "failed"):
    WRITER_BATCHES.labels(_outcome)
for _reason in ("malformed", "rejected_by_database"):
    DEAD_LETTERS.labels(_reason)


class QueueCollector(Collector):
    """Backlog gauges from a snapshot of the streams, taken just before a scrape is rendered."""

    def __init__(
        self,
        stats: Sequence[ShardStats],
        memory: tuple[int, int] | None,
        *,
        backlog_limit: int | None = None,
        writers: int | None = None,
        reconcile: Mapping[str, Any] | None = None,
    ) -> None:
        self._reconcile = reconcile
        self._stats = stats
        self._memory = memory
        self._backlog_limit = backlog_limit
        self._writers = writers

    def collect(self) -> Iterable[Metric]:
        families = {
            "length": GaugeMetricFamily(
                "examreg_queue_length", "Entries in the shard's stream.", labels=["shard"]
            ),
            "lag": GaugeMetricFamily(
                "examreg_queue_lag", "Entries not yet delivered to a writer.", labels=["shard"]
            ),
            "pending": GaugeMetricFamily(
                "examreg_queue_pending", "Entries delivered but not acknowledged.", labels=["shard"]
            ),
            "oldest_pending_age": GaugeMetricFamily(
                "examreg_queue_oldest_pending_age_seconds",
                "Age of the oldest entry not yet persisted.",
                labels=["shard"],
            ),
            "dead_letters": GaugeMetricFamily(
                "examreg_queue_dead_letters", "Entries in the dead-letter stream.", labels=["shard"]
            ),
        }
        for stat in self._stats:
            for name, family in families.items():
                family.add_metric([str(stat.shard)], float(getattr(stat, name)))
        yield from families.values()
        if self._memory is not None:
            used, limit = self._memory
            yield GaugeMetricFamily(
                "examreg_redis_memory_used_bytes", "Redis used_memory.", value=used
            )
            yield GaugeMetricFamily(
                "examreg_redis_memory_limit_bytes", "Redis maxmemory (0 = none).", value=limit
            )
        if self._backlog_limit is not None:
            # Exported so rules compute time-to-limit against the configured value, not a copy.
            yield GaugeMetricFamily(
                "examreg_queue_backlog_limit",
                "Entries per shard stream past which submissions get 503 (max_backlog_per_shard).",
                value=self._backlog_limit,
            )
        if self._writers is not None:
            yield GaugeMetricFamily(
                "examreg_queue_consumers_active",
                "Writer processes (distinct consumers of group 'writers') seen in the last 15 s.",
                value=self._writers,
            )
        if self._reconcile is not None:
            yield from reconcile_families(self._reconcile)


def observe_many(histogram: Histogram, values: Sequence[float]) -> None:
    """`histogram.observe(v)` for every value, as one increment per bucket touched.

    The writer observes a whole batch's accept-to-persist times at once: in multiprocess mode every
    increment is a locked write to a memory-mapped file, so a batch of 2,000 rows would cost 4,000
    of them one by one, and costs at most one per bucket (plus the sum) here. Same series, same
    counts as observing each value. prometheus-client has no public call for it, so this uses the
    histogram's own bucket values, and falls back to one `observe` per value should they change.
    """
    bounds: Sequence[float] | None = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for value in values:
            histogram.observe(value)
        return
    counts = [0] * len(bounds)
    for value in values:
        counts[bisect.bisect_left(bounds, value)] += 1  # the first bound >= value, as observe()
    for bucket, count in zip(buckets, counts, strict=True):
        if count:
            bucket.inc(count)
    total.inc(sum(values))


def render(extra: Collector | None = None) -> tuple[bytes, str]:
    """The exposition text: all processes' metrics (multiprocess) or this one's, plus `extra`."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry = REGISTRY if extra is None else _merged(REGISTRY)
    if extra is not None:
        registry.register(extra)
    return generate_latest(registry), CONTENT_TYPE_LATEST


def serve_directory(path: Path, host: str, port: int) -> ThreadingHTTPServer:
    """Serve `GET /metrics` on a daemon thread: the sum of every process writing its files to
    `path` (multiprocess mode). For a process tree without an API, the writers' supervisor, so
    a scraper reaches the writers' own counters. Raises OSError if the port cannot be bound."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != "/metrics":
                self.send_error(404)
                return
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=str(path))  # type: ignore[no-untyped-call]
            body = generate_latest(registry)
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE_LATEST)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """No access log: a scrape every 15 s is not news."""

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server


def _merged(source: CollectorRegistry) -> CollectorRegistry:
    registry = CollectorRegistry()

    class _Proxy(Collector):
        def collect(self) -> Iterable[Metric]:
            return source.collect()

    registry.register(_Proxy())
    return registry


def mark_process_dead(pid: int) -> None:
    """Drop a dead worker's live gauges (its counters stay, so totals never go backwards)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def reconcile_families(report: Mapping[str, Any]) -> Iterable[Metric]:
    """The last reconciliation's counts by kind (no candidate in a label), when it ran, how long."""
    exceptions = GaugeMetricFamily(
        "examreg_reconcile_exceptions",
        "Exceptions the last reconciliation found, by kind (queued, queued_over_limit,"
        " dead_lettered, missing, version_mismatch).",
        labels=["kind"],
    )
    for kind, count in sorted(report.get("counts", {}).items()):
        exceptions.add_metric([str(kind)], float(count))
    yield exceptions
    try:
        at = datetime.fromisoformat(str(report.get("at"))).timestamp()
    except ValueError:
        at = 0.0
    yield GaugeMetricFamily(
        "examreg_reconcile_last_run_timestamp_seconds",
        "When the last reconciliation started (Unix time).",
        value=at,
    )
    yield GaugeMetricFamily(
        "examreg_reconcile_duration_seconds",
        "How long the last reconciliation took.",
        value=float(report.get("duration_seconds") or 0.0),
    )
    yield GaugeMetricFamily(
        "examreg_reconcile_ok",
        "1 when the last reconciliation passed the gate (nothing but recent queued versions).",
        value=1.0 if report.get("ok") else 0.0,
    )
