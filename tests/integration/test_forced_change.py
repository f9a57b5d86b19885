"""The forced first-login password change (issue 12, item 5), on every way in.

A candidate still on the school-issued password, or a staff member still on the one they were
given, may change it or log out; every other authenticated endpoint answers 403
`password_change_required` and does nothing: the JSON API (candidates and staff alike) and the
web form's `POST /registration`.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import pytest

from engine.adapters import streams
from engine.adapters.passwords import make_hasher
from engine.pages import webform
from tests.conftest import Harness
from tests.support import TEST_PASSWORD, form_for, hidden

pytestmark = pytest.mark.anyio

NEW_PASSWORD = "Moi-mat-khau-2026"
STAFF_PASSWORD = "Desk-pass-2026"
STAFF_NEW_PASSWORD = "Desk-new-pass-77"


async def _force(pool: asyncpg.Pool, candidate: dict[str, Any]) -> None:
    """The candidate is back on an issued password (the roster as a school hands it out)."""
    await pool.execute(
        "UPDATE candidates SET must_change_password = true WHERE candidate_id = $1",
        candidate["candidate_id"],
    )


async def _queued(client: Any) -> int:
    return sum([await client.xlen(streams.stream_key(s)) for s in range(8)])


def _refused(response: httpx.Response) -> bool:
    return (
        response.status_code == 403
        and response.headers["content-type"].startswith("application/problem+json")
        and response.json()["code"] == "password_change_required"
    )


async def test_a_candidate_on_the_issued_password_can_only_change_it_or_log_out(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool, aredis: Any
) -> None:
    candidate = roster[30]
    await _force(pool, candidate)
    login = await harness.client.post(
        "/api/v1/auth/login",
        json={"login": candidate["national_id"], "password": TEST_PASSWORD},
    )
    assert login.status_code == 200 and login.json()["must_change_password"] is True
    auth = {"Authorization": f"Bearer {login.json()['token']}"}
    harness.client.cookies.clear()  # the Bearer token alone, then the cookie alone
    cookie = {"Cookie": f"examreg_session={login.json()['token']}"}
    for headers in (auth, cookie):
        calls = [
            await harness.client.get("/api/v1/me", headers=headers),
            await harness.client.put(
                "/api/v1/me/registration",
                json=form_for(candidate),
                headers={**headers, "Idempotency-Key": "forced-1"},
            ),
            await harness.client.get("/api/v1/me/registration", headers=headers),
            await harness.client.get(f"/api/v1/me/receipts/{'0' * 20}", headers=headers),
        ]
        for response in calls:
            assert _refused(response), (response.request.url, response.text)
    assert await _queued(aredis) == 0, "nothing was submitted"

    changed = await harness.client.post(
        "/api/v1/auth/password",
        json={"current_password": TEST_PASSWORD, "new_password": NEW_PASSWORD},
        headers=auth,
    )
    assert changed.status_code == 200, changed.text
    auth = {"Authorization": f"Bearer {changed.json()['token']}"}
    assert (await harness.client.get("/api/v1/me", headers=auth)).status_code == 200
    put = await harness.client.put(
        "/api/v1/me/registration",
        json=form_for(candidate),
        headers={**auth, "Idempotency-Key": "forced-2"},
    )
    assert put.status_code == 202, put.text


async def test_logout_works_while_the_change_is_pending(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool
) -> None:
    candidate = roster[31]
    await _force(pool, candidate)
    token = (
        await harness.client.post(
            "/api/v1/auth/login",
            json={"login": candidate["national_id"], "password": TEST_PASSWORD},
        )
    ).json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    assert (await harness.client.post("/api/v1/auth/logout", headers=auth)).status_code == 204
    assert (await harness.client.get("/api/v1/me", headers=auth)).status_code == 401


async def test_a_session_opened_before_the_flag_was_kept_asks_the_roster(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool
) -> None:
    """Sessions from before this rule carry no flag: the roster decides, not a default."""
    forced, changed = roster[32], roster[33]
    await _force(pool, forced)
    sessions = harness.services.sessions
    old_forced, _ = await sessions.create(
        forced["candidate_id"], "candidate", forced["national_id"]
    )
    old_changed, _ = await sessions.create(
        changed["candidate_id"], "candidate", changed["national_id"]
    )
    refused = await harness.client.get(
        "/api/v1/me", headers={"Authorization": f"Bearer {old_forced}"}
    )
    assert _refused(refused)
    allowed = await harness.client.get(
        "/api/v1/me", headers={"Authorization": f"Bearer {old_changed}"}
    )
    assert allowed.status_code == 200


async def test_the_web_form_does_not_submit_for_a_candidate_on_the_issued_password(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool, aredis: Any
) -> None:
    candidate = roster[34]
    await _force(pool, candidate)
    client = harness.client
    token = hidden((await client.get("/login")).text, "csrf_token")
    login = await client.post(
        "/login",
        data={"csrf_token": token, "login": candidate["national_id"], "password": TEST_PASSWORD},
    )
    assert login.headers["location"] == "/password"
    csrf = hidden((await client.get("/password")).text, "csrf_token")
    data = {
        **webform.from_form(form_for(candidate)),
        "csrf_token": [csrf],
        "idempotency_key": ["forced-web-1"],
    }
    response = await client.post("/registration", data=data)
    assert (response.status_code, response.headers["location"]) == (303, "/password")
    assert await _queued(aredis) == 0, "the form was not submitted"


async def _staff_login(harness: Harness, pool: asyncpg.Pool, username: str, role: str) -> str:
    await pool.execute(
        "INSERT INTO staff (username, password_hash, role, must_change_password)"
        " VALUES ($1, $2, $3, true)",
        username,
        make_hasher(harness.settings).hash(STAFF_PASSWORD),
        role,
    )
    response = await harness.client.post(
        "/api/v1/staff/login", json={"username": username, "password": STAFF_PASSWORD}
    )
    assert response.status_code == 200 and response.json()["must_change_password"] is True
    return str(response.json()["token"])


async def test_a_staff_member_on_an_issued_password_reveals_and_resets_nothing(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool
) -> None:
    target = roster[35]
    token = await _staff_login(harness, pool, "new.admin", "admin")
    auth = {"Authorization": f"Bearer {token}"}
    base = f"/api/v1/support/candidates/{target['candidate_id']}"
    calls = [
        await harness.client.get(
            "/api/v1/support/candidates",
            params={"candidate_id": target["candidate_id"], "reason": "ticket 1"},
            headers=auth,
        ),
        await harness.client.get(base, params={"reason": "ticket 1", "reveal": "1"}, headers=auth),
        await harness.client.post(
            f"{base}/password-reset", json={"reason": "ticket 1"}, headers=auth
        ),
        await harness.client.get("/api/v1/support/audit", headers=auth),
        await harness.client.get("/api/v1/ops/capacity", headers=auth),
    ]
    for response in calls:
        assert _refused(response), (response.request.url, response.text)
        assert target["national_id"] not in response.text
    assert await pool.fetchval("SELECT count(*) FROM audit_log") == 0, "nothing was read"
    still = await harness.client.post(
        "/api/v1/auth/login", json={"login": target["national_id"], "password": TEST_PASSWORD}
    )
    assert still.status_code == 200, "the candidate's password was not reset"

    changed = await harness.client.post(
        "/api/v1/staff/password",
        json={"current_password": STAFF_PASSWORD, "new_password": STAFF_NEW_PASSWORD},
        headers=auth,
    )
    assert changed.status_code == 200, changed.text
    token = changed.json()["token"]
    reveal = await harness.client.get(
        base,
        params={"reason": "ticket 1", "reveal": "1"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert reveal.status_code == 200 and reveal.json()["national_id"] == target["national_id"]


async def test_a_forced_staff_member_may_log_out(harness: Harness, pool: asyncpg.Pool) -> None:
    token = await _staff_login(harness, pool, "new.desk", "support")
    auth = {"Authorization": f"Bearer {token}"}
    assert (await harness.client.post("/api/v1/staff/logout", headers=auth)).status_code == 204
    assert (await harness.client.get("/api/v1/support/audit", headers=auth)).status_code == 401
