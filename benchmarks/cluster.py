"""The enqueue on one Valkey against a 3-master cluster, with and without WAITAOF (issue 15).

What a submission's Redis step costs by topology: `streams.Enqueuer` (the API's micro-batched
enqueue, one pipeline per event-loop tick) driven by N concurrent asyncio tasks (closed loop:
each submits again as soon as it is answered), each submission a new candidate version, for a
bounded time per case:

- `single`: one Valkey, AOF `appendfsync always` (today's durability: the 202 waits for the
  local fsync);
- `cluster_waitaof`: the cluster as examreg runs on it: a tick's FCALLs split per node and one
  `WAITAOF 1 1` per node on the same connection (the 202 waits for the master's fsync AND a
  replica's);
- `cluster_no_waitaof`: the same cluster, the WAITAOF left out (the master's fsync only): what
  replica-acknowledged durability costs is the difference with `cluster_waitaof`.

Each case reports submissions/s and the p50/p99 of one enqueue (from submit to answer). The lead
calls `measure(url_single, url_cluster, seconds)` from `make bench`; `python -m benchmarks.cluster
[--seconds S] [--tasks N]` starts the embedded servers itself (engine/adapters/embedded.py) in a
temporary directory and prints the JSON. All three cases run on the same machine, against servers
on loopback that share its disk and cores, so the cluster's six processes compete with the client
for the same two cores: the figures compare the paths, they do not size a real cluster.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from redis.asyncio.cluster import RedisCluster

from engine.adapters import streams
from engine.adapters.backend import Redis
from engine.adapters.embedded import EmbeddedCluster, EmbeddedServices
from engine.errors import Unavailable

SHARDS = 8
MAX_SUBMISSIONS = 200_000  # per case: a bound on count besides the bound on time


class _NoReplicaWait(streams.Enqueuer):
    """The enqueue on a cluster without WAITAOF (measurement only): the same per-node path,
    every call taken as proven once its master answered (its own fsync, `appendfsync always`)."""

    async def _replicated(self, connection: Any) -> bool:
        return True


async def _flush(client: Redis) -> None:
    if isinstance(client, RedisCluster):
        await client.flushall(target_nodes=RedisCluster.PRIMARIES)
    else:
        await client.flushall()


async def _case(url: str, seconds: float, tasks: int, *, wait_for_replica: bool) -> dict[str, Any]:
    client = streams.connect(url, timeout=10.0, max_connections=tasks + 16)
    try:
        await _flush(client)
        await streams.load_functions(client)
        kind = streams.Enqueuer if wait_for_replica else _NoReplicaWait
        enqueuer = kind(
            client,
            idempotency_ttl=3600,
            max_backlog_per_shard=10**8,
            retry_after=1,
            timeout=10.0,
            replica_timeout_ms=2000,
        )
        latencies: list[float] = []
        failures = 0
        run = uuid.uuid4().hex[:8]
        stop_at = time.monotonic() + seconds

        async def worker(index: int) -> None:
            nonlocal failures
            edit = 0
            while time.monotonic() < stop_at and len(latencies) < MAX_SUBMISSIONS:
                candidate = index * 1_000_000 + edit
                edit += 1
                submission = streams.Submission(
                    candidate_id=candidate,
                    shard=candidate % SHARDS,
                    idempotency_key=f"{run}-{candidate}",
                    form={"full_name": "NGUYEN VAN A", "n": candidate},
                    phase="official",
                )
                started = time.perf_counter()
                try:
                    await enqueuer.submit(submission)
                except Unavailable:
                    failures += 1
                    continue
                latencies.append(time.perf_counter() - started)

        began = time.monotonic()
        await asyncio.gather(*(worker(i) for i in range(tasks)))
        elapsed = time.monotonic() - began
    finally:
        await client.aclose()
    ordered = sorted(latencies)
    return {
        "submissions": len(ordered),
        "refused": failures,
        "seconds": round(elapsed, 2),
        "per_second": round(len(ordered) / elapsed, 1) if elapsed else 0.0,
        "p50_ms": round(statistics.median(ordered) * 1000, 2) if ordered else None,
        "p99_ms": round(ordered[int(len(ordered) * 0.99)] * 1000, 2) if ordered else None,
    }


async def measure(
    url_single: str, url_cluster: str, seconds: float = 5.0, tasks: int = 64
) -> dict[str, Any]:
    """The enqueue on each topology for `seconds` each (after a one-second warm-up).

    Both servers are FLUSHALLed before each case (every master of the cluster) and get the
    function library loaded: give it servers of its own, never ones holding data.

    Returns `{"single": …, "cluster_waitaof": …, "cluster_no_waitaof": …, "waitaof_cost": …}`,
    each case with submissions/s and p50/p99 in ms; `waitaof_cost` compares the two cluster
    cases (rate ratio, added p50 and p99).
    """
    cases = {
        "single": (url_single, True),
        "cluster_waitaof": (url_cluster, True),
        "cluster_no_waitaof": (url_cluster, False),
    }
    result: dict[str, Any] = {"tasks": tasks, "seconds_each": seconds}
    for name, (url, wait) in cases.items():
        await _case(url, 1.0, tasks, wait_for_replica=wait)  # warm-up: connections, AOF files
        result[name] = await _case(url, seconds, tasks, wait_for_replica=wait)
    with_wait, without = result["cluster_waitaof"], result["cluster_no_waitaof"]
    if with_wait["p50_ms"] is not None and without["p50_ms"] is not None:
        result["waitaof_cost"] = {
            "rate_ratio": round(with_wait["per_second"] / max(without["per_second"], 1e-9), 3),
            "added_p50_ms": round(with_wait["p50_ms"] - without["p50_ms"], 2),
            "added_p99_ms": round(with_wait["p99_ms"] - without["p99_ms"], 2),
        }
    return result


def run(seconds: float = 5.0, tasks: int = 64) -> dict[str, Any]:
    """`measure` on servers of its own: one Valkey and a 3-master cluster with a replica each,
    started in a temporary directory and removed after (what `make bench`'s scale phase calls)."""
    root = Path(tempfile.mkdtemp(prefix="examreg-cluster-bench-"))
    single = EmbeddedServices(root / "single")
    cluster = EmbeddedCluster(root / "cluster")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    try:
        single.start_redis(port)
        endpoints = cluster.start()
        url_single = f"redis://127.0.0.1:{port}/0"
        return asyncio.run(measure(url_single, endpoints.redis_url, seconds, tasks))
    finally:
        cluster.destroy()
        single.stop_redis()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--tasks", type=int, default=64)
    args = parser.parse_args()
    print(json.dumps(run(args.seconds, args.tasks), indent=2))


if __name__ == "__main__":
    main()
