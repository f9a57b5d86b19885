"""The Starlette application: the one place that lists routes, middleware and error handlers.

Owns the app's lifespan (the process's `Services`, the loop-lag sampler, the memory watch) and the
one place errors become `application/problem+json`: our errors with their status and code, a
failed backend as 503 `unavailable`, anything else as a bare 500 without a trace. Routes live in
`engine.http` (JSON) and `engine.pages` (HTML); this module only composes them (layers: see
docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Mount, Route
from starlette.staticfiles import StaticFiles
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from engine.adapters import backend, metrics
from engine.errors import ExamregError, MethodNotAllowed, NotFound, Unavailable
from engine.http import candidates, ops, staff, support, window
from engine.http.gate import Gate, ObservabilityMiddleware, route_name
from engine.http.hosts import TrustedHosts
from engine.http.responses import api_language, problem, services
from engine.pages import candidate as candidate_pages
from engine.pages import page, window_console
from engine.pages import support as support_pages
from engine.pages import unit as unit_pages
from engine.services.container import build_services, close_services, watch_memory
from engine.settings import Settings

log = logging.getLogger("examreg.api")


async def _on_examreg_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ExamregError)
    if exc.status == 503 and exc.retry_after is None:
        # Every 503 says when to come back, also one raised deep in an adapter that cannot know
        # the configured floor (the enqueue whose Valkey link dropped mid-call).
        exc.retry_after = services(request).settings.retry_after_seconds
    return problem(exc, api_language(request))


async def _on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    mapped: ExamregError = MethodNotAllowed() if exc.status_code == 405 else NotFound()
    if exc.status_code not in (404, 405):
        mapped = ExamregError(detail_en=str(exc.detail))
    response = problem(mapped, api_language(request))
    response.headers.update(exc.headers or {})
    if exc.status_code == 405:
        # A 405 must list what the path allows (RFC 9110 §15.5.6); Starlette's names only the
        # first of the routes a path is split into (GET and PUT of /api/v1/me/registration).
        response.headers["Allow"] = ", ".join(_allowed_methods(request))
    return response


def _allowed_methods(request: Request) -> list[str]:
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.matches(request.scope)[0] != Match.NONE:
            methods |= route.methods or set()
    return sorted(methods)


async def _on_backend_error(request: Request, exc: Exception) -> Response:
    """Redis or PostgreSQL failed (down, timed out, or refused a write such as an audit row):
    the request did not happen, and the client may retry."""
    log.error("backend %s on %s %s", type(exc).__name__, request.method, route_name(request.scope))
    failure = Unavailable(retry_after=services(request).settings.retry_after_seconds)
    return problem(failure, api_language(request))


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    # Logged without the request body: it may carry personal data.
    log.error(
        "unhandled %s on %s %s", type(exc).__name__, request.method, route_name(request.scope)
    )
    return Response(
        orjson.dumps({"title": "Internal error", "status": 500, "code": "internal_error"}),
        500,
        media_type="application/problem+json",
    )


def create_app(settings: Settings) -> Starlette:
    """The ASGI application for `settings`: the one place that lists every route."""
    gate = Gate.from_settings(settings)
    lag = gate.lag

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        svc = await build_services(settings)
        svc._tasks.append(asyncio.create_task(watch_memory(svc)))
        svc._tasks.append(asyncio.create_task(lag.run()))
        svc._tasks.append(asyncio.create_task(svc.sampler.run()))
        svc._tasks.append(asyncio.create_task(svc.calendar.run()))
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
        *ops.routes,
        *window.routes,
        *candidates.routes,
        *candidate_pages.routes,
        Mount("/static", StaticFiles(directory=page.STATIC_DIR), name="static"),
        *staff.routes,
        *support.routes,
        *support_pages.routes,
        *window_console.routes,
        *unit_pages.routes,
    ]
    handlers: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
        ExamregError: _on_examreg_error,
        HTTPException: _on_http_exception,
        **{error: _on_backend_error for error in backend.BACKEND_ERRORS},
        Exception: _on_unexpected,
    }
    middleware = [
        Middleware(ObservabilityMiddleware, gate=gate, arrival_log=settings.arrival_log),
        # Inside the metrics, so a refused Host is counted and gets the security headers.
        Middleware(TrustedHosts, hosts=settings.trusted_hosts),
    ]
    if settings.trusted_proxies:
        # Outermost, so every layer below (cookies' Secure flag, HSTS, the login throttle's
        # address, the audit log) sees the original client and scheme. Only the listed proxies'
        # X-Forwarded-For / X-Forwarded-Proto count; the client is the right-most untrusted hop.
        middleware.insert(
            0, Middleware(ProxyHeadersMiddleware, trusted_hosts=list(settings.trusted_proxies))
        )
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers=handlers,
        lifespan=lifespan,
    )
    app.state.gate = gate  # handlers `admit` requests to it (engine.http.gate)
    return app
