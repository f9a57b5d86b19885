"""Reading the record of every action (issue 14 item 5): the admin's filtered, paged view.

Owns the read behind `GET /api/v1/support/audit` and the console's `/support/audit` page: the
filters (staff, actor, action, candidate, a time range, the page), checked like every desk
input, and the read's own audit row, written in the same transaction (a read that cannot be
audited does not happen). Rows come from the `activity` view: the audit log and the submissions
and edits derived from the persisted versions. It must not read a request.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from engine.adapters import support_store
from engine.adapters.support_store import AuditQuery
from engine.services import support_desk
from engine.services.support_desk import Desk, invalid

FILTERS = ("staff", "actor", "action", "candidate", "since", "until", "page", "reason")


def instant(params: Mapping[str, str], name: str) -> datetime | None:
    """An ISO 8601 instant (a bare one is UTC); a field error otherwise."""
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


def _text(params: Mapping[str, str], name: str) -> str | None:
    value = (params.get(name) or "").strip()
    if len(value) > 100:
        raise invalid(name, "too_long", "Tối đa 100 ký tự.", "At most 100 characters.")
    return value or None


def query_of(params: Mapping[str, str]) -> AuditQuery:
    """The filters as a query; every bad one is a 422 field error."""
    for name, value in params.items():
        support_desk.check_text(name, name + value)
    return AuditQuery(
        staff=_text(params, "staff"),
        candidate_id=support_desk.parse_number(params, "candidate"),
        since=instant(params, "since"),
        until=instant(params, "until"),
        page=support_desk.parse_number(params, "page", 1, support_desk.PAGE_MAX) or 1,
        actor=_text(params, "actor"),
        action=_text(params, "action"),
    )


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


async def read(desk: Desk, params: Mapping[str, str]) -> dict[str, Any]:
    """One page of the record, newest first, and the read's audit row (admin only: the caller
    checked the role)."""
    query = query_of(params)
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
            detail={"filters": {k: v for k, v in params.items() if k != "reason" and v}},
        )
    size = min(query.page_size, 200)
    return {
        "entries": [_jsonable(r) for r in rows[:size]],
        "page": query.page,
        "next_page": query.page + 1 if len(rows) > size else None,
    }
