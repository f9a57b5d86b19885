"""Support desk on HTTP API v1: find a candidate, see where their registration is, reset a password.

Owns the desk's routes and their rules (issue 4): roles `support` and `admin` see every candidate,
`school` only its own school's; national IDs and phone numbers are masked unless revealed with a
reason; every search, detail view, reveal and reset writes an audit row in the same transaction as
the read (failed and refused ones too); only `admin` reads the audit log. The pipeline state says
where the newest submission is: waiting or pending in its shard's stream, persisted, or
dead-lettered, which answers "did it count?".
"""

from __future__ import annotations

import re
import time
from datetime import UTC, date, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine import queue, support_store
from engine.api import Services, json_response, services
from engine.errors import FieldError, InvalidRequest, NotFound
from engine.http import client_address, read_json
from engine.roster import issue_password
from engine.staff_api import StaffSession, require_staff
from engine.support_store import AuditQuery, Search

DESK_ROLES = frozenset({"support", "school", "admin"})
ADMIN = frozenset({"admin"})
_DIGITS12 = re.compile(r"^[0-9]{12}$")
_CODE2 = re.compile(r"^[0-9]{2}$")
_CODE3 = re.compile(r"^[0-9]{3}$")


def mask_national_id(value: str) -> str:
    return value[:3] + "*" * (len(value) - 5) + value[-2:] if len(value) > 5 else "*" * len(value)


def mask_phone(value: str | None) -> str | None:
    if not value:
        return value
    return value[:2] + "*" * (len(value) - 4) + value[-2:] if len(value) > 4 else "*" * len(value)


def _invalid(field: str, code: str, vi: str, en: str) -> InvalidRequest:
    return InvalidRequest(errors=(FieldError(field, code, vi, en),))


def _reason(request: Request, body: dict[str, Any] | None = None) -> str:
    raw = (body or {}).get("reason") if body is not None else request.query_params.get("reason")
    reason = raw.strip() if isinstance(raw, str) else ""
    if not 3 <= len(reason) <= 500:
        raise _invalid(
            "reason",
            "reason_required",
            "Vui lòng nhập lý do (số phiếu hỗ trợ hoặc mô tả), 3–500 ký tự.",
            "A reason (ticket reference or description) of 3–500 characters is required.",
        )
    return reason


def _int(params: Any, name: str, default: int | None = None, low: int = 1) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or int(raw) < low or int(raw) > 2**62:
        raise _invalid(name, "invalid_number", "Giá trị phải là số.", "Must be a whole number.")
    return int(raw)


def _date(params: Any, name: str) -> date | None:
    raw = params.get(name)
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise _invalid(
            name, "invalid_date", "Ngày không hợp lệ (YYYY-MM-DD).", "Invalid date (YYYY-MM-DD)."
        ) from None


def _search(request: Request) -> Search:
    params = request.query_params
    national_id = params.get("national_id") or None
    if national_id is not None and not _DIGITS12.match(national_id):
        raise _invalid(
            "national_id",
            "invalid_format",
            "Số định danh gồm 12 chữ số.",
            "A national ID has 12 digits.",
        )
    name = (params.get("name") or "").strip() or None
    if name is not None and not 2 <= len(name) <= 80:
        raise _invalid(
            "name", "invalid_length", "Tên cần 2–80 ký tự.", "A name needs 2–80 characters."
        )
    province, school = params.get("province_code"), params.get("school_code")
    school_key = None
    if province or school:
        if not (province and school and _CODE2.match(province) and _CODE3.match(school)):
            raise _invalid(
                "school_code",
                "invalid_school",
                "Cần mã tỉnh (2 số) và mã trường (3 số).",
                "Both a 2-digit province and a 3-digit school code are needed.",
            )
        school_key = (province, school)
    search = Search(
        national_id=national_id,
        candidate_id=_int(params, "candidate_id"),
        name=name,
        date_of_birth=_date(params, "date_of_birth"),
        school=school_key,
        page=_int(params, "page", 1) or 1,
        page_size=min(_int(params, "page_size", 20) or 20, support_store.PAGE_SIZE_MAX),
    )
    if not (search.national_id or search.candidate_id or search.name or search.school):
        raise _invalid(
            "",
            "criteria_required",
            "Nhập số định danh, mã thí sinh, họ tên hoặc trường.",
            "Give a national ID, candidate ID, name or school.",
        )
    return search


def _summary(row: dict[str, Any], reveal: bool = False) -> dict[str, Any]:
    return {
        "candidate_id": row["candidate_id"],
        "national_id": row["national_id"] if reveal else mask_national_id(row["national_id"]),
        "full_name": row["full_name"],
        "date_of_birth": row["date_of_birth"].isoformat(),
        "sex": row["sex"],
        "candidate_type": row["candidate_type"],
        "school": {
            "province_code": row["province_code"],
            "school_code": row["school_code"],
            "name": row["school_name"],
        },
        "registration": None
        if row["registration_version"] is None
        else {
            "version": row["registration_version"],
            "persisted_at": row["registration_persisted_at"].isoformat(),
        },
    }


async def _audit(
    svc: Services,
    request: Request,
    staff: StaffSession,
    action: str,
    candidate_id: int | None,
    reason: str | None,
    detail: dict[str, Any],
) -> None:
    """A standalone audit row, for refused or failed requests (no read to share it with)."""
    async with svc.pool.acquire() as conn:
        await support_store.audit(
            conn,
            staff_id=staff.staff_id,
            role=staff.role,
            action=action,
            candidate_id=candidate_id,
            reason=reason,
            client_addr=client_address(request),
            detail=detail,
        )


async def search(request: Request) -> Response:
    svc = services(request)
    staff = await require_staff(request, DESK_ROLES)
    try:
        criteria = _search(request)
    except InvalidRequest:
        await _audit(svc, request, staff, "search", None, None, {"outcome": "invalid"})
        raise
    reason = request.query_params.get("reason")
    async with svc.pool.acquire() as conn, conn.transaction():
        rows = await support_store.search_candidates(conn, criteria, staff.school)
        size = min(criteria.page_size, support_store.PAGE_SIZE_MAX)
        await support_store.audit(
            conn,
            staff_id=staff.staff_id,
            role=staff.role,
            action="search",
            candidate_id=None,
            reason=reason,
            client_addr=client_address(request),
            detail={"criteria": criteria.criteria(), "results": min(len(rows), size)},
        )
    return json_response(
        {
            "results": [_summary(r) for r in rows[:size]],
            "page": criteria.page,
            "next_page": criteria.page + 1 if len(rows) > size else None,
        }
    )


async def _visible_or_404(
    svc: Services,
    request: Request,
    staff: StaffSession,
    candidate_id: int,
    action: str,
    reason: str | None,
) -> None:
    """A school account asking for another school's candidate gets the same 404 as a missing one."""
    async with svc.pool.acquire() as conn:
        school = await support_store.candidate_school(conn, candidate_id)
    if school is None or (staff.school is not None and school != staff.school):
        await _audit(
            svc,
            request,
            staff,
            action,
            candidate_id if school else None,
            reason,
            {"outcome": "not_found" if school is None else "outside_school"},
        )
        raise NotFound()


async def detail(request: Request) -> Response:
    svc = services(request)
    staff = await require_staff(request, DESK_ROLES)
    candidate_id = _path_id(request)
    reveal = request.query_params.get("reveal") in ("1", "true")
    try:
        reason = _reason(request)
    except InvalidRequest:
        await _audit(
            svc,
            request,
            staff,
            "reveal" if reveal else "detail",
            candidate_id,
            None,
            {"outcome": "no_reason"},
        )
        raise
    action = "reveal" if reveal else "detail"
    await _visible_or_404(svc, request, staff, candidate_id, action, reason)
    async with svc.pool.acquire() as conn, conn.transaction():
        await support_store.audit(
            conn,
            staff_id=staff.staff_id,
            role=staff.role,
            action=action,
            candidate_id=candidate_id,
            reason=reason,
            client_addr=client_address(request),
            detail={"outcome": "ok"},
        )
        found = await support_store.candidate_detail(conn, candidate_id)
    if found is None:
        raise NotFound()
    candidate = found["candidate"]
    body = _summary(candidate, reveal)
    body["phone"] = candidate["phone"] if reveal else mask_phone(candidate["phone"])
    body["must_change_password"] = candidate["must_change_password"]
    body["revealed"] = reveal
    body["current"] = _jsonable(found["current"])
    body["versions"] = [_jsonable(v) for v in found["versions"]]
    body["pipeline"] = await pipeline_state(svc, candidate_id, found["versions"])
    return json_response(body)


def _jsonable(row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


def _path_id(request: Request) -> int:
    raw = request.path_params["candidate_id"]
    if not raw.isdigit() or int(raw) > 2**62:
        raise NotFound()
    return int(raw)


async def pipeline_state(
    svc: Services, candidate_id: int, versions: list[dict[str, Any]]
) -> dict[str, Any]:
    """Where the newest accepted version is now: the one view that answers "did it count?"."""
    shard = svc.settings.shard_of(candidate_id)
    latest = await queue.latest_record(svc.redis, shard, candidate_id)
    newest = versions[0] if versions else None
    if newest is not None and (latest is None or newest["version"] >= latest.version):
        return {
            "state": "persisted",
            "version": newest["version"],
            "receipt_id": newest["receipt_id"],
            "shard": shard,
            "accepted_at": newest["accepted_at"].isoformat(),
            "persisted_at": newest["persisted_at"].isoformat(),
        }
    if latest is None:
        return {"state": "none"}
    base = {
        "version": latest.version,
        "receipt_id": latest.receipt_id,
        "shard": shard,
        "stream_id": latest.stream_id,
        "accepted_at": latest.accepted_at,
        "age_seconds": round(time.time() - int(latest.stream_id.split("-")[0]) / 1000, 3),
    }
    dead = await queue.find_dead_letter(svc.redis, shard, latest.receipt_id)
    if dead is not None:
        return {"state": "dead_lettered", **base, "reason": dead["reason"]}
    entry = await queue.entry_state(svc.redis, shard, latest.stream_id)
    if entry["state"] == "gone":  # committed between our database read and now
        return {"state": "persisted", **base}
    return {"state": "in_stream", **base, "delivery": entry}


async def password_reset(request: Request) -> Response:
    svc = services(request)
    staff = await require_staff(request, DESK_ROLES)
    candidate_id = _path_id(request)
    body = await read_json(request, 4096)
    try:
        reason = _reason(request, body if isinstance(body, dict) else {})
    except InvalidRequest:
        await _audit(
            svc, request, staff, "password_reset", candidate_id, None, {"outcome": "no_reason"}
        )
        raise
    await _visible_or_404(svc, request, staff, candidate_id, "password_reset", reason)
    password = issue_password()
    password_hash = await svc.passwords.hash(password)
    async with svc.pool.acquire() as conn, conn.transaction():
        await support_store.audit(
            conn,
            staff_id=staff.staff_id,
            role=staff.role,
            action="password_reset",
            candidate_id=candidate_id,
            reason=reason,
            client_addr=client_address(request),
            detail={"outcome": "ok"},
        )
        if not await support_store.reset_password(conn, candidate_id, password_hash):
            raise NotFound()
    revoked = await svc.sessions.revoke_all("candidate", candidate_id)
    return json_response(
        {
            "candidate_id": candidate_id,
            "password": password,
            "must_change_password": True,
            "sessions_revoked": revoked,
        },
        headers={"Cache-Control": "no-store"},
    )


async def audit_log(request: Request) -> Response:
    svc = services(request)
    staff = await require_staff(request, ADMIN)
    params = request.query_params
    query = AuditQuery(
        staff=params.get("staff") or None,
        candidate_id=_int(params, "candidate"),
        since=_instant(params, "since"),
        until=_instant(params, "until"),
        page=_int(params, "page", 1) or 1,
    )
    async with svc.pool.acquire() as conn, conn.transaction():
        rows = await support_store.read_audit(conn, query)
        await support_store.audit(
            conn,
            staff_id=staff.staff_id,
            role=staff.role,
            action="audit_read",
            candidate_id=query.candidate_id,
            reason=params.get("reason"),
            client_addr=client_address(request),
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


def _instant(params: Any, name: str) -> datetime | None:
    raw = params.get(name)
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise _invalid(
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
