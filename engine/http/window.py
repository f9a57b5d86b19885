"""Operator endpoints of the season's calendar: windows per scope, reopens, the lock report.

Owns `GET|PUT /api/v1/ops/window`, `POST /api/v1/ops/window/clear`, `GET|POST /api/v1/ops/reopens`,
`POST /api/v1/ops/reopens/{reopen_id}/close` and `GET /api/v1/ops/lock` (issue 14), for the
`operator` and `admin` roles (Bearer token only, like every staff call). What each does, its
validation and its audit row are `engine.services.window`'s and `engine.services.lock`'s.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine.errors import MalformedRequest, NotFound
from engine.http.gate import admit
from engine.http.plumbing import client_address, read_json
from engine.http.responses import json_response, services
from engine.http.staff import require_staff
from engine.services import calendar_changes, lock
from engine.services.window import Actor

OPERATORS = frozenset({"operator", "admin"})
BODY_LIMIT = 64 * 1024  # a reopen names up to 3 × 1000 codes


async def _actor(request: Request) -> Actor:
    staff = await require_staff(request, OPERATORS)
    admit(request)
    return Actor(staff.username, staff.role, staff.staff_id, client_address(request))


async def _body(request: Request) -> dict[str, Any]:
    body = await read_json(request, BODY_LIMIT)
    if not isinstance(body, dict):
        raise MalformedRequest()
    return body


async def get_window(request: Request) -> Response:
    await _actor(request)
    svc = services(request)
    return json_response(await calendar_changes.calendar_json(svc.pool, svc.calendar))


async def put_window(request: Request) -> Response:
    actor = await _actor(request)
    svc = services(request)
    return json_response(
        await calendar_changes.set_window(svc.pool, svc.calendar, actor, await _body(request))
    )


async def clear_window(request: Request) -> Response:
    actor = await _actor(request)
    svc = services(request)
    body = await _body(request)
    return json_response(await calendar_changes.clear_window(svc.pool, svc.calendar, actor, body))


async def list_reopens(request: Request) -> Response:
    await _actor(request)
    only_open = request.query_params.get("open") in ("1", "true")
    return json_response(
        {"reopens": await calendar_changes.reopens(services(request).pool, open_only=only_open)}
    )


async def create_reopen(request: Request) -> Response:
    actor = await _actor(request)
    svc = services(request)
    body = await _body(request)
    return json_response(
        await calendar_changes.create_reopen(svc.pool, svc.calendar, actor, body), 201
    )


async def close_reopen(request: Request) -> Response:
    actor = await _actor(request)
    raw = request.path_params["reopen_id"]
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 18):
        raise NotFound()
    svc = services(request)
    body = await _body(request)
    return json_response(
        await calendar_changes.close_reopen(svc.pool, svc.calendar, actor, int(raw), body)
    )


async def lock_report(request: Request) -> Response:
    actor = await _actor(request)
    svc = services(request)
    body = await lock.report(svc.pool, svc.redis, svc.settings.stream_shards, svc.calendar, actor)
    return json_response(body)


routes = [
    Route("/api/v1/ops/window", get_window, methods=["GET"]),
    Route("/api/v1/ops/window", put_window, methods=["PUT"]),
    Route("/api/v1/ops/window/clear", clear_window, methods=["POST"]),
    Route("/api/v1/ops/reopens", list_reopens, methods=["GET"]),
    Route("/api/v1/ops/reopens", create_reopen, methods=["POST"]),
    Route("/api/v1/ops/reopens/{reopen_id}/close", close_reopen, methods=["POST"]),
    Route("/api/v1/ops/lock", lock_report, methods=["GET"]),
]
