"""The record of every action (issue 14 item 5): each kind recorded, append-only, and read by
an admin through the API and the console's `/support/audit` page with its filters.

Candidates' logins and password changes are audit rows; submissions and edits are derived from
the versions the writer persisted (the `activity` view), so a submission writes no audit row at
all; operators' and admins' commands are audit rows naming the actor.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from engine.runtime import cli
from tests.conftest import Harness
from tests.integration.test_support_web import add_staff, signed_in
from tests.support import TEST_PASSWORD, drain, form_for, hidden

pytestmark = pytest.mark.anyio

APP_ROLE = "examreg_app"
AUDIT = "/api/v1/support/audit"


async def _admin(
    harness: Harness, pool: asyncpg.Pool, username: str = "rec.admin"
) -> dict[str, str]:
    await add_staff(harness, pool, username, "admin")
    response = await harness.client.post(
        "/api/v1/staff/login", json={"username": username, "password": "Desk-pass-2026"}
    )
    assert response.status_code == 200, response.text
    harness.client.cookies.clear()
    return {"Authorization": f"Bearer {response.json()['token']}"}


async def _record(harness: Harness, auth: dict[str, str], **filters: Any) -> list[dict[str, Any]]:
    response = await harness.client.get(AUDIT, params=filters, headers=auth)
    assert response.status_code == 200, response.text
    return list(response.json()["entries"])


async def test_a_candidates_logins_and_password_change_are_recorded_with_the_address(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool
) -> None:
    candidate = roster[11]
    auth = await harness.login(candidate)
    wrong = await harness.client.post(
        "/api/v1/auth/login", json={"login": candidate["national_id"], "password": "nope-nope-1"}
    )
    assert wrong.status_code == 401
    changed = await harness.client.post(
        "/api/v1/auth/password",
        json={"current_password": TEST_PASSWORD, "new_password": "a long new passphrase 2026"},
        headers=auth,
    )
    assert changed.status_code == 200, changed.text
    rows = await pool.fetch(
        "SELECT staff_id, role, action, candidate_id, host(client_addr) AS addr, detail::text"
        " FROM audit_log ORDER BY audit_id"
    )
    assert [r["action"] for r in rows] == ["login", "login_failed", "password_change"]
    for row in rows:
        assert (row["staff_id"], row["role"]) == (None, "candidate")
        assert row["candidate_id"] == candidate["candidate_id"]
        assert row["addr"] == "203.0.113.7"
        assert candidate["national_id"] not in row["detail"]
    # An unknown login names no one and is not written down (it may be a mistyped national ID).
    await harness.client.post("/api/v1/auth/login", json={"login": "001099012345", "password": "x"})
    assert await pool.fetchval("SELECT count(*) FROM audit_log") == 3


async def test_submissions_and_edits_come_from_the_persisted_versions_not_an_audit_write(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool, aredis: Any
) -> None:
    candidate = roster[12]
    auth = await harness.login(candidate)
    before = await pool.fetchval("SELECT count(*) FROM audit_log")
    for key, seed in (("one", 1), ("two", 2)):
        response = await harness.client.put(
            "/api/v1/me/registration",
            json=form_for(candidate, seed=seed, phone="0912345678" if seed == 2 else None)
            if seed == 2
            else form_for(candidate, seed=seed),
            headers={**auth, "Idempotency-Key": key},
        )
        assert response.status_code == 202, response.text
    assert await pool.fetchval("SELECT count(*) FROM audit_log") == before, "no write on submit"
    await drain(harness.settings, pool, aredis)
    admin = await _admin(harness, pool)
    actor = f"candidate:{candidate['candidate_id']}"
    mine = await _record(harness, admin, actor=actor)
    assert [e["action"] for e in mine] == ["edit", "submit", "login"]
    edit, submit = mine[0], mine[1]
    assert (submit["detail"]["version"], edit["detail"]["version"]) == (1, 2)
    assert submit["role"] == "candidate" and submit["candidate_id"] == candidate["candidate_id"]
    assert submit["detail"]["changed"] is None  # nothing before the first version
    assert isinstance(edit["detail"]["changed"], list)
    edits = await _record(harness, admin, action="edit")
    assert [e["entry_id"] for e in edits] == [edit["entry_id"]]


async def test_operators_commands_are_recorded_with_the_actor(
    harness: Harness,
    roster: list[dict[str, Any]],
    pool: asyncpg.Pool,
    aredis: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EXAMREG_DATABASE_URL", harness.settings.database_url or "")
    monkeypatch.setenv("EXAMREG_REDIS_URL", harness.settings.redis_url or "")
    purge = ["trial", "purge", "--actor", "ops.lan", "--reason", "trial over: INC-9"]
    assert await asyncio.to_thread(cli.main, purge) == 0
    assert await asyncio.to_thread(cli.main, ["reconcile", "--actor", "ops.lan"]) == 0
    assert await asyncio.to_thread(cli.main, ["dead-letters", "list", "--actor", "ops.lan"]) == 0
    admin = await _admin(harness, pool)
    entries = await _record(harness, admin, actor="ops.lan")
    assert [e["action"] for e in entries] == ["dead_letter_list", "reconcile", "trial_purge"]
    purged = entries[2]
    assert (purged["role"], purged["reason"]) == ("admin", "trial over: INC-9")
    assert purged["detail"]["versions"] == 0 and purged["detail"]["host"]


async def test_the_application_role_cannot_rewrite_the_record(
    settings: Any, pool: asyncpg.Pool
) -> None:
    assert settings.database_url
    conn = await asyncpg.connect(settings.database_url, server_settings={"role": APP_ROLE})
    try:
        for statement in (
            "UPDATE audit_log SET reason = 'x'",
            "DELETE FROM audit_log",
            "UPDATE trial_purged_versions SET version = 9",
            "DELETE FROM trial_purged_versions",
            "INSERT INTO trial_purged_versions VALUES (1, 1, 'R', now(), now(), now())",
            "UPDATE registration_versions SET version = 9",
            "DELETE FROM registration_versions",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(statement)
        assert await conn.fetchval("SELECT count(*) FROM activity") == 0  # and it may read it
    finally:
        await conn.close()
    with pytest.raises(asyncpg.PostgresError, match="append-only"):
        await pool.execute("DELETE FROM trial_purged_versions")  # not even the owner


async def test_the_admin_page_filters_by_actor_action_and_time_and_pages(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool
) -> None:
    candidate = roster[13]
    await harness.login(candidate)
    # Older actions, as the record would hold them: enough for a second page.
    await pool.execute(
        "INSERT INTO audit_log (at, role, action, reason, detail)"
        " SELECT now() - g * interval '1 minute', 'operator', 'reconcile', 'gate ' || g,"
        " jsonb_build_object('actor', 'ops.page')"
        " FROM generate_series(1, 55) AS g"
    )
    await add_staff(harness, pool, "page.support", "support")
    harness.client.cookies.clear()
    await signed_in(harness.client, "page.support")
    refused = await harness.client.get("/support/audit")
    assert refused.status_code == 403
    assert 'id="nav-audit"' not in (await harness.client.get("/support")).text
    await add_staff(harness, pool, "page.admin", "admin")
    harness.client.cookies.clear()
    csrf = await signed_in(harness.client, "page.admin")
    form = await harness.client.get("/support/audit")
    assert form.status_code == 200 and "Nhật ký thao tác" in form.text
    assert 'id="audit-table"' not in form.text, "nothing is read before the form is sent"

    async def post(**fields: str) -> str:
        response = await harness.client.post("/support/audit", data={"csrf_token": csrf, **fields})
        assert response.status_code == 200, response.text
        return response.text

    mine = await post(actor=f"candidate:{candidate['candidate_id']}")
    assert mine.count('data-action="login"') == 1 and 'data-action="reconcile"' not in mine
    first = await post(actor="ops.page", action="reconcile", reason="weekly check")
    assert first.count('data-action="reconcile"') == 50 and 'id="next-page"' in first
    second = await post(actor="ops.page", action="reconcile", page="2")
    assert second.count('data-action="reconcile"') == 5 and 'id="previous-page"' in second
    local = datetime.now(UTC) + timedelta(hours=7) - timedelta(minutes=10, seconds=30)
    recent = await post(actor="ops.page", since=local.strftime("%Y-%m-%dT%H:%M:%S"))
    assert recent.count('data-action="reconcile"') == 10  # minutes 1..10 ago, in GMT+7 typed
    bad = await harness.client.post(
        "/support/audit", data={"csrf_token": csrf, "since": "tomorrow"}
    )
    assert bad.status_code == 422 and 'id="error-summary"' in bad.text
    english = await harness.client.get("/support/audit?lang=en")
    assert "Record of actions" in english.text
    reads = await pool.fetch(
        "SELECT reason, detail FROM audit_log WHERE action = 'audit_read' ORDER BY audit_id"
    )
    assert [r["reason"] for r in reads][:2] == [None, "weekly check"]
    assert reads[1]["detail"]["filters"] == {"actor": "ops.page", "action": "reconcile"}
    assert hidden(first, "csrf_token") == csrf
