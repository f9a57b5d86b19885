"""The `Services` container: what every handler needs, built once per process.

Owns building and closing the process's connections (Redis client with the server-side functions
loaded, PostgreSQL pool), the reference-data cache with its ETag, the capacity sampler and the
Redis-memory watch that sheds submissions before `maxmemory` (architecture §3.7). It must not read
a request: the HTTP layer reaches the container through `engine.http.responses.services`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import orjson

from engine.adapters import backend, store, streams, telemetry
from engine.adapters.passwords import PasswordService
from engine.adapters.photos import PhotoStore, open_store
from engine.adapters.sessions import LoginThrottle, SessionStore
from engine.domain import reference
from engine.domain.registration import Catalog, FormRules
from engine.services.window import CalendarCache
from engine.settings import Settings

log = logging.getLogger("examreg.api")


@dataclass
class Services:
    """What the handlers need, built once per process in the lifespan."""

    settings: Settings
    pool: backend.Pool
    redis: backend.Redis
    enqueuer: streams.Enqueuer
    passwords: PasswordService
    sessions: SessionStore
    throttle: LoginThrottle
    catalog: Catalog
    reference_body: bytes
    reference_etag: str
    sampler: telemetry.Sampler  # capacity samples, pool gauges, computed Retry-After
    calendar: CalendarCache  # the window calendar, reloaded every EXAMREG_WINDOW_CACHE_SECONDS
    photos: PhotoStore
    rules: FormRules = field(default_factory=FormRules)
    # Photo decoding runs here, never on the event loop; past `photo_queue`'s slots, 503.
    photo_pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(2, thread_name_prefix="examreg-photo")
    )
    photo_queue: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(16))
    memory_shedding: bool = False
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)


async def _load_reference(pool: backend.Pool) -> tuple[Catalog, bytes, str]:
    reference = await store.reference(pool)
    catalog = Catalog.from_rows(
        (p["code"] for p in reference["provinces"]),
        ((s["province_code"], s["school_code"]) for s in reference["schools"]),
    )
    body = orjson.dumps({**reference, **form_choices()})
    return catalog, body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def form_choices() -> dict[str, object]:
    """The form's code lists kept in code (curricula, exemption reasons, …), for GET /reference."""
    return dict(reference.form_choices())


def form_rules(settings: Settings) -> FormRules:
    """The validator's configurable rules from `EXAMREG_FORM_*` and `EXAMREG_PHOTO_REQUIRED`."""
    return FormRules(
        old_curriculum=settings.form_old_curriculum,
        reserved_score_min=settings.form_reserved_score_min,
        vocational_encouragement=settings.form_vocational_encouragement,
        unit_is_grade_12_school=settings.form_unit_is_grade_12_school,
        photo_required=settings.photo_required,
        certificates_valid_until=settings.certificates_valid_until,
    )


async def watch_memory(svc: Services) -> None:
    """Shed submissions before Redis reaches maxmemory (architecture §3.7)."""
    while True:
        try:
            used, limit = await streams.memory_usage(svc.redis)
            svc.memory_shedding = (
                bool(limit) and used >= limit * svc.settings.redis_memory_limit_ratio
            )
        except backend.REDIS_ERRORS:
            pass  # the enqueue itself reports Redis trouble
        await asyncio.sleep(1.0)


def redis_connections(settings: Settings) -> int:
    """Redis connections one API process may hold at once: one per request the gate admits, one
    per login it lets wait for a hash (logins are not gated) and a margin for the pages (never
    refused) and the background tasks. The fixed 64 of before was below that, and past it
    redis-py failed at once with "Too many connections" (a 503 `unavailable`); now a command
    waits for a free connection, and the size keeps that wait rare."""
    logins = settings.login_queue_limit + settings.login_concurrency
    return settings.max_inflight_requests + logins + 32


PREWARMED = 64  # Redis connections opened before the first request (the old in-flight limit)


async def build_services(settings: Settings) -> Services:
    if not settings.database_url or not settings.redis_url:
        raise RuntimeError("EXAMREG_DATABASE_URL and EXAMREG_REDIS_URL must be set")
    client = streams.connect(
        settings.redis_url,
        timeout=settings.io_timeout_seconds,
        max_connections=redis_connections(settings),
    )
    if settings.redis_check_durability:
        await streams.check_durability(client)
    await streams.load_functions(client)
    # Warm a burst's worth, not the whole ceiling: with the adaptive gate the in-flight limit is
    # a hard cap far above what a process usually holds, and the pool opens more on demand.
    await streams.open_connections(client, min(settings.max_inflight_requests, PREWARMED))
    pool = await store.create_pool(
        settings.database_url,
        size=settings.db_pool_size,
        io_timeout=settings.io_timeout_seconds,
        role=settings.service_role,
        statement_cache_size=settings.db_statement_cache_size,
    )
    catalog, body, etag = await _load_reference(pool)
    sampler = telemetry.Sampler(client, settings, pool=pool)
    calendar = CalendarCache(pool, settings.window, settings.window_cache_seconds)
    await calendar.refresh()
    return Services(
        settings=settings,
        pool=pool,
        redis=client,
        enqueuer=streams.Enqueuer(
            client,
            idempotency_ttl=settings.idempotency_ttl_seconds,
            max_backlog_per_shard=settings.max_backlog_per_shard,
            retry_after=sampler.retry_after,
            timeout=settings.io_timeout_seconds,
            replica_timeout_ms=settings.redis_replica_timeout_ms,
        ),
        passwords=PasswordService(settings),
        sessions=SessionStore(client, settings),
        throttle=LoginThrottle(client, settings),
        catalog=catalog,
        reference_body=body,
        reference_etag=etag,
        sampler=sampler,
        calendar=calendar,
        photos=open_store(settings),
        rules=form_rules(settings),
        photo_pool=ThreadPoolExecutor(settings.photo_workers, thread_name_prefix="examreg-photo"),
        photo_queue=asyncio.Semaphore(settings.photo_workers * 8),
    )


async def close_services(svc: Services) -> None:
    pending = set(svc._tasks)
    for _ in range(10):
        if not pending:
            break
        # Cancel again until done: on Python 3.11 a cancellation that lands while redis-py's
        # asyncio.wait_for completes is lost (CPython gh-86296), and the loop would run on.
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=1.0)
    if pending:
        log.warning("%d background tasks did not stop; closing anyway", len(pending))
    await asyncio.gather(*(t for t in svc._tasks if t.done()), return_exceptions=True)
    svc.passwords.close()
    svc.photo_pool.shutdown(wait=False, cancel_futures=True)
    await svc.pool.close()
    await svc.redis.aclose()
