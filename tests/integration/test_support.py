"""The support desk on real servers: search, roles, masking, audit, pipeline state, resets."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from engine.adapters import streams
from engine.adapters.passwords import make_hasher
from engine.adapters.streams import StreamShard
from tests.conftest import Harness
from tests.support import TEST_PASSWORD, drain, form_for

pytestmark = pytest.mark.anyio

PASSWORD = "Desk-pass-2026"
SEARCH = "/api/v1/support/candidates"


@pytest.fixture
async def desk(
    harness: Harness, pool: asyncpg.Pool, roster: list[dict[str, Any]]
) -> dict[str, dict[str, str]]:
    """One logged-in staff member per role; the school account is roster[0]'s school."""
    password_hash = make_hasher(harness.settings).hash(PASSWORD)
    school = (roster[0]["province_code"], roster[0]["school_code"])
    headers = {}
    for role in ("support", "school", "operator", "admin"):
        where = school if role == "school" else (None, None)
        await pool.execute(
            "INSERT INTO staff (username, password_hash, role, province_code, school_code,"
            " must_change_password) VALUES ($1, $2, $3, $4, $5, false)",
            f"t-{role}",
            password_hash,
            role,
            *where,
        )
        response = await harness.client.post(
            "/api/v1/staff/login", json={"username": f"t-{role}", "password": PASSWORD}
        )
        assert response.status_code == 200, response.text
        headers[role] = {"Authorization": f"Bearer {response.json()['token']}"}
    return headers


async def _audit_rows(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT st.username, a.role, a.action, a.candidate_id, a.reason, a.detail"
        " FROM audit_log a JOIN staff st USING (staff_id) ORDER BY a.audit_id"
    )


async def test_search_by_id_name_and_school_masks_national_ids(
    harness: Harness, desk: dict[str, dict[str, str]], roster: list[dict[str, Any]]
) -> None:
    target = roster[3]
    by_id = (
        await harness.client.get(
            SEARCH,
            params={"national_id": target["national_id"], "reason": "ticket 1"},
            headers=desk["support"],
        )
    ).json()
    assert [r["candidate_id"] for r in by_id["results"]] == [target["candidate_id"]]
    masked = by_id["results"][0]["national_id"]
    assert (
        masked != target["national_id"]
        and masked[:3] == target["national_id"][:3]
        and "*" in masked
    )

    by_candidate = (
        await harness.client.get(
            SEARCH,
            params={"candidate_id": target["candidate_id"], "reason": "ticket 1"},
            headers=desk["support"],
        )
    ).json()
    assert by_candidate["results"][0]["full_name"] == target["full_name"]

    by_school = (
        await harness.client.get(
            SEARCH,
            params={
                "province_code": target["province_code"],
                "school_code": target["school_code"],
                "page_size": 1,
                "reason": "ticket 1",
            },
            headers=desk["support"],
        )
    ).json()
    expected = sum(
        1
        for c in roster
        if (c["province_code"], c["school_code"])
        == (target["province_code"], target["school_code"])
    )
    assert len(by_school["results"]) == 1
    assert by_school["next_page"] == (2 if expected > 1 else None)


async def test_name_search_ignores_accents_and_case(
    harness: Harness, desk: dict[str, dict[str, str]], roster: list[dict[str, Any]]
) -> None:
    target = next(c for c in roster if any(ord(ch) > 127 for ch in c["full_name"]))
    from engine.adapters.support_store import fold_name

    plain = fold_name(target["full_name"])  # e.g. "nguyen thi thu ha"
    assert plain.isascii() and plain != target["full_name"]
    exact = (
        await harness.client.get(
            SEARCH,
            params={
                "name": plain,
                "date_of_birth": target["date_of_birth"].isoformat(),
                "reason": "ticket 2",
            },
            headers=desk["support"],
        )
    ).json()
    assert target["candidate_id"] in [r["candidate_id"] for r in exact["results"]]
    prefix = (
        await harness.client.get(
            SEARCH,
            params={"name": plain.split()[0].upper(), "reason": "ticket 2"},
            headers=desk["support"],
        )
    ).json()
    assert (
        target["candidate_id"] in [r["candidate_id"] for r in prefix["results"]]
        or prefix["next_page"]
    )
    wrong_day = (
        await harness.client.get(
            SEARCH,
            params={"name": plain, "date_of_birth": "1999-01-01", "reason": "ticket 2"},
            headers=desk["support"],
        )
    ).json()
    assert wrong_day["results"] == []


async def test_a_school_account_sees_only_its_school(
    harness: Harness,
    desk: dict[str, dict[str, str]],
    roster: list[dict[str, Any]],
    pool: asyncpg.Pool,
) -> None:
    own = roster[0]
    other = next(
        c
        for c in roster
        if (c["province_code"], c["school_code"]) != (own["province_code"], own["school_code"])
    )
    found = (
        await harness.client.get(
            SEARCH,
            params={"national_id": other["national_id"], "reason": "ticket 11"},
            headers=desk["school"],
        )
    ).json()
    assert found["results"] == []
    response = await harness.client.get(
        f"{SEARCH}/{other['candidate_id']}", params={"reason": "ticket 12"}, headers=desk["school"]
    )
    assert response.status_code == 404
    mine = await harness.client.get(
        f"{SEARCH}/{own['candidate_id']}", params={"reason": "ticket 13"}, headers=desk["school"]
    )
    assert mine.status_code == 200
    outcomes = [
        (r["action"], r["candidate_id"], r["detail"].get("outcome"))
        for r in await _audit_rows(pool)
    ]
    assert ("detail", other["candidate_id"], "outside_school") in outcomes
    assert ("detail", own["candidate_id"], "ok") in outcomes


async def test_roles_and_tokens_are_enforced(
    harness: Harness, desk: dict[str, dict[str, str]], roster: list[dict[str, Any]]
) -> None:
    candidate_auth = await harness.login(roster[1])
    assert (
        await harness.client.get(SEARCH, params={"candidate_id": 1}, headers=candidate_auth)
    ).status_code == 401
    harness.client.cookies.clear()  # the fixture's logins left cookies in the test client
    assert (await harness.client.get(SEARCH, params={"candidate_id": 1})).status_code == 401
    assert (
        await harness.client.get(SEARCH, params={"candidate_id": 1}, headers=desk["operator"])
    ).status_code == 403
    assert (
        await harness.client.get("/api/v1/support/audit", headers=desk["support"])
    ).status_code == 403
    assert (
        await harness.client.get("/api/v1/support/audit", headers=desk["admin"])
    ).status_code == 200


async def test_detail_needs_a_reason_reveal_unmasks_and_every_read_is_audited(
    harness: Harness,
    desk: dict[str, dict[str, str]],
    roster: list[dict[str, Any]],
    pool: asyncpg.Pool,
) -> None:
    target = roster[4]
    url = f"{SEARCH}/{target['candidate_id']}"
    no_reason = await harness.client.get(url, headers=desk["support"])
    assert (
        no_reason.status_code == 422 and no_reason.json()["errors"][0]["code"] == "reason_required"
    )
    masked = (
        await harness.client.get(url, params={"reason": "ticket 7"}, headers=desk["support"])
    ).json()
    assert masked["national_id"] != target["national_id"] and masked["phone"] != target["phone"]
    assert masked["revealed"] is False
    revealed = (
        await harness.client.get(
            url, params={"reason": "ticket 7", "reveal": "1"}, headers=desk["support"]
        )
    ).json()
    assert revealed["national_id"] == target["national_id"] and revealed["phone"] == target["phone"]
    missing = await harness.client.get(
        f"{SEARCH}/99999999", params={"reason": "ticket 8"}, headers=desk["support"]
    )
    assert missing.status_code == 404
    rows = [
        (r["username"], r["action"], r["candidate_id"], r["reason"], r["detail"].get("outcome"))
        for r in await _audit_rows(pool)
    ]
    assert rows == [
        ("t-support", "detail", target["candidate_id"], None, "no_reason"),
        ("t-support", "detail", target["candidate_id"], "ticket 7", "ok"),
        ("t-support", "reveal", target["candidate_id"], "ticket 7", "ok"),
        ("t-support", "detail", None, "ticket 8", "not_found"),
    ]


async def test_a_read_whose_audit_row_cannot_be_written_fails(
    harness: Harness,
    desk: dict[str, dict[str, str]],
    roster: list[dict[str, Any]],
    pool: asyncpg.Pool,
) -> None:
    await pool.execute(
        "ALTER TABLE audit_log ADD CONSTRAINT no_more_audit CHECK (action <> 'search') NOT VALID"
    )
    response = await harness.client.get(
        SEARCH,
        params={"candidate_id": roster[0]["candidate_id"], "reason": "ticket 3"},
        headers=desk["support"],
    )
    assert response.status_code == 503
    assert response.json()["code"] == "unavailable"
    assert "results" not in response.text


async def test_pipeline_state_queued_pending_persisted_and_dead_lettered(
    harness: Harness,
    desk: dict[str, dict[str, str]],
    roster: list[dict[str, Any]],
    pool: asyncpg.Pool,
    aredis: Any,
) -> None:
    a, b = roster[5], roster[6]

    async def state(candidate: dict[str, Any]) -> dict[str, Any]:
        body = (
            await harness.client.get(
                f"{SEARCH}/{candidate['candidate_id']}",
                params={"reason": "call"},
                headers=desk["support"],
            )
        ).json()
        return body["pipeline"]

    assert (await state(a))["state"] == "none"
    auth = await harness.login(a)
    receipt = (
        await harness.client.put(
            "/api/v1/me/registration", json=form_for(a), headers={**auth, "Idempotency-Key": "p1"}
        )
    ).json()
    queued = await state(a)
    assert queued["state"] == "in_stream" and queued["delivery"]["state"] == "waiting"
    assert queued["receipt_id"] == receipt["receipt_id"] and queued[
        "shard"
    ] == harness.settings.shard_of(a["candidate_id"])

    shard = StreamShard(aredis, queued["shard"], "desk-test")
    await shard.ensure_group()
    assert await shard.read(100, None)  # a writer took it but has not committed yet
    pending = await state(a)
    assert pending["state"] == "in_stream" and pending["delivery"]["state"] == "pending"
    assert pending["delivery"]["consumer"] == "desk-test"

    await drain(harness.settings, pool, aredis)
    persisted = await state(a)
    assert persisted["state"] == "persisted" and persisted["version"] == 1

    # B's submission is one the database refuses: it ends in the dead-letter stream.
    auth_b = await harness.login(b)
    rid = (
        await harness.client.put(
            "/api/v1/me/registration", json=form_for(b), headers={**auth_b, "Idempotency-Key": "p2"}
        )
    ).json()["receipt_id"]
    await pool.execute(
        f"ALTER TABLE registration_versions ADD CONSTRAINT refuse_one CHECK (receipt_id <> '{rid}')"
    )
    await drain(harness.settings, pool, aredis)
    dead = await state(b)
    assert dead["state"] == "dead_lettered" and dead["receipt_id"] == rid
    assert dead["reason"].startswith("23514")
    assert await aredis.xlen(streams.dead_key(dead["shard"])) == 1


async def test_a_dead_letter_shows_in_the_record_with_the_id_an_operator_replays(
    harness: Harness,
    desk: dict[str, dict[str, str]],
    roster: list[dict[str, Any]],
    pool: asyncpg.Pool,
    aredis: Any,
) -> None:
    candidate = roster[7]
    auth = await harness.login(candidate)
    rid = (
        await harness.client.put(
            "/api/v1/me/registration",
            json=form_for(candidate),
            headers={**auth, "Idempotency-Key": "dl"},
        )
    ).json()["receipt_id"]
    await pool.execute(
        f"ALTER TABLE registration_versions ADD CONSTRAINT refuse_one CHECK (receipt_id <> '{rid}')"
    )
    await drain(harness.settings, pool, aredis)
    record = (
        await harness.client.get(
            f"{SEARCH}/{candidate['candidate_id']}",
            params={"reason": "call"},
            headers=desk["support"],
        )
    ).json()
    pipeline = record["pipeline"]
    assert pipeline["state"] == "dead_lettered" and pipeline["receipt_id"] == rid
    assert pipeline["reason"].startswith("23514")
    shard = harness.settings.shard_of(candidate["candidate_id"])
    [(entry_id, _)] = await aredis.xrange(streams.dead_key(shard))
    assert pipeline["dead_letter"] == f"{shard}:{entry_id}"  # what `examreg dead-letters` takes


async def test_password_reset_issues_a_one_time_password_and_revokes_sessions(
    harness: Harness,
    desk: dict[str, dict[str, str]],
    roster: list[dict[str, Any]],
    pool: asyncpg.Pool,
) -> None:
    target = roster[7]
    old_session = await harness.login(target)
    url = f"{SEARCH}/{target['candidate_id']}/password-reset"
    assert (await harness.client.post(url, json={}, headers=desk["support"])).status_code == 422
    reset = await harness.client.post(
        url, json={"reason": "forgot password, ticket 99"}, headers=desk["support"]
    )
    assert reset.status_code == 200, reset.text
    body = reset.json()
    assert body["must_change_password"] is True and body["sessions_revoked"] >= 1
    assert reset.headers["cache-control"] == "no-store"
    assert (await harness.client.get("/api/v1/me", headers=old_session)).status_code == 401
    old = await harness.client.post(
        "/api/v1/auth/login", json={"login": target["national_id"], "password": TEST_PASSWORD}
    )
    assert old.status_code == 401
    new = await harness.client.post(
        "/api/v1/auth/login", json={"login": target["national_id"], "password": body["password"]}
    )
    assert new.status_code == 200 and new.json()["must_change_password"] is True
    actions = [(r["action"], r["reason"]) for r in await _audit_rows(pool)]
    assert ("password_reset", "forgot password, ticket 99") in actions
    assert ("password_reset", None) in actions  # the refused one (no reason) is audited too


async def test_admin_reads_the_audit_log_with_filters(
    harness: Harness, desk: dict[str, dict[str, str]], roster: list[dict[str, Any]]
) -> None:
    target = roster[8]
    await harness.client.get(
        f"{SEARCH}/{target['candidate_id']}", params={"reason": "t1"}, headers=desk["support"]
    )
    await harness.client.get(
        SEARCH, params={"name": "nguyen", "reason": "ticket 4"}, headers=desk["admin"]
    )
    log = (
        await harness.client.get(
            "/api/v1/support/audit",
            params={"candidate": target["candidate_id"]},
            headers=desk["admin"],
        )
    ).json()
    assert [(e["staff"], e["action"]) for e in log["entries"]] == [("t-support", "detail")]
    by_staff = (
        await harness.client.get(
            "/api/v1/support/audit", params={"staff": "t-admin"}, headers=desk["admin"]
        )
    ).json()
    assert {e["action"] for e in by_staff["entries"]} >= {"search"}
    since_future = (
        await harness.client.get(
            "/api/v1/support/audit",
            params={"since": "2999-01-01T00:00:00+00:00"},
            headers=desk["admin"],
        )
    ).json()
    assert since_future["entries"] == []
    bad = await harness.client.get(
        "/api/v1/support/audit", params={"since": "yesterday"}, headers=desk["admin"]
    )
    assert bad.status_code == 422


async def test_odd_input_gets_a_4xx_never_a_5xx(
    harness: Harness, desk: dict[str, dict[str, str]], roster: list[dict[str, Any]]
) -> None:
    support = desk["support"]
    cases = [
        (SEARCH, {"candidate_id": "²", "reason": "ticket"}),  # isdigit() is true, int() is not
        (SEARCH, {"name": "nguyen", "page": "4000000000000000000", "reason": "ticket"}),  # bigint
        (SEARCH, {"name": "nguyen\x00", "reason": "ticket"}),  # PostgreSQL text refuses NUL
        (SEARCH, {"name": "nguyen", "reason": "x\x00yz"}),
        (f"{SEARCH}/²", {"reason": "ticket 1"}),
        (f"{SEARCH}/99999999", {}),  # no reason for an unknown candidate: audited, not a 503
        (f"{SEARCH}/{roster[0]['candidate_id']}", {"reason": "tick\x00et"}),
    ]
    for url, params in cases:
        response = await harness.client.get(url, params=params, headers=support)
        assert 400 <= response.status_code < 500, (url, params, response.status_code)
    audit = "/api/v1/support/audit"
    for params in (
        {"candidate": "99999999"},  # the audit row of this read must not name a missing candidate
        {"staff": "t-admin\x00"},
        {"reason": "\x00\x00\x00"},
        {"page": "4000000000000000000"},
        {"x\x00": "1"},
    ):
        response = await harness.client.get(audit, params=params, headers=desk["admin"])
        assert response.status_code in (200, 422), (params, response.status_code)


async def test_the_registration_form_in_a_detail_is_masked_too(
    harness: Harness,
    desk: dict[str, dict[str, str]],
    roster: list[dict[str, Any]],
    pool: asyncpg.Pool,
    aredis: Any,
) -> None:
    target = roster[9]
    auth = await harness.login(target)
    put = await harness.client.put(
        "/api/v1/me/registration", json=form_for(target), headers={**auth, "Idempotency-Key": "m1"}
    )
    assert put.status_code == 202
    await drain(harness.settings, pool, aredis)
    url = f"{SEARCH}/{target['candidate_id']}"
    masked = await harness.client.get(url, params={"reason": "call"}, headers=desk["support"])
    assert target["national_id"] not in masked.text and target["phone"] not in masked.text
    assert masked.json()["current"]["form"]["full_name"] == target["full_name"]
    revealed = await harness.client.get(
        url, params={"reason": "call", "reveal": "1"}, headers=desk["support"]
    )
    form = revealed.json()["current"]["form"]
    assert (form["national_id"], form["phone"]) == (target["national_id"], target["phone"])


async def test_a_record_read_while_the_writer_commits_never_says_persisted_without_the_row(
    harness: Harness,
    desk: dict[str, dict[str, str]],
    roster: list[dict[str, Any]],
    pool: asyncpg.Pool,
    aredis: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The writer commits (and acknowledges) in the middle of the desk's read: between its Redis
    and its database reads. The record must then show the persisted registration, not "persisted"
    over an empty current registration (seen in the console under load)."""
    candidate = roster[7]
    auth = await harness.login(candidate)
    response = await harness.client.put(
        "/api/v1/me/registration",
        json=form_for(candidate),
        headers={**auth, "Idempotency-Key": "r1"},
    )
    assert response.status_code == 202
    original = streams.latest_record
    committed = False

    async def latest_record_then_commit(*args: Any, **kwargs: Any) -> Any:
        nonlocal committed
        record = await original(*args, **kwargs)
        if not committed:  # the writer finishes right after the desk looked at Redis
            committed = True
            await drain(harness.settings, pool, aredis)
        return record

    monkeypatch.setattr(streams, "latest_record", latest_record_then_commit)
    body = (
        await harness.client.get(
            f"{SEARCH}/{candidate['candidate_id']}",
            params={"reason": "call"},
            headers=desk["support"],
        )
    ).json()
    assert committed
    assert body["pipeline"]["state"] in ("in_stream", "persisted")
    if body["pipeline"]["state"] == "persisted":
        assert body["current"] is not None and body["current"]["version"] == 1
