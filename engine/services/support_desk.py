"""The support desk's operations, shared by its JSON API and its console pages.

Owns what a desk request does once the caller is known (issue 4): the search criteria and reasons
it accepts, the role scope (a `school` account sees its own school only, and another school's
candidate looks missing), masking of national IDs and phone numbers, the pipeline state, and the
audit row every search, detail view, reveal and password reset writes in the same transaction as
its read — refused and failed ones too. `engine.http.support` (JSON) and `engine.pages.support`
(HTML) only translate HTTP to these calls, so the two cannot drift apart. It must not read a
request: SQL is `engine.adapters.support_store`'s, streams are `engine.adapters.streams`'s.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

from engine.adapters import dead_letters, store, streams, support_store
from engine.adapters.support_store import Search
from engine.domain import phieu
from engine.errors import FieldError, InvalidRequest, NotFound
from engine.services.container import Services
from engine.services.roster import issue_password
from engine.services.staff import StaffSession

DESK_ROLES: Final = frozenset({"support", "school", "admin"})
ADMIN: Final = frozenset({"admin"})
PAGE_MAX: Final = 10_000  # 500,000 rows deep at most: past that, narrow the search
_ID_MAX: Final = 2**62
_DIGITS: Final = re.compile(r"[0-9]{1,19}")  # ASCII only: str.isdigit() admits "²"
_NATIONAL_ID: Final = re.compile(r"[0-9]{12}")
_CODE2: Final = re.compile(r"[0-9]{2}")
_CODE3: Final = re.compile(r"[0-9]{3}")
# PostgreSQL text and jsonb refuse NUL; other control characters have no business in a reason.
_CONTROL: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class Desk:
    """One staff member at the desk: who, from where, and the services to act with."""

    svc: Services
    staff: StaffSession
    address: str


@dataclass(frozen=True, slots=True)
class SearchPage:
    """One page of search results, national IDs masked."""

    results: list[dict[str, Any]]
    page: int
    next_page: int | None

    def to_json(self) -> dict[str, Any]:
        return {"results": self.results, "page": self.page, "next_page": self.next_page}


# -- what a request may say ------------------------------------------------------------------


def invalid(field: str, code: str, vi: str, en: str) -> InvalidRequest:
    return InvalidRequest(errors=(FieldError(field, code, vi, en),))


def check_text(field: str, value: str) -> None:
    """Refuse control characters, which PostgreSQL's text and jsonb would refuse with a 5xx."""
    if _CONTROL.search(value):
        raise invalid(
            field,
            "invalid_characters",
            "Có ký tự không hợp lệ (ký tự điều khiển).",
            "Contains characters that are not allowed (control characters).",
        )


def check_reason(raw: object) -> str:
    """The reason (ticket reference or description) every search, detail view, reveal and reset
    requires."""
    reason = raw.strip() if isinstance(raw, str) else ""
    if not 3 <= len(reason) <= 500:
        raise invalid(
            "reason",
            "reason_required",
            "Vui lòng nhập lý do (số phiếu hỗ trợ hoặc mô tả), 3–500 ký tự.",
            "A reason (ticket reference or description) of 3–500 characters is required.",
        )
    check_text("reason", reason)
    return reason


def optional_reason(raw: object) -> str | None:
    """An audit-log read's reason: optional, but checked like any other when given."""
    if not isinstance(raw, str) or not raw.strip():
        return None
    return check_reason(raw)


def parse_number(
    params: Mapping[str, str], name: str, default: int | None = None, high: int = _ID_MAX
) -> int | None:
    """An optional whole number from 1 to `high` (ASCII digits only)."""
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if not _DIGITS.fullmatch(raw) or not 1 <= int(raw) <= high:
        raise invalid(
            name,
            "invalid_number",
            f"Cần một số nguyên từ 1 đến {high}.",
            f"A whole number from 1 to {high} is needed.",
        )
    return int(raw)


def _date(params: Mapping[str, str], name: str) -> date | None:
    raw = params.get(name)
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise invalid(
            name, "invalid_date", "Ngày không hợp lệ (YYYY-MM-DD).", "Invalid date (YYYY-MM-DD)."
        ) from None


def _school(params: Mapping[str, str]) -> tuple[str, str] | None:
    province, school = params.get("province_code"), params.get("school_code")
    if not (province or school):
        return None
    if not (province and school and _CODE2.fullmatch(province) and _CODE3.fullmatch(school)):
        raise invalid(
            "school_code",
            "invalid_school",
            "Cần mã tỉnh (2 số) và mã trường (3 số).",
            "Both a 2-digit province and a 3-digit school code are needed.",
        )
    return province, school


def parse_search(params: Mapping[str, str]) -> Search:
    """Search criteria from query parameters or form fields; blank ones are ignored.

    Raises:
        InvalidRequest: a malformed criterion, or none at all.
    """
    national_id = params.get("national_id") or None
    if national_id is not None and not _NATIONAL_ID.fullmatch(national_id):
        raise invalid(
            "national_id",
            "invalid_format",
            "Số định danh gồm 12 chữ số.",
            "A national ID has 12 digits.",
        )
    name = (params.get("name") or "").strip() or None
    if name is not None:
        if not 2 <= len(name) <= 80:
            raise invalid(
                "name", "invalid_length", "Tên cần 2–80 ký tự.", "A name needs 2–80 characters."
            )
        check_text("name", name)
    search = Search(
        national_id=national_id,
        candidate_id=parse_number(params, "candidate_id", None, _ID_MAX),
        name=name,
        date_of_birth=_date(params, "date_of_birth"),
        school=_school(params),
        page=parse_number(params, "page", 1, PAGE_MAX) or 1,
        # A larger page is served at the largest size, as it always was.
        page_size=min(
            parse_number(params, "page_size", 20, _ID_MAX) or 20, support_store.PAGE_SIZE_MAX
        ),
    )
    if not (search.national_id or search.candidate_id or search.name or search.school):
        raise invalid(
            "",
            "criteria_required",
            "Nhập số định danh, mã thí sinh, họ tên hoặc trường.",
            "Give a national ID, candidate ID, name or school.",
        )
    return search


def candidate_id_of(raw: str) -> int:
    """A candidate ID from a URL path; anything else is a candidate that does not exist."""
    if not _DIGITS.fullmatch(raw) or int(raw) > _ID_MAX:
        raise NotFound()
    return int(raw)


# -- masking -----------------------------------------------------------------------------------


def mask_national_id(value: str) -> str:
    return value[:3] + "*" * (len(value) - 5) + value[-2:] if len(value) > 5 else "*" * len(value)


def mask_phone(value: str | None) -> str | None:
    if not value:
        return value
    return value[:2] + "*" * (len(value) - 4) + value[-2:] if len(value) > 4 else "*" * len(value)


def summary(row: Mapping[str, Any], reveal: bool = False) -> dict[str, Any]:
    """A roster row as a search result (and the head of a detail)."""
    entry = store.roster_entry(row)
    if not reveal:
        entry["national_id"] = mask_national_id(row["national_id"])
    return {
        **entry,
        "registration": None
        if row["registration_version"] is None
        else {
            "version": row["registration_version"],
            "persisted_at": row["registration_persisted_at"].isoformat(),
        },
    }


def _jsonable(row: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


def _current(row: Mapping[str, Any] | None, reveal: bool) -> dict[str, Any] | None:
    """The current registration; the form repeats the national ID and phone, masked alike."""
    current = _jsonable(row)
    form = current.get("form") if current else None
    if current is None or not isinstance(form, dict) or reveal:
        return current
    masked = dict(form)
    if isinstance(masked.get("national_id"), str):
        masked["national_id"] = mask_national_id(masked["national_id"])
    if isinstance(masked.get("phone"), str):
        masked["phone"] = mask_phone(masked["phone"])
    return {**current, "form": masked}


# -- the operations ----------------------------------------------------------------------------


async def _audit(
    desk: Desk,
    conn: store.Connection,
    action: str,
    candidate_id: int | None,
    reason: str | None,
    detail: dict[str, Any],
) -> None:
    """The caller's audit row for `action`, on `conn` (inside the read's transaction)."""
    await support_store.audit(
        conn,
        staff_id=desk.staff.staff_id,
        role=desk.staff.role,
        action=action,
        candidate_id=candidate_id,
        reason=reason,
        client_addr=desk.address,
        detail=detail,
    )


async def audit_refusal(
    desk: Desk,
    action: str,
    candidate_id: int | None,
    reason: str | None,
    detail: dict[str, Any],
) -> None:
    """A standalone audit row, for refused or failed requests (no read to share it with)."""
    async with desk.svc.pool.acquire() as conn:
        await _audit(desk, conn, action, candidate_id, reason, detail)


async def search(desk: Desk, params: Mapping[str, str]) -> SearchPage:
    """One page of candidates matching `params`, within the caller's school for `school` roles.

    Like every read of the desk, a search needs a reason, and its audit row names the candidates
    it shows (their IDs, in the order shown), so "who saw candidate X" covers lists too.

    Raises:
        InvalidRequest: malformed criteria, none at all, or no usable reason (all at once).
    """
    errors: list[FieldError] = []
    criteria = reason = None
    try:
        criteria = parse_search(params)
    except InvalidRequest as exc:
        errors.extend(exc.errors)
    try:
        reason = check_reason(params.get("reason"))
    except InvalidRequest as exc:
        errors.extend(exc.errors)
    if criteria is None or reason is None:
        outcome = "invalid" if criteria is None else "no_reason"
        await audit_refusal(desk, "search", None, reason, {"outcome": outcome})
        raise InvalidRequest(errors=tuple(errors))
    async with desk.svc.pool.acquire() as conn, conn.transaction():
        rows = await support_store.search_candidates(conn, criteria, desk.staff.school)
        size = min(criteria.page_size, support_store.PAGE_SIZE_MAX)
        shown = [row["candidate_id"] for row in rows[:size]]
        await _audit(
            desk,
            conn,
            "search",
            None,
            reason,
            {"criteria": criteria.criteria(), "results": len(shown), "shown": shown},
        )
    return SearchPage(
        [summary(r) for r in rows[:size]],
        criteria.page,
        criteria.page + 1 if len(rows) > size else None,
    )


async def _checked(desk: Desk, candidate_id: int, action: str, raw_reason: object) -> str:
    """The reason, once the candidate is known to be the caller's to see; refusals audited.

    A `school` account asking for another school's candidate gets the same 404 as for a missing
    one. The audit row names a candidate only if it exists (the column is a foreign key).
    """
    async with desk.svc.pool.acquire() as conn:
        school = await support_store.candidate_school(conn, candidate_id)
    known = candidate_id if school is not None else None
    try:
        reason = check_reason(raw_reason)
    except InvalidRequest:
        await audit_refusal(desk, action, known, None, {"outcome": "no_reason"})
        raise
    if school is None or (desk.staff.school is not None and school != desk.staff.school):
        outcome = "not_found" if school is None else "outside_school"
        await audit_refusal(desk, action, known, reason, {"outcome": outcome})
        raise NotFound()
    return reason


async def read_candidate(
    desk: Desk, candidate_id: int, raw_reason: object, reveal: bool = False
) -> dict[str, Any]:
    """Roster data, current registration, every version and the pipeline state; audited.

    Raises:
        InvalidRequest: no usable reason.
        NotFound: no such candidate, or not one the caller's role may see.
    """
    action = "reveal" if reveal else "detail"
    reason = await _checked(desk, candidate_id, action, raw_reason)
    facts = await stream_facts(desk.svc, candidate_id)
    async with desk.svc.pool.acquire() as conn, conn.transaction():
        await _audit(desk, conn, action, candidate_id, reason, {"outcome": "ok"})
        found = await support_store.candidate_detail(conn, candidate_id)
    if found is None:
        raise NotFound()
    candidate = found["candidate"]
    body = summary(candidate, reveal)
    body["phone"] = candidate["phone"] if reveal else mask_phone(candidate["phone"])
    body["must_change_password"] = candidate["must_change_password"]
    body["revealed"] = reveal
    body["current"] = _current(found["current"], reveal)
    key = desk.svc.settings.secret_key
    # The code printed on each version's Phiếu (engine.domain.phieu): the desk compares it with
    # the one on the paper the candidate or the unit holds.
    body["versions"] = [
        {
            **(_jsonable(v) or {}),
            "verification_code": phieu.verification_code(key, v["receipt_id"], v["version"]),
        }
        for v in found["versions"]
    ]
    body["pipeline"] = pipeline_state(facts, found["versions"])
    return body


@dataclass(frozen=True, slots=True)
class StreamFacts:
    """What Redis holds about a candidate's newest version, read before the database."""

    shard: int
    latest: streams.LatestRecord | None
    dead: dead_letters.DeadLetter | None
    entry: dict[str, Any] | None


async def stream_facts(svc: Services, candidate_id: int) -> StreamFacts:
    """Redis's side of the pipeline state. Read it BEFORE the database: the writer acknowledges
    only after COMMIT, so an entry already gone here is committed in what the database read that
    follows returns, and the record never says "persisted" while showing no registration."""
    shard = svc.settings.shard_of(candidate_id)
    latest = await streams.latest_record(svc.redis, shard, candidate_id)
    if latest is None:
        return StreamFacts(shard, None, None, None)
    dead = await dead_letters.find(svc.redis, shard, candidate_id, latest.receipt_id)
    entry = None if dead else await streams.entry_state(svc.redis, shard, latest.stream_id)
    return StreamFacts(shard, latest, dead, entry)


def pipeline_state(facts: StreamFacts, versions: list[dict[str, Any]]) -> dict[str, Any]:
    """Where the newest accepted version is now: the one view that answers "did it count?"."""
    latest, newest = facts.latest, versions[0] if versions else None
    if newest is not None and (latest is None or newest["version"] >= latest.version):
        return {
            "state": "persisted",
            "version": newest["version"],
            "receipt_id": newest["receipt_id"],
            "shard": facts.shard,
            "accepted_at": newest["accepted_at"].isoformat(),
            "persisted_at": newest["persisted_at"].isoformat(),
        }
    if latest is None:
        return {"state": "none"}
    base = {
        "version": latest.version,
        "receipt_id": latest.receipt_id,
        "shard": facts.shard,
        "stream_id": latest.stream_id,
        "accepted_at": latest.accepted_at,
        "age_seconds": round(time.time() - int(latest.stream_id.split("-")[0]) / 1000, 3),
    }
    if facts.dead is not None:
        # The reference is what `examreg dead-letters show|replay` takes: hand it to an operator.
        return {
            "state": "dead_lettered",
            **base,
            "reason": facts.dead.reason,
            "dead_letter": facts.dead.ref,
        }
    assert facts.entry is not None
    if facts.entry["state"] == "gone":  # acknowledged, so committed (the writer acks after COMMIT)
        return {"state": "persisted", **base}
    return {"state": "in_stream", **base, "delivery": facts.entry}


async def reset_password(desk: Desk, candidate_id: int, raw_reason: object) -> dict[str, Any]:
    """A new one-time password (returned once), forced change at next login, sessions revoked.

    Raises:
        InvalidRequest: no usable reason.
        NotFound: no such candidate, or not one the caller's role may see.
    """
    reason = await _checked(desk, candidate_id, "password_reset", raw_reason)
    svc = desk.svc
    password = issue_password()
    password_hash = await svc.passwords.hash(password)
    async with svc.pool.acquire() as conn, conn.transaction():
        await _audit(desk, conn, "password_reset", candidate_id, reason, {"outcome": "ok"})
        if not await support_store.reset_password(conn, candidate_id, password_hash):
            raise NotFound()
    revoked = await svc.sessions.revoke_all("candidate", candidate_id)
    return {
        "candidate_id": candidate_id,
        "password": password,
        "must_change_password": True,
        "sessions_revoked": revoked,
    }
