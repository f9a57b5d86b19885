"""Support desk on HTTP API v1: find a candidate, see where their registration is, reset a password.

Owns the desk's JSON routes and the admin's read of the record of actions (the audit log and
the submissions and edits derived from the persisted versions: the `activity` view). What a
search, detail view, reveal or reset does — role scope, masking, the pipeline state, the audit
row written in the same transaction as the read (refused ones too) — is
`engine.services.support_desk`'s, shared with the console pages (`engine.pages.support`); this
module only maps query strings and bodies to it. Roles `support` and `admin` see every
candidate, `school` only its own school's; only `admin` reads the record."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine.http.gate import admit
from engine.http.plumbing import client_address, read_json
from engine.http.responses import json_response, services
from engine.http.staff import require_staff
from engine.services import activity_log, support_desk
from engine.services.support_desk import ADMIN, DESK_ROLES, Desk


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
    return json_response(await activity_log.read(desk, request.query_params))


routes = [
    Route("/api/v1/support/candidates", search, methods=["GET"]),
    Route("/api/v1/support/candidates/{candidate_id}", detail, methods=["GET"]),
    Route(
        "/api/v1/support/candidates/{candidate_id}/password-reset", password_reset, methods=["POST"]
    ),
    Route("/api/v1/support/audit", audit_log, methods=["GET"]),
]
