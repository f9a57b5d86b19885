"""Staff login on real servers: roles travel with the session, candidates' tokens do not count."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from starlette.requests import Request

from engine.adapters.passwords import make_hasher
from engine.errors import Forbidden, PasswordChangeRequired, Unauthenticated
from engine.http.staff import require_staff
from tests.conftest import Harness

pytestmark = pytest.mark.anyio

PASSWORD = "Staff-pass-2026"


async def _staff(pool: asyncpg.Pool, harness: Harness, username: str, role: str) -> None:
    school = ("01", "001") if role == "school" else (None, None)
    await pool.execute(
        "INSERT INTO staff (username, password_hash, role, province_code, school_code)"
        " VALUES ($1, $2, $3, $4, $5)",
        username,
        make_hasher(harness.settings).hash(PASSWORD),
        role,
        *school,
    )


async def _login(harness: Harness, username: str, password: str = PASSWORD) -> Any:
    return await harness.client.post(
        "/api/v1/staff/login", json={"username": username, "password": password}
    )


def _request(token: str, harness: Harness) -> Request:
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "query_string": b"",
        "headers": [(b"authorization", f"Bearer {token}".encode())],
        "app": harness.client._transport.app,  # type: ignore[attr-defined]
    }
    return Request(scope)


async def test_staff_login_carries_the_role_and_school(
    harness: Harness, pool: asyncpg.Pool
) -> None:
    await _staff(pool, harness, "school.one", "school")
    response = await _login(harness, "school.one")
    assert response.status_code == 200, response.text
    assert response.json()["must_change_password"] is True
    assert "examreg_staff_session" in response.headers["set-cookie"]
    with pytest.raises(PasswordChangeRequired):  # the issued password first
        await require_staff(_request(response.json()["token"], harness), frozenset({"school"}))
    await pool.execute("UPDATE staff SET must_change_password = false")
    staff = await require_staff(_request(response.json()["token"], harness), frozenset({"school"}))
    assert (staff.username, staff.role, staff.school) == ("school.one", "school", ("01", "001"))
    with pytest.raises(Forbidden):
        await require_staff(_request(response.json()["token"], harness), frozenset({"admin"}))


async def test_a_candidate_token_is_no_staff_session(
    harness: Harness, roster: list[dict[str, Any]]
) -> None:
    auth = await harness.login(roster[0])
    token = auth["Authorization"].split()[1]
    with pytest.raises(Unauthenticated):
        await require_staff(_request(token, harness), frozenset({"support", "admin"}))
    response = await harness.client.post(
        "/api/v1/staff/password",
        json={"current_password": "x", "new_password": "y"},
        headers=auth,
    )
    assert response.status_code == 401


async def test_staff_wrong_password_and_unknown_user_look_the_same_and_lock(
    harness: Harness, pool: asyncpg.Pool
) -> None:
    await _staff(pool, harness, "desk.two", "support")
    wrong = await _login(harness, "desk.two", "wrong-1234")
    unknown = await _login(harness, "nobody.here", "wrong-1234")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    for _ in range(harness.settings.login_max_failures - 1):
        await _login(harness, "desk.two", "wrong-1234")
    locked = await _login(harness, "desk.two")
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0


async def test_staff_password_change_and_logout(harness: Harness, pool: asyncpg.Pool) -> None:
    await _staff(pool, harness, "ops.one", "operator")
    token = (await _login(harness, "ops.one")).json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    changed = await harness.client.post(
        "/api/v1/staff/password",
        json={"current_password": PASSWORD, "new_password": "New-ops-pass-9"},
        headers=auth,
    )
    assert changed.status_code == 200
    old_auth, auth = auth, {"Authorization": f"Bearer {changed.json()['token']}"}
    assert (await harness.client.post("/api/v1/staff/logout", headers=old_auth)).status_code == 401
    assert (await _login(harness, "ops.one", "New-ops-pass-9")).json()[
        "must_change_password"
    ] is False
    assert (await harness.client.post("/api/v1/staff/logout", headers=auth)).status_code == 204
    again = await harness.client.post(
        "/api/v1/staff/password",
        json={"current_password": "New-ops-pass-9", "new_password": "Other-pass-99"},
        headers=auth,
    )
    assert again.status_code == 401
