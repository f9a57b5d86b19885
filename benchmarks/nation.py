"""Benchmark data: sessions, the driver's request data, queue pre-fill and history filler.

Server-side preparation, so it imports `engine`. The shortcuts, each one documented in results.md:

- **Sessions are minted directly in Redis**, in `engine.adapters.sessions.SessionStore`'s format
  (key `examreg:{<shard>}:session:<sha256(token)>`, the same JSON payload), instead of 1.2 million
  argon2id logins (≈1 hour of CPU here). Tokens are `<candidate_id>.<nonce>`: unguessable per run,
  derivable by the harness, and naming the shard as a login's do. No subject index is written
  (only password resets need it).
- **Bodies are generated compactly**: one valid form per candidate type (`engine.domain.rostergen
  .sample_form`, checked with `validate_registration`) becomes a %-template; the driver fills in
  each candidate's identity and school, so its data file holds ~100 bytes per candidate.
- **Queue pre-fill for the drain figure** calls the same server-side function the API calls
  (`engine.adapters.streams.Enqueuer`), without HTTP, with the template forms as sent.
- **Settling** before each measured phase: VACUUM ANALYZE of the written tables, CHECKPOINT and an
  append-only-file rewrite, so autovacuum or a rewrite triggered by the previous phase's bulk
  writes does not land inside the next measurement (production runs them too, unscheduled).
- **History filler for the growth figure** is inserted by one SQL statement per chunk with the
  foreign-key trigger skipped (`session_replication_role = replica`; every filler row references an
  existing candidate) and a small form: index sizes are real, the heap is smaller than real.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from engine.adapters import sessions, store, streams
from engine.domain.entries import STAGING_COLUMNS, to_row
from engine.domain.registration import CandidateContext, Catalog, validate_registration
from engine.domain.rostergen import RosterEntry, sample_form
from engine.settings import VIETNAM

Candidate = tuple[int, str, str, Any, str, str, str, str]  # as CANDIDATES selects them
CANDIDATES = (
    "SELECT candidate_id, national_id, full_name, date_of_birth, sex, candidate_type,"
    " province_code, school_code FROM candidates ORDER BY candidate_id"
)


async def candidates(dsn: str) -> list[Candidate]:
    conn = await asyncpg.connect(dsn)
    try:
        return [tuple(r) for r in await conn.fetch(CANDIDATES)]
    finally:
        await conn.close()


def token_of(nonce: str, candidate_id: int) -> str:
    return f"{candidate_id}.{nonce}"


async def mint_sessions(
    redis_url: str, rows: Sequence[Candidate], nonce: str, shards: int, chunk: int = 2_000
) -> None:
    """One session per candidate with `SessionStore.create`'s key and payload (see above).

    MSET, so without the idle TTL: the benchmark's Redis is deleted at the end of the run, and
    `SessionStore.get` checks the absolute lifetime from the payload.
    """
    client = aioredis.Redis.from_url(redis_url)
    now = time.time()
    try:
        for start in range(0, len(rows), chunk):
            batch = {}
            for cid, nid, *_ in rows[start : start + chunk]:
                digest = hashlib.sha256(token_of(nonce, cid).encode()).hexdigest()
                payload = {
                    "sub": cid,
                    "kind": "candidate",
                    "created": now,
                    "login": nid,
                    "slid": now,
                    "scope": {"must_change": False},  # seeded with --load-test-password
                }
                batch[sessions.candidate_session_key(cid % shards, digest)] = orjson.dumps(payload)
            await client.mset(batch)
    finally:
        await client.aclose()


async def vacuum_and_checkpoint(dsn: str, tables: Iterable[str], limit: float) -> None:
    """VACUUM ANALYZE each of `tables`, then CHECKPOINT: PostgreSQL's background work done now."""
    conn = await asyncpg.connect(dsn, command_timeout=limit)
    try:
        for table in tables:
            await conn.execute(f"VACUUM (ANALYZE) {table}")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def settle(dsn: str, redis_url: str, limit: float = 600) -> float:
    """Leave no background work to a measurement: VACUUM ANALYZE what the runs write, CHECKPOINT,
    and rewrite Valkey's append-only file now rather than mid-step. Returns the seconds taken."""
    started = time.perf_counter()
    await vacuum_and_checkpoint(dsn, SETTLED_TABLES, limit)
    client = aioredis.Redis.from_url(redis_url)
    try:
        with contextlib.suppress(ResponseError):  # one is already running: wait for it
            await client.bgrewriteaof()
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            info = await client.info("persistence")
            if not info.get("aof_rewrite_in_progress") and not info.get("aof_rewrite_scheduled"):
                break
            await asyncio.sleep(0.5)
    finally:
        await client.aclose()
    return time.perf_counter() - started


SETTLED_TABLES = (
    "candidates",
    "registrations",
    "registration_versions",
    "naive_registrations",
    "naive_registration_versions",
)


_PLACEHOLDERS = {
    "national_id": "%(nid)s",
    "full_name": "%(name)s",
    "date_of_birth": "%(dob)s",
    "sex": "%(sex)s",
    "exam_site_province": "%(province)s",
    "email": None,
}


def _entry(row: Candidate) -> RosterEntry:
    _cid, nid, name, dob, sex, kind, province, school = row
    return RosterEntry(nid, name, dob, sex, kind, province, school, "0912345678")  # type: ignore[arg-type]


def templates(rows: Sequence[Candidate], catalog: Catalog) -> dict[str, str]:
    """A %-template of a valid form per candidate type, from a sample of real roster rows."""
    rng = random.Random(3)
    result: dict[str, str] = {}
    for row in rows:
        kind = row[5]
        if kind in result:
            continue
        form = sample_form(_entry(row), rng)
        form.update(_PLACEHOLDERS)
        form["residence"]["province_code"] = "%(province)s"
        for school in form["schools"]:
            school.update(province_code="%(province)s", school_code="%(school)s")
        if isinstance(form.get("registration_unit"), dict):  # a grade-12 student's: their school
            form["registration_unit"].update(province_code="%(province)s", unit_code="%(school)s")
        result[kind] = json.dumps(form, ensure_ascii=False).replace("%", "%%").replace("%%(", "%(")
    return result


def body_of(template: str, row: Candidate) -> dict[str, Any]:
    _cid, nid, name, dob, sex, _kind, province, school = row
    filled = template % {
        "nid": nid,
        "name": name,
        "dob": dob.isoformat(),
        "sex": sex,
        "province": province,
        "school": school,
    }
    parsed: dict[str, Any] = json.loads(filled)
    return parsed


def check_templates(
    forms: dict[str, str], rows: Sequence[Candidate], catalog: Catalog, sample: int = 2000
) -> None:
    """Every template must validate for a sample of candidates of its type, or the run is void."""
    today = datetime.now(VIETNAM).date()
    for row in rows[:: max(1, len(rows) // sample)]:
        if row[5] not in forms:
            raise RuntimeError(f"no template for candidate type {row[5]!r}")
        body = body_of(forms[row[5]], row)
        validate_registration(body, CandidateContext(national_id=row[1], today=today), catalog)


def write_driver_data(
    path: Path, rows: Sequence[Candidate], nonce: str, forms: dict[str, str]
) -> None:
    with path.open("w", encoding="utf-8") as handle:
        handle.write("#templates\t" + json.dumps(forms, ensure_ascii=False) + "\n")
        for cid, nid, name, dob, sex, kind, province, school in rows:
            handle.write(
                f"{cid}\t{token_of(nonce, cid)}\t{nid}\t{name}\t{dob.isoformat()}\t{sex}\t{kind}"
                f"\t{province}\t{school}\n"
            )


def write_wrk_data(
    path: Path, rows: Sequence[Candidate], nonce: str, forms: dict[str, str], limit: int
) -> None:
    """`<token>TAB<form>` lines for loadtest/accept.lua (wrk loads them all: `limit` rows)."""
    with path.open("w", encoding="utf-8") as handle:
        for row in rows[:limit]:
            body = json.dumps(body_of(forms[row[5]], row), ensure_ascii=False)
            handle.write(f"{token_of(nonce, row[0])}\t{body}\n")


async def prefill(
    redis_url: str,
    rows: Sequence[Candidate],
    forms: dict[str, str],
    catalog: Catalog,
    count: int,
    shards: int,
    key_prefix: str,
) -> float:
    """Enqueue `count` submissions through the API's own server-side function; seconds taken."""
    client = streams.connect(redis_url, timeout=30)
    await streams.load_functions(client)
    enqueuer = streams.Enqueuer(
        client, idempotency_ttl=86_400, max_backlog_per_shard=0, retry_after=5, timeout=30
    )
    started = time.perf_counter()
    try:
        for start in range(0, count, 2000):
            batch = []
            for i in range(start, min(count, start + 2000)):
                row = rows[i % len(rows)]
                form = body_of(forms[row[5]], row)  # a valid form (check_templates), as sent
                batch.append(
                    enqueuer.submit(
                        streams.Submission(
                            candidate_id=row[0],
                            shard=row[0] % shards,
                            idempotency_key=f"{key_prefix}{i}",
                            form=form,
                            phase="official",
                        )
                    )
                )
            await asyncio.gather(*batch)
    finally:
        await client.aclose()
    return time.perf_counter() - started


async def stream_rows(redis_url: str, shards: int) -> list[tuple[object, ...]]:
    """Every entry now in the streams, as the writer would COPY it (for the COPY ceiling)."""
    client = streams.connect(redis_url, timeout=30)
    records: list[tuple[object, ...]] = []
    try:
        for shard in range(shards):
            entries: Any = await client.xrange(streams.stream_key(shard))
            records += [to_row(eid, shard, fields).as_record() for eid, fields in entries]
    finally:
        await client.aclose()
    return records


async def copy_ceiling(dsn: str, records: list[tuple[object, ...]]) -> float:
    """Seconds to COPY `records` into a plain table of the staging columns, in one transaction."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DROP TABLE IF EXISTS bench_copy_ceiling")
        await conn.execute(
            "CREATE TABLE bench_copy_ceiling AS SELECT * FROM registration_versions WITH NO DATA"
        )
        await conn.execute("ALTER TABLE bench_copy_ceiling ALTER COLUMN form TYPE text")
        started = time.perf_counter()
        async with conn.transaction():
            await conn.copy_records_to_table(
                "bench_copy_ceiling", records=records, columns=STAGING_COLUMNS
            )
        elapsed = time.perf_counter() - started
        await conn.execute("DROP TABLE bench_copy_ceiling")
        return elapsed
    finally:
        await conn.close()


FILLER = """
INSERT INTO registration_versions (candidate_id, version, receipt_id, idempotency_key,
    request_hash, phase, form, full_name, shard, stream_id, accepted_at, persisted_at)
SELECT 1 + (g % $3), 1000 + g / $3, 'F' || lpad(g::text, 19, '0'), 'filler-' || g,
       md5(g::text), 'official', '{"filler": true}'::jsonb, 'FILLER', g % 8, '0-0',
       $4::timestamptz - (g % $5::integer) * interval '1 second',
       $4::timestamptz - (g % $5::integer) * interval '1 second'
FROM generate_series($1::bigint, $2::bigint - 1) AS g
"""


async def fill_history(
    dsn: str, target: int, chunk: int = 500_000, spread_seconds: int = 1
) -> tuple[int, float]:
    """Add filler versions until registration_versions holds `target` rows; (added, seconds).

    Accepted a day ago, spread over the `spread_seconds` before it (1: all at the same instant)."""
    conn = await asyncpg.connect(dsn, command_timeout=900)
    started = time.perf_counter()
    added = 0
    try:
        await conn.execute("SET session_replication_role = replica")  # skip the FK trigger
        existing = await conn.fetchval("SELECT count(*) FROM registration_versions")
        max_cid = await conn.fetchval("SELECT max(candidate_id) FROM candidates")
        at = datetime.now(UTC) - timedelta(days=1)
        while existing + added < target:
            n = min(chunk, target - existing - added)
            await conn.execute(FILLER, added, added + n, max_cid, at, spread_seconds)
            added += n
        await conn.execute("ANALYZE registration_versions")
    finally:
        await conn.close()
    return added, time.perf_counter() - started


async def execute(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def count_rows(dsn: str, sql: str, *args: object) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(sql, *args))
    finally:
        await conn.close()


async def catalog(dsn: str) -> Catalog:
    pool = await store.create_pool(dsn, size=1)
    try:
        reference = await store.reference(pool)
    finally:
        await pool.close()
    return Catalog.from_rows(
        (p["code"] for p in reference["provinces"]),
        ((s["province_code"], s["school_code"]) for s in reference["schools"]),
    )


async def check_ledger(dsn: str, ledger: Path, key_prefix: str) -> dict[str, int]:
    """Acknowledged receipts (the driver's ledger) against the persisted history rows."""
    acked = [line.rstrip("\n").split("\t") for line in ledger.open(encoding="utf-8")]
    conn = await asyncpg.connect(dsn, command_timeout=600)
    try:
        await conn.execute(
            "CREATE TEMP TABLE acked (candidate_id bigint, idempotency_key text, receipt_id text)"
        )
        await conn.copy_records_to_table(
            "acked",
            records=[(int(c), k, r) for c, k, r in acked],
            columns=["candidate_id", "idempotency_key", "receipt_id"],
        )
        lost = await conn.fetchval(
            "SELECT count(*) FROM acked a WHERE NOT EXISTS (SELECT 1 FROM registration_versions v"
            " WHERE v.receipt_id = a.receipt_id AND v.candidate_id = a.candidate_id"
            " AND v.idempotency_key = a.idempotency_key)"
        )
        rows = await conn.fetchval(
            "SELECT count(*) FROM registration_versions WHERE idempotency_key LIKE $1",
            key_prefix + "%",
        )
        distinct = await conn.fetchval(
            "SELECT count(DISTINCT (candidate_id, idempotency_key)) FROM registration_versions"
            " WHERE idempotency_key LIKE $1",
            key_prefix + "%",
        )
    finally:
        await conn.close()
    return {
        "acknowledged": len(acked),
        "distinct_acknowledged": len({r for _, _, r in acked}),
        "persisted_rows": int(rows),
        "lost": int(lost),
        "duplicated": int(rows) - int(distinct),
        "persisted_not_acknowledged": int(rows) - len(acked) + int(lost),
    }
