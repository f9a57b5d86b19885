"""PostgreSQL for the season's calendar: windows per scope, reopens, the lock's counts.

Owns the SQL of `window_calendar` and `window_reopens` (migration 0007) and the lock report's
counts by province; rows become `engine.domain.calendar` values here. It shares the pool and the
connection type of `engine.adapters.store`; the audit row each change writes is
`engine.adapters.support_store.audit`'s, on the same connection and transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from engine.adapters.store import Connection
from engine.domain.calendar import Entry, Kind, Reopen, Unit

_SELECT_REOPENS = (
    "SELECT reopen_id, provinces, units, candidate_ids, until, reason, created_at, created_by,"
    " closed_at, closed_by, close_reason FROM window_reopens"
)


def _entry(row: asyncpg.Record) -> Entry:
    return Entry(
        scope=row["scope"],
        kind=row["kind"],
        opens_at=row["opens_at"],
        closes_at=row["closes_at"],
        province_code=row["province_code"],
        school_code=row["school_code"],
        updated_at=row["updated_at"],
        updated_by=row["updated_by"],
    )


def _reopen(row: asyncpg.Record) -> Reopen:
    return Reopen(
        reopen_id=row["reopen_id"],
        until=row["until"],
        reason=row["reason"],
        provinces=frozenset(row["provinces"]),
        units=frozenset(row["units"]),
        candidates=frozenset(row["candidate_ids"]),
        created_at=row["created_at"],
        created_by=row["created_by"],
        closed_at=row["closed_at"],
        closed_by=row["closed_by"],
        close_reason=row["close_reason"],
    )


async def entries(conn: Connection | asyncpg.Pool) -> list[Entry]:
    rows = await conn.fetch(
        "SELECT scope, kind, province_code, school_code, opens_at, closes_at, updated_at,"
        " updated_by FROM window_calendar ORDER BY scope_key, kind"
    )
    return [_entry(r) for r in rows]


async def reopens(
    conn: Connection | asyncpg.Pool, *, since: datetime | None = None
) -> list[Reopen]:
    """Every reopen, newest first; with `since`, only those still open or ending after it."""
    if since is None:
        rows = await conn.fetch(_SELECT_REOPENS + " ORDER BY reopen_id DESC")
    else:
        rows = await conn.fetch(
            _SELECT_REOPENS + " WHERE closed_at IS NULL OR until > $1 ORDER BY reopen_id DESC",
            since,
        )
    return [_reopen(r) for r in rows]


async def reopen_for_update(conn: Connection, reopen_id: int) -> Reopen | None:
    """One reopen, its row locked until the transaction ends (closing it is a read-then-write)."""
    row = await conn.fetchrow(_SELECT_REOPENS + " WHERE reopen_id = $1 FOR UPDATE", reopen_id)
    return None if row is None else _reopen(row)


async def entry(conn: Connection, key: str, kind: Kind) -> Entry | None:
    row = await conn.fetchrow(
        "SELECT scope, kind, province_code, school_code, opens_at, closes_at, updated_at,"
        " updated_by FROM window_calendar WHERE scope_key = $1 AND kind = $2",
        key,
        kind,
    )
    return None if row is None else _entry(row)


async def put_entry(conn: Connection, new: Entry, actor: str) -> None:
    await conn.execute(
        "INSERT INTO window_calendar (scope, kind, scope_key, province_code, school_code,"
        " opens_at, closes_at, updated_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        " ON CONFLICT (scope_key, kind) DO UPDATE SET opens_at = EXCLUDED.opens_at,"
        " closes_at = EXCLUDED.closes_at, updated_at = now(), updated_by = EXCLUDED.updated_by",
        new.scope,
        new.kind,
        new.key,
        new.province_code,
        new.school_code,
        new.opens_at,
        new.closes_at,
        actor,
    )


async def delete_entry(conn: Connection, key: str, kind: Kind) -> bool:
    status = await conn.execute(
        "DELETE FROM window_calendar WHERE scope_key = $1 AND kind = $2", key, kind
    )
    return str(status).endswith(" 1")


async def insert_reopen(
    conn: Connection,
    *,
    provinces: Sequence[str],
    units: Sequence[str],
    candidates: Sequence[int],
    until: datetime,
    reason: str,
    actor: str,
) -> Reopen:
    row = await conn.fetchrow(
        "INSERT INTO window_reopens (provinces, units, candidate_ids, until, reason, created_by)"
        " VALUES ($1, $2, $3, $4, $5, $6)"
        " RETURNING reopen_id, provinces, units, candidate_ids, until, reason, created_at,"
        " created_by, closed_at, closed_by, close_reason",
        list(provinces),
        list(units),
        list(candidates),
        until,
        reason,
        actor,
    )
    assert row is not None
    return _reopen(row)


async def close_reopen(conn: Connection, reopen_id: int, actor: str, reason: str) -> Reopen:
    row = await conn.fetchrow(
        "UPDATE window_reopens SET closed_at = now(), closed_by = $2, close_reason = $3"
        " WHERE reopen_id = $1"
        " RETURNING reopen_id, provinces, units, candidate_ids, until, reason, created_at,"
        " created_by, closed_at, closed_by, close_reason",
        reopen_id,
        actor,
        reason,
    )
    assert row is not None
    return _reopen(row)


async def known_provinces(conn: Connection, codes: Sequence[str]) -> set[str]:
    rows = await conn.fetch("SELECT code FROM provinces WHERE code = ANY($1::text[])", list(codes))
    return {r["code"] for r in rows}


async def known_units(conn: Connection, keys: Sequence[str]) -> set[str]:
    rows = await conn.fetch(
        "SELECT province_code || '-' || school_code AS key FROM schools"
        " WHERE province_code || '-' || school_code = ANY($1::text[])",
        list(keys),
    )
    return {r["key"] for r in rows}


async def known_candidates(conn: Connection, ids: Sequence[int]) -> set[int]:
    rows = await conn.fetch(
        "SELECT candidate_id FROM candidates WHERE candidate_id = ANY($1::bigint[])", list(ids)
    )
    return {r["candidate_id"] for r in rows}


async def candidate_unit(conn: Connection | asyncpg.Pool, candidate_id: int) -> Unit | None:
    row = await conn.fetchrow(
        "SELECT province_code, school_code FROM candidates WHERE candidate_id = $1", candidate_id
    )
    return None if row is None else Unit(row["province_code"], row["school_code"])


async def accepted_by_province(conn: Connection, until: datetime | None) -> list[dict[str, Any]]:
    """Per province: candidates with a stored version accepted before `until` (all when None),
    the versions behind them (official ones apart) and the newest acceptance among them."""
    rows = await conn.fetch(
        "SELECT c.province_code,"
        " count(DISTINCT v.candidate_id) AS candidates, count(*) AS versions,"
        " count(*) FILTER (WHERE v.phase = 'official') AS official_versions,"
        " max(v.accepted_at) AS last_accepted_at"
        " FROM registration_versions v JOIN candidates c USING (candidate_id)"
        " WHERE $1::timestamptz IS NULL OR v.accepted_at < $1"
        " GROUP BY c.province_code ORDER BY c.province_code",
        until,
    )
    return [{**dict(r), "last_accepted_at": r["last_accepted_at"].isoformat()} for r in rows]


async def provinces_of(conn: Connection, candidate_ids: Sequence[int]) -> dict[str, int]:
    """How many of `candidate_ids` are of each province (repeats count: one per version)."""
    rows = await conn.fetch(
        "SELECT c.province_code, count(*) AS n FROM unnest($1::bigint[]) AS q (candidate_id)"
        " JOIN candidates c USING (candidate_id) GROUP BY c.province_code ORDER BY 1",
        list(candidate_ids),
    )
    return {r["province_code"]: int(r["n"]) for r in rows}


async def versions_since(conn: Connection, since: datetime) -> int:
    """Stored versions accepted at or after `since` (after the lock: reopened candidates')."""
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM registration_versions WHERE accepted_at >= $1", since
        )
    )
