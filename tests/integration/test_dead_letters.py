"""Dead letters are never silent (issue 12): the candidate, the desk, the alert and the operator.

An accepted version the database refuses is made the way it happens: a 202 through the API, then
PostgreSQL refuses it (a CHECK the test adds, or a name the CHECK of 0001_core.sql refuses, sent
through the real enqueue script as the validator let it through before issue 12), and the real
writer dead-letters it after `writer_max_deliveries`. The fix an operator would ship — a
migration — is the test dropping that constraint; `examreg dead-letters` runs in-process, against
the same servers, in a thread (it has its own event loop).
"""

from __future__ import annotations

import asyncio
import getpass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
import pytest

from engine.adapters import streams
from engine.adapters.streams import Enqueuer, Submission
from engine.runtime.cli import main
from tests.conftest import Harness
from tests.integration.test_web import logged_in
from tests.support import drain, form_for

pytestmark = [pytest.mark.anyio, pytest.mark.topologies]


@pytest.fixture
def cli_env(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = harness.settings
    assert settings.database_url and settings.redis_url
    monkeypatch.setenv("EXAMREG_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("EXAMREG_REDIS_URL", settings.redis_url)
    monkeypatch.setenv("EXAMREG_DATA_DIR", str(settings.data_dir))


async def examreg(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the command line (its own asyncio.run, so in a thread): (status, stdout, stderr)."""
    capsys.readouterr()
    status = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return status, out, err


async def submit(harness: Harness, candidate: dict[str, Any], key: str, **changes: Any) -> Any:
    auth = await harness.login(candidate)
    response = await harness.client.put(
        "/api/v1/me/registration",
        json=form_for(candidate, **changes),
        headers={**auth, "Idempotency-Key": key},
    )
    assert response.status_code == 202, response.text
    return {**response.json(), "auth": auth}


async def refuse(pool: asyncpg.Pool, receipt_id: str) -> None:
    """A constraint that refuses exactly this receipt: what a too-strict schema would do."""
    await pool.execute(
        "ALTER TABLE registration_versions"
        f" ADD CONSTRAINT refuse_one CHECK (receipt_id <> '{receipt_id}')"
    )


async def fix(pool: asyncpg.Pool) -> None:
    """The operator's fix: a migration that drops the constraint."""
    await pool.execute("ALTER TABLE registration_versions DROP CONSTRAINT refuse_one")


async def dead_letter_refs(aredis: Any, shards: int) -> list[str]:
    return [
        f"{shard}:{entry_id}"
        for shard in range(shards)
        for entry_id, _ in await aredis.xrange(streams.dead_key(shard))
    ]


async def audit_rows(pool: asyncpg.Pool, action: str) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT staff_id, role, candidate_id, reason, detail FROM audit_log"
        " WHERE action = $1 ORDER BY audit_id",
        action,
    )


# -- the candidate ---------------------------------------------------------------------------------


async def test_a_dead_lettered_version_needs_attention_in_the_api_receipt_and_pages(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool, aredis: Any
) -> None:
    candidate = roster[20]
    receipt = await submit(harness, candidate, "na-1")
    rid, auth = receipt["receipt_id"], receipt["auth"]
    queued = (await harness.client.get("/api/v1/me/registration", headers=auth)).json()
    assert queued["status"] == "queued" and "attention" not in queued
    await refuse(pool, rid)
    await drain(harness.settings, pool, aredis)
    assert len(await dead_letter_refs(aredis, harness.settings.stream_shards)) == 1

    current = (await harness.client.get("/api/v1/me/registration", headers=auth)).json()
    assert current["status"] == "needs_attention"
    assert (current["version"], current["receipt_id"]) == (1, rid)
    assert current["form"]["full_name"] == candidate["full_name"]  # what was accepted, kept
    attention = current["attention"]
    assert attention["code"] == "not_stored"
    assert rid in attention["message"] and rid in attention["message_en"]
    assert "hỗ trợ" in attention["message"] and "support desk" in attention["message_en"]

    answer = await harness.client.get(f"/api/v1/me/receipts/{rid}", headers=auth)
    assert answer.status_code == 200
    assert answer.json() == {
        "receipt_id": rid,
        "version": 1,
        "status": "needs_attention",
        "attention": attention,
    }

    await logged_in(harness, pool, candidate)
    status_page = (await harness.client.get("/status")).text
    assert 'id="current-status">Cần xử lý' in status_page
    assert 'id="current-attention" data-code="not_stored"' in status_page
    assert attention["message"] in status_page
    english = (await harness.client.get("/status?lang=en")).text
    assert "Needs attention" in english and attention["message_en"] in english
    receipt_page = (await harness.client.get(f"/receipts/{rid}?lang=vi")).text
    assert 'data-status="needs_attention"' in receipt_page
    assert attention["message"] in receipt_page


async def test_a_newer_stored_version_leaves_the_dead_one_needing_attention_on_its_receipt(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool, aredis: Any
) -> None:
    candidate = roster[21]
    first = await submit(harness, candidate, "nv-1")
    await refuse(pool, first["receipt_id"])
    await drain(harness.settings, pool, aredis)
    second = await submit(harness, candidate, "nv-2", seed=2)
    await drain(harness.settings, pool, aredis)
    auth = first["auth"]
    current = (await harness.client.get("/api/v1/me/registration", headers=second["auth"])).json()
    assert (current["version"], current["status"]) == (2, "persisted")
    old = await harness.client.get(f"/api/v1/me/receipts/{first['receipt_id']}", headers=auth)
    assert old.json()["status"] == "needs_attention"


# -- the alert ----------------------------------------------------------------


async def test_the_dead_letter_gauge_the_alert_reads_counts_it_until_it_is_replayed(
    harness: Harness,
    roster: list[dict[str, Any]],
    pool: asyncpg.Pool,
    aredis: Any,
    cli_env: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """ExamregDeadLetters fires on `examreg_queue_dead_letters` (its promtool test in
    dashboards/prometheus/rules.test.yml); here, that gauge for a database refusal, then zero."""
    candidate = roster[23]
    shard = harness.settings.shard_of(candidate["candidate_id"])

    async def metric(name: str) -> float:
        await harness.services.sampler.sample()
        text = (await harness.client.get("/metrics")).text
        return float(
            next(row for row in text.splitlines() if row.startswith(name + " ")).split()[-1]
        )

    gauge = f'examreg_queue_dead_letters{{shard="{shard}"}}'
    counter = 'examreg_writer_dead_letters_total{reason="rejected_by_database"}'
    refused_before = await metric(counter)  # the process's counter: other tests count too
    rid = (await submit(harness, candidate, "gauge-1"))["receipt_id"]
    await refuse(pool, rid)
    await drain(harness.settings, pool, aredis)
    assert await metric(gauge) == 1
    assert await metric(counter) == refused_before + 1
    await fix(pool)
    [ref] = await dead_letter_refs(aredis, harness.settings.stream_shards)
    assert (await examreg(capsys, "dead-letters", "replay", ref, "--reason", "fixed"))[0] == 0
    assert await metric(gauge) == 0


# -- the operator's command ------------------------------------------------------------------------


async def test_list_and_show_name_the_dead_letter_without_personal_data_and_are_audited(
    harness: Harness,
    roster: list[dict[str, Any]],
    pool: asyncpg.Pool,
    aredis: Any,
    cli_env: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, out, _ = await examreg(capsys, "dead-letters", "list")
    assert (status, out.strip()) == (0, "no dead letters")
    candidate = roster[24]
    form = form_for(candidate)
    rid = (await submit(harness, candidate, "list-1"))["receipt_id"]
    await refuse(pool, rid)
    await drain(harness.settings, pool, aredis)
    [ref] = await dead_letter_refs(aredis, harness.settings.stream_shards)

    status, out, _ = await examreg(capsys, "dead-letters", "list", "--actor", "ops.lan")
    assert status == 0
    header, line = out.strip().splitlines()
    assert header.split() == ["ID", "SHARD", "AGE", "CANDIDATE", "VERSION", "RECEIPT", "REASON"]
    assert line.split()[:2] == [ref, ref.split(":")[0]]
    assert line.split()[3:6] == [str(candidate["candidate_id"]), "1", rid]
    assert "23514: CheckViolationError" in line

    status, out, _ = await examreg(capsys, "dead-letters", "show", ref, "--reason", "INC-7")
    assert status == 0
    shown = orjson.loads(out)
    assert (shown["id"], shown["receipt_id"], shown["version"]) == (ref, rid, 1)
    assert (
        shown["form"]["national_id"]
        == candidate["national_id"][:3] + "*******" + (candidate["national_id"][-2:])
    )
    assert shown["form"]["full_name"] == f"<masked: {len(candidate['full_name'])} characters>"
    assert shown["form"]["electives"] == form["electives"]  # not personal: shown
    for personal in (candidate["full_name"], candidate["national_id"], candidate["phone"]):
        assert personal not in out
    assert form["residence"]["address"] not in out

    listed, showed = (
        await audit_rows(pool, "dead_letter_list"),
        await audit_rows(pool, "dead_letter_show"),
    )
    assert [row["detail"]["actor"] for row in listed] == [getpass.getuser(), "ops.lan"]
    assert all(row["role"] == "operator" and row["staff_id"] is None for row in listed)
    assert [(r["candidate_id"], r["reason"]) for r in showed] == [
        (candidate["candidate_id"], "INC-7")
    ]
    assert showed[0]["detail"]["dead_letter"] == ref


async def test_replay_is_refused_while_the_database_still_refuses_and_stores_it_after_the_fix(
    harness: Harness,
    roster: list[dict[str, Any]],
    pool: asyncpg.Pool,
    aredis: Any,
    cli_env: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    candidate = roster[25]
    receipt = await submit(harness, candidate, "replay-1")
    rid, auth = receipt["receipt_id"], receipt["auth"]
    await refuse(pool, rid)
    await drain(harness.settings, pool, aredis)
    [ref] = await dead_letter_refs(aredis, harness.settings.stream_shards)

    with pytest.raises(SystemExit):  # --reason is required
        await asyncio.to_thread(main, ["dead-letters", "replay", ref])
    status, _, err = await examreg(capsys, "dead-letters", "replay", ref, "--reason", "try")
    assert status == 2 and "still refuses" in err and "23514" in err
    assert await dead_letter_refs(aredis, harness.settings.stream_shards) == [ref]  # kept

    await fix(pool)
    status, out, _ = await examreg(
        capsys,
        "dead-letters",
        "replay",
        ref,
        "--reason",
        "INC-9 constraint dropped",
        "--actor",
        "an",
    )
    assert status == 0 and f"replayed {ref}" in out
    assert await dead_letter_refs(aredis, harness.settings.stream_shards) == []
    replayed = await harness.client.get(f"/api/v1/me/receipts/{rid}", headers=auth)
    assert replayed.json()["status"] == "queued"  # back in the stream, not yet written

    await drain(harness.settings, pool, aredis)
    row = await pool.fetchrow(
        "SELECT version, receipt_id FROM registration_versions WHERE candidate_id = $1",
        candidate["candidate_id"],
    )
    assert (row["version"], row["receipt_id"]) == (1, rid)
    stored = await harness.client.get(f"/api/v1/me/receipts/{rid}", headers=auth)
    assert stored.json()["status"] == "persisted"
    current = (await harness.client.get("/api/v1/me/registration", headers=auth)).json()
    assert (current["status"], current["version"]) == ("persisted", 1)

    status, _, err = await examreg(capsys, "dead-letters", "replay", ref, "--reason", "again")
    assert status == 2 and "no dead letter" in err
    outcomes = [
        (r["detail"]["outcome"], r["detail"]["actor"], r["reason"], r["candidate_id"])
        for r in await audit_rows(pool, "dead_letter_replay")
    ]
    cid, user = candidate["candidate_id"], getpass.getuser()
    assert outcomes == [
        ("23514: CheckViolationError", user, "try", cid),
        ("ok", "an", "INC-9 constraint dropped", cid),
        ("not_found", user, "again", None),
    ]


async def test_a_replayed_older_version_never_overwrites_a_newer_one(
    harness: Harness,
    roster: list[dict[str, Any]],
    pool: asyncpg.Pool,
    aredis: Any,
    cli_env: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    candidate = roster[26]
    first = await submit(harness, candidate, "order-1")
    await refuse(pool, first["receipt_id"])
    await drain(harness.settings, pool, aredis)
    await submit(harness, candidate, "order-2", seed=2)
    await drain(harness.settings, pool, aredis)
    await fix(pool)
    [ref] = await dead_letter_refs(aredis, harness.settings.stream_shards)
    assert (await examreg(capsys, "dead-letters", "replay", ref, "--reason", "order"))[0] == 0
    await drain(harness.settings, pool, aredis)
    versions = await pool.fetch(
        "SELECT version FROM registration_versions WHERE candidate_id = $1 ORDER BY version",
        candidate["candidate_id"],
    )
    assert [r["version"] for r in versions] == [1, 2]
    current = await pool.fetchrow(
        "SELECT version, form FROM registrations WHERE candidate_id = $1", candidate["candidate_id"]
    )
    assert current["version"] == 2 and current["form"] == form_for(candidate, seed=2)
    receipt = await harness.client.get(
        f"/api/v1/me/receipts/{first['receipt_id']}", headers=first["auth"]
    )
    assert receipt.json()["status"] == "persisted"


async def test_a_name_the_check_refused_is_replayed_after_a_migration_widens_it(
    harness: Harness,
    roster: list[dict[str, Any]],
    pool: asyncpg.Pool,
    aredis: Any,
    cli_env: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The review's case, as the old validator let it through: "ß" * 80 stored as 160 letters."""
    candidate = roster[27]
    form = form_for(candidate, full_name="SS" * 80)
    enqueuer = Enqueuer(
        aredis, idempotency_ttl=60, max_backlog_per_shard=0, retry_after=5, timeout=5.0
    )
    receipt = await enqueuer.submit(
        Submission(
            candidate_id=candidate["candidate_id"],
            shard=harness.settings.shard_of(candidate["candidate_id"]),
            idempotency_key="eszett",
            form=form,
            phase="official",
        )
    )
    await drain(harness.settings, pool, aredis)
    auth = await harness.login(candidate)
    current = (await harness.client.get("/api/v1/me/registration", headers=auth)).json()
    assert current["status"] == "needs_attention"
    [ref] = await dead_letter_refs(aredis, harness.settings.stream_shards)
    status, out, _ = await examreg(capsys, "dead-letters", "show", ref)
    assert orjson.loads(out)["form"]["full_name"] == "<masked: 160 characters>"  # why: the CHECK

    await pool.execute(
        "ALTER TABLE registration_versions DROP CONSTRAINT registration_versions_full_name_check,"
        " ADD CHECK (char_length(full_name) BETWEEN 2 AND 200)"
    )
    status, _, _ = await examreg(capsys, "dead-letters", "replay", ref, "--reason", "0005 widens")
    assert status == 0
    await drain(harness.settings, pool, aredis)
    current = (await harness.client.get("/api/v1/me/registration", headers=auth)).json()
    assert (current["status"], current["receipt_id"]) == ("persisted", receipt.receipt_id)
    assert current["form"]["full_name"] == "SS" * 80
    assert datetime.fromisoformat(current["accepted_at"]) <= datetime.now(UTC)
