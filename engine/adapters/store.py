"""PostgreSQL: the one module that speaks SQL (asyncpg), with migrations and the writer's sink.

Owns the connection pool, the named queries of `sql/queries.sql`, the migration runner over
`schema/`, and `write_batch` (COPY into staging, history rows, version-guarded upsert, one
transaction). It translates connection failures into `Unavailable` and keeps asyncpg's SQLSTATE
exceptions for callers that decide retries. It must not know about HTTP or Redis.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

from engine.domain.entries import STAGING_COLUMNS, VersionRow

SCHEMA_DIR = Path(__file__).resolve().parent / "schema"
_QUERY_FILE = Path(__file__).resolve().parent / "sql" / "queries.sql"
_MIGRATION_LOCK = 7_405_201  # pg_advisory_lock key: one migrator at a time

# SQLSTATE classes worth a retry of the whole batch (deadlock, serialization, connection, shutdown).
TRANSIENT_SQLSTATES = ("40001", "40P01", "08", "57P", "53")


def _load_queries(path: Path) -> dict[str, str]:
    queries: dict[str, str] = {}
    for block in re.split(r"^-- name: ", path.read_text(), flags=re.M)[1:]:
        name, _, body = block.partition("\n")
        queries[name.strip()] = body.strip()
    return queries


QUERIES = _load_queries(_QUERY_FILE)

# A plain connection or one borrowed from a pool: both offer the same calls.
Connection = asyncpg.Connection | PoolConnectionProxy


def is_transient(exc: BaseException) -> bool:
    """Whether a database error may go away on retry (the batch itself is not at fault)."""
    if isinstance(exc, asyncpg.exceptions.DataError):
        return False  # the driver could not encode a value: the batch itself is at fault
    if isinstance(exc, (OSError, asyncpg.exceptions.InterfaceError, TimeoutError)):
        return True
    state = getattr(exc, "sqlstate", None)
    return isinstance(state, str) and state.startswith(TRANSIENT_SQLSTATES)


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda v: v if isinstance(v, str) else orjson.dumps(v).decode(),
        decoder=orjson.loads,
        schema="pg_catalog",
    )


async def connect(dsn: str, *, connect_timeout: float = 10.0) -> asyncpg.Connection:
    """One connection, set up like the pool's (jsonb codec), for commands and the demo."""
    conn = await asyncpg.connect(dsn, timeout=connect_timeout)
    await _init_connection(conn)
    return conn


class SinkConnection(asyncpg.Connection):
    """A writer's connection: its staging table is created once, when it connects."""

    staging_ready = False


async def _init_sink_connection(conn: asyncpg.Connection) -> None:
    await _init_connection(conn)
    # Once per connection, not per batch: a temporary table lives as long as its session, and
    # ON COMMIT DELETE ROWS empties it at every commit (architecture §2).
    await conn.execute(QUERIES["create_staging"])
    if isinstance(conn, SinkConnection):
        conn.staging_ready = True


async def _no_reset(conn: asyncpg.Connection) -> None:
    """Skip asyncpg's RESET ALL round trip on release: we keep no session state on connections
    (the staging tables are ON COMMIT DELETE ROWS and every transaction is closed)."""


async def create_pool(
    dsn: str,
    *,
    size: int = 10,
    io_timeout: float = 5.0,
    role: str | None = None,
    statement_cache_size: int = 100,
    staging: bool = False,
) -> asyncpg.Pool:
    """A pool whose connections decode jsonb and time out every command.

    With `role`, every connection acts as that role from its start (the startup packet sets it,
    so neither RESET ROLE nor RESET ALL goes back to the URL's user): the services' own role,
    whose grants migration 0005 sets (audit_log: INSERT and SELECT only).

    All `size` connections are opened at once, not on demand: opening one (TCP, startup, the
    jsonb codec's type lookup) costs several round trips, and a pool that grew from one
    connection during a burst made the burst's first requests wait for them.

    `statement_cache_size` 0 makes every statement unnamed, as a pooler in transaction mode
    needs when it cannot carry named prepared statements across its server connections
    (PgBouncer before 1.21); behind such a pooler the role must come from the login role's own
    default (`ALTER ROLE … SET role`), as PgBouncer refuses a `role` startup parameter.

    With `staging` (the writers' pool) each connection creates the writer's staging table as it
    connects, so `write_batch` never creates it again.
    """
    pool = await asyncpg.create_pool(
        dsn,
        min_size=size,
        max_size=size,
        command_timeout=io_timeout * 6,
        timeout=io_timeout,
        init=_init_sink_connection if staging else _init_connection,
        reset=_no_reset,
        connection_class=SinkConnection if staging else asyncpg.Connection,
        server_settings={"role": role} if role else None,
        statement_cache_size=statement_cache_size,
    )
    assert pool is not None
    return pool


# -- migrations ------------------------------------------------------------------------------


async def migrate(conn: asyncpg.Connection, schema_dir: Path = SCHEMA_DIR) -> list[str]:
    """Apply the numbered migrations not yet recorded; return the names applied.

    Idempotent and safe to run from several processes at once (an advisory lock serialises them).
    """
    applied: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
        for path in sorted(schema_dir.glob("[0-9][0-9][0-9][0-9]_*.sql")):  # noqa: ASYNC240
            if path.name in done:
                continue
            async with conn.transaction():
                await conn.execute(path.read_text())
                await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", path.name)
            applied.append(path.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
    return applied


# -- the writer's sink -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What one committed batch changed."""

    history_rows: int
    current_rows: int


async def write_batch(conn: Connection, rows: Sequence[VersionRow]) -> BatchResult:
    """Persist a batch in one transaction: COPY → history (skip duplicates) → guarded upsert."""
    async with conn.transaction():
        if not getattr(conn, "staging_ready", False):  # a connection not from a writers' pool
            await conn.execute(QUERIES["create_staging"])
        await conn.copy_records_to_table(
            "staging_versions", records=[r.as_record() for r in rows], columns=STAGING_COLUMNS
        )
        history = await conn.execute(QUERIES["insert_history"])
        current = await conn.execute(QUERIES["upsert_current"])
    return BatchResult(_count(history), _count(current))


async def refusal(conn: Connection, rows: Sequence[VersionRow]) -> Exception | None:
    """What PostgreSQL says to `write_batch(rows)` now, without keeping anything: the batch runs
    inside a transaction (or savepoint) that is always rolled back. None means it would commit."""
    check = conn.transaction()
    await check.start()
    try:
        await write_batch(conn, rows)
    except (asyncpg.PostgresError, asyncpg.exceptions.DataError) as exc:
        return exc
    finally:
        await check.rollback()
    return None


def refusal_reason(exc: BaseException) -> str:
    """How the writer and the operator name a refusal: `<SQLSTATE>: <exception class>`."""
    return f"{getattr(exc, 'sqlstate', 'client')}: {type(exc).__name__}"


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])


# -- candidates ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoginRecord:
    candidate_id: int
    password_hash: str
    must_change_password: bool
    unit: str  # "PP-SSS": the registration unit, which the candidate's window depends on


async def candidate_login(pool: asyncpg.Pool, national_id: str) -> LoginRecord | None:
    row = await pool.fetchrow(QUERIES["candidate_login"], national_id)
    return None if row is None else LoginRecord(*row)


async def candidate_profile(pool: asyncpg.Pool, candidate_id: int) -> dict[str, Any] | None:
    row = await pool.fetchrow(QUERIES["candidate_profile"], candidate_id)
    if row is None:
        return None
    return {**roster_entry(row), "must_change_password": row["must_change_password"]}


def roster_entry(row: Mapping[str, Any] | asyncpg.Record) -> dict[str, Any]:
    """A candidate's roster data as the API shows it (ISO dates, the school with its name)."""
    return {
        "candidate_id": row["candidate_id"],
        "national_id": row["national_id"],
        "full_name": row["full_name"],
        "date_of_birth": row["date_of_birth"].isoformat(),
        "sex": row["sex"],
        "candidate_type": row["candidate_type"],
        "school": {
            "province_code": row["province_code"],
            "school_code": row["school_code"],
            "name": row["school_name"],
        },
    }


async def candidate_must_change_password(pool: asyncpg.Pool, candidate_id: int) -> bool | None:
    """Whether the candidate still has to replace an issued password (None: no such candidate)."""
    value = await pool.fetchval(QUERIES["candidate_must_change_password"], candidate_id)
    return None if value is None else bool(value)


async def candidate_password_hash(pool: asyncpg.Pool, candidate_id: int) -> str | None:
    value = await pool.fetchval(QUERIES["candidate_password_hash"], candidate_id)
    return None if value is None else str(value)


async def set_candidate_password(pool: asyncpg.Pool, candidate_id: int, password_hash: str) -> None:
    await pool.execute(QUERIES["set_candidate_password"], candidate_id, password_hash)


@dataclass(frozen=True, slots=True)
class NewCandidate:
    """A roster row to insert (seed or school import)."""

    national_id: str
    full_name: str
    date_of_birth: date
    sex: str
    candidate_type: str
    province_code: str
    school_code: str
    phone: str | None
    password_hash: str
    must_change_password: bool = True  # an issued password; only load-test rosters say False


_CANDIDATE_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(NewCandidate))


async def insert_candidates(
    conn: asyncpg.Connection, rows: Iterable[NewCandidate]
) -> dict[str, int]:
    """COPY roster rows in (skipping national IDs already present); return national_id → id."""
    records = [tuple(getattr(r, name) for name in _CANDIDATE_COLUMNS) for r in rows]
    async with conn.transaction():
        await conn.execute(QUERIES["create_staging_candidates"])
        await conn.copy_records_to_table(
            "staging_candidates", records=records, columns=_CANDIDATE_COLUMNS
        )
        inserted = await conn.fetch(
            "INSERT INTO candidates (" + ", ".join(_CANDIDATE_COLUMNS) + ") "  # noqa: S608 - constants
            "SELECT " + ", ".join(_CANDIDATE_COLUMNS) + " FROM staging_candidates "
            "ON CONFLICT (national_id) DO NOTHING RETURNING national_id, candidate_id"
        )
    return {r["national_id"]: r["candidate_id"] for r in inserted}


# -- registrations ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PersistedRegistration:
    version: int
    receipt_id: str
    phase: str
    form: dict[str, Any]
    accepted_at: datetime
    persisted_at: datetime


async def registration(pool: asyncpg.Pool, candidate_id: int) -> PersistedRegistration | None:
    row = await pool.fetchrow(QUERIES["registration"], candidate_id)
    return None if row is None else PersistedRegistration(*row)


@dataclass(frozen=True, slots=True)
class PersistedReceipt:
    version: int
    phase: str
    accepted_at: datetime
    persisted_at: datetime


async def receipt(
    pool: asyncpg.Pool, candidate_id: int, receipt_id: str
) -> PersistedReceipt | None:
    row = await pool.fetchrow(QUERIES["receipt"], candidate_id, receipt_id)
    return None if row is None else PersistedReceipt(*row)


async def persisted_versions(
    pool: asyncpg.Pool, versions: Sequence[tuple[int, int]]
) -> dict[tuple[int, int], str]:
    """The committed ones among these (candidate_id, version) pairs: pair → receipt_id."""
    if not versions:
        return {}
    rows = await pool.fetch(
        QUERIES["persisted_versions"], [v[0] for v in versions], [v[1] for v in versions]
    )
    return {(r["candidate_id"], r["version"]): r["receipt_id"] for r in rows}


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One persisted version of a candidate's registration (its form is not needed to list it)."""

    version: int
    receipt_id: str
    phase: str
    accepted_at: datetime
    persisted_at: datetime


async def registration_history(
    pool: asyncpg.Pool, candidate_id: int, limit: int = 100
) -> list[HistoryEntry]:
    """The candidate's persisted versions, newest first."""
    rows = await pool.fetch(QUERIES["registration_history"], candidate_id, limit)
    return [HistoryEntry(*row) for row in rows]


async def purge_trial(conn: asyncpg.Connection) -> tuple[int, int]:
    """Delete trial-phase data (domain.md §6.1: trial data is discarded); return rows removed."""
    async with conn.transaction():
        await conn.execute(QUERIES["record_trial_purge"])
        history = await conn.execute(QUERIES["purge_trial_history"])
        current = await conn.execute(QUERIES["purge_trial_current"])
    return _count(history), _count(current)


# -- reference data --------------------------------------------------------------------------


async def reference(pool: asyncpg.Pool) -> dict[str, list[dict[str, Any]]]:
    """Every reference list, as JSON-ready dicts (served by GET /api/v1/reference)."""
    result: dict[str, list[dict[str, Any]]] = {}
    for key in (
        "provinces",
        "schools",
        "subjects",
        "languages",
        "certificates",
        "ethnicities",
        "priority_groups",
    ):
        rows = await pool.fetch(QUERIES[f"reference_{key}"])
        result[key] = [dict(r) for r in rows]
    return result


@dataclass(frozen=True, slots=True)
class StaffRecord:
    staff_id: int
    password_hash: str
    role: str
    province_code: str | None
    school_code: str | None
    must_change_password: bool


async def staff_login(pool: asyncpg.Pool, username: str) -> StaffRecord | None:
    row = await pool.fetchrow(QUERIES["staff_login"], username)
    return None if row is None else StaffRecord(*row)


@dataclass(frozen=True, slots=True)
class StaffMember:
    """A staff account as every staff request reads it: who, what role, what is pending."""

    staff_id: int
    username: str
    role: str
    province_code: str | None
    school_code: str | None
    must_change_password: bool
    disabled: bool


async def staff_member(pool: asyncpg.Pool, staff_id: int) -> StaffMember | None:
    row = await pool.fetchrow(QUERIES["staff_member"], staff_id)
    return None if row is None else StaffMember(*row)


async def staff_password_hash(pool: asyncpg.Pool, staff_id: int) -> str | None:
    value = await pool.fetchval(QUERIES["staff_password_hash"], staff_id)
    return None if value is None else str(value)


async def set_staff_password(pool: asyncpg.Pool, staff_id: int, password_hash: str) -> None:
    await pool.execute(QUERIES["set_staff_password"], staff_id, password_hash)


async def create_staff(
    pool: asyncpg.Pool | asyncpg.Connection,
    username: str,
    password_hash: str,
    role: str,
    school: tuple[str, str] | None = None,
    must_change_password: bool = True,
) -> int | None:
    """A new staff account's id; None if the username is taken (nothing is overwritten)."""
    province, school_code = school if school else (None, None)
    staff_id = await pool.fetchval(
        QUERIES["create_staff"],
        username,
        password_hash,
        role,
        province,
        school_code,
        must_change_password,
    )
    return None if staff_id is None else int(staff_id)


async def set_staff_disabled(
    conn: asyncpg.Pool | asyncpg.Connection, username: str, disabled: bool
) -> int | None:
    """Disable or enable an account; its id, or None if there is no such account."""
    staff_id = await conn.fetchval(QUERIES["set_staff_disabled"], username, disabled)
    return None if staff_id is None else int(staff_id)


async def reset_staff_password(
    conn: asyncpg.Pool | asyncpg.Connection, username: str, password_hash: str
) -> int | None:
    """A new password to change at next login; the account's id, or None if there is none."""
    staff_id = await conn.fetchval(QUERIES["reset_staff_password"], username, password_hash)
    return None if staff_id is None else int(staff_id)


async def set_staff_role(
    conn: asyncpg.Pool | asyncpg.Connection,
    username: str,
    role: str,
    school: tuple[str, str] | None,
) -> int | None:
    """Give an account another role (and school); its id, or None if there is no such account."""
    province, school_code = school if school else (None, None)
    staff_id = await conn.fetchval(QUERIES["set_staff_role"], username, role, province, school_code)
    return None if staff_id is None else int(staff_id)


async def school_codes(conn: asyncpg.Connection) -> set[tuple[str, str]]:
    """Every (province_code, school_code) of the reference data."""
    rows = await conn.fetch(QUERIES["school_codes"])
    return {(r["province_code"], r["school_code"]) for r in rows}


async def first_school(conn: asyncpg.Connection) -> tuple[str, str] | None:
    """The first school of the reference data in code order (the demo's school account)."""
    row = await conn.fetchrow(QUERIES["first_school"])
    return (row["province_code"], row["school_code"]) if row else None


async def has_candidates(conn: asyncpg.Connection) -> bool:
    return bool(await conn.fetchval(QUERIES["has_candidates"]))


async def has_staff(conn: asyncpg.Connection) -> bool:
    return bool(await conn.fetchval(QUERIES["has_staff"]))
