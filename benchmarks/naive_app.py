"""The naive baseline of the benchmark: the obvious design, each registration straight into SQL.

A server, not load-test code, so it may import `engine`: it reuses examreg's session store
(`engine.adapters.sessions.SessionStore`, one Redis GET), its validation
(`engine.domain.registration.validate_registration` against the same reference catalog) and its
PostgreSQL pool, on the same stack (Starlette on uvicorn + uvloop + httptools), and replaces the
durable Redis enqueue by one `INSERT … ON CONFLICT` statement per request in autocommit, i.e. one
fsynced commit per registration (`synchronous_commit` on). The statement checks the Idempotency-Key,
bumps the current version and appends the history row, so its guarantees match examreg's 202
(durable, idempotent for sequential retries). Not for production: two concurrent requests with the
same key could both pass the check; examreg's Lua function is atomic.

    EXAMREG_DATABASE_URL=… EXAMREG_REDIS_URL=… \\
    uvicorn benchmarks.naive_app:app --loop uvloop --http httptools --workers 2 --no-access-log
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine import settings as settings_module
from engine.adapters import store, streams
from engine.adapters.sessions import SessionStore
from engine.domain.registration import CandidateContext, Catalog, validate_registration
from engine.errors import ExamregError, IdempotencyKeyRequired, Unauthenticated
from engine.settings import VIETNAM

TABLES = """
CREATE TABLE IF NOT EXISTS naive_registrations (LIKE registrations INCLUDING ALL);
CREATE TABLE IF NOT EXISTS naive_registration_versions (LIKE registration_versions INCLUDING ALL);
ALTER TABLE naive_registrations
    ADD FOREIGN KEY (candidate_id) REFERENCES candidates (candidate_id);
ALTER TABLE naive_registration_versions
    ADD FOREIGN KEY (candidate_id) REFERENCES candidates (candidate_id);
"""

SUBMIT = """
WITH prior AS (
    SELECT version, receipt_id FROM naive_registration_versions
    WHERE candidate_id = $1 AND idempotency_key = $2
), current AS (
    INSERT INTO naive_registrations AS r
        (candidate_id, version, receipt_id, phase, form, accepted_at)
    SELECT $1, 1, $3, 'official', $4::jsonb, $6 WHERE NOT EXISTS (SELECT 1 FROM prior)
    ON CONFLICT (candidate_id) DO UPDATE
    SET version = r.version + 1, receipt_id = EXCLUDED.receipt_id, form = EXCLUDED.form,
        accepted_at = EXCLUDED.accepted_at, persisted_at = now()
    RETURNING version, receipt_id
), history AS (
    INSERT INTO naive_registration_versions (candidate_id, version, receipt_id, idempotency_key,
        request_hash, phase, form, full_name, shard, stream_id, accepted_at)
    SELECT $1, version, receipt_id, $2, $5, 'official', $4::jsonb, $7, 0, 'naive', $6
    FROM current
    ON CONFLICT DO NOTHING
)
SELECT version, receipt_id, false AS replayed FROM current
UNION ALL
SELECT version, receipt_id, true FROM prior
"""


class Naive:
    """Pool, Redis client, sessions and catalog of one worker process."""

    def __init__(self) -> None:
        self.settings = settings_module.load()
        self.pool: asyncpg.Pool | None = None
        self.sessions: SessionStore | None = None
        self.catalog: Catalog | None = None
        self.redis: Any = None

    async def start(self) -> None:
        assert self.settings.database_url and self.settings.redis_url
        self.redis = streams.connect(self.settings.redis_url, timeout=5)
        self.sessions = SessionStore(self.redis, self.settings)
        self.pool = await store.create_pool(
            self.settings.database_url, size=self.settings.db_pool_size
        )
        reference = await store.reference(self.pool)
        self.catalog = Catalog.from_rows(
            (p["code"] for p in reference["provinces"]),
            ((s["province_code"], s["school_code"]) for s in reference["schools"]),
        )

    async def stop(self) -> None:
        if self.pool is not None:
            await self.pool.close()
        if self.redis is not None:
            await self.redis.aclose()


naive = Naive()


def _problem(exc: ExamregError) -> Response:
    body = orjson.dumps(exc.to_problem("en"))
    return Response(body, exc.status, media_type="application/problem+json")


async def submit(request: Request) -> Response:
    assert naive.sessions and naive.pool and naive.catalog
    try:
        header = request.headers.get("authorization", "")
        session = await naive.sessions.get(header[7:].strip(), "candidate") if header else None
        if session is None:
            raise Unauthenticated()
        key = request.headers.get("idempotency-key", "")
        if not 1 <= len(key) <= 64:
            raise IdempotencyKeyRequired()
        context = CandidateContext(national_id=session.login, today=datetime.now(VIETNAM).date())
        form = validate_registration(orjson.loads(await request.body()), context, naive.catalog)
    except ExamregError as exc:
        return _problem(exc)
    accepted_at = datetime.now(UTC)
    row = await naive.pool.fetchrow(
        SUBMIT,
        session.subject,
        key,
        secrets.token_hex(10).upper(),
        orjson.dumps(form).decode(),
        streams.form_hash(form),
        accepted_at,
        form["full_name"],
    )
    assert row is not None
    body = {
        "receipt_id": row["receipt_id"],
        "version": row["version"],
        "status": "persisted",
        "accepted_at": accepted_at.isoformat(),
    }
    headers = {"Idempotent-Replayed": "true"} if row["replayed"] else None
    return Response(orjson.dumps(body), 202, headers=headers, media_type="application/json")


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    await naive.start()
    try:
        yield
    finally:
        await naive.stop()


app = Starlette(
    routes=[Route("/api/v1/me/registration", submit, methods=["PUT"])], lifespan=lifespan
)
