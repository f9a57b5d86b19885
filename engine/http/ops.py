"""Operations endpoints: health, readiness, metrics, the OpenAPI document, the capacity forecast.

Owns `/healthz` (process alive), `/readyz` (Redis and PostgreSQL reachable), `/metrics`
(Prometheus text, with the streams' facts read at scrape time), `/openapi.json` and
`GET /api/v1/ops/capacity` (operator and admin staff; the numbers come from
`engine.adapters.telemetry` and the model from `engine.domain.capacity`), and
`GET|POST /api/v1/ops/reconcile` (the last reconciliation's report; start one, audited).
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine.adapters import backend, metrics, streams, telemetry
from engine.domain import capacity_report
from engine.errors import FieldError, InvalidRequest, ReconcileRunning, Unavailable
from engine.http import openapi
from engine.http.gate import admit
from engine.http.plumbing import client_address
from engine.http.responses import json_response, services
from engine.http.staff import require_staff
from engine.services import activity, reconciliation, support_desk

OPERATORS = frozenset({"operator", "admin"})


def _target_seconds(request: Request) -> float | None:
    raw = request.query_params.get("target_seconds")
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 1 <= value <= 86_400:
        raise InvalidRequest(
            errors=(
                FieldError(
                    "target_seconds",
                    "out_of_range",
                    "Cần một số giây từ 1 đến 86400.",
                    "Expected a number of seconds from 1 to 86400.",
                ),
            )
        )
    return value


async def healthz(request: Request) -> Response:
    return json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    svc = services(request)
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(2):
            await svc.redis.ping()
        checks["redis"] = "ok"
    except backend.REDIS_ERRORS as exc:
        checks["redis"] = type(exc).__name__
    try:
        async with asyncio.timeout(2):
            await svc.pool.fetchval("SELECT 1")
        checks["postgres"] = "ok"
    except backend.POSTGRES_ERRORS as exc:
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
            # The writers are read now with the rest, not from the sampler's last sample: up to
            # 5 s old, it said 0 writers on a scrape just after the first writer started.
            facts = await streams.read_shards(
                svc.redis,
                svc.settings.stream_shards,
                writer_seen_ms=telemetry.writer_seen_ms(svc.settings),
            )
            memory = await streams.memory_usage(svc.redis)
            last = await reconciliation.last_report(svc.redis)
        collector = metrics.QueueCollector(
            streams.stats_of(facts),
            memory,
            backlog_limit=svc.settings.max_backlog_per_shard,
            writers=streams.writers_of(facts),
            reconcile=last,
        )
    except backend.REDIS_ERRORS:
        collector = None  # the process metrics are still worth serving
    body, content_type = metrics.render(collector)
    return Response(body, media_type=content_type)


async def openapi_endpoint(request: Request) -> Response:
    return json_response(openapi.document())


async def capacity(request: Request) -> Response:
    """The capacity forecast: rates, backlog, time to the limit, deadline projection, advice."""
    await require_staff(request, OPERATORS)
    admit(request)
    target = _target_seconds(request)
    try:
        forecast = await services(request).sampler.forecast(target)
    except backend.REDIS_ERRORS as exc:
        raise Unavailable(extra={"reason": type(exc).__name__}) from exc
    return json_response(capacity_report.to_json(forecast))


async def reconcile_state(request: Request) -> Response:
    """The last reconciliation's report (whoever ran it) and whether one runs now."""
    await require_staff(request, OPERATORS)
    admit(request)
    try:
        body = await reconciliation.state(services(request).redis)
    except backend.REDIS_ERRORS as exc:
        raise Unavailable(extra={"reason": type(exc).__name__}) from exc
    return json_response(body)


def _max_queued_age(request: Request) -> float:
    raw = request.query_params.get("max_queued_age", "300")
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 86_400:
        raise InvalidRequest(
            errors=(
                FieldError(
                    "max_queued_age",
                    "out_of_range",
                    "Cần một số giây từ 0 đến 86400.",
                    "Expected a number of seconds from 0 to 86400.",
                ),
            )
        )
    return value


async def reconcile_start(request: Request) -> Response:
    """Start a reconciliation in the background (one at a time); 202, audited with the reason."""
    staff = await require_staff(request, OPERATORS)
    admit(request)
    svc = services(request)
    max_age = _max_queued_age(request)
    reason = support_desk.optional_reason(request.query_params.get("reason"))
    address = client_address(request)

    async def audit_run(summary: dict[str, object]) -> None:
        await activity.record_operator(
            svc.pool,
            actor=staff.username,
            role=staff.role,
            action="reconcile",
            reason=reason,
            detail=reconciliation.audit_detail(summary),
            staff_id=staff.staff_id,
            client_addr=address,
        )

    try:
        run_id = await reconciliation.start(
            svc.redis, svc.pool, svc.settings, max_queued_age=max_age, on_done=audit_run
        )
    except reconciliation.AlreadyRunning as exc:
        raise ReconcileRunning() from exc
    except backend.REDIS_ERRORS as exc:
        raise Unavailable(extra={"reason": type(exc).__name__}) from exc
    return json_response({"status": "started", "run_id": run_id}, 202)


routes = [
    Route("/healthz", healthz),
    Route("/readyz", readyz),
    Route("/metrics", metrics_endpoint),
    Route("/openapi.json", openapi_endpoint),
    Route("/api/v1/ops/capacity", capacity, methods=["GET"]),
    Route("/api/v1/ops/reconcile", reconcile_state, methods=["GET"]),
    Route("/api/v1/ops/reconcile", reconcile_start, methods=["POST"]),
]
