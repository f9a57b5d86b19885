"""Changes to the season's calendar: a scope's window set or cleared, a reopen created or closed.

Owns (issue 14 items 1-2) what a change may say (every field error at once: scopes, kinds, codes
that must exist, instants that must parse and agree, a province's or unit's close by the lock,
a reopen's targets and end) and the change itself, committed in one transaction with its
`audit_log` row through `engine.adapters.support_store.audit` (actions `window_set`,
`window_clear`, `reopen_create`, `reopen_close`; `detail` has the actor and what changed). The
process that makes a change reloads its calendar at once; the others within their TTL
(`engine.services.window`). Split from that module by size. It must not read a request.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from engine.adapters import backend, calendar_store, support_store
from engine.adapters.store import Connection
from engine.domain.calendar import KINDS, SCOPES, Entry, Kind, Reopen, Scope, parse_instant
from engine.errors import FieldError, InvalidRequest, NotFound, ReopenClosed
from engine.services.window import Actor, CalendarCache, iso, window_json

_PROVINCE: Final = re.compile(r"[0-9]{2}")
_SCHOOL: Final = re.compile(r"[0-9]{3}")
_UNIT: Final = re.compile(r"([0-9]{2})-([0-9]{3})")
_CONTROL: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
TARGETS_MAX: Final = 1000  # per list of a reopen: a longer one is a province's job
REOPEN_LONGEST: Final = timedelta(days=31)


# -- what a change may say -------------------------------------------------------------------------


def _error(field: str, code: str, vi: str, en: str) -> FieldError:
    return FieldError(field, code, vi, en)


def _instant(
    body: Mapping[str, Any], name: str, deadline: bool, errors: list[FieldError]
) -> datetime | None:
    raw = body.get(name)
    if raw is None or raw == "":
        return None
    try:
        if not isinstance(raw, str):
            raise ValueError("not a string")
        value = parse_instant(raw, deadline=deadline)
        if not 2000 <= value.year <= 2100:  # nor anything PostgreSQL's range would overflow
            raise ValueError("out of range")
        return value
    except ValueError:
        errors.append(
            _error(
                name,
                "invalid_instant",
                "Cần ngày giờ ISO 8601 có múi giờ (vd. 2026-04-28T17:00:00+07:00) hoặc một ngày.",
                "Expected an ISO 8601 date-time with an offset "
                "(e.g. 2026-04-28T17:00:00+07:00) or a date.",
            )
        )
        return None


def _choice(
    body: Mapping[str, Any], name: str, options: Sequence[str], errors: list[FieldError]
) -> str:
    value = body.get(name)
    if value not in options:
        errors.append(
            _error(
                name,
                "invalid_choice",
                f"Cần một trong: {', '.join(options)}.",
                f"Expected one of: {', '.join(options)}.",
            )
        )
        return ""
    return str(value)


def _reason(body: Mapping[str, Any], errors: list[FieldError]) -> str:
    """The reason every change needs (as the desk's: 3-500 characters, no control characters;
    not `engine.services.support_desk.check_reason` itself, which would import the container)."""
    raw = body.get("reason")
    reason = raw.strip() if isinstance(raw, str) else ""
    if not 3 <= len(reason) <= 500 or _CONTROL.search(reason):
        errors.append(
            _error(
                "reason",
                "reason_required",
                "Vui lòng nhập lý do (số công văn, phiếu hỗ trợ hoặc mô tả), 3–500 ký tự.",
                "A reason (a ticket, a decision or a description) of 3–500 characters is needed.",
            )
        )
    return reason


async def _scope_codes(
    conn: Connection, body: Mapping[str, Any], scope: str, errors: list[FieldError]
) -> tuple[str | None, str | None]:
    if scope not in ("province", "unit"):
        return None, None
    province, school = body.get("province_code"), body.get("school_code")
    if not isinstance(province, str) or not _PROVINCE.fullmatch(province):
        errors.append(
            _error("province_code", "required", "Cần mã tỉnh 2 chữ số.", "A 2-digit province code.")
        )
        return None, None
    if scope == "province":
        if not await calendar_store.known_provinces(conn, [province]):
            errors.append(_unknown("province_code", "province"))
        return province, None
    if not isinstance(school, str) or not _SCHOOL.fullmatch(school):
        errors.append(
            _error("school_code", "required", "Cần mã trường 3 chữ số.", "A 3-digit school code.")
        )
        return province, None
    if not await calendar_store.known_units(conn, [f"{province}-{school}"]):
        errors.append(_unknown("school_code", "unit"))
    return province, school


def _unknown(field: str, what: str) -> FieldError:
    names = {
        "province": ("tỉnh", "province"),
        "unit": ("đơn vị đăng ký (trường)", "registration unit (school)"),
        "candidate": ("thí sinh", "candidate"),
    }[what]
    return _error(field, f"unknown_{what}", f"Không có {names[0]} này.", f"No such {names[1]}.")


def _check_span(
    kind: str,
    scope: str,
    opens: datetime | None,
    closes: datetime | None,
    lock: datetime | None,
    errors: list[FieldError],
) -> None:
    if kind == "trial" and (opens is None or closes is None):
        for name, value in (("opens_at", opens), ("closes_at", closes)):
            if value is None and not any(e.field == name for e in errors):
                errors.append(
                    _error(name, "required", "Đợt thử cần cả hai mốc.", "A trial needs both ends.")
                )
    if opens is not None and closes is not None and opens >= closes:
        errors.append(
            _error(
                "closes_at",
                "closes_before_opens",
                "Thời điểm đóng phải sau thời điểm mở.",
                "The window must close after it opens.",
            )
        )
    if (
        kind == "official"
        and scope != "national"
        and lock is not None
        and closes is not None
        and closes > lock
    ):
        errors.append(
            _error(
                "closes_at",
                "after_lock",
                "Không đóng muộn hơn hạn chót toàn quốc (thời điểm khóa); hãy dùng mở lại.",
                "Cannot close after the national close (the lock); use a reopen instead.",
            )
        )


# -- the changes -----------------------------------------------------------------------------------


async def audit_change(
    conn: Connection, actor: Actor, action: str, reason: str | None, detail: dict[str, Any]
) -> None:
    await support_store.audit(
        conn,
        staff_id=actor.staff_id,
        role=actor.role,
        action=action,
        candidate_id=None,
        reason=reason,
        client_addr=actor.address,
        detail={"actor": actor.name, **detail},
    )


def _entry_json(entry: Entry | None) -> dict[str, Any] | None:
    if entry is None:
        return None
    return {
        "scope": entry.scope,
        "kind": entry.kind,
        "province_code": entry.province_code,
        "school_code": entry.school_code,
        "opens_at": iso(entry.opens_at),
        "closes_at": iso(entry.closes_at),
        "updated_at": iso(entry.updated_at),
        "updated_by": entry.updated_by,
    }


async def set_window(
    pool: backend.Pool, cache: CalendarCache, actor: Actor, body: Mapping[str, Any]
) -> dict[str, Any]:
    """Set the trial or official window of the nation, a province or a unit; audited.

    Raises:
        InvalidRequest: every field error at once (422).
    """
    errors: list[FieldError] = []
    scope = _choice(body, "scope", SCOPES, errors)
    kind = _choice(body, "kind", KINDS, errors)
    opens = _instant(body, "opens_at", False, errors)
    closes = _instant(body, "closes_at", True, errors)
    reason = _reason(body, errors)
    async with pool.acquire() as conn, conn.transaction():
        province, school = await _scope_codes(conn, body, scope, errors)
        national = await calendar_store.entry(conn, "", "official")  # the lock, as stored now
        lock = national.closes_at if national is not None else cache.env.closes_at
        _check_span(kind, scope, opens, closes, lock, errors)
        if errors:
            raise InvalidRequest(errors=tuple(errors))
        new = Entry(scope_of(scope), kind_of(kind), opens, closes, province, school)
        before = await calendar_store.entry(conn, new.key, new.kind)
        await calendar_store.put_entry(conn, new, actor.name)
        after = await calendar_store.entry(conn, new.key, new.kind)
        await audit_change(
            conn,
            actor,
            "window_set",
            reason,
            {"before": _entry_json(before), "after": _entry_json(after)},
        )
    await cache.refresh()
    return {"window": _entry_json(after)}


async def clear_window(
    pool: backend.Pool, cache: CalendarCache, actor: Actor, body: Mapping[str, Any]
) -> dict[str, Any]:
    """Remove a scope's window: the province's or the nation's (the environment's) applies."""
    errors: list[FieldError] = []
    scope = _choice(body, "scope", SCOPES, errors)
    kind = _choice(body, "kind", KINDS, errors)
    reason = _reason(body, errors)
    async with pool.acquire() as conn, conn.transaction():
        province, school = await _scope_codes(conn, body, scope, errors)
        if errors:
            raise InvalidRequest(errors=tuple(errors))
        key = Entry(scope_of(scope), kind_of(kind), None, None, province, school).key
        before = await calendar_store.entry(conn, key, kind_of(kind))
        if before is None:
            raise NotFound()
        await calendar_store.delete_entry(conn, before.key, before.kind)
        await audit_change(conn, actor, "window_clear", reason, {"before": _entry_json(before)})
    await cache.refresh()
    return {"cleared": _entry_json(before)}


def reopen_json(reopen: Reopen, now: datetime) -> dict[str, Any]:
    return {
        "reopen_id": reopen.reopen_id,
        "provinces": sorted(reopen.provinces),
        "units": sorted(reopen.units),
        "candidates": sorted(reopen.candidates),
        "until": reopen.until.isoformat(),
        "reason": reopen.reason,
        "created_at": iso(reopen.created_at),
        "created_by": reopen.created_by,
        "closed_at": iso(reopen.closed_at),
        "closed_by": reopen.closed_by,
        "close_reason": reopen.close_reason,
        "state": "open" if reopen.active(now) else "closed" if reopen.closed_at else "ended",
    }


def _targets(body: Mapping[str, Any], errors: list[FieldError]) -> tuple[dict[str, int], ...]:
    """The three lists of a reopen: each well-formed code (candidate IDs as text) with its first
    position in the request, for the field path of an error about it."""
    lists: list[dict[str, int]] = []
    for name, pattern in (("provinces", _PROVINCE), ("units", _UNIT), ("candidates", None)):
        raw = body.get(name) or []
        if not isinstance(raw, list) or len(raw) > TARGETS_MAX:
            errors.append(
                _error(
                    name,
                    "invalid_list",
                    f"Cần một danh sách tối đa {TARGETS_MAX} mục.",
                    f"Expected a list of at most {TARGETS_MAX} items.",
                )
            )
            lists.append({})
            continue
        good: dict[str, int] = {}
        for i, item in enumerate(raw):
            text = str(item) if isinstance(item, (str, int)) and not isinstance(item, bool) else ""
            ok = pattern.fullmatch(text) if pattern else text.isascii() and text.isdigit()
            if not ok or len(text) > 18:
                errors.append(
                    _error(f"{name}.{i}", "invalid_code", "Mã không hợp lệ.", "Bad code.")
                )
            else:
                good.setdefault(text, i)
        lists.append(good)
    return lists[0], lists[1], lists[2]


async def create_reopen(
    pool: backend.Pool, cache: CalendarCache, actor: Actor, body: Mapping[str, Any]
) -> dict[str, Any]:
    """Reopen registration for named provinces, units and candidates until `until`; audited.

    Raises:
        InvalidRequest: every field error at once (no target, unknown codes, a past `until`).
    """
    errors: list[FieldError] = []
    provinces, units, candidate_text = _targets(body, errors)
    until = _instant(body, "until", True, errors)
    reason = _reason(body, errors)
    now = datetime.now(UTC)
    if "until" not in {e.field for e in errors} and (
        until is None or not now < until <= now + REOPEN_LONGEST
    ):
        errors.append(
            _error(
                "until",
                "out_of_range",
                "Cần một thời điểm trong tương lai, tối đa 31 ngày tới.",
                "Expected an instant in the future, at most 31 days ahead.",
            )
        )
    if not errors and not (provinces or units or candidate_text):
        errors.append(
            _error(
                "",
                "no_target",
                "Cần ít nhất một tỉnh, đơn vị hoặc thí sinh.",
                "Name at least one province, unit or candidate.",
            )
        )
    candidates = sorted(int(c) for c in candidate_text)
    async with pool.acquire() as conn, conn.transaction():
        known = (
            await calendar_store.known_provinces(conn, sorted(provinces)),
            await calendar_store.known_units(conn, sorted(units)),
            {str(c) for c in await calendar_store.known_candidates(conn, candidates)},
        )
        for name, what, values, found in (
            ("provinces", "province", provinces, known[0]),
            ("units", "unit", units, known[1]),
            ("candidates", "candidate", candidate_text, known[2]),
        ):
            errors.extend(
                _unknown(f"{name}.{at}", what) for value, at in values.items() if value not in found
            )
        if errors:
            raise InvalidRequest(errors=tuple(errors))
        assert until is not None
        reopen = await calendar_store.insert_reopen(
            conn,
            provinces=sorted(provinces),
            units=sorted(units),
            candidates=candidates,
            until=until,
            reason=reason,
            actor=actor.name,
        )
        await audit_change(
            conn, actor, "reopen_create", reason, {"reopen": reopen_json(reopen, now)}
        )
    await cache.refresh()
    return {"reopen": reopen_json(reopen, now)}


async def close_reopen(
    pool: backend.Pool, cache: CalendarCache, actor: Actor, reopen_id: int, body: Mapping[str, Any]
) -> dict[str, Any]:
    """End a reopen now, before its time; audited.

    Raises:
        InvalidRequest: no reason. NotFound: no such reopen. ReopenClosed: it has already ended.
    """
    errors: list[FieldError] = []
    reason = _reason(body, errors)
    if errors:
        raise InvalidRequest(errors=tuple(errors))
    now = datetime.now(UTC)
    async with pool.acquire() as conn, conn.transaction():
        current = await calendar_store.reopen_for_update(conn, reopen_id)
        if current is None:
            raise NotFound()
        if not current.active(now):
            raise ReopenClosed(extra={"reopen": reopen_json(current, now)})
        closed = await calendar_store.close_reopen(conn, reopen_id, actor.name, reason)
        await audit_change(
            conn,
            actor,
            "reopen_close",
            reason,
            {"reopen_id": reopen_id, "until": iso(current.until)},
        )
    await cache.refresh()
    return {"reopen": reopen_json(closed, now)}


async def reopens(pool: backend.Pool, *, open_only: bool = False) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    found = await calendar_store.reopens(pool)
    return [reopen_json(r, now) for r in found if r.active(now) or not open_only]


async def calendar_json(pool: backend.Pool, cache: CalendarCache) -> dict[str, Any]:
    """The whole calendar as operators read it: the national default, every override, reopens."""
    calendar = await cache.refresh()
    now = datetime.now(UTC)
    national = calendar.resolve(now)
    return {
        "national": window_json(national, personal=False),
        "entries": [_entry_json(e) for e in calendar.entries.values()],
        "reopens": await reopens(pool),
        "cache_seconds": cache.ttl,
    }


def kind_of(value: str) -> Kind:
    return "trial" if value == "trial" else "official"


def scope_of(value: str) -> Scope:
    return "unit" if value == "unit" else "province" if value == "province" else "national"
