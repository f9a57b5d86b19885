"""The partitioned history and audit log (issue 15 item 3, migration 0011).

A database migrated to 0010 and filled with rows of every kind is migrated on: every row is
still there, byte for byte, in the partition its key names; the keys of the promises still
refuse what they refused (a second version of one request, a redelivered version); the audit
numbering continues; the audit log stays append-only on the partitioned table and on each
partition; the application role's grants are what they were; and the writer's sink writes into
the new table.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from engine.adapters import store
from engine.domain.entries import VersionRow
from tests.conftest import Servers

pytestmark = pytest.mark.anyio

APP_ROLE = "examreg_app"
PARTITIONING = "0011_partitioned_history.sql"

# Rows of every shape the history and the log hold: many candidates, several versions each,
# trial and official, audit rows from a past year, this one, and one far past the partitions
# the migration creates (the DEFAULT partition takes it).
SEED = """
INSERT INTO candidates (candidate_id, national_id, full_name, date_of_birth, sex,
                        candidate_type, province_code, school_code, password_hash)
SELECT g, lpad(g::text, 12, '0'), 'THI SINH ' || g, date '2008-01-01' + g, 'female', 'a',
       '01', '001', 'x'
FROM generate_series(1, 300) AS g;
INSERT INTO registration_versions (candidate_id, version, receipt_id, idempotency_key,
    request_hash, phase, form, full_name, shard, stream_id, accepted_at, persisted_at)
SELECT g, v, 'R' || g || 'V' || v, 'key-' || g || '-' || v, md5(g || ':' || v),
       CASE WHEN v = 1 THEN 'trial' ELSE 'official' END,
       jsonb_build_object('full_name', 'THI SINH ' || g, 'phone', '09' || lpad(v::text, 8, '0')),
       'THI SINH ' || g, g % 8, g || '-' || v,
       timestamptz '2026-06-01 08:00+07' + g * interval '1 minute' + v * interval '1 hour',
       timestamptz '2026-06-01 08:00+07' + g * interval '1 minute' + v * interval '2 hour'
FROM generate_series(1, 300) AS g, generate_series(1, 1 + g % 4) AS v;
INSERT INTO registrations (candidate_id, version, receipt_id, phase, form, accepted_at)
SELECT DISTINCT ON (candidate_id) candidate_id, version, receipt_id, phase, form, accepted_at
FROM registration_versions ORDER BY candidate_id, version DESC;
INSERT INTO staff (username, password_hash, role) VALUES ('desk.one', 'x', 'support');
INSERT INTO audit_log (at, staff_id, role, action, candidate_id, reason, client_addr, detail)
SELECT CASE g % 3 WHEN 0 THEN timestamptz '2024-06-20 10:00+07'
                  WHEN 1 THEN now() - g * interval '1 minute'
                  ELSE timestamptz '2090-01-01 00:00+00' END,
       1, 'support', 'search', 1 + g % 300, 'ticket ' || g, ('10.0.0.' || (g % 250))::inet,
       '{"n": 1}'
FROM generate_series(1, 90) AS g;
INSERT INTO unit_reviews (candidate_id, version, action, staff_id)
SELECT candidate_id, version, 'confirm', 1 FROM registrations WHERE candidate_id % 10 = 0;
"""

# A digest of each table's rows in their key order: equal digests, the same rows.
DIGESTS = {
    "registration_versions": "candidate_id, version",
    "audit_log": "audit_id",
    "registrations": "candidate_id",
    "unit_reviews": "review_id",
    "activity": "entry_id",
}


async def _digests(conn: asyncpg.Connection) -> dict[str, tuple[int, str]]:
    found = {}
    for table, order in DIGESTS.items():
        row = await conn.fetchrow(
            f"SELECT count(*), md5(string_agg(t::text, '|' ORDER BY {order})) FROM {table} t"
        )
        found[table] = (row[0], row[1])
    return found


@pytest.fixture
async def before_partitioning(
    servers: Servers, tmp_path: Path
) -> AsyncIterator[asyncpg.Connection]:
    """A database migrated up to the migration before 0011, with rows in every table."""
    name = f"t_part_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(servers.database_url)
    await admin.execute(f"CREATE DATABASE {name}")
    older = tmp_path / "schema"
    older.mkdir()
    for path in sorted(store.SCHEMA_DIR.glob("[0-9]*.sql")):
        if path.name < PARTITIONING:
            shutil.copy(path, older / path.name)
    conn = await store.connect(servers.database_url.rsplit("/", 1)[0] + f"/{name}")
    try:
        assert PARTITIONING not in await store.migrate(conn, older)
        await conn.execute(SEED)
        yield conn
    finally:
        await conn.close()
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


async def test_the_migration_keeps_every_row_and_partitions_both_tables(
    before_partitioning: asyncpg.Connection,
) -> None:
    conn = before_partitioning
    before = await _digests(conn)
    assert before["registration_versions"][0] == 750 and before["audit_log"][0] == 90
    last_audit_id = await conn.fetchval("SELECT last_value FROM audit_log_audit_id_seq")

    assert await store.migrate(conn) == [PARTITIONING]
    assert await store.migrate(conn) == []  # recorded: applied once

    assert await _digests(conn) == before, "no row lost, added or changed"
    kinds = await conn.fetch(
        "SELECT relname, relkind::text FROM pg_class"
        " WHERE relname IN ('registration_versions', 'audit_log')"
    )
    assert {r["relname"]: r["relkind"] for r in kinds} == {
        "registration_versions": "p",
        "audit_log": "p",
    }
    spread = await conn.fetch(
        "SELECT tableoid::regclass::text AS part, count(*) FROM registration_versions GROUP BY 1"
    )
    assert len(spread) == 16 and min(r["count"] for r in spread) > 10, spread
    years = {
        r["part"]: r["count"]
        for r in await conn.fetch(
            "SELECT tableoid::regclass::text AS part, count(*) FROM audit_log GROUP BY 1"
        )
    }
    this_year = f"audit_log_y{datetime.now(UTC).year}"
    assert years == {"audit_log_y2024": 30, this_year: 30, "audit_log_default": 30}
    # The numbering goes on after the last number the old sequence gave.
    new_id = await conn.fetchval(
        "INSERT INTO audit_log (role, action) VALUES ('support', 'search') RETURNING audit_id"
    )
    assert new_id == last_audit_id + 1
    assert not await conn.fetchval(
        "SELECT count(*) FROM pg_class WHERE relname LIKE '%unpartitioned%'"
    ), "the old tables are gone"


async def test_the_promises_keys_still_refuse_after_the_migration(
    before_partitioning: asyncpg.Connection,
) -> None:
    conn = before_partitioning
    await store.migrate(conn)
    # Promise 2's last guard: the same request (candidate, key) twice, as another version.
    with pytest.raises(asyncpg.UniqueViolationError, match="idempotency_key"):
        await conn.execute(
            "INSERT INTO registration_versions (candidate_id, version, receipt_id,"
            " idempotency_key, request_hash, phase, form, full_name, shard, stream_id,"
            " accepted_at) VALUES (7, 99, 'RX', 'key-7-1', 'h', 'official', '{}', 'THI SINH 7',"
            " 7, '9-9', now())"
        )
    # Promise 3: a redelivered version is skipped, a new one lands; the sink works as before.
    now = datetime.now(UTC)
    rows = [
        VersionRow(
            7, v, f"R7V{v}", f"key-7-{v}", "h", "official", "{}", "THI SINH 7", 7, "1-1", now
        )
        for v in (2, 9)
    ]
    result = await store.write_batch(conn, rows)
    assert (result.history_rows, result.current_rows) == (1, 1)
    assert await conn.fetchval("SELECT version FROM registrations WHERE candidate_id = 7") == 9
    # A review still names a stored version, and goes with it.
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await conn.execute(
            "INSERT INTO unit_reviews (candidate_id, version, action, staff_id)"
            " VALUES (7, 50, 'confirm', 1)"
        )
    await conn.execute("DELETE FROM registration_versions WHERE candidate_id = 10")
    assert not await conn.fetchval("SELECT count(*) FROM unit_reviews WHERE candidate_id = 10")


async def test_the_audit_log_stays_append_only_on_every_partition(
    before_partitioning: asyncpg.Connection,
) -> None:
    conn = before_partitioning
    await store.migrate(conn)
    await conn.execute("SELECT audit_log_add_year(2099)")  # a year added later has its trigger
    parts = [
        r["relname"]
        for r in await conn.fetch(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'audit_log'::regclass ORDER BY 1"
        )
    ]
    now = datetime.now(UTC).year
    years = [f"audit_log_y{y}" for y in (*range(2024, now + 3), 2099)]
    assert parts == sorted(["audit_log_default", *years]), parts
    for table in ["audit_log", *parts]:
        for statement in (
            f"UPDATE {table} SET reason = 'rewritten'",
            f"DELETE FROM {table} WHERE false",
            f"TRUNCATE {table}",
        ):
            with pytest.raises(asyncpg.PostgresError, match="append-only"):
                await conn.execute(statement)
    assert await conn.fetchval("SELECT count(*) FROM audit_log") == 90
    grants = await conn.fetch(
        "SELECT table_name, privilege_type FROM information_schema.role_table_grants"
        " WHERE grantee = $1 AND (table_name LIKE 'audit_log%'"
        " OR table_name LIKE 'registration_versions%')",
        APP_ROLE,
    )
    assert {(g["table_name"], g["privilege_type"]) for g in grants} == {
        ("audit_log", "INSERT"),
        ("audit_log", "SELECT"),
        ("registration_versions", "INSERT"),
        ("registration_versions", "SELECT"),
    }, "nothing on the partitions themselves, nothing more on the tables"
    assert not await conn.fetchval(
        "SELECT has_function_privilege($1, 'audit_log_add_year(integer)', 'EXECUTE')", APP_ROLE
    )
    assert await conn.fetchval("SELECT has_table_privilege($1, 'activity', 'SELECT')", APP_ROLE), (
        "the recreated view is readable again"
    )
