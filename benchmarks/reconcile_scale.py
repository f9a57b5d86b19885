"""`examreg reconcile` on a season's worth of registrations: run time and peak memory.

Starts its own embedded PostgreSQL and Valkey in a scratch directory, seeds N candidates
(default 1.2 million) with one persisted version each and a second one for every fifth, and the
matching Redis hashes (the version counter, as the submission function leaves it once the
writer has settled), then seeds a few exceptions of each kind (entries still queued, a dead
letter, an acknowledged version lost, a current row rewritten) and runs
`/usr/bin/time -v examreg reconcile --json` against it. It prints the command's run time, peak
RSS and the report's counts, which must show exactly the seeded exceptions.

Seeding shortcuts (the figure is reconcile's, not the seeding's): roster and history rows are
generated inside PostgreSQL (`INSERT … SELECT generate_series`, foreign-key triggers skipped),
with an empty form; the Redis hashes are written by pipelined HSET, 10,000 per round trip.

With `--live R` the system is live during the run: a writer process drains the streams and R
new versions a second are enqueued (by the API's own enqueue function) for candidates outside
the seeded exceptions; the seeded dead letters, missing versions and mismatches must then be
found exactly, and nothing else but versions still queued.

    .venv/bin/python -m benchmarks.reconcile_scale [--candidates 1200000] [--live 100] [--keep DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import orjson
import redis.asyncio as aioredis

from engine.adapters import store, streams
from engine.adapters.embedded import EmbeddedServices

SHARDS = 8
EXCEPTIONS = {"queued": 5, "dead_lettered": 2, "missing": 3, "version_mismatch": 2}

ROSTER = """
INSERT INTO candidates (candidate_id, national_id, full_name, date_of_birth, sex, candidate_type,
                        province_code, school_code, password_hash, must_change_password)
SELECT g, lpad(g::text, 12, '0'), 'THI SINH ' || g, date '2008-01-01' + (g % 365)::int,
       'female', 'a',
       $1, $2, 'x', false
FROM generate_series($3::bigint, $4::bigint) AS g
"""
HISTORY = """
INSERT INTO registration_versions (candidate_id, version, receipt_id, idempotency_key,
    request_hash, phase, form, full_name, shard, stream_id, accepted_at)
SELECT g, v, 'R' || g || 'V' || v, 'k' || v, 'h', 'official', '{}'::jsonb, 'THI SINH ' || g,
       g % 8, '0-' || v, now() - interval '1 day'
FROM generate_series($1::bigint, $2::bigint) AS g,
     LATERAL generate_series(1, CASE WHEN g % 5 = 0 THEN 2 ELSE 1 END) AS v
"""
CURRENT = """
INSERT INTO registrations (candidate_id, version, receipt_id, phase, form, accepted_at)
SELECT g, CASE WHEN g % 5 = 0 THEN 2 ELSE 1 END,
       'R' || g || 'V' || CASE WHEN g % 5 = 0 THEN 2 ELSE 1 END, 'official', '{}'::jsonb,
       now() - interval '1 day'
FROM generate_series($1::bigint, $2::bigint) AS g
"""


def counter_of(candidate_id: int) -> int:
    return 2 if candidate_id % 5 == 0 else 1


async def seed_database(dsn: str, n: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await store.migrate(conn)
        school = await conn.fetchrow("SELECT province_code, school_code FROM schools LIMIT 1")
        await conn.execute("SET session_replication_role = replica")  # no FK checks
        step = 200_000
        for start in range(1, n + 1, step):
            end = min(n, start + step - 1)
            await conn.execute(ROSTER, school[0], school[1], start, end)
            await conn.execute(HISTORY, start, end)
            await conn.execute(CURRENT, start, end)
        await conn.execute("SET session_replication_role = DEFAULT")
        await conn.execute("VACUUM ANALYZE candidates, registration_versions, registrations")
    finally:
        await conn.close()


async def seed_redis(url: str, n: int) -> None:
    client = streams.connect(url, timeout=60)
    try:
        await streams.load_functions(client)
        for start in range(1, n + 1, 10_000):
            pipe = client.pipeline(transaction=False)
            for cid in range(start, min(n, start + 9_999) + 1):
                pipe.hset(streams.candidate_key(cid % SHARDS, cid), "version", counter_of(cid))
            await pipe.execute()
        for shard in range(SHARDS):
            await streams.StreamShard(client, shard, "bench").ensure_group()
    finally:
        await client.aclose()


async def seed_exceptions(url: str, dsn: str, n: int, queued: int) -> None:
    """A few of each kind, on candidates at the end of the roster."""
    client: aioredis.Redis = streams.connect(url, timeout=60)
    conn = await asyncpg.connect(dsn)
    try:
        cid = n
        for _ in range(queued + EXCEPTIONS["dead_lettered"]):
            shard, version = cid % SHARDS, counter_of(cid) + 1
            entry = await client.xadd(
                streams.stream_key(shard),
                {"cid": cid, "v": version, "rid": f"Q{cid}", "at": datetime.now(UTC).isoformat()},
            )
            await client.hset(
                streams.candidate_key(shard, cid),
                mapping={"version": version, f"rcpt:Q{cid}": version},
            )
            if cid > n - EXCEPTIONS["dead_lettered"]:
                writer = streams.StreamShard(client, shard, "bench")
                [(entry_id, fields)] = await writer.read(1, None)  # delivered, as a writer would
                assert entry_id == entry
                await writer.dead_letter(entry_id, fields, "23514: CheckViolationError")
            cid -= 1
        for _ in range(EXCEPTIONS["missing"]):  # acknowledged, then lost from the stream
            await client.hincrby(streams.candidate_key(cid % SHARDS, cid), "version", 1)
            cid -= 1
        for _ in range(EXCEPTIONS["version_mismatch"]):
            while counter_of(cid) != 2:
                cid -= 1
            await conn.execute("UPDATE registrations SET version = 1 WHERE candidate_id = $1", cid)
            cid -= 1
    finally:
        await client.aclose()
        await conn.close()


async def live_load(url: str, n: int, rate: float, stop: threading.Event) -> int:
    """New versions for random candidates outside the seeded ones, `rate` a second."""
    client = streams.connect(url, timeout=30)
    enqueuer = streams.Enqueuer(
        client, idempotency_ttl=3600, max_backlog_per_shard=0, retry_after=5, timeout=30
    )
    rng, sent, step = random.Random(7), 0, max(1, int(rate / 10))
    try:
        while not stop.is_set():
            batch = [
                streams.Submission(
                    cid,
                    cid % SHARDS,
                    f"live-{sent + i}",
                    {"full_name": "THI SINH LIVE"},
                    "official",
                )
                for i, cid in enumerate(rng.randint(1, n - 1000) for _ in range(step))
            ]
            await asyncio.gather(*(enqueuer.submit(b) for b in batch))
            sent += len(batch)
            await asyncio.sleep(step / rate)
    finally:
        await client.aclose()
    return sent


def measure(env: dict[str, str]) -> tuple[dict[str, object], str]:
    examreg = str(Path(sys.executable).with_name("examreg"))
    proc = subprocess.run(
        ["/usr/bin/time", "-v", examreg, "reconcile", "--json", "--max-queued-age", "86400"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    return orjson.loads(proc.stdout), proc.stderr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=1_200_000)
    parser.add_argument("--keep", default=None, help="data directory to keep (default: scratch)")
    parser.add_argument("--live", type=float, default=0.0, help="new versions a second, live")
    args = parser.parse_args()
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="examreg-recon-"))
    services = EmbeddedServices(root / "services", redis_maxmemory="4gb")
    endpoints = services.start()
    try:
        started = time.monotonic()
        asyncio.run(seed_database(endpoints.database_url, args.candidates))
        asyncio.run(seed_redis(endpoints.redis_url, args.candidates))
        queued = 0 if args.live else EXCEPTIONS["queued"]  # a live writer would take them
        asyncio.run(
            seed_exceptions(endpoints.redis_url, endpoints.database_url, args.candidates, queued)
        )
        print(f"seeded {args.candidates:,} candidates in {time.monotonic() - started:.0f} s")
        env = {
            **os.environ,
            "EXAMREG_DATABASE_URL": endpoints.database_url,
            "EXAMREG_REDIS_URL": endpoints.redis_url,
            "EXAMREG_STREAM_SHARDS": str(SHARDS),
            "EXAMREG_DATA_DIR": str(root),
        }
        writer, stop, sent = None, threading.Event(), [0]
        if args.live:
            examreg = str(Path(sys.executable).with_name("examreg"))
            writer = subprocess.Popen([examreg, "writer"], env=env, start_new_session=True)
            load = threading.Thread(
                target=lambda: sent.__setitem__(
                    0, asyncio.run(live_load(endpoints.redis_url, args.candidates, args.live, stop))
                )
            )
            load.start()
            time.sleep(10)  # the writer's start-up sweep, and a backlog flowing
        try:
            summary, timing = measure(env)
        finally:
            stop.set()
            if writer is not None:
                load.join()
                os.killpg(writer.pid, signal.SIGTERM)
                writer.wait(60)
                print(f"live: {sent[0]:,} versions enqueued during the run, a writer draining")
        wall = re.search(r"Elapsed \(wall clock\) time.*: (\S+)", timing)
        rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", timing)
        cpu = re.search(r"User time \(seconds\): (\S+)", timing)
        print(
            f"examreg reconcile: wall {wall[1] if wall else '?'},"
            f" user CPU {cpu[1] if cpu else '?'} s,"
            f" peak RSS {int(rss[1]) / 1024 if rss else 0:.0f} MiB"
        )
        print("counts:", orjson.dumps(summary["counts"]).decode())
        print("scanned:", orjson.dumps(summary["scanned"]).decode())
        print(f"report duration {summary['duration_seconds']} s")
        expected = {**dict.fromkeys(summary["counts"], 0), **EXCEPTIONS}  # type: ignore[arg-type]
        found = dict(summary["counts"])  # type: ignore[call-overload]
        if args.live:  # what is queued depends on the moment; nothing else may differ
            expected["queued"] = found["queued"]
        print("seeded exceptions found exactly:", found == expected)
        return 0 if found == expected else 1
    finally:
        services.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
