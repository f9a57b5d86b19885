"""The submission path on real PostgreSQL and Valkey: idempotency, isolation, read-your-writes."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from engine.adapters import streams
from tests.conftest import Harness
from tests.support import drain, form_for

pytestmark = [pytest.mark.anyio, pytest.mark.topologies]


async def _history(pool: asyncpg.Pool, candidate_id: int) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT version, receipt_id, idempotency_key FROM registration_versions"
        " WHERE candidate_id = $1 ORDER BY version",
        candidate_id,
    )


async def test_accepted_submission_is_queued_then_persisted(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool, aredis: Any
) -> None:
    candidate = roster[0]
    auth = await harness.login(candidate)
    put = await harness.client.put(
        "/api/v1/me/registration",
        json=form_for(candidate),
        headers={**auth, "Idempotency-Key": "a1"},
    )
    assert put.status_code == 202, put.text
    receipt = put.json()
    assert (
        receipt["status"] == "queued" and receipt["version"] == 1 and receipt["phase"] == "official"
    )

    # Read-your-writes: the newest version is visible before any writer ran.
    queued = await harness.client.get("/api/v1/me/registration", headers=auth)
    assert queued.json()["status"] == "queued"
    assert queued.json()["form"]["full_name"] == candidate["full_name"]
    status = await harness.client.get(f"/api/v1/me/receipts/{receipt['receipt_id']}", headers=auth)
    assert status.json()["status"] == "queued"

    await drain(harness.settings, pool, aredis)

    persisted = await harness.client.get("/api/v1/me/registration", headers=auth)
    assert persisted.json()["status"] == "persisted" and persisted.json()["version"] == 1
    status = await harness.client.get(f"/api/v1/me/receipts/{receipt['receipt_id']}", headers=auth)
    assert status.json()["status"] == "persisted"
    assert [tuple(r) for r in await _history(pool, candidate["candidate_id"])] == [
        (1, receipt["receipt_id"], "a1")
    ]


async def test_same_key_same_body_replays_the_original_receipt_and_writes_one_row(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool, aredis: Any
) -> None:
    candidate = roster[1]
    auth = {**await harness.login(candidate), "Idempotency-Key": "retry-1"}
    form = form_for(candidate)
    first = await harness.client.put("/api/v1/me/registration", json=form, headers=auth)
    second = await harness.client.put("/api/v1/me/registration", json=form, headers=auth)
    assert first.status_code == second.status_code == 202
    assert second.json() == first.json()
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert "Idempotent-Replayed" not in first.headers
    await drain(harness.settings, pool, aredis)
    assert len(await _history(pool, candidate["candidate_id"])) == 1


async def test_same_key_with_another_body_is_refused(
    harness: Harness, roster: list[dict[str, Any]]
) -> None:
    candidate = roster[2]
    auth = {**await harness.login(candidate), "Idempotency-Key": "k"}
    assert (
        await harness.client.put("/api/v1/me/registration", json=form_for(candidate), headers=auth)
    ).status_code == 202
    other = form_for(candidate, phone="0912345678")
    response = await harness.client.put("/api/v1/me/registration", json=other, headers=auth)
    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("key", [None, "", "has space", "x" * 65, "ümlaut".encode()])
async def test_missing_or_unusable_idempotency_key_is_400_and_enqueues_nothing(
    harness: Harness, roster: list[dict[str, Any]], aredis: Any, key: str | bytes | None
) -> None:
    candidate = roster[3]
    auth = await harness.login(candidate)
    headers = dict(auth) if key is None else {**auth, "Idempotency-Key": key}
    response = await harness.client.put(
        "/api/v1/me/registration", json=form_for(candidate), headers=headers
    )
    assert response.status_code == 400
    assert response.json()["code"] == "idempotency_key_required"
    shard = harness.settings.shard_of(candidate["candidate_id"])
    assert await aredis.xlen(streams.stream_key(shard)) == 0


async def test_each_edit_gets_the_next_version(
    harness: Harness, roster: list[dict[str, Any]]
) -> None:
    candidate = roster[4]
    auth = await harness.login(candidate)
    versions = []
    for i in range(3):
        response = await harness.client.put(
            "/api/v1/me/registration",
            json=form_for(candidate, seed=i),
            headers={**auth, "Idempotency-Key": f"edit-{i}"},
        )
        versions.append(response.json()["version"])
    assert versions == [1, 2, 3]


async def test_a_candidate_cannot_read_another_candidates_receipt(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool, aredis: Any
) -> None:
    alice, bob = roster[5], roster[6]
    alice_auth = await harness.login(alice)
    bob_auth = await harness.login(bob)
    put = await harness.client.put(
        "/api/v1/me/registration",
        json=form_for(alice),
        headers={**alice_auth, "Idempotency-Key": "a"},
    )
    receipt_id = put.json()["receipt_id"]
    for _ in range(2):  # queued, then persisted: both must stay invisible to Bob
        mine = await harness.client.get(f"/api/v1/me/receipts/{receipt_id}", headers=alice_auth)
        theirs = await harness.client.get(f"/api/v1/me/receipts/{receipt_id}", headers=bob_auth)
        assert mine.status_code == 200
        assert theirs.status_code == 404
        bob_registration = await harness.client.get("/api/v1/me/registration", headers=bob_auth)
        assert bob_registration.status_code == 404
        assert bob_registration.json()["code"] == "no_registration"
        await drain(harness.settings, pool, aredis)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/me"),
        ("GET", "/api/v1/me/registration"),
        ("PUT", "/api/v1/me/registration"),
        ("GET", "/api/v1/me/receipts/0123456789ABCDEF0123"),
        ("POST", "/api/v1/auth/logout"),
        ("POST", "/api/v1/auth/password"),
    ],
)
async def test_unauthenticated_requests_get_401(harness: Harness, method: str, path: str) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-session"}):
        response = await harness.client.request(method, path, headers=headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.json()["code"] == "unauthenticated"


async def test_logout_revokes_the_token(harness: Harness, roster: list[dict[str, Any]]) -> None:
    auth = await harness.login(roster[7])
    assert (await harness.client.get("/api/v1/me", headers=auth)).status_code == 200
    assert (await harness.client.post("/api/v1/auth/logout", headers=auth)).status_code == 204
    assert (await harness.client.get("/api/v1/me", headers=auth)).status_code == 401


async def test_profile_comes_from_the_roster_in_form_formats(
    harness: Harness, roster: list[dict[str, Any]]
) -> None:
    candidate = roster[8]
    profile = (
        await harness.client.get("/api/v1/me", headers=await harness.login(candidate))
    ).json()
    assert profile["national_id"] == candidate["national_id"]
    assert profile["full_name"] == candidate["full_name"]
    assert profile["date_of_birth"] == candidate["date_of_birth"].isoformat()
    assert profile["sex"] in ("male", "female") and profile["sex"] == candidate["sex"]
    assert profile["candidate_type"] == candidate["candidate_type"]
    assert profile["school"]["province_code"] == candidate["province_code"]
    assert profile["school"]["school_code"] == candidate["school_code"]
    assert profile["school"]["name"]


async def test_wrong_password_is_401_without_saying_whether_the_account_exists(
    harness: Harness, roster: list[dict[str, Any]]
) -> None:
    wrong = await harness.client.post(
        "/api/v1/auth/login", json={"login": roster[9]["national_id"], "password": "nope-1234"}
    )
    unknown = await harness.client.post(
        "/api/v1/auth/login", json={"login": "001208999999", "password": "nope-1234"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()


async def test_repeated_failures_make_the_account_wait_with_retry_after(
    harness: Harness, roster: list[dict[str, Any]]
) -> None:
    login = roster[10]["national_id"]
    for _ in range(harness.settings.login_max_failures):
        response = await harness.client.post(
            "/api/v1/auth/login", json={"login": login, "password": "bad-12345"}
        )
        assert response.status_code == 401
    locked = await harness.client.post(
        "/api/v1/auth/login", json={"login": login, "password": "Test-password-2026"}
    )
    assert locked.status_code == 429
    assert locked.json()["code"] == "too_many_attempts"
    assert int(locked.headers["Retry-After"]) > 0


async def test_password_change_enforces_the_policy_and_takes_effect(
    harness: Harness, roster: list[dict[str, Any]]
) -> None:
    candidate = roster[11]
    auth = await harness.login(candidate)
    weak = await harness.client.post(
        "/api/v1/auth/password",
        json={"current_password": "Test-password-2026", "new_password": "short"},
        headers=auth,
    )
    assert weak.status_code == 422 and weak.json()["code"] == "weak_password"
    ok = await harness.client.post(
        "/api/v1/auth/password",
        json={"current_password": "Test-password-2026", "new_password": "new-Password-99"},
        headers=auth,
    )
    assert ok.status_code == 200 and ok.json()["must_change_password"] is False
    relog = await harness.client.post(
        "/api/v1/auth/login",
        json={"login": candidate["national_id"], "password": "new-Password-99"},
    )
    assert relog.status_code == 200 and relog.json()["must_change_password"] is False
