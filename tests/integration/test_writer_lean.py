"""The writer's lean path on real servers (issue 11, item 4): the trim at most once an interval
in the settle's pipeline, the staging table created once per connection, and every query of the
history and of the support desk still served by an index after migration 0006."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
import pytest

from engine.adapters import store, streams, support_store
from engine.adapters.streams import StreamShard
from engine.domain.entries import VersionRow
from engine.runtime.writer import ShardWriter
from tests.conftest import Harness
from tests.support import form_for

pytestmark = pytest.mark.anyio


async def _xtrims(aredis: Any) -> int:
    """XTRIMs Valkey has run (examreg_trim's included), from its own command statistics."""
    stats = await aredis.info("commandstats")
    return int(stats.get("cmdstat_xtrim", {}).get("calls", 0))


def _one_shard(harness: Harness, roster: list[dict[str, Any]]) -> tuple[int, list[Any]]:
    """The shard with the most roster candidates, and its candidates."""
    by_shard: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for candidate in roster:
        by_shard[harness.settings.shard_of(candidate["candidate_id"])].append(candidate)
    shard, candidates = max(by_shard.items(), key=lambda item: (len(item[1]), -item[0]))
    assert len(candidates) >= 4
    return shard, candidates


async def _submit(harness: Harness, candidates: list[dict[str, Any]], key: str) -> None:
    for candidate in candidates:
        auth = await harness.login(candidate)
        response = await harness.client.put(
            "/api/v1/me/registration",
            json=form_for(candidate),
            headers={**auth, "Idempotency-Key": f"{key}-{candidate['candidate_id']}"},
        )
        assert response.status_code == 202, response.text


async def test_batches_within_a_second_share_one_trim_and_the_next_one_trims_them_all(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool, aredis: Any
) -> None:
    settings = replace(harness.settings, writer_trim_interval_ms=1000)
    shard_no, candidates = _one_shard(harness, roster)
    await _submit(harness, candidates[:3], "a")
    shard = StreamShard(aredis, shard_no, "w")
    await shard.ensure_group()
    writer = ShardWriter(settings, pool, shard)
    before = await _xtrims(aredis)
    for _ in range(3):  # three batches of one, well within a second
        await writer.process(await shard.read(1, None))
    # The first batch trimmed itself (nothing was trimmed before); the next two were settled
    # (acknowledged) but not trimmed: one XTRIM for the three.
    assert await _xtrims(aredis) - before == 1
    assert await aredis.xlen(streams.stream_key(shard_no)) == 2
    assert (await aredis.xpending(streams.stream_key(shard_no), streams.GROUP))["pending"] == 0
    await asyncio.sleep(1.1)
    await _submit(harness, candidates[3:4], "b")
    await writer.process(await shard.read(10, None))  # a second later: this settle trims
    assert await _xtrims(aredis) - before == 2
    assert await aredis.xlen(streams.stream_key(shard_no)) == 0


async def test_a_running_writer_trims_its_last_batch_about_an_interval_after_it_settled(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool, aredis: Any
) -> None:
    settings = replace(harness.settings, writer_trim_interval_ms=1000, writer_block_ms=3000)
    shard_no, candidates = _one_shard(harness, roster)
    await _submit(harness, candidates[:2], "c")
    writer = ShardWriter(settings, pool, StreamShard(aredis, shard_no, "w"))
    stop = asyncio.Event()
    task = asyncio.create_task(writer.run(stop))
    try:
        async with asyncio.timeout(20):  # generous: CI is a loaded machine
            while await pool.fetchval("SELECT count(*) FROM registration_versions") < 2:
                await asyncio.sleep(0.05)
            await _submit(harness, candidates[2:3], "d")
            while await pool.fetchval("SELECT count(*) FROM registration_versions") < 3:
                await asyncio.sleep(0.05)
            # The read blocks for 5 s on the idle stream, yet the trim comes once it is due.
            while await aredis.xlen(streams.stream_key(shard_no)):
                assert not task.done(), task
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


def _row(candidate_id: int, version: int) -> VersionRow:
    return VersionRow(
        candidate_id=candidate_id,
        version=version,
        receipt_id=f"S{candidate_id}-{version}",
        idempotency_key=f"staging-{version}",
        request_hash="h",
        phase="official",
        form=orjson.dumps({"full_name": "NGUYỄN VĂN A"}).decode(),
        full_name="NGUYỄN VĂN A",
        shard=0,
        stream_id=f"{version}-0",
        accepted_at=datetime.now(UTC),
    )


async def _statements_of_batches(
    pool: asyncpg.Pool, candidate_id: int, versions: range
) -> list[str]:
    seen: list[str] = []
    async with pool.acquire() as conn:
        conn.add_query_logger(lambda record: seen.append(record.query))
        for version in versions:
            await store.write_batch(conn, [_row(candidate_id, version)])
    return seen


async def test_a_writers_connection_creates_its_staging_table_once_not_per_batch(
    settings: Any, roster: list[dict[str, Any]]
) -> None:
    candidate_id = roster[0]["candidate_id"]
    writers = await store.create_pool(settings.database_url, size=1, staging=True)
    plain = await store.create_pool(settings.database_url, size=1)
    try:
        async with writers.acquire() as conn:  # created as the connection opened
            assert await conn.fetchval("SELECT to_regclass('pg_temp.staging_versions')")
        statements = await _statements_of_batches(writers, candidate_id, range(1, 4))
        assert not [q for q in statements if "CREATE TEMP TABLE" in q], statements
        assert [q for q in statements if "INSERT INTO registrations" in q]  # the batches ran
        # Any other connection (an operator's replay check) still creates it for itself.
        others = await _statements_of_batches(plain, candidate_id, range(4, 6))
        assert len([q for q in others if "CREATE TEMP TABLE" in q]) == 2
        count = await writers.fetchval(
            "SELECT count(*) FROM registration_versions WHERE candidate_id = $1", candidate_id
        )
        assert count == 5
    finally:
        await writers.close()
        await plain.close()


# -- every query still has its index ----------------------------------------------------------


class _Explaining:
    """A connection whose `fetch` answers with the plan of the query instead of its rows."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        plan = await self.conn.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *args)
        return [{"plan": orjson.loads(plan) if isinstance(plan, str) else plan}]


def _indexes(plan: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(plan, dict):
        if "Index Name" in plan:
            found.add(plan["Index Name"])
        for value in plan.values():
            found |= _indexes(value)
    elif isinstance(plan, list):
        for value in plan:
            found |= _indexes(value)
    return found


async def _plan(conn: Any, sql: str, *args: Any) -> set[str]:
    """The indexes the plan reads, a partition's index named by its partitioned index (0011)."""
    names = _indexes((await _Explaining(conn).fetch(sql, *args))[0]["plan"])
    rows = await conn.fetch(
        "SELECT relname, coalesce(pg_partition_root(oid)::regclass::text, relname) AS root"
        " FROM pg_class WHERE relname = ANY($1::text[])",
        list(names),
    )
    return {r["root"] for r in rows}


async def test_the_desks_searches_and_the_history_queries_still_use_their_indexes(
    pool: asyncpg.Pool,
) -> None:
    # Each search and the indexes that serve it (name and date of birth: either name index, as
    # the planner weighs how many share the name).
    searches = [
        ({"candidates_national_id_key"}, support_store.Search(national_id="001206012345")),
        ({"candidates_name_prefix_idx"}, support_store.Search(name="nguyen van")),
        (
            {"candidates_name_dob_idx", "candidates_name_prefix_idx"},
            support_store.Search(name="nguyen van an", date_of_birth=datetime(2008, 1, 2).date()),
        ),
        ({"candidates_school_page_idx"}, support_store.Search(school=("01", "001"))),
    ]
    by_candidate = {  # both keys of the history lead with candidate_id
        "registration_versions_pkey",
        "registration_versions_candidate_id_idempotency_key_key",
    }
    history = [
        (by_candidate, store.QUERIES["receipt"], (7, "R")),
        (by_candidate, store.QUERIES["registration_history"], (7, 100)),
        (by_candidate, store.QUERIES["persisted_versions"], ([7, 8], [1, 2])),
        ({"registrations_pkey"}, store.QUERIES["registration"], (7,)),
        ({"candidates_national_id_key"}, store.QUERIES["candidate_login"], ("001206012345",)),
    ]
    async with pool.acquire() as conn, conn.transaction():
        # The test roster is small enough for a sequential scan to win; the question here is
        # whether an index that serves each query exists at all.
        await conn.execute("SET LOCAL enable_seqscan = off")
        for indexes, search in searches:
            explaining: Any = _Explaining(conn)
            plan = await support_store.search_candidates(explaining, search, None)
            assert indexes & _indexes(plan[0]["plan"]), (indexes, plan)
        for indexes, sql, args in history:
            assert indexes & await _plan(conn, sql, *args), (indexes, sql)


async def test_the_history_keeps_the_request_guard_and_drops_what_no_query_reads(
    pool: asyncpg.Pool,
) -> None:
    constraints = {
        r["conname"]: r["contype"]
        for r in await pool.fetch(
            "SELECT conname, contype::text FROM pg_constraint"
            " WHERE conrelid = 'registration_versions'::regclass"
        )
    }
    assert constraints["registration_versions_pkey"] == "p"
    assert constraints["registration_versions_candidate_id_idempotency_key_key"] == "u"
    assert "registration_versions_receipt_id_key" not in constraints
    assert "registration_versions_candidate_id_fkey" not in constraints
    # A candidate not on the roster is still refused: by the current row's foreign key.
    refs = await pool.fetchval(
        "SELECT count(*) FROM pg_constraint WHERE conrelid = 'registrations'::regclass"
        " AND contype = 'f'"
    )
    assert refs == 1
