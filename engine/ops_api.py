"""Operator endpoints of HTTP API v1: the capacity forecast (`GET /api/v1/ops/capacity`).

Owns the HTTP face of `engine.capacity`: who may ask (operator and admin staff), the optional
`target_seconds` query parameter, and Redis being unreachable. The numbers
themselves come from `engine.telemetry` (the sampled ring plus a sample taken for the request)
and `engine.capacity` (the model).
"""

from __future__ import annotations

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine.api import json_response, services
from engine.errors import FieldError, InvalidRequest, Unavailable
from engine.staff_api import require_staff

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


async def capacity(request: Request) -> Response:
    """The capacity forecast: rates, backlog, time to the limit, deadline projection, advice."""
    await require_staff(request, OPERATORS)
    target = _target_seconds(request)
    try:
        forecast = await services(request).sampler.forecast(target)
    except (RedisError, OSError, TimeoutError) as exc:
        raise Unavailable(extra={"reason": type(exc).__name__}) from exc
    return json_response(forecast.to_json())


routes = [Route("/api/v1/ops/capacity", capacity, methods=["GET"])]
