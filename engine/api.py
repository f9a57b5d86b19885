"""The Starlette application: wiring, middleware, error rendering and the operations endpoints.

Owns the app's lifecycle (pools, Redis functions, reference cache, the admission monitor), the one
place errors become `application/problem+json`, request metrics and security headers, and
`/healthz`, `/readyz`, `/metrics`, `/openapi.json`. Candidate routes live in `engine.candidate_api`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import asyncpg
import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine import capacity, metrics, openapi, queue, store, telemetry
from engine.auth import LoginThrottle, PasswordService, SessionStore
from engine.errors import ExamregError, MethodNotAllowed, NotFound, Overloaded, Unavailable
from engine.registration import Catalog
from engine.settings import Settings

log = logging.getLogger("examreg.api")


@dataclass
class Services:
    """What the handlers need, built once per process in the lifespan."""

    settings: Settings
    pool: asyncpg.Pool
    redis: aioredis.Redis
    enqueuer: queue.Enqueuer
    passwords: PasswordService
    sessions: SessionStore
    throttle: LoginThrottle
    catalog: Catalog
    reference_body: bytes
    reference_etag: str
    sampler: telemetry.Sampler  # capacity samples, pool gauges, computed Retry-After
    memory_shedding: bool = False
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


def language(request: Request) -> str:
    """`?lang=en` or an English Accept-Language switches messages to English; Vietnamese first."""
    lang = request.query_params.get("lang")
    if lang in ("vi", "en"):
        return lang
    accept = request.headers.get("accept-language", "")
    return "en" if accept.lower().startswith("en") else "vi"


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers=headers, media_type="application/json")


def problem(exc: ExamregError, lang: str) -> Response:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
    return Response(
        orjson.dumps(exc.to_problem(lang)),
        exc.status,
        headers=headers,
        media_type="application/problem+json",
    )


async def _on_examreg_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ExamregError)
    return problem(exc, language(request))


async def _on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    mapped: ExamregError = MethodNotAllowed() if exc.status_code == 405 else NotFound()
    if exc.status_code not in (404, 405):
        mapped = ExamregError(detail_en=str(exc.detail))
    return problem(mapped, language(request))


async def _on_backend_error(request: Request, exc: Exception) -> Response:
    """Redis or PostgreSQL failed (down, timed out, or refused a write such as an audit row):
    the request did not happen, and the client may retry."""
    log.error("backend %s on %s %s", type(exc).__name__, request.method, _route_name(request.scope))
    failure = Unavailable(retry_after=services(request).settings.retry_after_seconds)
    return problem(failure, language(request))


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    # Logged without the request body: it may carry personal data.
    log.error(
        "unhandled %s on %s %s", type(exc).__name__, request.method, _route_name(request.scope)
    )
    return Response(
        orjson.dumps({"title": "Internal error", "status": 500, "code": "internal_error"}),
        500,
        media_type="application/problem+json",
    )


def _route_name(scope: Scope) -> str:
    route = scope.get("route")
    return getattr(route, "path", "unmatched")


class ArrivalLog:
    """Opt-in (`EXAMREG_ARRIVAL_LOG`) anonymised arrivals, replayed by loadtest/locust_openloop.py.

    One line per request: epoch seconds, method, route template, status; never a path, query,
    header or body, so no personal data. Each process appends to `<path>.<pid>` through a 256 KiB
    buffer flushed about once a second and at shutdown: the request path pays a string format.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._file: TextIO | None = None
        self._flushed = 0.0

    def append(self, method: str, route: str, status: int) -> None:
        now = time.time()
        if self._file is None:
            self._file = open(f"{self._path}.{os.getpid()}", "a", buffering=262_144)  # noqa: SIM115
        self._file.write(f"{now:.3f}\t{method}\t{route}\t{status}\n")
        if now - self._flushed >= 1.0:
            self._flushed = now
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class LoopLag:
    """How late this process's event loop runs a short timer: CPU saturation, measured directly.

    `saturated` holds once `samples` consecutive samples are each later than `limit` seconds, so a
    single stall (a collection, a slow import) sheds nothing while a sustained overload does.
    """

    def __init__(self, limit: float, samples: int = 3, interval: float = 0.02) -> None:
        self.limit = limit
        self.samples = samples
        self.interval = interval
        self.lag = 0.0
        self._late = 0

    @property
    def saturated(self) -> bool:
        return self.limit > 0 and self._late >= self.samples

    def record(self, lag: float) -> None:
        self.lag = lag
        self._late = self._late + 1 if lag > self.limit else 0
        metrics.API_EVENT_LOOP_LAG.set(lag)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(self.interval)
            self.record(max(0.0, loop.time() - started - self.interval))


class ObservabilityMiddleware:
    """Counts and times every request by route template, sets the security headers, and sheds
    API requests when this process is saturated.

    The gate is what keeps a spike polite when the API itself is the bottleneck (the backlog and
    memory limits only see the writers falling behind): past `max_inflight` requests under way, or
    while the event loop runs late (`lag.saturated`), a new `/api/` request is answered at once
    with 503 `overloaded` and `Retry-After` instead of joining an event-loop queue where every
    request, admitted or not, would wait seconds and end in a timeout. Pages are counted but never
    refused here: their handlers keep the candidate's typed form on the friendly retry page.
    Health, readiness, metrics and the password-hashing routes are exempt (`_UNGATED`).
    """

    def __init__(
        self,
        app: ASGIApp,
        arrival_log: Path | None = None,
        max_inflight: int = 0,
        lag: LoopLag | None = None,
    ) -> None:
        self.app = app
        self.arrivals = ArrivalLog(arrival_log) if arrival_log else None
        self.max_inflight = max_inflight
        self.lag = lag or LoopLag(0)
        self.inflight = 0
        self._rng = random.Random()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            try:
                await self.app(scope, receive, send)
            finally:
                if self.arrivals is not None and scope["type"] == "lifespan":
                    self.arrivals.close()  # the lifespan returns at shutdown
            return
        started = time.perf_counter()
        status = 500
        path: str = scope["path"]
        gated = path not in _UNGATED and not path.startswith("/static/")
        busy = gated and (
            (self.max_inflight and self.inflight >= self.max_inflight) or self.lag.saturated
        )
        if busy and path.startswith("/api/"):
            await self._shed(scope, receive, send)
            return

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message.setdefault("headers", [])
                headers.extend(_SECURITY_HEADERS)
            await send(message)

        if gated:
            self.inflight += 1
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            if gated:
                self.inflight -= 1
            route = _route_name(scope)
            method = scope["method"]
            metrics.HTTP_REQUESTS.labels(route, method, str(status)).inc()
            metrics.HTTP_LATENCY.labels(route, method).observe(time.perf_counter() - started)
            if self.arrivals is not None:
                self.arrivals.append(method, route, status)

    async def _shed(self, scope: Scope, receive: Receive, send: Send) -> None:
        """503 `overloaded` before routing, session or body: the cheapest answer there is."""
        request = Request(scope)
        floor = request.app.state.services.settings.retry_after_seconds
        wait = capacity.retry_after(excess=0.0, drain_rate=None, floor=floor, rng=self._rng)
        response = problem(
            Overloaded(retry_after=wait, extra={"reason": "busy"}), language(request)
        )
        response.headers.update({k.decode(): v.decode() for k, v in _SECURITY_HEADERS})
        method = scope["method"]
        if method == "PUT" and scope["path"] == "/api/v1/me/registration":
            metrics.SUBMISSIONS_SHED.labels("busy").inc()
        metrics.HTTP_REQUESTS.labels("shed", method, "503").inc()
        await response(scope, receive, send)
        if self.arrivals is not None:
            self.arrivals.append(method, "shed", 503)


# Exempt from the gate: operations endpoints, and the routes that hash a password, which wait for
# a hash slot off the event loop and have their own limit (EXAMREG_LOGIN_QUEUE_LIMIT): a burst of
# logins at the window's opening must not count as load on the loop and shed everything else.
_UNGATED = frozenset(
    {
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/v1/auth/login",
        "/api/v1/auth/password",
        "/api/v1/staff/login",
        "/api/v1/staff/password",
        "/login",
        "/password",
        "/support/login",
        "/support/password",
    }
)

_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (
        b"content-security-policy",
        b"default-src 'self'; frame-ancestors 'none'; form-action 'self'",
    ),
]


# -- operations endpoints ------------------------------------------------------------------------


async def healthz(request: Request) -> Response:
    return json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    svc = services(request)
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(2):
            await svc.redis.ping()
        checks["redis"] = "ok"
    except (RedisError, OSError, TimeoutError) as exc:
        checks["redis"] = type(exc).__name__
    try:
        async with asyncio.timeout(2):
            await svc.pool.fetchval("SELECT 1")
        checks["postgres"] = "ok"
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
        checks["postgres"] = type(exc).__name__
    ready = all(v == "ok" for v in checks.values())
    return json_response(
        {"status": "ready" if ready else "not_ready", **checks}, 200 if ready else 503
    )


async def metrics_endpoint(request: Request) -> Response:
    svc = services(request)
    svc.sampler.refresh_gauges()  # this process's pool and CPU as of now; others' within 5 s
    collector: metrics.QueueCollector | None = None
    try:
        async with asyncio.timeout(2):
            stats = await queue.shard_stats(svc.redis, svc.settings.stream_shards)
            memory = await queue.memory_usage(svc.redis)
        collector = metrics.QueueCollector(
            stats,
            memory,
            backlog_limit=svc.settings.max_backlog_per_shard,
            writers=svc.sampler.writers,
        )
    except (RedisError, OSError, TimeoutError):
        collector = None  # the process metrics are still worth serving
    body, content_type = metrics.render(collector)
    return Response(body, media_type=content_type)


async def openapi_endpoint(request: Request) -> Response:
    return json_response(openapi.document())


# -- lifecycle ------------------------------------------------------------------------------------


async def _load_reference(pool: asyncpg.Pool) -> tuple[Catalog, bytes, str]:
    reference = await store.reference(pool)
    catalog = Catalog.from_rows(
        (p["code"] for p in reference["provinces"]),
        ((s["province_code"], s["school_code"]) for s in reference["schools"]),
    )
    body = orjson.dumps(reference)
    return catalog, body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


async def _watch_memory(svc: Services) -> None:
    """Shed submissions before Redis reaches maxmemory (architecture §3.7)."""
    while True:
        try:
            used, limit = await queue.memory_usage(svc.redis)
            svc.memory_shedding = (
                bool(limit) and used >= limit * svc.settings.redis_memory_limit_ratio
            )
        except (RedisError, OSError, TimeoutError):
            pass  # the enqueue itself reports Redis trouble
        await asyncio.sleep(1.0)


async def build_services(settings: Settings) -> Services:
    if not settings.database_url or not settings.redis_url:
        raise RuntimeError("EXAMREG_DATABASE_URL and EXAMREG_REDIS_URL must be set")
    client = queue.connect(settings.redis_url, timeout=settings.io_timeout_seconds)
    if settings.redis_check_durability:
        await queue.check_durability(client)
    await queue.load_functions(client)
    pool = await store.create_pool(
        settings.database_url, size=settings.db_pool_size, io_timeout=settings.io_timeout_seconds
    )
    catalog, body, etag = await _load_reference(pool)
    sampler = telemetry.Sampler(client, settings, pool=pool)
    return Services(
        settings=settings,
        pool=pool,
        redis=client,
        enqueuer=queue.Enqueuer(
            client,
            idempotency_ttl=settings.idempotency_ttl_seconds,
            max_backlog_per_shard=settings.max_backlog_per_shard,
            retry_after=sampler.retry_after,
            timeout=settings.io_timeout_seconds,
        ),
        passwords=PasswordService(settings),
        sessions=SessionStore(client, settings),
        throttle=LoginThrottle(client, settings),
        catalog=catalog,
        reference_body=body,
        reference_etag=etag,
        sampler=sampler,
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
    await svc.pool.close()
    await svc.redis.aclose()


def create_app(settings: Settings) -> Starlette:
    """The ASGI application for `settings`."""
    from engine import candidate_api, ops_api, staff_api, support_api, support_web, web

    lag = LoopLag(settings.max_event_loop_lag_ms / 1000)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        svc = await build_services(settings)
        svc._tasks.append(asyncio.create_task(_watch_memory(svc)))
        svc._tasks.append(asyncio.create_task(lag.run()))
        svc._tasks.append(asyncio.create_task(svc.sampler.run()))
        metrics.API_PROCESSES.set(1)
        metrics.LOGIN_HASH_SLOTS.set(settings.login_concurrency)
        metrics.LOGIN_HASH_LIMIT.set(settings.login_queue_limit)
        app.state.services = svc
        app.state.loop_lag = lag
        try:
            yield
        finally:
            await close_services(svc)

    routes = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics_endpoint),
        Route("/openapi.json", openapi_endpoint),
        *candidate_api.routes,
        *web.routes,
        Mount("/static", StaticFiles(directory=web.STATIC_DIR), name="static"),
        *staff_api.routes,
        *ops_api.routes,
        *support_api.routes,
        *support_web.routes,
    ]
    handlers: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
        ExamregError: _on_examreg_error,
        HTTPException: _on_http_exception,
        RedisError: _on_backend_error,
        asyncpg.PostgresError: _on_backend_error,
        asyncpg.InterfaceError: _on_backend_error,
        OSError: _on_backend_error,
        TimeoutError: _on_backend_error,
        Exception: _on_unexpected,
    }
    return Starlette(
        routes=routes,
        middleware=[
            Middleware(
                ObservabilityMiddleware,
                arrival_log=settings.arrival_log,
                max_inflight=settings.max_inflight_requests,
                lag=lag,
            )
        ],
        exception_handlers=handlers,
        lifespan=lifespan,
    )
