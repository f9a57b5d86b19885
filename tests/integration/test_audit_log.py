"""An audit log that cannot be forged and says what was shown (issue 12, item 7).

The staff JSON API takes its session from the `Authorization` header only, so a link clicked in
the console (whose cookie a browser sends with any top-level GET) cannot run an audited read
under the agent's name with someone else's reason. Every search needs a reason and records the
candidates it showed. The table is append-only: the application's role may INSERT and SELECT
and nothing else, and a trigger refuses UPDATE, DELETE and TRUNCATE even to the table's owner.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest

from engine.adapters import store
from engine.adapters.passwords import make_hasher
from tests.conftest import Harness, Servers
from tests.support import drain, form_for, hidden

pytestmark = pytest.mark.anyio

PASSWORD = "Desk-pass-2026"
SEARCH = "/api/v1/support/candidates"


async def _desk_agent(harness: Harness, pool: asyncpg.Pool, username: str, role: str) -> str:
    """A staff member past the first-login change; their API token (the console cookie too)."""
    await pool.execute(
        "INSERT INTO staff (username, password_hash, role, must_change_password)"
        " VALUES ($1, $2, $3, false)",
        username,
        make_hasher(harness.settings).hash(PASSWORD),
        role,
    )
    response = await harness.client.post(
        "/api/v1/staff/login", json={"username": username, "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


async def test_the_staff_api_ignores_the_console_cookie(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool
) -> None:
    """What a link in an e-mail or a chat would make the agent's browser send: the cookie alone."""
    target = roster[24]
    await _desk_agent(harness, pool, "desk.victim", "admin")
    client = harness.client
    client.cookies.clear()
    token = hidden((await client.get("/support/login")).text, "csrf_token")
    login = await client.post(
        "/support/login",
        data={"csrf_token": token, "username": "desk.victim", "password": PASSWORD},
    )
    assert login.headers["location"] == "/support"  # the console's cookie is in the browser
    base = f"{SEARCH}/{target['candidate_id']}"
    forged = [
        await client.get(base, params={"reveal": "1", "reason": "attacker's reason"}),
        await client.get(SEARCH, params={"national_id": target["national_id"], "reason": "x-y-z"}),
        await client.get("/api/v1/support/audit"),
        await client.get("/api/v1/ops/capacity"),
        await client.post(f"{base}/password-reset", json={"reason": "attacker's reason"}),
        await client.post("/api/v1/staff/logout"),
    ]
    for response in forged:
        assert response.status_code == 401, (response.request.url, response.status_code)
        assert target["national_id"] not in response.text
    assert await pool.fetchval("SELECT count(*) FROM audit_log") == 0, "nothing was read"
    assert (await client.get("/support")).status_code == 200, "the console session still works"
    # The same agent's token, in the header, is the way in.
    api = await client.post(
        "/api/v1/staff/login", json={"username": "desk.victim", "password": PASSWORD}
    )
    client.cookies.clear()
    auth = {"Authorization": f"Bearer {api.json()['token']}"}
    detail = await client.get(base, params={"reason": "ticket 5"}, headers=auth)
    assert detail.status_code == 200


async def _search_rows(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT action, reason, detail FROM audit_log WHERE action = 'search' ORDER BY audit_id"
    )
    return [dict(r) for r in rows]


async def test_every_search_needs_a_reason_and_records_the_candidates_it_showed(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool
) -> None:
    auth = {"Authorization": f"Bearer {await _desk_agent(harness, pool, 'desk.search', 'support')}"}
    harness.client.cookies.clear()
    schools: dict[tuple[str, str], list[int]] = {}
    for c in roster:
        schools.setdefault((c["province_code"], c["school_code"]), []).append(c["candidate_id"])
    (province, school), members = max(schools.items(), key=lambda item: len(item[1]))
    assert len(members) > 1
    criteria = {"province_code": province, "school_code": school, "page_size": "1"}

    for reason in (None, "", "  ", "x"):
        params = {**criteria, **({"reason": reason} if reason is not None else {})}
        refused = await harness.client.get(SEARCH, params=params, headers=auth)
        assert refused.status_code == 422, reason
        assert [e["code"] for e in refused.json()["errors"]] == ["reason_required"]
    both = await harness.client.get(SEARCH, params={"national_id": "123"}, headers=auth)
    assert {e["field"] for e in both.json()["errors"]} == {"national_id", "reason"}, "all at once"

    shown: list[int] = []
    for page in (1, 2):
        found = await harness.client.get(
            SEARCH, params={**criteria, "page": str(page), "reason": "ticket 77"}, headers=auth
        )
        assert found.status_code == 200
        shown.append(found.json()["results"][0]["candidate_id"])
    rows = await _search_rows(pool)
    assert [(r["reason"], r["detail"].get("outcome")) for r in rows] == [
        (None, "no_reason"),
        (None, "no_reason"),
        (None, "no_reason"),
        (None, "no_reason"),
        (None, "invalid"),
        ("ticket 77", None),
        ("ticket 77", None),
    ]
    assert [r["detail"]["shown"] for r in rows[-2:]] == [[shown[0]], [shown[1]]]
    assert [r["detail"]["results"] for r in rows[-2:]] == [1, 1]
    assert sorted(shown) == sorted(members)[:2]


async def test_the_console_search_needs_a_reason_and_records_what_it_showed(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool
) -> None:
    await _desk_agent(harness, pool, "desk.page", "support")
    client = harness.client
    client.cookies.clear()
    token = hidden((await client.get("/support/login")).text, "csrf_token")
    await client.post(
        "/support/login",
        data={"csrf_token": token, "username": "desk.page", "password": PASSWORD},
    )
    csrf = hidden((await client.get("/support")).text, "csrf_token")
    target = roster[25]
    refused = await client.post(
        "/support", data={"csrf_token": csrf, "national_id": target["national_id"]}
    )
    assert refused.status_code == 422 and 'id="f-search-reason-error"' in refused.text
    assert f'data-candidate-id="{target["candidate_id"]}"' not in refused.text
    found = await client.post(
        "/support",
        data={"csrf_token": csrf, "national_id": target["national_id"], "reason": "call 12"},
    )
    assert f'data-candidate-id="{target["candidate_id"]}"' in found.text
    rows = await _search_rows(pool)
    assert [(r["reason"], r["detail"].get("shown")) for r in rows] == [
        (None, None),
        ("call 12", [target["candidate_id"]]),
    ]


# -- the table itself: append-only -----------------------------------------------------------------

APP_ROLE = "examreg_app"


async def _audit_row(conn: Any) -> int:
    audit_id = await conn.fetchval(
        "INSERT INTO audit_log (role, action, reason, detail)"
        " VALUES ('support', 'search', 'ticket 1', '{}') RETURNING audit_id"
    )
    return int(audit_id)


async def test_the_application_role_may_insert_and_select_audit_rows_and_nothing_else(
    settings: Any, pool: asyncpg.Pool
) -> None:
    assert settings.database_url
    conn = await asyncpg.connect(settings.database_url, server_settings={"role": APP_ROLE})
    try:
        assert await conn.fetchval("SELECT current_user") == APP_ROLE
        audit_id = await _audit_row(conn)
        assert await conn.fetchval("SELECT reason FROM audit_log WHERE audit_id = $1", audit_id)
        for statement in (
            "UPDATE audit_log SET reason = 'rewritten'",
            "DELETE FROM audit_log",
            "TRUNCATE audit_log",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(statement)
    finally:
        await conn.close()
    granted = await pool.fetch(
        "SELECT privilege_type FROM information_schema.role_table_grants"
        " WHERE grantee = $1 AND table_name = 'audit_log'",
        APP_ROLE,
    )
    assert {r["privilege_type"] for r in granted} == {"INSERT", "SELECT"}
    assert await pool.fetchval("SELECT reason FROM audit_log") == "ticket 1"


async def test_the_trigger_refuses_updates_and_deletes_even_for_the_tables_owner(
    pool: asyncpg.Pool,
) -> None:
    """The test pool connects as the owner (the server's superuser): privileges do not stop it,
    the trigger does, whether the statement would touch a row or none."""
    async with pool.acquire() as conn:
        assert await conn.fetchval(
            "SELECT tableowner = current_user FROM pg_tables WHERE tablename = 'audit_log'"
        )
        audit_id = await _audit_row(conn)
        for statement in (
            "UPDATE audit_log SET reason = 'rewritten'",
            "UPDATE audit_log SET reason = 'rewritten' WHERE false",
            "DELETE FROM audit_log",
            "DELETE FROM audit_log WHERE false",
            "TRUNCATE audit_log",
        ):
            with pytest.raises(asyncpg.PostgresError, match="append-only"):
                await conn.execute(statement)
        assert (
            await conn.fetchval("SELECT reason FROM audit_log WHERE audit_id = $1", audit_id)
            == "ticket 1"
        )


async def test_the_api_and_the_writer_run_as_the_application_role(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool, aredis: Any
) -> None:
    """The whole flow works with the application role's grants alone: login, submission, the
    writer's batch, a password change and a desk read with its audit row."""
    svc = harness.services
    assert await svc.pool.fetchval("SELECT current_user") == APP_ROLE
    candidate = roster[26]
    auth = await harness.login(candidate)
    put = await harness.client.put(
        "/api/v1/me/registration",
        json=form_for(candidate),
        headers={**auth, "Idempotency-Key": "role-1"},
    )
    assert put.status_code == 202, put.text
    assert harness.settings.database_url
    writer_pool = await store.create_pool(harness.settings.database_url, size=2, role=APP_ROLE)
    try:
        assert await writer_pool.fetchval("SELECT current_user") == APP_ROLE
        await drain(harness.settings, writer_pool, aredis)
    finally:
        await writer_pool.close()
    persisted = await harness.client.get("/api/v1/me/registration", headers=auth)
    assert persisted.json()["status"] == "persisted"
    changed = await harness.client.post(
        "/api/v1/auth/password",
        json={"current_password": "Test-password-2026", "new_password": "Moi-mat-khau-2026"},
        headers=auth,
    )
    assert changed.status_code == 200, changed.text
    desk = {"Authorization": f"Bearer {await _desk_agent(harness, pool, 'desk.role', 'admin')}"}
    detail = await harness.client.get(
        f"{SEARCH}/{candidate['candidate_id']}", params={"reason": "ticket 9"}, headers=desk
    )
    assert detail.status_code == 200 and detail.json()["current"]["version"] == 1
    assert (await harness.client.get("/api/v1/support/audit", headers=desk)).status_code == 200


async def test_the_migration_runs_again_on_a_server_that_has_the_role(servers: Servers) -> None:
    """Roles belong to the whole server: a second database (another deployment's, a test's
    template) migrates without tripping over the role the first one created."""
    name = f"t_role_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(servers.database_url)
    try:
        assert await admin.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", APP_ROLE)
        await admin.execute(f"CREATE DATABASE {name}")
        conn = await asyncpg.connect(servers.database_url.rsplit("/", 1)[0] + f"/{name}")
        try:
            applied = await store.migrate(conn)
            assert "0005_app_role_audit_append_only.sql" in applied
            assert await conn.fetchval(
                "SELECT has_table_privilege($1, 'audit_log', 'INSERT')"
                " AND NOT has_table_privilege($1, 'audit_log', 'DELETE')",
                APP_ROLE,
            )
        finally:
            await conn.close()
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()
