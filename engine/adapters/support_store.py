"""PostgreSQL for the support desk: candidate search, detail, password reset and the audit log.

Owns the desk's SQL. Every read of a candidate runs in one transaction with its audit row, so a read
that cannot be audited does not happen (issue 4). Search conditions are assembled from fixed
fragments with numbered parameters, never from user text. Split from `engine.adapters.store` by
size; it shares that module's pool and connection type."""

from __future__ import annotations

import ipaddress
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import orjson

from engine.adapters.store import Connection

PAGE_SIZE_MAX = 50


def fold_name(text: str) -> str:
    """What `candidates.name_folded` holds: no diacritics, đ → d, lower case, single spaces."""
    decomposed = unicodedata.normalize("NFD", text.replace("Đ", "D").replace("đ", "d"))
    bare = "".join(c for c in decomposed if unicodedata.category(c) != "Mn")
    return " ".join(bare.lower().split())


@dataclass(frozen=True, slots=True)
class Search:
    """One search request; exactly one of the criteria groups is set."""

    national_id: str | None = None
    candidate_id: int | None = None
    name: str | None = None
    date_of_birth: date | None = None
    school: tuple[str, str] | None = None
    page: int = 1
    page_size: int = 20

    def criteria(self) -> dict[str, Any]:
        """The search as the audit log records it."""
        return {
            k: (v.isoformat() if isinstance(v, date) else v)
            for k, v in (
                ("national_id", self.national_id),
                ("candidate_id", self.candidate_id),
                ("name", self.name),
                ("date_of_birth", self.date_of_birth),
                ("school", list(self.school) if self.school else None),
                ("page", self.page),
            )
            if v is not None
        }


_RESULT_COLUMNS = """
    c.candidate_id, c.national_id, c.full_name, c.date_of_birth, c.sex, c.candidate_type,
    c.province_code, c.school_code, s.name AS school_name,
    r.version AS registration_version, r.persisted_at AS registration_persisted_at
"""


def _where(search: Search, scope_school: tuple[str, str] | None) -> tuple[str, list[Any], str]:
    conditions: list[str] = []
    params: list[Any] = []

    def add(fragment: str, *values: Any) -> None:
        numbered = fragment
        for value in values:
            params.append(value)
            numbered = numbered.replace("?", f"${len(params)}", 1)
        conditions.append(numbered)

    order = "c.candidate_id"
    if search.national_id is not None:
        add("c.national_id = ?", search.national_id)
    if search.candidate_id is not None:
        add("c.candidate_id = ?", search.candidate_id)
    if search.name is not None:
        folded = fold_name(search.name)
        if search.date_of_birth is not None:
            add("c.name_folded = ?", folded)
        else:
            pattern = folded.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            add("c.name_folded LIKE ?", pattern)
            order = "c.name_folded, c.candidate_id"
    if search.date_of_birth is not None:
        add("c.date_of_birth = ?", search.date_of_birth)
    if search.school is not None:
        add("c.province_code = ? AND c.school_code = ?", *search.school)
    if scope_school is not None:  # a school account sees its own school only
        add("c.province_code = ? AND c.school_code = ?", *scope_school)
    return " AND ".join(conditions) or "true", params, order


async def search_candidates(
    conn: Connection, search: Search, scope_school: tuple[str, str] | None
) -> list[dict[str, Any]]:
    """One page (plus one row, to tell whether there is a next page)."""
    where, params, order = _where(search, scope_school)
    size = min(max(search.page_size, 1), PAGE_SIZE_MAX)
    params += [size + 1, (max(search.page, 1) - 1) * size]
    sql = (
        f"SELECT {_RESULT_COLUMNS} FROM candidates c"  # noqa: S608 - fixed fragments only
        " JOIN schools s USING (province_code, school_code)"
        " LEFT JOIN registrations r USING (candidate_id)"
        f" WHERE {where} ORDER BY {order} LIMIT ${len(params) - 1} OFFSET ${len(params)}"
    )
    return [dict(r) for r in await conn.fetch(sql, *params)]


async def candidate_detail(conn: Connection, candidate_id: int) -> dict[str, Any] | None:
    """Roster row, current registration and every version, newest first."""
    candidate = await conn.fetchrow(
        f"SELECT {_RESULT_COLUMNS}, c.phone, c.must_change_password, c.created_at"  # noqa: S608
        " FROM candidates c JOIN schools s USING (province_code, school_code)"
        " LEFT JOIN registrations r USING (candidate_id) WHERE c.candidate_id = $1",
        candidate_id,
    )
    if candidate is None:
        return None
    current = await conn.fetchrow(
        "SELECT version, receipt_id, phase, form, accepted_at, persisted_at"
        " FROM registrations WHERE candidate_id = $1",
        candidate_id,
    )
    versions = await conn.fetch(
        "SELECT version, receipt_id, idempotency_key, phase, shard, stream_id, accepted_at,"
        " persisted_at FROM registration_versions WHERE candidate_id = $1 ORDER BY version DESC",
        candidate_id,
    )
    return {
        "candidate": dict(candidate),
        "current": dict(current) if current else None,
        "versions": [dict(v) for v in versions],
    }


async def candidate_school(conn: Connection, candidate_id: int) -> tuple[str, str] | None:
    row = await conn.fetchrow(
        "SELECT province_code, school_code FROM candidates WHERE candidate_id = $1", candidate_id
    )
    return None if row is None else (row["province_code"], row["school_code"])


async def audit(
    conn: Connection,
    *,
    staff_id: int | None,  # None: an operator at the command line (`detail.actor` says who)
    role: str,
    action: str,
    candidate_id: int | None,
    reason: str | None,
    client_addr: str | None,
    detail: dict[str, Any],
) -> None:
    """Write one audit row (inside the caller's transaction when there is one)."""
    await conn.execute(
        "INSERT INTO audit_log (staff_id, role, action, candidate_id, reason, client_addr, detail)"
        " VALUES ($1, $2, $3, $4, $5, $6::inet, $7::jsonb)",
        staff_id,
        role,
        action,
        candidate_id,
        reason,
        _inet(client_addr),
        orjson.dumps(detail).decode(),
    )


def _inet(address: str | None) -> str | None:
    try:
        return str(ipaddress.ip_address(address or ""))
    except ValueError:
        return None


async def reset_password(conn: Connection, candidate_id: int, password_hash: str) -> bool:
    status = await conn.execute(
        "UPDATE candidates SET password_hash = $2, must_change_password = true,"
        " password_changed_at = now() WHERE candidate_id = $1",
        candidate_id,
        password_hash,
    )
    return status.endswith(" 1")


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """A page of the record of actions (the `activity` view: the audit log and the submissions
    derived from the persisted versions), newest first, every filter optional."""

    staff: str | None = None  # username
    candidate_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    page: int = 1
    page_size: int = 50
    actor: str | None = None  # username, an operator's --actor, or candidate:<id>
    action: str | None = None  # login, submit, edit, search, reconcile, …


async def read_audit(conn: Connection, query: AuditQuery) -> list[dict[str, Any]]:
    """One page (plus one row, to tell whether there is a next page)."""
    conditions: list[str] = []
    params: list[Any] = []
    for fragment, value in (
        ("staff = ?", query.staff),
        ("candidate_id = ?", query.candidate_id),
        ("at >= ?", query.since),
        ("at < ?", query.until),
        ("actor = ?", query.actor),
        ("action = ?", query.action),
    ):
        if value is not None:
            params.append(value)
            conditions.append(fragment.replace("?", f"${len(params)}"))
    size = min(max(query.page_size, 1), 200)
    params += [size + 1, (max(query.page, 1) - 1) * size]
    rows = await conn.fetch(
        "SELECT entry_id, audit_id, at, staff, actor, role, action, candidate_id, reason,"  # noqa: S608
        " client_addr, detail FROM activity"
        f" WHERE {' AND '.join(conditions) or 'true'}"
        f" ORDER BY at DESC, entry_id DESC LIMIT ${len(params) - 1} OFFSET ${len(params)}",
        *params,
    )
    return [dict(r) for r in rows]
