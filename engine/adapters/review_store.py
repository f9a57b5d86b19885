"""PostgreSQL for the registration unit: its review queue, confirmations and keyed-file jobs.

Owns the SQL of issue 13 items 4-6: the forms of a candidate's versions (for the differences), a
unit's candidates with their current version and newest review, the append-only review rows,
the roster lookups keying needs, and the progress rows of keyed files. Like
`engine.adapters.support_store` it shares `engine.adapters.store`'s pool and connection type;
audit rows go through `support_store.audit` inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from engine.adapters.store import Connection

UNIT_MAX = 20_000  # a unit's queue is read whole; a school has at most a few thousand candidates


@dataclass(frozen=True, slots=True)
class Review:
    """The newest review decision on a candidate."""

    version: int
    action: str  # "confirm" | "return"
    reason: str | None
    at: datetime
    staff: str | None


def _review(row: Any) -> Review | None:
    if row is None or row["review_action"] is None:
        return None
    return Review(
        row["review_version"],
        row["review_action"],
        row["review_reason"],
        row["reviewed_at"],
        row["reviewed_by"],
    )


_NEWEST_REVIEW = """
    LEFT JOIN LATERAL (
        SELECT u.version AS review_version, u.action AS review_action, u.reason AS review_reason,
               u.at AS reviewed_at, st.username AS reviewed_by
        FROM unit_reviews u LEFT JOIN staff st USING (staff_id)
        WHERE u.candidate_id = c.candidate_id ORDER BY u.review_id DESC LIMIT 1
    ) ur ON true
"""


async def version_forms(
    conn: Connection, candidate_id: int, limit: int = 100
) -> list[tuple[int, dict[str, Any]]]:
    """The candidate's persisted versions' forms, newest first."""
    rows = await conn.fetch(
        "SELECT version, form FROM registration_versions WHERE candidate_id = $1"
        " ORDER BY version DESC LIMIT $2",
        candidate_id,
        limit,
    )
    return [(row["version"], row["form"]) for row in rows]


async def newest_review(conn: Connection, candidate_id: int) -> Review | None:
    row = await conn.fetchrow(
        "SELECT ur.* FROM candidates c"  # noqa: S608 - fixed fragment
        f" {_NEWEST_REVIEW} WHERE c.candidate_id = $1",
        candidate_id,
    )
    return _review(row)


async def unit_candidates(conn: Connection, school: tuple[str, str]) -> list[dict[str, Any]]:
    """Every candidate of the unit: roster facts, current version, newest review."""
    rows = await conn.fetch(
        "SELECT c.candidate_id, c.national_id, c.full_name, c.date_of_birth, c.candidate_type,"  # noqa: S608
        " r.version AS current_version, r.persisted_at, r.receipt_id, r.form, ur.*"
        f" FROM candidates c LEFT JOIN registrations r USING (candidate_id) {_NEWEST_REVIEW}"
        " WHERE c.province_code = $1 AND c.school_code = $2"
        " ORDER BY c.name_folded, c.candidate_id LIMIT $3",
        *school,
        UNIT_MAX,
    )
    return [{**dict(row), "review": _review(row)} for row in rows]


async def forms_of(
    conn: Connection, wanted: Iterable[tuple[int, int]]
) -> dict[tuple[int, int], dict[str, Any]]:
    """The forms of the given (candidate_id, version) pairs that exist."""
    pairs = list(wanted)
    if not pairs:
        return {}
    rows = await conn.fetch(
        "SELECT v.candidate_id, v.version, v.form FROM registration_versions v"
        " JOIN unnest($1::bigint[], $2::int[]) AS w(candidate_id, version)"
        " USING (candidate_id, version)",
        [p[0] for p in pairs],
        [p[1] for p in pairs],
    )
    return {(row["candidate_id"], row["version"]): row["form"] for row in rows}


async def candidate_unit(conn: Connection, candidate_id: int) -> tuple[str, str] | None:
    row = await conn.fetchrow(
        "SELECT province_code, school_code FROM candidates WHERE candidate_id = $1", candidate_id
    )
    return None if row is None else (row["province_code"], row["school_code"])


async def current_version(conn: Connection, candidate_id: int) -> int | None:
    """The persisted current version, locked against the writer's upsert until COMMIT, so a
    confirmation names the version that is current when it commits."""
    value = await conn.fetchval(
        "SELECT version FROM registrations WHERE candidate_id = $1 FOR SHARE", candidate_id
    )
    return None if value is None else int(value)


async def record_review(
    conn: Connection,
    *,
    candidate_id: int,
    version: int,
    action: str,
    reason: str | None,
    staff_id: int,
) -> datetime:
    at = await conn.fetchval(
        "INSERT INTO unit_reviews (candidate_id, version, action, reason, staff_id)"
        " VALUES ($1, $2, $3, $4, $5) RETURNING at",
        candidate_id,
        version,
        action,
        reason,
        staff_id,
    )
    assert isinstance(at, datetime)
    return at


# -- keying --------------------------------------------------------------------------------------


async def unit_roster(
    conn: Connection, school: tuple[str, str], national_ids: Sequence[str]
) -> dict[str, int]:
    """Candidate IDs of the unit's candidates among these national IDs (others are absent)."""
    rows = await conn.fetch(
        "SELECT national_id, candidate_id FROM candidates"
        " WHERE national_id = ANY($1::text[]) AND province_code = $2 AND school_code = $3",
        list(national_ids),
        *school,
    )
    return {row["national_id"]: row["candidate_id"] for row in rows}


async def recorded_requests(
    conn: Connection, requests: Sequence[tuple[int, str]]
) -> dict[tuple[int, str], int]:
    """Which (candidate_id, idempotency_key) are already persisted, with their version: a
    re-upload after Redis forgot the key (its TTL) still creates no version."""
    if not requests:
        return {}
    rows = await conn.fetch(
        "SELECT v.candidate_id, v.idempotency_key, v.version FROM registration_versions v"
        " JOIN unnest($1::bigint[], $2::text[]) AS w(candidate_id, idempotency_key)"
        " USING (candidate_id, idempotency_key)",
        [r[0] for r in requests],
        [r[1] for r in requests],
    )
    return {(row["candidate_id"], row["idempotency_key"]): row["version"] for row in rows}


async def create_job(
    conn: Connection,
    *,
    job_id: str,
    staff_id: int,
    school: tuple[str, str],
    file_name: str,
    good_only: bool,
) -> None:
    await conn.execute(
        "INSERT INTO keying_jobs (job_id, staff_id, province_code, school_code, file_name,"
        " good_only, state) VALUES ($1, $2, $3, $4, $5, $6, 'validating')",
        job_id,
        staff_id,
        *school,
        file_name,
        good_only,
    )


async def update_job(conn: Connection, job_id: str, **fields: Any) -> None:
    """Set some of state, total, processed, enqueued, replayed, bad, errors."""
    allowed = ("state", "total", "processed", "enqueued", "replayed", "bad", "errors")
    names = [name for name in allowed if name in fields]
    values = [orjson.dumps(fields[n]).decode() if n == "errors" else fields[n] for n in names]
    assignments = ", ".join(
        f"{name} = ${i + 2}" + ("::jsonb" if name == "errors" else "")
        for i, name in enumerate(names)
    )
    await conn.execute(
        f"UPDATE keying_jobs SET {assignments}, updated_at = now() WHERE job_id = $1",  # noqa: S608
        job_id,
        *values,
    )


async def read_job(conn: Connection, job_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow("SELECT * FROM keying_jobs WHERE job_id = $1", job_id)
    return None if row is None else dict(row)
