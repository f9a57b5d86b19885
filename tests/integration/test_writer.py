"""The writer on real servers: order, redelivery, poison entries, trimming, durability check."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
import pytest

from engine.adapters import store, streams
from engine.adapters.streams import StreamShard
from engine.domain.entries import VersionRow
from engine.runtime.writer import ShardWriter
from tests.conftest import Harness
from tests.support import drain, form_for

pytestmark = [pytest.mark.anyio, pytest.mark.topologies]


async def test_twenty_concurrent_edits_end_with_the_highest_version_persisted(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool, aredis: Any
) -> None:
    candidate = roster[12]
    auth = await harness.login(candidate)

    async def edit(i: int) -> int:
        response = await harness.client.put(
            "/api/v1/me/registration",
            json=form_for(candidate, seed=i),
            headers={**auth, "Idempotency-Key": f"c{i}"},
        )
        assert response.status_code == 202, response.text
        return int(response.json()["version"])

    versions = await asyncio.gather(*(edit(i) for i in range(20)))
    assert sorted(versions) == list(range(1, 21))
    await drain(harness.settings, pool, aredis)
    current = await pool.fetchrow(
        "SELECT version, form FROM registrations WHERE candidate_id = $1", candidate["candidate_id"]
    )
    assert current["version"] == 20
    winner = versions.index(20)
    # Sample forms are already in canonical form, so the stored one must equal version 20's.
    assert current["form"] == form_for(candidate, seed=winner)
    count = await pool.fetchval(
        "SELECT count(*) FROM registration_versions WHERE candidate_id = $1",
        candidate["candidate_id"],
    )
    assert count == 20


def _row(candidate_id: int, version: int, receipt: str) -> VersionRow:
    return VersionRow(
        candidate_id=candidate_id,
        version=version,
        receipt_id=receipt,
        idempotency_key=f"key-{version}",
        request_hash="h",
        phase="official",
        form=orjson.dumps({"full_name": f"NGUYỄN VĂN {chr(64 + version)}", "v": version}).decode(),
        full_name=f"NGUYỄN VĂN {chr(64 + version)}",
        shard=0,
        stream_id=f"{version}-0",
        accepted_at=datetime.now(UTC),
    )


async def test_redelivered_and_shuffled_batches_never_regress_a_version(
    pool: asyncpg.Pool, roster: list[dict[str, Any]]
) -> None:
    ids = [c["candidate_id"] for c in roster[:5]]
    rows = [_row(cid, v, f"R{cid}-{v}") for cid in ids for v in range(1, 9)]
    rng = random.Random(42)
    for _ in range(12):
        batch = rng.sample(rows, k=rng.randint(1, len(rows)))  # any subset, any order, replays
        async with pool.acquire() as conn:
            await store.write_batch(conn, batch)
        current = {
            r["candidate_id"]: r["version"]
            for r in await pool.fetch("SELECT candidate_id, version FROM registrations")
        }
        seen = await pool.fetch(
            "SELECT candidate_id, max(version) AS v FROM registration_versions GROUP BY 1"
        )
        # The current version is always the highest one ever written, never an older one.
        assert current == {r["candidate_id"]: r["v"] for r in seen}
    async with pool.acquire() as conn:
        await store.write_batch(conn, rows)
        await store.write_batch(conn, list(reversed(rows)))
    assert await pool.fetchval("SELECT count(*) FROM registration_versions") == len(rows)
    assert {r["version"] for r in await pool.fetch("SELECT version FROM registrations")} == {8}
    form = await pool.fetchval("SELECT form FROM registrations WHERE candidate_id = $1", ids[0])
    assert form["v"] == 8


async def test_poison_entry_is_dead_lettered_without_blocking_its_batch(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool, aredis: Any
) -> None:
    settings = harness.settings
    good = [c for c in roster if settings.shard_of(c["candidate_id"]) == 0][:3]
    assert len(good) == 3, "the test roster needs three candidates on shard 0"
    await StreamShard(aredis, 0, "w").ensure_group()
    for i, candidate in enumerate(good[:1]):
        auth = await harness.login(candidate)
        await harness.client.put(
            "/api/v1/me/registration",
            json=form_for(candidate),
            headers={**auth, "Idempotency-Key": f"g{i}"},
        )
    # A well-formed entry the database must refuse: the candidate is not on the roster (FK).
    await aredis.xadd(
        streams.stream_key(0),
        {
            "cid": "999999",
            "v": "1",
            "rid": "POISON",
            "key": "p",
            "hash": "h",
            "phase": "official",
            "at": datetime.now(UTC).isoformat(),
            "form": orjson.dumps({"full_name": "NGUYỄN VĂN A"}).decode(),
        },
    )
    # One that is not even decodable, and one whose version overflows the integer column.
    await aredis.xadd(streams.stream_key(0), {"cid": "x"})
    await aredis.xadd(
        streams.stream_key(0),
        {
            "cid": str(good[0]["candidate_id"]),
            "v": "3000000000",
            "rid": "BIG",
            "key": "b",
            "hash": "h",
            "phase": "official",
            "at": datetime.now(UTC).isoformat(),
            "form": orjson.dumps({"full_name": "NGUYỄN VĂN B"}).decode(),
        },
    )
    for i, candidate in enumerate(good[1:], start=1):
        auth = await harness.login(candidate)
        await harness.client.put(
            "/api/v1/me/registration",
            json=form_for(candidate),
            headers={**auth, "Idempotency-Key": f"g{i}"},
        )

    await drain(settings, pool, aredis)

    persisted = {
        r["candidate_id"] for r in await pool.fetch("SELECT candidate_id FROM registrations")
    }
    assert persisted == {c["candidate_id"] for c in good}
    dead = await aredis.xrange(streams.dead_key(0))
    reasons = sorted(fields["reason"] for _, fields in dead)
    assert len(dead) == 3
    assert reasons[0].startswith("23503")  # foreign_key_violation, after writer_max_deliveries
    assert reasons[1].startswith("malformed") and reasons[2].startswith("malformed")
    assert await aredis.xlen(streams.stream_key(0)) == 0
    summary = await aredis.xpending(streams.stream_key(0), streams.GROUP)
    assert summary["pending"] == 0


async def test_entries_are_trimmed_only_after_commit(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool, aredis: Any
) -> None:
    candidate = roster[13]
    shard_no = harness.settings.shard_of(candidate["candidate_id"])
    shard = StreamShard(aredis, shard_no, "w")
    await shard.ensure_group()
    auth = await harness.login(candidate)
    await harness.client.put(
        "/api/v1/me/registration",
        json=form_for(candidate),
        headers={**auth, "Idempotency-Key": "t"},
    )
    entries = await shard.read(10, None)
    assert len(entries) == 1
    # Delivered but not committed: a trim must keep it.
    await shard.trim()
    assert await aredis.xlen(streams.stream_key(shard_no)) == 1
    await ShardWriter(harness.settings, pool, shard).process(entries)
    assert await aredis.xlen(streams.stream_key(shard_no)) == 0
    assert await pool.fetchval("SELECT count(*) FROM registration_versions") == 1


async def test_a_dead_writers_entries_are_claimed_by_another(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool, aredis: Any
) -> None:
    candidate = roster[14]
    shard_no = harness.settings.shard_of(candidate["candidate_id"])
    dead = StreamShard(aredis, shard_no, "dead-writer")
    await dead.ensure_group()
    auth = await harness.login(candidate)
    await harness.client.put(
        "/api/v1/me/registration",
        json=form_for(candidate),
        headers={**auth, "Idempotency-Key": "d"},
    )
    assert len(await dead.read(10, None)) == 1  # read, then the process "dies"
    alive = StreamShard(aredis, shard_no, "alive-writer")
    assert await alive.claim_stale(60_000, 10) == []  # not idle long enough yet
    await asyncio.sleep(0.05)
    claimed = await alive.claim_stale(10, 10)
    assert len(claimed) == 1
    await ShardWriter(harness.settings, pool, alive).process(claimed)
    assert await pool.fetchval("SELECT count(*) FROM registrations") == 1


async def test_writer_refuses_redis_that_would_lose_acknowledged_entries(aredis: Any) -> None:
    await streams.check_durability(aredis)  # the test server is configured correctly
    await aredis.config_set("appendfsync", "everysec")
    try:
        with pytest.raises(streams.DurabilityError, match="appendfsync"):
            await streams.check_durability(aredis)
    finally:
        await aredis.config_set("appendfsync", "always")
    await aredis.config_set("maxmemory-policy", "allkeys-lru")
    try:
        with pytest.raises(streams.DurabilityError, match="noeviction"):
            await streams.check_durability(aredis)
    finally:
        await aredis.config_set("maxmemory-policy", "noeviction")


async def test_migrations_are_idempotent(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        assert await store.migrate(conn) == []  # the template already has them all
        names = [
            r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations ORDER BY 1")
        ]
        assert names == sorted(p.name for p in store.SCHEMA_DIR.glob("[0-9]*.sql"))
        assert names[:3] == ["0001_core.sql", "0002_reference.sql", "0003_support.sql"]
    finally:
        await conn.close()


async def test_a_connection_left_in_a_broken_state_does_not_crash_the_writer(
    harness: Harness,
    roster: list[dict[str, Any]],
    pool: asyncpg.Pool,
    aredis: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After a SIGKILL of PostgreSQL, asyncpg may hand out a pooled connection whose protocol is
    stuck mid-operation; it raises InternalClientError, which is no PostgresError. The kill
    battery (tests/e2e/test_durability.py) saw that crash the writer process; it must be one more
    PostgreSQL failure: counted, retried, and the entry persisted."""
    candidate = roster[15]
    shard = StreamShard(aredis, harness.settings.shard_of(candidate["candidate_id"]), "w")
    auth = await harness.login(candidate)
    response = await harness.client.put(
        "/api/v1/me/registration",
        json=form_for(candidate),
        headers={**auth, "Idempotency-Key": "broken-connection"},
    )
    assert response.status_code == 202, response.text
    real_write = store.write_batch
    calls = 0

    async def write_once_broken(conn: Any, rows: Any) -> store.BatchResult:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise asyncpg.InternalClientError(
                "cannot switch to state 15; another operation (2) is in progress"
            )
        return await real_write(conn, rows)

    monkeypatch.setattr(store, "write_batch", write_once_broken)
    stop = asyncio.Event()
    task = asyncio.create_task(ShardWriter(harness.settings, pool, shard).run(stop))
    try:
        async with asyncio.timeout(30):
            while not await pool.fetchval("SELECT count(*) FROM registrations"):
                assert not task.done(), f"the writer stopped: {task.exception()!r}"
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        async with asyncio.timeout(30):
            await asyncio.gather(task, return_exceptions=True)
    assert calls >= 2
    assert await aredis.xlen(streams.stream_key(shard.shard)) == 0
