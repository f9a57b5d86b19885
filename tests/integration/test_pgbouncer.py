"""The API and the writer through PgBouncer in transaction mode (docs/deploy.md, "PgBouncer").

In transaction mode PgBouncer hands each transaction (each statement outside one) to whichever
server connection is free, so nothing may live on a connection between transactions: asyncpg's
named prepared statements would be looked for on another server connection (PgBouncer < 1.21
carries none), and a `role` startup parameter is refused. examreg's answer, proved here: every
statement unnamed (`EXAMREG_DB_STATEMENT_CACHE_SIZE=0`), `EXAMREG_DATABASE_ROLE=none` with the
login role's own default (`ALTER ROLE … SET role = 'examreg_app'`), the writer's staging tables
created inside its batch transaction. Runs when Debian's pgbouncer is installed or installable.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest

from engine.adapters import store
from engine.settings import Settings
from tests import pgbouncer
from tests.conftest import make_harness, with_settings
from tests.support import drain, form_for

pytestmark = pytest.mark.anyio

SERVER_CONNECTIONS = 3  # per database and user: fewer than the clients' pools hold


@pytest.fixture
def bouncer_url(database_url: str) -> Iterator[str]:
    async def create_login_role() -> None:
        admin = await asyncpg.connect(database_url)
        try:
            await admin.execute(pgbouncer.LOGIN_ROLE_SQL)
        finally:
            await admin.close()

    asyncio.run(create_login_role())
    with pgbouncer.running(database_url, pool_size=SERVER_CONNECTIONS) as url:
        yield url


@pytest.fixture
def bounced(settings: Settings, bouncer_url: str) -> Settings:
    return with_settings(
        settings, database_url=bouncer_url, database_role="none", db_statement_cache_size=0
    )


@pytest.fixture
async def bounced_pool(bounced: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await store.create_pool(bounced.database_url or "", size=8, statement_cache_size=0)
    try:
        yield pool
    finally:
        await pool.close()


async def _server_connections(pool: asyncpg.Pool, database: str) -> int:
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND datname = $2",
            pgbouncer.LOGIN_ROLE,
            database,
        )
    )


async def test_submissions_are_accepted_and_persisted_through_pgbouncer(
    bounced: Settings,
    bounced_pool: asyncpg.Pool,
    pool: asyncpg.Pool,
    aredis: Any,
    roster: list[dict[str, Any]],
) -> None:
    candidates = roster[:12]
    async for harness in make_harness(bounced):
        # Logins read accounts, the submissions read the roster: all through PgBouncer, at once.
        auths = await asyncio.gather(*(harness.login(c) for c in candidates))
        puts = await asyncio.gather(
            *(
                harness.client.put(
                    "/api/v1/me/registration",
                    json=form_for(c),
                    headers={**auth, "Idempotency-Key": f"pgb-{c['candidate_id']}"},
                )
                for c, auth in zip(candidates, auths, strict=True)
            )
        )
        assert [p.status_code for p in puts] == [202] * len(candidates), puts[0].text
        # The writer's batches (COPY into staging, history, upsert) through PgBouncer too.
        await drain(bounced, bounced_pool, aredis)
        statuses = await asyncio.gather(
            *(harness.client.get("/api/v1/me/registration", headers=auth) for auth in auths)
        )
        assert {s.json()["status"] for s in statuses} == {"persisted"}
        ready = await harness.client.get("/readyz")
        assert ready.status_code == 200, ready.text
    persisted = await pool.fetch(
        "SELECT candidate_id, receipt_id FROM registration_versions WHERE candidate_id = ANY($1)",
        [c["candidate_id"] for c in candidates],
    )
    assert sorted(r["receipt_id"] for r in persisted) == sorted(
        p.json()["receipt_id"] for p in puts
    )
    # Multiplexed: the clients held 8 + the API's pool, PostgreSQL saw at most 3 connections.
    database = (bounced.database_url or "").rsplit("/", 1)[1]
    assert 0 < await _server_connections(pool, database) <= SERVER_CONNECTIONS


async def test_the_services_role_applies_through_pgbouncer(bounced_pool: asyncpg.Pool) -> None:
    users = await asyncio.gather(
        *(bounced_pool.fetchrow("SELECT current_user, session_user") for _ in range(20))
    )
    assert {(r[0], r[1]) for r in users} == {("examreg_app", pgbouncer.LOGIN_ROLE)}
    # The service role's grants hold: the audit log takes no UPDATE.
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await bounced_pool.execute("UPDATE audit_log SET reason = reason")


async def test_named_prepared_statements_break_under_transaction_pooling(
    bouncer_url: str,
) -> None:
    """Why the setting exists: asyncpg's default cache fails behind a PgBouncer that carries no
    prepared statements (any before 1.21; from 1.21 on, `max_prepared_statements = 0`, as the
    fixture sets it)."""
    cached = await store.create_pool(bouncer_url, size=8, statement_cache_size=100)
    try:
        errors: list[BaseException] = []
        for _ in range(20):
            results = await asyncio.gather(
                *(cached.fetchval("SELECT $1::int + 1", i) for i in range(40)),
                return_exceptions=True,
            )
            errors += [r for r in results if isinstance(r, BaseException)]
            if errors:
                break
        assert errors, "named statements survived transaction pooling: the test proves nothing"
        assert all(isinstance(e, asyncpg.InvalidSQLStatementNameError) for e in errors), errors[0]
    finally:
        await cached.close()


async def test_a_role_startup_parameter_is_refused_by_pgbouncer(bouncer_url: str) -> None:
    """Why EXAMREG_DATABASE_ROLE must be `none` behind PgBouncer (the login role's default
    sets it instead)."""
    with pytest.raises(asyncpg.PostgresError, match="unsupported startup parameter"):
        await store.create_pool(bouncer_url, size=1, role="examreg_app", statement_cache_size=0)
