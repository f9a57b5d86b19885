"""The partitioned history against today's unpartitioned one at a season's volume (issue 15.3).

One database, measured twice: first at migration 0010 (`registration_versions` and `audit_log`
as plain tables), then after migration 0011 converts them (HASH by candidate_id, RANGE by year),
with the migration itself timed in between. Each measurement, on a settled database (VACUUM
ANALYZE, CHECKPOINT):

- **drain**: the writer's sink, `engine.adapters.store.write_batch` (COPY into staging, history
  rows, the version-guarded upsert, one transaction) in batches of the writer's default size
  (2000), from `writers` connections at once (the way shard writers share a writers' pool), each
  on its own candidates (as shards are), rows of a real form's size for candidates drawn at
  random from the roster: rows/s over `drain_rows` rows or `drain_seconds`, whichever ends
  first. Redis' side of the writer (XREADGROUP, the settle) is not in it: partitioning cannot
  change it, and `make bench`'s drain phase measures the whole writer.
- **desk**: the support desk's queries as `engine.services.support_desk` runs them, each
  `samples` times on random candidates (or until `query_seconds`), p50/p95/p99 in ms: search
  by candidate ID, national ID, name prefix, name + date of birth; the detail (roster, current
  row, every version); the audit row each read writes; the record of actions (the `activity`
  view over the audit log and the history) newest first, by candidate, and for the last hour.

Seeding, bounded in time and mostly inside PostgreSQL: the roster by `examreg seed
--load-test-password` (real names and national IDs; one shared hash); the history by
`benchmarks.nation.fill_history`, the growth phase's filler (small form: index sizes are real,
the heap smaller than real); current rows from the history; `audit_rows` audit rows (logins and
desk searches over the last ten days) by one INSERT … SELECT generate_series.

    nice -n 15 .venv/bin/python -m benchmarks.partitions [--versions 5000000] [--out DIR]

`make bench` may call `run(Config(...))` (embedded servers of its own) or `compare(dsn,
redis_url, config, scratch)` on an empty database (the seed command wants both URLs); both
return the results as a dict, and `main` writes `partitions.json` and `partitions.md` to `--out`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from benchmarks import nation
from engine.adapters import store, support_store
from engine.adapters.embedded import EmbeddedServices
from engine.domain.entries import VersionRow
from engine.domain.rostergen import RosterEntry, sample_form

PARTITIONING = "0011_partitioned_history.sql"
PASSWORD = "Load-test-2026"  # noqa: S105 - LOAD TESTS ONLY: one shared hash for the roster
BATCH = 2000  # the writer's default batch size (EXAMREG_WRITER_BATCH_SIZE)
TABLES = ("candidates", "registrations", "registration_versions", "audit_log", "staff")


@dataclass(frozen=True)
class Config:
    """Volumes and bounds; the defaults are a season: 1.2 M candidates, 5 M versions."""

    candidates: int = 1_200_000
    versions: int = 5_000_000
    audit_rows: int = 2_000_000
    drain_rows: int = 200_000
    drain_seconds: float = 120.0
    writers: int = 2
    samples: int = 300
    query_seconds: float = 30.0


def log(message: str) -> None:
    print(f"[partitions {datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


# -- seeding -----------------------------------------------------------------------------------


def _schema_before(into: Path) -> Path:
    """The migrations before 0011, alone in a directory: today's unpartitioned schema."""
    into.mkdir(parents=True, exist_ok=True)
    for path in sorted(store.SCHEMA_DIR.glob("[0-9][0-9][0-9][0-9]_*.sql")):
        if path.name < PARTITIONING:
            shutil.copy(path, into / path.name)
    return into


AUDIT = """
INSERT INTO audit_log (at, staff_id, role, action, candidate_id, reason, client_addr, detail)
SELECT now() - (g % 864000) * interval '1 second',
       CASE WHEN g % 10 = 0 THEN $2::bigint END,
       CASE WHEN g % 10 = 0 THEN 'support' ELSE 'candidate' END,
       CASE WHEN g % 10 = 0 THEN 'search' ELSE 'login' END,
       1 + (g * 7919) % $3, CASE WHEN g % 10 = 0 THEN 'ticket ' || g END,
       '10.1.0.1'::inet, '{}'::jsonb
FROM generate_series(1, $1::bigint) AS g
"""
CURRENT = """
INSERT INTO registrations (candidate_id, version, receipt_id, phase, form, accepted_at)
SELECT DISTINCT ON (candidate_id) candidate_id, version, receipt_id, phase, form, accepted_at
FROM registration_versions ORDER BY candidate_id, version DESC
"""


async def seed(dsn: str, redis_url: str, config: Config, scratch: Path) -> dict[str, float]:
    """Today's schema with a season's rows in it; seconds per step."""
    seconds: dict[str, float] = {}
    conn = await asyncpg.connect(dsn, command_timeout=3600)
    try:
        await store.migrate(conn, _schema_before(scratch / "schema"))
    finally:
        await conn.close()
    started = time.perf_counter()
    examreg = str(Path(sys.executable).with_name("examreg"))
    await asyncio.to_thread(
        subprocess.run,
        [examreg, "seed", "--candidates", str(config.candidates), "--load-test-password", PASSWORD],
        env={**os.environ, "EXAMREG_DATABASE_URL": dsn, "EXAMREG_REDIS_URL": redis_url},
        check=True,
        timeout=3600,
        stdout=subprocess.DEVNULL,
    )
    seconds["roster"] = time.perf_counter() - started
    # Spread over ten days, as a season's are (one instant would make the record's newest page
    # sort millions of ties).
    _added, seconds["history"] = await nation.fill_history(
        dsn, config.versions, spread_seconds=864_000
    )
    conn = await asyncpg.connect(dsn, command_timeout=3600)
    try:
        started = time.perf_counter()
        await conn.execute(CURRENT)
        staff_id = await conn.fetchval(
            "INSERT INTO staff (username, password_hash, role) VALUES ('bench.desk', 'x',"
            " 'support') RETURNING staff_id"
        )
        await conn.execute("SET session_replication_role = replica")  # no FK checks
        await conn.execute(AUDIT, config.audit_rows, staff_id, config.candidates)
        seconds["current_and_audit"] = time.perf_counter() - started
        # Migration 0011 leaves freshly built indexes; so must the table it is compared with,
        # or the comparison measures the filler's page splits rather than the partitioning.
        started = time.perf_counter()
        await conn.execute("REINDEX TABLE registration_versions")
        await conn.execute("REINDEX TABLE audit_log")
        seconds["reindex"] = time.perf_counter() - started
    finally:
        await conn.close()
    return {k: round(v, 1) for k, v in seconds.items()}


async def settle(dsn: str) -> float:
    started = time.perf_counter()
    await nation.vacuum_and_checkpoint(dsn, TABLES, 3600)
    return round(time.perf_counter() - started, 1)


async def partition(dsn: str) -> float:
    """Migration 0011 on the seeded database, timed (what an operator's `examreg migrate` runs)."""
    conn = await asyncpg.connect(dsn, command_timeout=3600)
    try:
        started = time.perf_counter()
        applied = await store.migrate(conn)
        elapsed = time.perf_counter() - started
    finally:
        await conn.close()
    if applied != [PARTITIONING]:
        raise RuntimeError(f"expected to apply {PARTITIONING} alone, applied {applied}")
    return round(elapsed, 1)


# -- measuring ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Roster:
    """What the queries are drawn from: ids, national IDs, names, dates of birth."""

    ids: list[int]
    national_ids: list[str]
    names: list[str]
    births: list[date]
    form: str  # a real form's JSON, the size of what the writer COPYs


async def roster_sample(dsn: str, size: int = 20_000) -> Roster:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT candidate_id, national_id, full_name, date_of_birth, sex, candidate_type,"
            " province_code, school_code FROM candidates ORDER BY random() LIMIT $1",
            size,
        )
    finally:
        await conn.close()
    first = rows[0]
    entry = RosterEntry(
        first["national_id"],
        first["full_name"],
        first["date_of_birth"],
        first["sex"],
        first["candidate_type"],
        first["province_code"],
        first["school_code"],
        "0912345678",
    )
    form = orjson.dumps(sample_form(entry, random.Random(5))).decode()
    return Roster(
        [r["candidate_id"] for r in rows],
        [r["national_id"] for r in rows],
        [r["full_name"] for r in rows],
        [r["date_of_birth"] for r in rows],
        form,
    )


async def drain(dsn: str, config: Config, roster: Roster, label: str) -> dict[str, Any]:
    """Rows/s through the writer's sink, `config.writers` connections at once."""
    top = await nation.count_rows(dsn, "SELECT max(candidate_id) FROM candidates")
    pool = await store.create_pool(dsn, size=config.writers, staging=True, io_timeout=60)
    counter = iter(range(1, 1 << 30))
    written = [0] * config.writers
    deadline = time.monotonic() + config.drain_seconds
    now = datetime.now(UTC)

    def batch(lane: int, rng: random.Random) -> list[VersionRow]:
        rows = []
        for _ in range(BATCH):
            # this lane's candidates only, as a shard writer has its shard's
            cid = lane + 1 + config.writers * rng.randrange(top // config.writers)
            n = next(counter)
            rows.append(
                VersionRow(
                    cid,
                    1_000_000 + n,
                    f"B{label}{n}",
                    f"bench-{label}-{n}",
                    "h",
                    "official",
                    roster.form,
                    "THI SINH BENCH",
                    cid % 8,
                    f"{n}-0",
                    now + timedelta(microseconds=n),
                )
            )
        return rows

    async def lane(i: int) -> None:
        rng = random.Random(i)
        async with pool.acquire() as conn:
            while sum(written) < config.drain_rows and time.monotonic() < deadline:
                rows = batch(i, rng)
                await store.write_batch(conn, rows)
                written[i] += len(rows)

    try:
        started = time.perf_counter()
        await asyncio.gather(*(lane(i) for i in range(config.writers)))
        elapsed = time.perf_counter() - started
    finally:
        await pool.close()
    return {
        "rows": sum(written),
        "seconds": round(elapsed, 1),
        "rows_per_s": round(sum(written) / elapsed),
        "writers": config.writers,
        "batch": BATCH,
        "form_bytes": len(roster.form),
    }


def _figures(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    cut = statistics.quantiles(ordered, n=100, method="inclusive")
    return {
        "n": len(ordered),
        "p50_ms": round(ordered[len(ordered) // 2] * 1000, 2),
        "p95_ms": round(cut[94] * 1000, 2),
        "p99_ms": round(cut[98] * 1000, 2),
    }


Query = Callable[[asyncpg.Connection, int], Awaitable[object]]


def desk_queries(roster: Roster, staff_id: int) -> dict[str, Query]:
    """The desk's reads (and its audit write), each given a random roster index."""
    S, AQ = support_store.Search, support_store.AuditQuery
    hour_ago = datetime.now(UTC) - timedelta(hours=1)

    def prefix(i: int) -> str:
        words = roster.names[i].split()
        return " ".join(words[:2]) if len(words) > 2 else words[0]

    return {
        "search_candidate_id": lambda c, i: support_store.search_candidates(
            c, S(candidate_id=roster.ids[i]), None
        ),
        "search_national_id": lambda c, i: support_store.search_candidates(
            c, S(national_id=roster.national_ids[i]), None
        ),
        "search_name_prefix": lambda c, i: support_store.search_candidates(
            c, S(name=prefix(i)), None
        ),
        "search_name_dob": lambda c, i: support_store.search_candidates(
            c, S(name=roster.names[i], date_of_birth=roster.births[i]), None
        ),
        "detail_with_versions": lambda c, i: support_store.candidate_detail(c, roster.ids[i]),
        "audit_insert": lambda c, i: support_store.audit(
            c,
            staff_id=staff_id,
            role="support",
            action="detail",
            candidate_id=roster.ids[i],
            reason="bench",
            client_addr="10.1.0.2",
            detail={},
        ),
        "activity_newest": lambda c, i: support_store.read_audit(c, AQ()),
        "activity_by_candidate": lambda c, i: support_store.read_audit(
            c, AQ(candidate_id=roster.ids[i])
        ),
        "activity_last_hour": lambda c, i: support_store.read_audit(c, AQ(since=hour_ago)),
    }


async def desk(dsn: str, config: Config, roster: Roster) -> dict[str, Any]:
    """p50/p95/p99 of each desk query over random candidates, on a pool like the API's."""
    staff_id = await nation.count_rows(dsn, "SELECT staff_id FROM staff LIMIT 1")
    pool = await store.create_pool(dsn, size=2, io_timeout=30)
    rng = random.Random(11)
    results: dict[str, Any] = {}
    try:
        async with pool.acquire() as conn:
            for name, query in desk_queries(roster, staff_id).items():
                for _ in range(5):  # warm the statement cache and the plan
                    await query(conn, rng.randrange(len(roster.ids)))
                samples: list[float] = []
                deadline = time.monotonic() + config.query_seconds
                while len(samples) < config.samples and time.monotonic() < deadline:
                    i = rng.randrange(len(roster.ids))
                    started = time.perf_counter()
                    await query(conn, i)
                    samples.append(time.perf_counter() - started)
                results[name] = _figures(samples)
    finally:
        await pool.close()
    return results


async def sizes(dsn: str) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "WITH tree AS (SELECT c.relname, t.relid, t.isleaf FROM pg_class c,"
            " LATERAL (SELECT relid, isleaf FROM pg_partition_tree(c.oid)"
            "  UNION SELECT c.oid, true) AS t"
            " WHERE c.relname IN ('registration_versions', 'audit_log'))"
            " SELECT relname, sum(pg_table_size(relid)) AS heap,"
            " sum(pg_indexes_size(relid)) AS indexes,"
            " count(*) FILTER (WHERE isleaf AND relid <> relname::regclass) AS partitions"
            " FROM tree GROUP BY relname"
        )
        counts = {
            t: await conn.fetchval(f"SELECT count(*) FROM {t}")  # noqa: S608 - constants
            for t in ("registration_versions", "audit_log")
        }
    finally:
        await conn.close()
    return {
        r["relname"]: {
            "rows": counts[r["relname"]],
            "heap_mb": round(r["heap"] / 2**20),
            "indexes_mb": round(r["indexes"] / 2**20),
            "partitions": r["partitions"],
        }
        for r in rows
    }


async def measure(dsn: str, config: Config, label: str) -> dict[str, Any]:
    settled = await settle(dsn)
    roster = await roster_sample(dsn)
    log(f"{label}: settled in {settled}s; draining")
    drained = await drain(dsn, config, roster, label)
    log(f"{label}: drain {drained}")
    await settle(dsn)
    queries = await desk(dsn, config, roster)
    for name, figure in queries.items():
        log(f"{label}: {name:24} p50 {figure['p50_ms']:8.2f}  p99 {figure['p99_ms']:8.2f} ms")
    return {
        "drain": drained,
        "desk": queries,
        "tables": await sizes(dsn),
        "load_average": list(os.getloadavg()),
    }


async def compare(dsn: str, redis_url: str, config: Config, scratch: Path) -> dict[str, Any]:
    """Seed an empty database, measure unpartitioned, migrate to 0011, measure partitioned."""
    log(f"seeding {config.candidates:,} candidates, {config.versions:,} versions")
    seeded = await seed(dsn, redis_url, config, scratch)
    log(f"seeded: {seeded}")
    before = await measure(dsn, config, "unpartitioned")
    migration = await partition(dsn)
    log(f"migration 0011 took {migration}s")
    after = await measure(dsn, config, "partitioned")
    return {
        "config": asdict(config),
        "seed_seconds": seeded,
        "migration_seconds": migration,
        "unpartitioned": before,
        "partitioned": after,
        "nice": os.nice(0),
        "started_load_average": list(os.getloadavg()),
    }


def run(config: Config, keep: Path | None = None) -> dict[str, Any]:
    """`compare` on embedded servers of its own, started and removed here."""
    root = keep or Path(tempfile.mkdtemp(prefix="examreg-partitions-"))
    services = EmbeddedServices(root / "services")
    endpoints = services.start()
    try:
        return asyncio.run(compare(endpoints.database_url, endpoints.redis_url, config, root))
    finally:
        services.stop()
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)


def markdown(results: dict[str, Any]) -> str:
    before, after = results["unpartitioned"], results["partitioned"]
    lines = [
        f"Partitioned history at {results['config']['versions']:,} versions"
        f" (nice {results['nice']}; load average at the end"
        f" {', '.join(f'{x:.1f}' for x in after['load_average'])})",
        "",
        "| figure | unpartitioned | partitioned |",
        "|---|---:|---:|",
        f"| drain, rows/s ({before['drain']['writers']} connections, batches of"
        f" {before['drain']['batch']}) | {before['drain']['rows_per_s']:,}"
        f" | {after['drain']['rows_per_s']:,} |",
    ]
    for name in before["desk"]:
        b, a = before["desk"][name], after["desk"][name]
        pair = f"{b['p50_ms']} / {b['p99_ms']} | {a['p50_ms']} / {a['p99_ms']}"
        lines.append(f"| {name}, p50 / p99 ms | {pair} |")
    for table in ("registration_versions", "audit_log"):
        b, a = before["tables"][table], after["tables"][table]
        lines.append(
            f"| {table}: heap / indexes MB (partitions) | {b['heap_mb']} / {b['indexes_mb']}"
            f" | {a['heap_mb']} / {a['indexes_mb']} ({a['partitions']}) |"
        )
    lines.append(f"\nMigration 0011 on that database: {results['migration_seconds']} s.")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = Config()
    parser.add_argument("--candidates", type=int, default=defaults.candidates)
    parser.add_argument("--versions", type=int, default=defaults.versions)
    parser.add_argument("--audit-rows", type=int, default=defaults.audit_rows)
    parser.add_argument("--drain-rows", type=int, default=defaults.drain_rows)
    parser.add_argument("--writers", type=int, default=defaults.writers)
    parser.add_argument("--samples", type=int, default=defaults.samples)
    parser.add_argument("--out", default="bench", help="directory for partitions.json and .md")
    parser.add_argument("--keep", default=None, help="data directory to keep (default: scratch)")
    args = parser.parse_args()
    config = Config(
        candidates=args.candidates,
        versions=args.versions,
        audit_rows=args.audit_rows,
        drain_rows=args.drain_rows,
        writers=args.writers,
        samples=args.samples,
    )
    results = run(config, Path(args.keep) if args.keep else None)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "partitions.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    text = markdown(results)
    (out / "partitions.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
