"""A master of the Valkey Cluster is killed (SIGKILL) under load: nothing acknowledged is lost.

A small driver submits edits for twenty candidates through the API (in-process) while a writer
persists them; once a fair share is acknowledged, the master that owns some of the shards is
killed. Its replica takes over (cluster-node-timeout 1500 ms). The API answers 503 `unavailable`
for those shards, and clients retry with the same Idempotency-Key as browsers do, until the
shards are durable again: the promoted master has no replica of its own (one replica per master),
so `WAITAOF 1 1` refuses until the killed node, restarted as an operator's supervisor would,
rejoins as its replica. Then they are served again, and at the end every receipt the API
acknowledged with a 202 is in `registration_versions`, once, and each candidate's versions run
1..n without a gap. The cluster is whole again for the tests after this one.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest
import redis
from redis.crc import key_slot

from engine.adapters import streams
from engine.runtime.writer import run_writer
from engine.settings import Settings
from tests.conftest import ClusterServers, Harness, with_settings
from tests.support import TEST_PASSWORD, form_for, replica_of

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.slow,
    pytest.mark.timeout(300),
    pytest.mark.parametrize("topology", ["cluster"], indirect=True),
]

CANDIDATES = 20
EDITS_EACH = 15  # 300 submissions in all
KILL_AFTER = 60  # acknowledged submissions before the kill


@dataclass
class Ledger:
    acked: dict[str, int] = field(default_factory=dict)  # receipt → version
    statuses: Counter[str] = field(default_factory=Counter)
    killed: bool = False
    refused_on_killed: int = 0  # 503s on the killed master's shards after the kill
    acked_on_killed_after: int = 0  # 202s on them after the kill
    orphaned: bool = False  # the promoted master has no replica yet
    acked_while_orphaned: int = 0  # 202s on its shards meanwhile: must stay 0
    refused_while_orphaned: int = 0


def _master_of(port_of_slot: dict[int, int], shard: int) -> int:
    return port_of_slot[key_slot(streams.stream_key(shard).encode())]


def _slot_owners(seed: tuple[str, int]) -> dict[int, int]:
    client = redis.Redis(host=seed[0], port=seed[1], decode_responses=True, socket_timeout=5)
    try:
        owners: dict[int, int] = {}
        for low, high, master, *_ in client.cluster("SLOTS"):
            for slot in range(int(low), int(high) + 1):
                owners[slot] = int(master[1])
        return owners
    finally:
        client.close()


async def _drive(
    harness: Harness,
    candidate: dict[str, Any],
    ledger: Ledger,
    on_killed_master: bool,
    deadline: float,
) -> None:
    auth = await _login(harness, candidate, deadline)
    for edit in range(EDITS_EACH):
        key = str(uuid.uuid4())
        body = form_for(candidate, seed=edit + 1)
        while time.monotonic() < deadline:
            response = await harness.client.put(
                "/api/v1/me/registration", json=body, headers={**auth, "Idempotency-Key": key}
            )
            code = response.json().get("code", "") if response.status_code != 202 else ""
            ledger.statuses[f"{response.status_code} {code}".strip()] += 1
            if response.status_code == 202:
                ledger.acked[response.json()["receipt_id"]] = response.json()["version"]
                if ledger.killed and on_killed_master:
                    ledger.acked_on_killed_after += 1
                    ledger.acked_while_orphaned += ledger.orphaned
                break
            assert response.status_code == 503, response.text
            if ledger.killed and on_killed_master:
                ledger.refused_on_killed += 1
                ledger.refused_while_orphaned += ledger.orphaned
            await asyncio.sleep(0.05)  # a browser's retry, same key and body
        await asyncio.sleep(0.02)


async def _login(harness: Harness, candidate: dict[str, Any], deadline: float) -> dict[str, str]:
    """Log in, retrying a 503 (the login's session write may meet the dead master)."""
    while True:
        response = await harness.client.post(
            "/api/v1/auth/login",
            json={"login": candidate["national_id"], "password": TEST_PASSWORD},
        )
        if response.status_code == 200:
            return {"Authorization": f"Bearer {response.json()['token']}"}
        assert response.status_code == 503 and time.monotonic() < deadline, response.text
        await asyncio.sleep(0.1)


async def _wait_for(condition: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within:.0f}s: {what}")
        await asyncio.sleep(0.1)


async def test_a_master_killed_under_load_loses_no_acknowledged_submission(
    cluster: ClusterServers,
    harness: Harness,
    roster: list[dict[str, Any]],
    pool: asyncpg.Pool,
) -> None:
    if cluster.embedded is None:
        pytest.skip("killing a master needs the embedded cluster (EXAMREG_TEST_CLUSTER_URL)")
    embedded = cluster.embedded
    settings: Settings = with_settings(harness.settings, writer_claim_idle_ms=2000)
    seeds = streams.cluster_seeds(cluster.redis_url)
    owners = _slot_owners(seeds[0])
    victim = _master_of(owners, 0)
    victim_shards = {s for s in range(settings.stream_shards) if _master_of(owners, s) == victim}
    assert settings.redis_url is not None
    writer_client = streams.connect(settings.redis_url, timeout=settings.io_timeout_seconds + 1)
    stop = asyncio.Event()
    writer = asyncio.create_task(
        run_writer(
            settings, pool, writer_client, range(settings.stream_shards), "failover-writer", stop
        )
    )
    ledger = Ledger()
    deadline = time.monotonic() + 200
    chosen = roster[:CANDIDATES]
    try:
        drivers = [
            asyncio.create_task(
                _drive(
                    harness,
                    c,
                    ledger,
                    settings.shard_of(c["candidate_id"]) in victim_shards,
                    deadline,
                )
            )
            for c in chosen
        ]

        async def enough_acked() -> bool:
            return len(ledger.acked) >= KILL_AFTER or all(d.done() for d in drivers)

        await _wait_for(enough_acked, 60, f"{KILL_AFTER} acknowledged submissions")
        replica = replica_of(victim, seeds)
        await asyncio.to_thread(embedded.kill_node, victim)
        ledger.killed = True

        async def promoted() -> bool:
            return await asyncio.to_thread(_role, replica) == "master"

        await _wait_for(promoted, 60, f"the replica 127.0.0.1:{replica} promoted")
        ledger.orphaned = True

        async def refused() -> bool:
            return ledger.refused_while_orphaned >= 3 or all(d.done() for d in drivers)

        await _wait_for(refused, 30, "503s on the promoted master's shards")
        ledger.orphaned = False
        await asyncio.to_thread(embedded.start_node, victim)  # back, as the new master's replica
        await asyncio.wait_for(asyncio.gather(*drivers), 150)
        assert not writer.done(), writer
        # Every edit of every candidate was acknowledged in the end (retries included).
        assert len(ledger.acked) == CANDIDATES * EDITS_EACH, ledger.statuses
        assert ledger.refused_on_killed >= 1, ledger.statuses  # the gap was seen
        assert ledger.acked_while_orphaned == 0, "a 202 while no replica could fsync it"
        assert ledger.acked_on_killed_after >= 1, ledger.statuses  # and served after it
        assert await asyncio.to_thread(_role, victim) == "slave"

        receipts = list(ledger.acked)

        async def all_persisted() -> bool:
            count = await pool.fetchval(
                "SELECT count(*) FROM registration_versions WHERE receipt_id = ANY($1)", receipts
            )
            return int(count) == len(receipts)

        await _wait_for(all_persisted, 90, "every acknowledged receipt in PostgreSQL")
        rows = await pool.fetch(
            "SELECT receipt_id, version, count(*) OVER (PARTITION BY receipt_id) AS copies"
            " FROM registration_versions WHERE receipt_id = ANY($1)",
            receipts,
        )
        assert {r["receipt_id"]: r["version"] for r in rows} == ledger.acked
        assert {r["copies"] for r in rows} == {1}
        # Per candidate, versions 1..EDITS_EACH each once (no gap, no duplicate).
        versions = await store_versions(pool, [c["candidate_id"] for c in chosen])
        assert all(v == list(range(1, EDITS_EACH + 1)) for v in versions.values()), versions
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(writer, return_exceptions=True), 30)
        await writer_client.aclose()
        await asyncio.to_thread(embedded.start_node, victim)  # no-op when running
        await asyncio.to_thread(embedded.wait_healthy, 120)


def _role(port: int) -> str:
    client = redis.Redis(host="127.0.0.1", port=port, decode_responses=True, socket_timeout=2)
    try:
        info: Any = client.info("replication")
        return str(info["role"])
    except redis.RedisError:
        return "down"
    finally:
        client.close()


async def store_versions(pool: asyncpg.Pool, candidate_ids: list[int]) -> dict[int, list[int]]:
    rows = await pool.fetch(
        "SELECT candidate_id, array_agg(version ORDER BY version) AS versions"
        " FROM registration_versions WHERE candidate_id = ANY($1) GROUP BY candidate_id",
        candidate_ids,
    )
    return {r["candidate_id"]: list(r["versions"]) for r in rows}
