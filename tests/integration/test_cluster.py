"""The Valkey Cluster: the embedded fixture and dev command, and the client on it.

The cluster is three masters with one replica each, from the embedded binary (`EmbeddedCluster`);
`examreg services start --cluster` starts one beside PostgreSQL. On it the same adapters run:
the functions on every master, the durability check on every node, a tick's submissions split
per node and answered only once WAITAOF proves them on a replica.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from engine.adapters import streams
from engine.adapters.backend import dropped_connection
from engine.adapters.embedded import EmbeddedServices
from engine.adapters.sessions import SessionStore, token_digest
from engine.errors import Unavailable
from engine.runtime.cli import main
from engine.settings import Settings
from tests.conftest import ClusterServers
from tests.support import replica_of

pytestmark = pytest.mark.anyio


def _node(port: int) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, decode_responses=True, socket_timeout=5)


def test_the_fixture_is_three_masters_each_fsyncing_on_a_replica(cluster: ClusterServers) -> None:
    seeds = streams.cluster_seeds(cluster.redis_url)
    roles: dict[str, int] = {}
    for host, port in seeds:
        assert host == "127.0.0.1"
        node = _node(port)
        try:
            info: Any = node.info("replication")
            roles[info["role"]] = roles.get(info["role"], 0) + 1
            assert node.config_get("appendfsync") == {"appendfsync": "always"}
            assert node.config_get("appendonly") == {"appendonly": "yes"}
            assert node.config_get("cluster-node-timeout") == {"cluster-node-timeout": "1500"}
            if info["role"] == "master":
                assert int(info["connected_slaves"]) == 1
        finally:
            node.close()
    assert roles == {"master": 3, "slave": 3}


def test_services_start_cluster_prints_a_cluster_url_that_answers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # PostgreSQL's start is `services start`'s own (tests/integration/test_cli.py): skipped
    # here, it would add an initdb (~15 s on a loaded CI box) to what is the cluster's test.
    monkeypatch.setattr(EmbeddedServices, "start_postgres", lambda self, port: None)
    monkeypatch.setattr(EmbeddedServices, "stop_postgres", lambda self: None)
    data = tmp_path / "services"
    try:
        assert main(["services", "start", "--cluster", "--data-dir", str(data)]) == 0
        lines = dict(line.split("=", 1) for line in capsys.readouterr().out.splitlines())
        url = lines["EXAMREG_REDIS_URL"]
        assert url.startswith("redis+cluster://") and lines["EXAMREG_DATABASE_URL"]
        seeds = streams.cluster_seeds(url)
        assert len(seeds) == 6
        client = redis.RedisCluster(host=seeds[0][0], port=seeds[0][1], decode_responses=True)
        try:
            assert client.set("examreg:{1}:probe", "x") and client.get("examreg:{1}:probe") == "x"
        finally:
            client.close()
        assert main(["services", "status", "--data-dir", str(data)]) == 0
        assert "valkey-cluster: 6 of 6 nodes running" in capsys.readouterr().out
    finally:
        EmbeddedServices(data).destroy()


@pytest.mark.parametrize(
    "url",
    ["redis+cluster://", "redis+cluster://127.0.0.1", "redis+cluster://a:1,b:x"],
)
def test_a_malformed_cluster_url_is_refused_by_name(url: str) -> None:
    with pytest.raises(ValueError, match="host:port"):
        streams.cluster_seeds(url)


async def test_functions_are_on_every_master_and_durability_checked_on_every_node(
    cluster: ClusterServers, redis_url: str
) -> None:
    client = streams.connect(cluster.redis_url)
    try:
        await streams.load_functions(client)
        await streams.check_durability(client)
        replica = next(
            port
            for _, port in streams.cluster_seeds(cluster.redis_url)
            if _node(port).info("replication")["role"] == "slave"
        )
        node = _node(replica)
        node.config_set("appendfsync", "everysec")
        try:
            with pytest.raises(streams.DurabilityError, match=f"127.0.0.1:{replica}"):
                await streams.check_durability(client)
        finally:
            node.config_set("appendfsync", "always")
            node.close()
    finally:
        await client.aclose()
    for _, port in streams.cluster_seeds(cluster.redis_url):
        node = _node(port)
        try:
            if node.info("replication")["role"] == "master":
                libraries: Any = node.function_list()
                assert any("examreg" in library for library in libraries)
        finally:
            node.close()


def _submission(candidate_id: int) -> streams.Submission:
    return streams.Submission(
        candidate_id=candidate_id,
        shard=candidate_id % 8,
        idempotency_key=f"key-{candidate_id}",
        form={"n": candidate_id},
        phase="official",
    )


async def test_a_tick_spread_over_every_master_is_acknowledged_once_on_a_replica(
    cluster: ClusterServers, redis_url: str
) -> None:
    client = streams.connect(cluster.redis_url)
    await streams.load_functions(client)
    enqueuer = streams.Enqueuer(
        client, idempotency_ttl=3600, max_backlog_per_shard=1000, retry_after=1, timeout=5
    )
    try:
        receipts = await asyncio.gather(*(enqueuer.submit(_submission(i)) for i in range(48)))
        assert {r.version for r in receipts} == {1} and not any(r.replayed for r in receipts)
        facts = await streams.read_shards(client, 8)
        assert [f.length for f in facts] == [6] * 8
        again = await enqueuer.submit(_submission(5))
        assert again.replayed and again.receipt_id == receipts[5].receipt_id
    finally:
        await client.aclose()


async def test_without_a_replica_fsync_the_submission_is_refused_not_acknowledged(
    cluster: ClusterServers, redis_url: str
) -> None:
    """WAITAOF 1 1 that times out (the master's replica frozen by SIGSTOP, so it neither
    applies nor acknowledges the stream) ends in 503 `unavailable`; the retry with the same
    key, once the replica is back, is a replay of the same receipt."""
    if cluster.embedded is None:
        pytest.skip("freezing a replica needs the embedded cluster (EXAMREG_TEST_CLUSTER_URL)")
    client = streams.connect(cluster.redis_url)
    await streams.load_functions(client)
    enqueuer = streams.Enqueuer(
        client,
        idempotency_ttl=3600,
        max_backlog_per_shard=1000,
        retry_after=1,
        timeout=5,
        replica_timeout_ms=300,
    )
    try:
        await client.initialize()
        master = client.get_node_from_key(streams.stream_key(3))
        assert master is not None
        replica = replica_of(master.port, streams.cluster_seeds(cluster.redis_url))
        pid = cluster.embedded.pid(replica)
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        try:
            with pytest.raises(Unavailable) as refused:
                await enqueuer.submit(_submission(3))
            assert refused.value.extra == {"reason": "not_replicated"}
        finally:
            os.kill(pid, signal.SIGCONT)
        replay = await enqueuer.submit(_submission(3))
        assert replay.replayed and replay.version == 1
    finally:
        await client.aclose()


@pytest.mark.topologies
async def test_staff_sessions_open_and_end_in_one_step(settings: Settings, aredis: Any) -> None:
    """Staff sessions and their index share the `{staff}` tag: one atomic call on a cluster."""
    store = SessionStore(aredis, settings)
    token, _ = await store.create(7, "staff", "desk.seven")
    other, _ = await store.create(7, "staff", "desk.seven")
    session = await store.get(token, "staff")
    assert session is not None and session.subject == 7
    assert session.key.startswith("examreg:{staff}:")
    await store.revoke(session)
    assert await store.get(token, "staff") is None
    assert await store.revoke_all("staff", 7) == 1
    assert await store.get(other, "staff") is None


async def test_a_staff_session_of_the_untagged_layout_is_still_honoured_and_ended(
    settings: Settings, aredis: Any
) -> None:
    """Rolling upgrade on a single node: a staff session opened before the `{staff}` tag keeps
    working until it expires, and a password reset still ends it."""
    store = SessionStore(aredis, settings)
    token = "old-staff-token"
    digest = token_digest(token)
    payload = {"sub": 9, "kind": "staff", "created": time.time(), "login": "desk", "slid": 0}
    await aredis.set(f"examreg:session:{digest}", orjson.dumps(payload), ex=600)
    await aredis.sadd("examreg:sessions:staff:9", digest)
    session = await store.get(token, "staff")
    assert session is not None and session.key == f"examreg:session:{digest}"
    assert await store.revoke_all("staff", 9) == 1
    assert await store.get(token, "staff") is None


def test_only_a_closed_stream_inside_redis_py_counts_as_a_dropped_connection() -> None:
    assert dropped_connection(AttributeError("'NoneType' object has no attribute 'writelines'"))
    assert dropped_connection(AttributeError("'NoneType' object has no attribute 'read'"))
    assert not dropped_connection(AttributeError("'NoneType' object has no attribute 'shard'"))
    assert not dropped_connection(AttributeError("'Batch' object has no attribute 'write'"))
    assert not dropped_connection(ValueError("'NoneType' object has no attribute 'write'"))
