"""Sessions that end when they should (issue 12, item 6), on real PostgreSQL and Valkey.

A password change ends every session of the account and hands the caller a new token (JSON API
and pages, candidates and staff); a login that races a password reset does not survive it; and
revoking every session of an account never loses track of one opened meanwhile.
"""

from __future__ import annotations

import functools
from typing import Any

import asyncpg
import httpx
import pytest

from engine.adapters import support_store
from engine.adapters.passwords import make_hasher
from engine.errors import InvalidCredentials
from engine.services import candidates
from engine.services.accounts import authenticate
from tests.conftest import Harness
from tests.support import TEST_PASSWORD, hidden

pytestmark = [pytest.mark.anyio, pytest.mark.topologies]

NEW_PASSWORD = "Moi-mat-khau-2026"
STAFF_PASSWORD = "Desk-pass-2026"
STAFF_NEW_PASSWORD = "Desk-new-pass-77"


async def _candidate_token(client: httpx.AsyncClient, candidate: dict[str, Any]) -> str:
    response = await client.post(
        "/api/v1/auth/login",
        json={"login": candidate["national_id"], "password": TEST_PASSWORD},
    )
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _cookie_value(response: httpx.Response, name: str) -> str:
    for header in response.headers.get_list("set-cookie"):
        if header.startswith(name + "="):
            return header.split(";", 1)[0].split("=", 1)[1]
    raise AssertionError(f"no {name} cookie set")


async def test_a_password_change_ends_every_session_and_hands_out_a_new_token(
    harness: Harness, roster: list[dict[str, Any]]
) -> None:
    candidate = roster[20]
    phone = await _candidate_token(harness.client, candidate)
    laptop = await _candidate_token(harness.client, candidate)
    harness.client.cookies.clear()
    changed = await harness.client.post(
        "/api/v1/auth/password",
        json={"current_password": TEST_PASSWORD, "new_password": NEW_PASSWORD},
        headers=_bearer(phone),
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert set(body) == {"token", "expires_at", "must_change_password"}
    assert body["must_change_password"] is False and body["token"] not in (phone, laptop)
    assert _cookie_value(changed, "examreg_session") == body["token"]
    assert changed.headers["cache-control"] == "no-store"
    harness.client.cookies.clear()
    for old in (phone, laptop):  # the one that changed it, and the other device
        response = await harness.client.get("/api/v1/me", headers=_bearer(old))
        assert response.status_code == 401, "the old session outlived the change"
    assert (await harness.client.get("/api/v1/me", headers=_bearer(body["token"]))).status_code == (
        200
    )


async def _staff(harness: Harness, pool: asyncpg.Pool, username: str) -> None:
    await pool.execute(
        "INSERT INTO staff (username, password_hash, role, must_change_password)"
        " VALUES ($1, $2, 'support', false)",
        username,
        make_hasher(harness.settings).hash(STAFF_PASSWORD),
    )


async def _staff_token(client: httpx.AsyncClient, username: str) -> str:
    response = await client.post(
        "/api/v1/staff/login", json={"username": username, "password": STAFF_PASSWORD}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


async def test_a_staff_password_change_ends_every_session_and_hands_out_a_new_token(
    harness: Harness, pool: asyncpg.Pool
) -> None:
    await _staff(harness, pool, "desk.change")
    first = await _staff_token(harness.client, "desk.change")
    second = await _staff_token(harness.client, "desk.change")
    harness.client.cookies.clear()
    changed = await harness.client.post(
        "/api/v1/staff/password",
        json={"current_password": STAFF_PASSWORD, "new_password": STAFF_NEW_PASSWORD},
        headers=_bearer(first),
    )
    assert changed.status_code == 200, changed.text
    token = changed.json()["token"]
    assert token not in (first, second) and changed.json()["must_change_password"] is False
    harness.client.cookies.clear()
    search = "/api/v1/support/candidates"
    params = {"candidate_id": "1", "reason": "ticket 1"}
    for old in (first, second):
        response = await harness.client.get(search, params=params, headers=_bearer(old))
        assert response.status_code == 401, "the old session outlived the change"
    fresh = await harness.client.get(search, params=params, headers=_bearer(token))
    assert fresh.status_code == 200


async def test_the_password_page_replaces_the_cookie_and_ends_the_other_sessions(
    harness: Harness, roster: list[dict[str, Any]]
) -> None:
    candidate = roster[21]
    client = harness.client
    api = await _candidate_token(client, candidate)
    client.cookies.clear()
    token = hidden((await client.get("/login")).text, "csrf_token")
    await client.post(
        "/login",
        data={"csrf_token": token, "login": candidate["national_id"], "password": TEST_PASSWORD},
    )
    old_cookie = client.cookies["examreg_session"]
    csrf = hidden((await client.get("/password")).text, "csrf_token")
    changed = await client.post(
        "/password",
        data={
            "csrf_token": csrf,
            "current_password": TEST_PASSWORD,
            "new_password": NEW_PASSWORD,
            "new_password_confirm": NEW_PASSWORD,
        },
    )
    assert (changed.status_code, changed.headers["location"]) == (303, "/registration")
    new_cookie = _cookie_value(changed, "examreg_session")
    assert new_cookie != old_cookie
    assert (await client.get("/registration")).status_code == 200  # the new cookie works
    assert hidden((await client.get("/registration")).text, "csrf_token") != csrf
    stale = await client.get("/status", headers={"Cookie": f"examreg_session={old_cookie}"})
    assert (stale.status_code, stale.headers["location"]) == (303, "/login?expired=1")
    client.cookies.clear()
    assert (await client.get("/api/v1/me", headers=_bearer(api))).status_code == 401


async def test_the_console_password_page_replaces_the_cookie(
    harness: Harness, pool: asyncpg.Pool
) -> None:
    await _staff(harness, pool, "desk.page")
    client = harness.client
    api = await _staff_token(client, "desk.page")
    client.cookies.clear()
    token = hidden((await client.get("/support/login")).text, "csrf_token")
    await client.post(
        "/support/login",
        data={"csrf_token": token, "username": "desk.page", "password": STAFF_PASSWORD},
    )
    old_cookie = client.cookies["examreg_staff_session"]
    csrf = hidden((await client.get("/support/password")).text, "csrf_token")
    changed = await client.post(
        "/support/password",
        data={
            "csrf_token": csrf,
            "current_password": STAFF_PASSWORD,
            "new_password": STAFF_NEW_PASSWORD,
            "new_password_confirm": STAFF_NEW_PASSWORD,
        },
    )
    assert (changed.status_code, changed.headers["location"]) == (303, "/support")
    assert _cookie_value(changed, "examreg_staff_session") != old_cookie
    assert (await client.get("/support")).status_code == 200
    stale = await client.get("/support", headers={"Cookie": f"examreg_staff_session={old_cookie}"})
    assert stale.headers["location"] == "/support/login?expired=1"
    client.cookies.clear()
    response = await client.get(
        "/api/v1/support/candidates",
        params={"candidate_id": "1", "reason": "ticket 1"},
        headers=_bearer(api),
    )
    assert response.status_code == 401


async def test_a_login_racing_a_password_reset_does_not_survive_it(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool
) -> None:
    """The reset commits (and revokes the account's sessions) while the old password is being
    verified: the session the login then opens must not outlive the reset."""
    svc = harness.services
    candidate = roster[22]
    lookups = 0

    async def lookup_then_reset(login_id: str) -> Any:
        nonlocal lookups
        lookups += 1
        account = await candidates.candidate_account(svc, login_id)
        if lookups == 1:  # the desk's reset lands between this read and the session's creation
            async with pool.acquire() as conn:
                await support_store.reset_password(conn, candidate["candidate_id"], "reset-hash")
            await svc.sessions.revoke_all("candidate", candidate["candidate_id"])
        return account

    login = functools.partial(
        authenticate, svc, "candidate", candidate["national_id"], TEST_PASSWORD, "198.51.100.1"
    )
    with pytest.raises(InvalidCredentials):
        await login(lookup_then_reset)
    assert await svc.sessions.revoke_all("candidate", candidate["candidate_id"]) == 0, (
        "a session opened with the old password is still live"
    )


async def test_revoking_every_session_keeps_track_of_one_opened_meanwhile(
    harness: Harness, roster: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    sessions = harness.services.sessions
    candidate = roster[23]
    subject = candidate["candidate_id"]
    await sessions.create(subject, "candidate", candidate["national_id"])
    client = sessions._client
    real_smembers = client.smembers
    opened: list[str] = []

    async def smembers_then_a_login(key: str) -> Any:
        members = await real_smembers(key)
        if not opened:  # another device logs in between the read and the removal
            token, _ = await sessions.create(subject, "candidate", candidate["national_id"])
            opened.append(token)
        return members

    monkeypatch.setattr(client, "smembers", smembers_then_a_login)
    assert await sessions.revoke_all("candidate", subject) == 1
    monkeypatch.undo()
    assert await sessions.get(opened[0], "candidate") is not None
    assert await sessions.revoke_all("candidate", subject) == 1, "the new session was forgotten"
    assert await sessions.get(opened[0], "candidate") is None
