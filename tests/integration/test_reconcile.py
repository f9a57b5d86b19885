"""Reconciliation finds every kind of exception, and a clean state reports none (issue 14 item 4).

Each test seeds one kind the way it would really arise (an entry never read, a dead letter, an
entry lost from the stream, a current row rewritten, a Redis hash gone) through the real API,
writer, Valkey and PostgreSQL, then runs `examreg reconcile` (the service, the command and its
exit status, the ops endpoint and the metric).
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import orjson
import pytest

from engine.adapters import streams
from engine.adapters.passwords import make_hasher
from engine.runtime import cli, writer
from engine.services import reconciliation
from tests.conftest import Harness
from tests.support import drain, form_for

pytestmark = pytest.mark.anyio


async def _submit(harness: Harness, candidate: dict[str, Any], key: str, seed: int = 1) -> str:
    auth = await harness.login(candidate)
    response = await harness.client.put(
        "/api/v1/me/registration",
        json=form_for(candidate, seed=seed),
        headers={**auth, "Idempotency-Key": key},
    )
    assert response.status_code == 202, response.text
    return str(response.json()["receipt_id"])


async def _run(harness: Harness, pool: asyncpg.Pool, aredis: Any, **options: Any) -> dict[str, Any]:
    return await reconciliation.reconcile(aredis, pool, harness.settings, **options)


def _only(summary: dict[str, Any], kind: str, count: int = 1) -> list[dict[str, Any]]:
    """Exactly `count` exceptions of `kind` and none of any other kind."""
    expected = {k: (count if k == kind else 0) for k in summary["counts"]}
    assert summary["counts"] == expected, summary
    return list(summary["exceptions"][kind])


async def _drained(harness: Harness, pool: asyncpg.Pool, aredis: Any, roster: list[Any]) -> None:
    """Three candidates with one version, one with two, all persisted."""
    for candidate in roster[:3]:
        await _submit(harness, candidate, "first")
    await _submit(harness, roster[3], "first")
    await _submit(harness, roster[3], "second", seed=2)
    await drain(harness.settings, pool, aredis)


async def test_a_clean_state_reports_zero_and_passes(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool, aredis: Any
) -> None:
    await _drained(harness, pool, aredis, roster)
    summary = await _run(harness, pool, aredis)
    assert summary["ok"] and summary["failing"] == 0
    assert set(summary["counts"].values()) == {0}
    assert summary["scanned"]["candidates"] == 4
    assert summary["scanned"]["acknowledged"] == 5
    assert summary["scanned"]["persisted"] == 5
    assert summary["scanned"]["current_rows"] == 4


async def test_queued_versions_are_listed_with_their_age_and_fail_only_past_the_limit(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool, aredis: Any
) -> None:
    await _drained(harness, pool, aredis, roster)
    receipt = await _submit(harness, roster[5], "queued")  # no writer runs: it waits
    young = await _run(harness, pool, aredis, max_queued_age=3600)
    [item] = _only(young, "queued")
    assert young["ok"], "a version queued for less than the limit does not fail the gate"
    assert item["receipt_id"] == receipt and item["version"] == 1
    assert item["state"] == "waiting" and 0 <= item["age_seconds"] < 60
    old = await _run(harness, pool, aredis, max_queued_age=0)
    [item] = _only(old, "queued_over_limit")
    assert not old["ok"] and old["failing"] == 1


async def test_a_pending_entry_is_queued_with_its_writer(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool, aredis: Any
) -> None:
    candidate = roster[6]
    await _submit(harness, candidate, "pending")
    shard = streams.StreamShard(aredis, harness.settings.shard_of(candidate["candidate_id"]), "w9")
    await shard.ensure_group()
    assert len(await shard.read(10, None)) == 1  # delivered, never acknowledged: a dead writer
    [item] = _only(await _run(harness, pool, aredis, max_queued_age=3600), "queued")
    assert (item["state"], item["consumer"], item["deliveries"]) == ("pending", "w9", 1)


async def test_a_dead_letter_is_reported(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool, aredis: Any
) -> None:
    await _drained(harness, pool, aredis, roster)
    candidate = roster[7]
    receipt = await _submit(harness, candidate, "dead")
    shard = streams.StreamShard(aredis, harness.settings.shard_of(candidate["candidate_id"]), "w")
    await shard.ensure_group()
    [(entry_id, fields)] = await shard.read(10, None)
    await shard.dead_letter(entry_id, fields, "23514: CheckViolationError")
    summary = await _run(harness, pool, aredis)
    [item] = _only(summary, "dead_lettered")
    assert (item["candidate_id"], item["version"]) == (candidate["candidate_id"], 1)
    assert item["receipt_id"] == receipt and item["reason"] == "23514: CheckViolationError"
    assert item["dead_letter"].startswith(f"{shard.shard}:")
    assert not summary["ok"]


async def test_an_acknowledged_version_lost_from_the_stream_is_missing(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool, aredis: Any
) -> None:
    await _drained(harness, pool, aredis, roster)
    candidate = roster[8]
    receipt = await _submit(harness, candidate, "lost")
    stream = streams.stream_key(harness.settings.shard_of(candidate["candidate_id"]))
    [(entry_id, _)] = await aredis.xrange(stream)
    await aredis.xdel(stream, entry_id)  # what a trim before COMMIT would do
    summary = await _run(harness, pool, aredis)
    [item] = _only(summary, "missing")
    assert (item["candidate_id"], item["version"]) == (candidate["candidate_id"], 1)
    assert item["receipt_id"] == receipt  # from the queued marker
    assert "not in the stream, not in the database" in item["detail"]


async def test_an_entry_a_writer_acknowledged_without_its_row_is_missing(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool, aredis: Any
) -> None:
    candidate = roster[9]
    await _submit(harness, candidate, "acked")
    shard = streams.StreamShard(aredis, harness.settings.shard_of(candidate["candidate_id"]), "w")
    await shard.ensure_group()
    [(entry_id, _)] = await shard.read(10, None)
    await aredis.xack(shard.stream, streams.GROUP, entry_id)  # acknowledged, never written
    [item] = _only(await _run(harness, pool, aredis), "missing")
    assert "acknowledged by a writer" in item["detail"]


async def test_a_current_row_older_than_the_highest_version_is_a_mismatch(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool, aredis: Any
) -> None:
    await _drained(harness, pool, aredis, roster)
    candidate = roster[3]  # two versions, both persisted
    await pool.execute(
        "UPDATE registrations SET version = 1 WHERE candidate_id = $1", candidate["candidate_id"]
    )
    summary = await _run(harness, pool, aredis)
    [item] = _only(summary, "version_mismatch")
    assert (item["version"], item["current_version"]) == (2, 1)
    assert not summary["ok"]


async def test_a_current_row_redis_never_acknowledged_is_a_mismatch(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool, aredis: Any
) -> None:
    await _drained(harness, pool, aredis, roster)
    candidate = roster[0]
    key = streams.candidate_key(
        harness.settings.shard_of(candidate["candidate_id"]), candidate["candidate_id"]
    )
    await aredis.delete(key)
    [item] = _only(await _run(harness, pool, aredis), "version_mismatch")
    assert (item["candidate_id"], item["current_version"], item["version"]) == (
        candidate["candidate_id"],
        1,
        None,
    )
    assert "newer than any version Redis acknowledged" in item["detail"]


async def test_versions_voided_by_the_trial_purge_are_accounted_for(
    harness: Harness,
    roster: list[dict[str, Any]],
    pool: asyncpg.Pool,
    aredis: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await _drained(harness, pool, aredis, roster)
    await pool.execute("UPDATE registration_versions SET phase = 'trial'")
    await pool.execute("UPDATE registrations SET phase = 'trial'")
    monkeypatch.setenv("EXAMREG_DATABASE_URL", harness.settings.database_url or "")
    monkeypatch.setenv("EXAMREG_REDIS_URL", harness.settings.redis_url or "")
    assert await asyncio.to_thread(cli.main, ["trial", "purge", "--actor", "ops.kim"]) == 0
    assert await pool.fetchval("SELECT count(*) FROM registration_versions") == 0
    summary = await _run(harness, pool, aredis)
    assert summary["ok"], summary
    assert summary["scanned"]["purged"] == 5


async def test_the_command_prints_json_exits_by_the_gate_and_is_audited(
    harness: Harness,
    roster: list[dict[str, Any]],
    pool: asyncpg.Pool,
    aredis: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("EXAMREG_DATABASE_URL", harness.settings.database_url or "")
    monkeypatch.setenv("EXAMREG_REDIS_URL", harness.settings.redis_url or "")
    monkeypatch.setenv("EXAMREG_STREAM_SHARDS", str(harness.settings.stream_shards))
    await _drained(harness, pool, aredis, roster)
    assert await asyncio.to_thread(cli.main, ["reconcile", "--actor", "ops.kim"]) == 0
    assert "OK: every acknowledged version is stored" in capsys.readouterr().out
    await _submit(harness, roster[10], "late")
    argv = ["reconcile", "--json", "--max-queued-age", "0", "--reason", "INC-7 review gate"]
    assert await asyncio.to_thread(cli.main, argv) == 1
    summary = orjson.loads(capsys.readouterr().out)
    assert summary["counts"]["queued_over_limit"] == 1 and not summary["ok"]
    rows = await pool.fetch(
        "SELECT role, reason, detail FROM audit_log WHERE action = 'reconcile' ORDER BY audit_id"
    )
    assert [r["role"] for r in rows] == ["operator", "operator"]
    assert rows[1]["reason"] == "INC-7 review gate"
    assert rows[0]["detail"]["actor"] == "ops.kim" and rows[0]["detail"]["ok"] is True
    assert rows[1]["detail"]["counts"]["queued_over_limit"] == 1


async def _staff_token(harness: Harness, pool: asyncpg.Pool, username: str, role: str) -> str:
    await pool.execute(
        "INSERT INTO staff (username, password_hash, role, must_change_password)"
        " VALUES ($1, $2, $3, false)",
        username,
        make_hasher(harness.settings).hash("Ops-pass-2026"),
        role,
    )
    response = await harness.client.post(
        "/api/v1/staff/login", json={"username": username, "password": "Ops-pass-2026"}
    )
    assert response.status_code == 200, response.text
    harness.client.cookies.clear()
    return str(response.json()["token"])


async def test_operators_start_a_run_read_its_report_and_scrape_its_counts(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool, aredis: Any
) -> None:
    await _drained(harness, pool, aredis, roster)
    candidate = roster[3]
    await pool.execute(
        "UPDATE registrations SET version = 1 WHERE candidate_id = $1", candidate["candidate_id"]
    )
    support = await _staff_token(harness, pool, "desk.rec", "support")
    refused = await harness.client.post(
        "/api/v1/ops/reconcile", headers={"Authorization": f"Bearer {support}"}
    )
    assert refused.status_code == 403
    auth = {"Authorization": f"Bearer {await _staff_token(harness, pool, 'ops.rec', 'operator')}"}
    before = await harness.client.get("/api/v1/ops/reconcile", headers=auth)
    assert before.status_code == 200 and before.json() == {"running": False, "last": None}
    bad = await harness.client.post(
        "/api/v1/ops/reconcile", params={"max_queued_age": "-1"}, headers=auth
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "max_queued_age"
    started = await harness.client.post(
        "/api/v1/ops/reconcile", params={"reason": "unit review gate"}, headers=auth
    )
    assert started.status_code == 202, started.text
    async with asyncio.timeout(30):
        while True:
            state = (await harness.client.get("/api/v1/ops/reconcile", headers=auth)).json()
            if not state["running"] and state["last"] is not None:
                break
            await asyncio.sleep(0.1)
    last = state["last"]
    assert last["counts"]["version_mismatch"] == 1 and not last["ok"]
    assert last["exceptions"]["version_mismatch"][0]["candidate_id"] == candidate["candidate_id"]
    scraped = (await harness.client.get("/metrics")).text
    assert 'examreg_reconcile_exceptions{kind="version_mismatch"} 1.0' in scraped
    assert 'examreg_reconcile_exceptions{kind="missing"} 0.0' in scraped
    assert "examreg_reconcile_ok 0.0" in scraped
    assert "examreg_reconcile_last_run_timestamp_seconds 1." in scraped
    assert str(candidate["candidate_id"]) not in [
        line.split("{")[1].split("}")[0]
        for line in scraped.splitlines()
        if "reconcile" in line and "{" in line
    ]
    async with asyncio.timeout(10):
        while not await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'reconcile'"):
            await asyncio.sleep(0.05)
    row = await pool.fetchrow("SELECT * FROM audit_log WHERE action = 'reconcile'")
    assert row["role"] == "operator" and row["reason"] == "unit review gate"
    assert row["client_addr"] is not None and row["detail"]["actor"] == "ops.rec"


async def test_a_second_run_while_one_holds_the_lock_is_refused(
    harness: Harness, pool: asyncpg.Pool, aredis: Any
) -> None:
    auth = {"Authorization": f"Bearer {await _staff_token(harness, pool, 'ops.two', 'admin')}"}
    await aredis.set("examreg:reconcile:running", "someone-else", ex=60)
    refused = await harness.client.post("/api/v1/ops/reconcile", headers=auth)
    assert refused.status_code == 409 and refused.json()["code"] == "reconcile_running"
    assert (await harness.client.get("/api/v1/ops/reconcile", headers=auth)).json()["running"]


async def test_submissions_and_writes_during_a_run_raise_no_false_exception(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool, aredis: Any
) -> None:
    """The system live: a writer drains while candidates submit and edit; every run reports
    nothing but versions still queued (a race in the proof would show as missing or mismatch)."""
    candidates = roster[14:24]
    tokens = [await harness.login(c) for c in candidates]
    stop, done = asyncio.Event(), asyncio.Event()
    writer_task = asyncio.create_task(
        writer.run_writer(
            harness.settings, pool, aredis, range(harness.settings.stream_shards), "live", stop
        )
    )

    async def submit_all() -> int:
        sent = 0
        while not done.is_set():
            for candidate, auth in zip(candidates, tokens, strict=True):
                response = await harness.client.put(
                    "/api/v1/me/registration",
                    json=form_for(candidate, seed=sent % 3 + 1),
                    headers={**auth, "Idempotency-Key": f"live-{sent}"},
                )
                assert response.status_code == 202, response.text
                sent += 1
        return sent

    load = asyncio.create_task(submit_all())
    try:
        runs = []
        for _ in range(5):
            runs.append(await _run(harness, pool, aredis, max_queued_age=3600))
            await asyncio.sleep(0.05)
    finally:
        done.set()
        sent = await load
        stop.set()
        await asyncio.wait_for(writer_task, 30)
    assert sent > 20, "the runs overlapped real traffic"
    for summary in runs:
        assert {k: v for k, v in summary["counts"].items() if k != "queued"} == {
            "queued_over_limit": 0,
            "dead_lettered": 0,
            "missing": 0,
            "version_mismatch": 0,
        }, summary["exceptions"]
    await drain(harness.settings, pool, aredis)
    final = await _run(harness, pool, aredis)
    assert set(final["counts"].values()) == {0}
    assert final["scanned"]["acknowledged"] == sent
