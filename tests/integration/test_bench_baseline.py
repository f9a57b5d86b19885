"""The benchmark's naive baseline keeps examreg's promises for a 202, so the comparison is fair.

Same session store, same validation, durable idempotent write, just straight into PostgreSQL;
and the benchmark's compact bodies (templates) are valid forms for every candidate type.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from benchmarks import naive_app, nation
from engine.settings import Settings

pytestmark = pytest.mark.anyio


@pytest.fixture
async def naive(settings: Settings, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    await nation.execute(database_url, naive_app.TABLES)
    naive_app.naive.settings = settings
    app = naive_app.app
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            yield client


async def _session_and_body(settings: Settings) -> tuple[dict[str, str], bytes, int]:
    assert settings.database_url and settings.redis_url
    rows = await nation.candidates(settings.database_url)
    catalog = await nation.catalog(settings.database_url)
    forms = nation.templates(rows, catalog)
    nation.check_templates(forms, rows, catalog)  # raises if a template is not a valid form
    await nation.mint_sessions(settings.redis_url, rows[:1], "testnonce", settings.stream_shards)
    headers = {"Authorization": f"Bearer {nation.token_of('testnonce', rows[0][0])}"}
    body = orjson.dumps(nation.body_of(forms[rows[0][5]], rows[0]))
    return headers, body, rows[0][0]


async def test_naive_baseline_persists_once_per_key_and_refuses_bad_input(
    naive: httpx.AsyncClient, settings: Settings, database_url: str
) -> None:
    headers, body, candidate_id = await _session_and_body(settings)
    put: dict[str, Any] = {"content": body, "headers": {**headers, "Idempotency-Key": "k1"}}
    first = await naive.put("/api/v1/me/registration", **put)
    again = await naive.put("/api/v1/me/registration", **put)
    second = await naive.put(
        "/api/v1/me/registration", content=body, headers={**headers, "Idempotency-Key": "k2"}
    )
    assert first.status_code == again.status_code == second.status_code == 202
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["receipt_id"] == first.json()["receipt_id"]
    assert second.json()["version"] == 2
    bad = await naive.put(
        "/api/v1/me/registration", content=b"{}", headers={**headers, "Idempotency-Key": "k3"}
    )
    assert bad.status_code == 422
    anonymous = await naive.put("/api/v1/me/registration", content=body)
    assert anonymous.status_code == 401
    conn = await asyncpg.connect(database_url)
    try:
        versions = await conn.fetch(
            "SELECT version, idempotency_key FROM naive_registration_versions"
            " WHERE candidate_id = $1 ORDER BY version",
            candidate_id,
        )
        examreg_rows = await conn.fetchval("SELECT count(*) FROM registration_versions")
    finally:
        await conn.close()
    assert [(r["version"], r["idempotency_key"]) for r in versions] == [(1, "k1"), (2, "k2")]
    assert examreg_rows == 0  # the baseline never writes examreg's own tables
