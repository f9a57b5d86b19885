"""The submission path alone (issue 11): API and Valkey CPU per accepted PUT, and wrk's rate.

A focused part of `benchmarks.run`'s accept phase, for comparing one change against another on
the same machine: the same setup (`Bench.setup`: a seeded nation, minted sessions, wrk's request
file), examreg's API workers started, then `--rounds` wrk runs of `--seconds` each with the
writers stopped (so their reads and trims cost Valkey nothing during the measurement; the queue
absorbs the run and is drained between rounds). Per round: wrk's req/s and p99, the API
workers' and Valkey's CPU from `/proc` per 202, and Valkey's own `INFO cpu` per 202.

    BENCH_QUICK=1 .venv/bin/python -m benchmarks.submit_path --rounds 3 --seconds 8
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import redis

from benchmarks import cpu, wrk
from benchmarks.procs import ROOT, pid_file
from benchmarks.run import PEERS, Bench, Config


def valkey_cpu(client: redis.Redis) -> float:
    info: Any = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def accepted(client: redis.Redis, shards: int) -> int:
    """Entries ever added to the streams: one per 202 (replays add none)."""
    total = 0
    for shard in range(shards):
        try:
            info: Any = client.xinfo_stream(f"examreg:{{{shard}}}:stream")
        except redis.ResponseError:
            continue
        total += int(info.get("entries-added") or 0)
    return total


def one_round(bench: Bench, client: redis.Redis, seconds: float) -> dict[str, Any]:
    port, path, name = PEERS["examreg"]
    roots = {
        "api": bench.procs.pid(name),
        "valkey": pid_file(bench.services.redis_dir / "valkey.pid"),
    }
    bench.procs.stop("writer")
    added, before = accepted(client, bench.config.shards), valkey_cpu(client)
    probe = cpu.Probe(roots)
    probe.start()
    result = wrk.run(
        bench.wrk.path or "wrk", f"http://127.0.0.1:{port}", seconds=seconds,
        connections=bench.config.wrk_connections, script=str(ROOT / "loadtest/accept.lua"),
        script_args=(str(bench.work / "wrk.tsv"), path),
    )  # fmt: skip
    used = probe.stop()
    valkey_info = valkey_cpu(client) - before
    count = accepted(client, bench.config.shards) - added
    bench.start_writer()
    bench.wait_drained(300)
    return {
        "req_per_s": result["requests_per_s"],
        "ok_per_s": result["ok_per_s"],
        "p99_ms": result["p99_ms"],
        "requests": result["requests"],
        "accepted": count,
        "api_us_per_202": round(used["api"] / count * 1e6, 1) if count else None,
        "valkey_us_per_202": round(used["valkey"] / count * 1e6, 1) if count else None,
        "valkey_info_us_per_202": round(valkey_info / count * 1e6, 1) if count else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    bench = Bench(Config.from_env())
    rounds = []
    try:
        bench.setup()
        bench.start_examreg()
        client = redis.Redis.from_url(bench.env["EXAMREG_REDIS_URL"], socket_timeout=30)
        one_round(bench, client, 2.0)  # warm-up: connections, caches, the AOF's first growth
        for _ in range(args.rounds):
            rounds.append(one_round(bench, client, args.seconds))
            print(json.dumps(rounds[-1]), flush=True)
            time.sleep(1)
    finally:
        bench.procs.stop_all()
        bench.services.destroy()
    print(json.dumps({"rounds": rounds}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
