"""Support desk on HTTP API v1: find a candidate, see where their registration is, reset a password.

Owns the desk's JSON routes and the admin's audit-log read. What a search, detail view, reveal or
reset does — role scope, masking, the pipeline state, the audit row written in the same transaction
as the read (refused ones too) — is `engine.services.support_desk`'s, shared with the console pages
(`engine.pages.support`); this module only maps query strings and bodies to it. Roles `support` and
`admin` see every candidate, `school` only its own school's; only `admin` reads the audit log.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine.adapters import support_store
from engine.adapters.support_store import AuditQuery
from engine.http.gate import admit
from engine.http.plumbing import client_address, read_json
from engine.http.responses import json_response, services
from engine.http.staff import require_staff
from engine.services import support_desk
from engine.services.support_desk import ADMIN, DESK_ROLES, Desk, invalid


async def _desk(request: Request, roles: frozenset[str] = DESK_ROLES) -> Desk:
    staff = await require_staff(request, roles)
    return Desk(services(request), staff, client_address(request))


async def search(request: Request) -> Response:
    desk = await _desk(request)
    admit(request)
    found = await support_desk.search(desk, request.query_params)
    return json_response(found.to_json())


async def detail(request: Request) -> Response:
    desk = await _desk(request)
    admit(request)
    candidate_id = support_desk.candidate_id_of(request.path_params["candidate_id"])
    reveal = request.query_params.get("reveal") in ("1", "true")
    body = await support_desk.read_candidate(
        desk, candidate_id, request.query_params.get("reason"), reveal
    )
    return json_response(body)


async def password_reset(request: Request) -> Response:
    desk = await _desk(request)
    candidate_id = support_desk.candidate_id_of(request.path_params["candidate_id"])
    body = await read_json(request, 4096)
    admit(request)
    reason = body.get("reason") if isinstance(body, dict) else None
    reset = await support_desk.reset_password(desk, candidate_id, reason)
    return json_response(reset, headers={"Cache-Control": "no-store"})


async def audit_log(request: Request) -> Response:
    desk = await _desk(request, ADMIN)
    admit(request)
    params = request.query_params
    for name, value in params.items():
        support_desk.check_text(name, name + value)
    query = AuditQuery(
        staff=params.get("staff") or None,
        candidate_id=support_desk.parse_number(params, "candidate"),
        since=_instant(params, "since"),
        until=_instant(params, "until"),
        page=support_desk.parse_number(params, "page", 1, support_desk.PAGE_MAX) or 1,
    )
    reason = support_desk.optional_reason(params.get("reason"))
    async with desk.svc.pool.acquire() as conn, conn.transaction():
        rows = await support_store.read_audit(conn, query)
        # The row names the candidate only if one exists: the column is a foreign key.
        known = query.candidate_id is not None and await support_store.candidate_school(
            conn, query.candidate_id
        )
        await support_store.audit(
            conn,
            staff_id=desk.staff.staff_id,
            role=desk.staff.role,
            action="audit_read",
            candidate_id=query.candidate_id if known else None,
            reason=reason,
            client_addr=desk.address,
            detail={"filters": {k: v for k, v in params.items() if k != "reason"}},
        )
    size = min(query.page_size, 200)
    return json_response(
        {
            "entries": [_jsonable(r) for r in rows[:size]],
            "page": query.page,
            "next_page": query.page + 1 if len(rows) > size else None,
        }
    )


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


def _instant(params: Any, name: str) -> datetime | None:
    raw = params.get(name)
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise invalid(
            name,
            "invalid_date",
            "Thời điểm không hợp lệ (ISO 8601).",
            "Invalid instant (ISO 8601).",
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


routes = [
    Route("/api/v1/support/candidates", search, methods=["GET"]),
    Route("/api/v1/support/candidates/{candidate_id}", detail, methods=["GET"]),
    Route(
        "/api/v1/support/candidates/{candidate_id}/password-reset", password_reset, methods=["POST"]
    ),
    Route("/api/v1/support/audit", audit_log, methods=["GET"]),
]
