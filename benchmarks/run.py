"""`make bench`: examreg against its peers on this machine, every figure side by side in one run.

    make bench                  # BENCH_OUT=bench BENCH_SCALE=1: 1.2 M candidates, 5 M versions
    BENCH_SCALE=0.1 make bench  # a tenth of every volume (a rehearsal)
    BENCH_QUICK=1 make bench    # every phase scaled down, under 5 minutes (development)

Starts its own embedded PostgreSQL + Valkey in a temporary directory, seeds the synthetic nation,
runs the phases below against loopback only, stops everything it started and removes the
directory, and writes `results.json` (with its `ratios` object, `benchmarks/ratios.py`) and
`results.md` to BENCH_OUT. Every loop is bounded in count and in time. The phases:

1. accept: the open-loop knee (`benchmarks/knee.py`: the highest PUT /api/v1/me/registration
   rate with p99 < 100 ms and no refusal) of examreg (`examreg serve` + one writer draining), the
   naive peer (`benchmarks/naive_app.py`) and hello-world (`loadtest/hello_app.py`), each with
   BENCH_WORKERS server processes; CPU µs per request of each process kind at the knee
   (`benchmarks/cpu.py`); then wrk's closed-loop 2xx/s of each (64 connections, same bytes).
2. drain: writer rows/s from pre-filled streams into PostgreSQL (timed from the first settled
   batch until every entry is persisted and acknowledged; the trim after it reported apart), next
   to COPY of the same rows; CPU µs per row of the writer, PostgreSQL and Valkey; load average.
3. season: the whole roster's registrations, closed loop, from an empty queue to all persisted;
   the driver's ledger of acknowledged receipts is checked against the history.
4. growth: the drain again with 5 M versions in the history; accept p99 at 50% and 90% of max.
5. spike: twice examreg's knee for 60 s, against examreg and then the naive peer: shed share, p99
   of admitted requests, time to drain.
6. logins: GET /api/v1/me p99 for logged-in users alone, then during a login storm.
7. scale: capacity per node (docs/capacity.md): the drain with 1, 2 and 4 writer processes (at the
   history the earlier phases left), the accept knee with 1 and 2 API processes, and the API's
   enqueue on one Valkey against a 3-master cluster with and without WAITAOF 1 1
   (`benchmarks/cluster.py`, on servers of its own).
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import redis

from benchmarks import cluster, cpu, knee, naive_app, nation, ratios, report, wrk
from benchmarks.procs import (
    ROOT,
    Processes,
    Sampler,
    log,
    machine_state,
    pid_file,
    stream_backlog,
    stream_unsettled,
    wait_http,
)
from engine.adapters.embedded import EmbeddedServices

BIN = Path(sys.executable).parent
PASSWORD = "Load-test-2026"  # noqa: S105 - LOAD TESTS ONLY: one shared hash for the whole synthetic roster
PEERS = {  # name → (port, path of the accept figure, process name)
    "examreg": (18500, "/api/v1/me/registration", "examreg-api"),
    "naive": (18501, "/api/v1/me/registration", "naive"),
    "hello": (18502, "/hello", "hello"),
}
FIRST_RATE = {"examreg": 600.0, "naive": 450.0, "hello": 4000.0}
WRK_CANDIDATES = 20_000  # wrk holds its request file in memory
SCALE_WRITERS = (1, 2, 4)  # writer processes in the scale phase's drains
SCALE_WORKERS = (1, 2)  # API processes in the scale phase's knees


@dataclass(frozen=True)
class Config:
    """Sizes and durations. BENCH_SCALE multiplies the volumes, not the durations; BENCH_QUICK=1
    scales both down for development (a small nation and history, short steps).

    BENCH_STEP_SECONDS and BENCH_SPIKE_SECONDS override the step and spike durations;
    BENCH_WORKERS (2) and BENCH_WRITERS (1) set the process counts; BENCH_PHASES (e.g.
    `drain,growth`) runs only the listed phases after the setup (growth without accept measures
    its drain alone).
    """

    out: Path
    quick: bool
    scale: float
    candidates: int
    drain_entries: int
    history_target: int
    workers: int
    writers: int
    shards: int
    step_seconds: float
    step_warmup: float
    bisections: int
    growth_seconds: float
    spike_seconds: float
    wrk_seconds: float
    wrk_connections: int
    storm_seconds: float
    storm_rate: float
    storm_connections: int
    me_rate: float

    @classmethod
    def from_env(cls) -> Config:
        quick = os.environ.get("BENCH_QUICK", "0") not in ("", "0")
        scale = float(os.environ.get("BENCH_SCALE", "1"))
        if not 0 < scale <= 1:
            raise SystemExit("BENCH_SCALE must be in (0, 1]")
        if quick and scale != 1:
            raise SystemExit("BENCH_QUICK sets its own volumes: unset BENCH_SCALE")
        sized = {
            "candidates": 10_000 if quick else max(2000, int(1_200_000 * scale)),
            "drain_entries": 20_000 if quick else max(5000, int(100_000 * scale)),
            "history_target": 50_000 if quick else max(10_000, int(5_000_000 * scale)),
        }
        timed = {
            "step_seconds": 3.0 if quick else 7.0,
            "step_warmup": 1.0 if quick else 2.0,
            "bisections": 1 if quick else 2,
            "growth_seconds": 4.0 if quick else 15.0,
            "spike_seconds": 10.0 if quick else 60.0,
            "wrk_seconds": 4.0 if quick else 15.0,
            "storm_seconds": 5.0 if quick else 20.0,
        }
        return cls(
            out=Path(os.environ.get("BENCH_OUT", "bench")).resolve(),
            quick=quick,
            scale=scale,
            workers=int(os.environ.get("BENCH_WORKERS", "2")),
            writers=int(os.environ.get("BENCH_WRITERS", "1")),
            shards=8,
            wrk_connections=64,
            storm_rate=400.0,  # login attempts/s offered: several times what argon2id allows here
            storm_connections=128,
            me_rate=600.0,  # ≈ loadtest/login_storm.sh's 64 users; at most half the accept knee
            **sized,
            **{
                **timed,
                "step_seconds": float(os.environ.get("BENCH_STEP_SECONDS", timed["step_seconds"])),
                "spike_seconds": float(
                    os.environ.get("BENCH_SPIKE_SECONDS", timed["spike_seconds"])
                ),
            },
        )


class Bench:
    """One run: setup, the phases, teardown; `results` becomes results.json."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.work = Path(tempfile.mkdtemp(prefix="examreg-bench-"))
        (self.work / "logs").mkdir()
        self.procs = Processes(self.work / "logs")
        self.services = EmbeddedServices(self.work / "services", redis_maxmemory="6gb")
        self.results: dict[str, Any] = {"config": {**asdict(config), "out": str(config.out)}}
        self.started = time.monotonic()
        self.env: dict[str, str] = {}
        self.max_rate: float | None = None
        self.step_count = 0
        self.wrk = wrk.Wrk(None, "not looked up")
        self._redis: redis.Redis | None = None

    # -- plumbing ------------------------------------------------------------------------------

    def examreg(self, *args: str, quiet: bool = True) -> None:
        subprocess.run(
            [str(BIN / "examreg"), *args],
            env=self.env,
            cwd=ROOT,
            check=True,
            stdout=subprocess.DEVNULL if quiet else None,
            timeout=1200,
        )

    def backlog(self) -> int:
        """Polled every 20-100 ms while waiting: one connection for the run, not one per poll."""
        if self._redis is None:
            self._redis = redis.Redis.from_url(self.env["EXAMREG_REDIS_URL"], socket_timeout=10)
        return stream_backlog(self._redis, self.config.shards)

    def unsettled(self) -> int:
        """Entries not yet persisted and acknowledged (lag + pending), every shard."""
        self.backlog()  # opens the connection
        assert self._redis is not None
        return stream_unsettled(self._redis, self.config.shards)

    def wait_drained(self, timeout: float) -> float:
        """Seconds until every stream is empty (trimmed after COMMIT); raises past `timeout`."""
        started = time.monotonic()
        while self.backlog():
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"the streams did not drain within {timeout:.0f}s")
            time.sleep(0.1)
        return time.monotonic() - started

    def driver(
        self, port: int, path: str, rate: float, duration: float, **extra: Any
    ) -> tuple[list[str], Path, float]:
        """The driver's command line, its output file and a bound on its run time."""
        self.step_count += 1
        out = self.work / f"step-{self.step_count}.json"
        argv = [
            str(BIN / "python"), "-m", "loadtest.driver", "--port", str(port), "--path", path,
            "--rate", f"{rate:.1f}", "--duration", str(duration),
            "--data", str(self.work / "driver.tsv"),
            "--key-prefix", extra.pop("key_prefix", f"b{self.step_count}-"), "--out", str(out),
        ]  # fmt: skip
        limit = extra.pop("timeout", duration + float(extra.get("grace", 15)) + 120)
        for name, value in extra.items():
            flag = f"--{name.replace('_', '-')}"
            argv += [flag] if value is True else [flag, str(value)]
        return argv, out, limit

    def drive(
        self, port: int, path: str, rate: float, duration: float, **extra: Any
    ) -> dict[str, Any]:
        argv, out, limit = self.driver(port, path, rate, duration, **extra)
        subprocess.run(argv, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, timeout=limit)
        result: dict[str, Any] = json.loads(out.read_text())
        return result

    def start_examreg(self, workers: int | None = None) -> None:
        port = str(PEERS["examreg"][0])
        workers = workers or self.config.workers
        self.procs.start(
            "examreg-api",
            [str(BIN / "examreg"), "serve", "--workers", str(workers), "--port", port],
            self.env,
        )
        self.start_writer()
        wait_http(f"http://127.0.0.1:{port}/readyz")

    def start_writer(self, processes: int | None = None) -> None:
        processes = processes or self.config.writers
        self.procs.start(
            "writer", [str(BIN / "examreg"), "writer", "--processes", str(processes)], self.env
        )

    def stop_examreg(self) -> None:
        self.procs.stop("examreg-api")
        self.procs.stop("writer")

    def start_peer(self, peer: str, workers: int | None = None) -> None:
        """examreg, or one of its peers on uvicorn with the same worker count."""
        if peer == "examreg":
            self.start_examreg(workers)
            return
        port, _, name = PEERS[peer]
        app = {"naive": "benchmarks.naive_app:app", "hello": "loadtest.hello_app:app"}[peer]
        uvicorn = [
            str(BIN / "uvicorn"), "--loop", "uvloop", "--http", "httptools",
            "--workers", str(self.config.workers), "--no-access-log", "--log-level", "warning",
            "--host", "127.0.0.1", "--port", str(port), app,
        ]  # fmt: skip
        self.procs.start(name, uvicorn, self.env)
        wait_http(f"http://127.0.0.1:{port}{'/hello' if peer == 'hello' else '/'}")

    def stop_peer(self, peer: str) -> None:
        if peer == "examreg":
            self.stop_examreg()
        else:
            self.procs.stop(PEERS[peer][2])

    def cpu_roots(self, peer: str) -> dict[str, int]:
        """The process trees whose CPU a peer's requests cost (hello-world uses no database)."""
        roots = {"api": self.procs.pid(PEERS[peer][2])}
        if peer != "hello":
            roots["valkey"] = pid_file(self.services.redis_dir / "valkey.pid")
            roots["postgres"] = pid_file(self.services.pg_dir / "postmaster.pid")
        if peer == "examreg":
            roots["writer"] = self.procs.pid("writer")
        return roots

    @staticmethod
    def cpu_figure(seconds: dict[str, float], requests: int) -> dict[str, Any]:
        return {
            "requests": requests,
            "cpu_seconds": seconds,
            "us_per_request": cpu.per_request_us(seconds, requests),
        }

    # -- setup ---------------------------------------------------------------------------------

    def setup(self) -> None:
        endpoints = self.services.start()
        self.env = {
            **os.environ,
            "EXAMREG_DATABASE_URL": endpoints.database_url,
            "EXAMREG_REDIS_URL": endpoints.redis_url,
            "EXAMREG_DATA_DIR": str(self.work / "data"),
            "EXAMREG_LOG_LEVEL": "warning",
            "EXAMREG_SECRET_KEY": "bench-secret",
            "EXAMREG_SESSION_IDLE_SECONDS": "14400",
            "EXAMREG_SESSION_ABSOLUTE_SECONDS": "86400",
        }
        self.env.pop("EXAMREG_ARRIVAL_LOG", None)
        self.examreg("migrate")
        asyncio.run(nation.execute(endpoints.database_url, naive_app.TABLES))
        log(f"seeding {self.config.candidates:,} candidates (one shared load-test hash)")
        started = time.monotonic()
        self.examreg(
            "seed", "--candidates", str(self.config.candidates), "--load-test-password", PASSWORD,
            quiet=False,
        )  # fmt: skip
        self.results["seed_seconds"] = round(time.monotonic() - started, 1)
        dsn, redis_url = self.env["EXAMREG_DATABASE_URL"], self.env["EXAMREG_REDIS_URL"]

        nonce = os.urandom(8).hex() + "x"  # tokens are <candidate_id>.<nonce>

        async def prepare() -> None:
            self.rows = await nation.candidates(dsn)
            self.catalog = await nation.catalog(dsn)
            self.forms = nation.templates(self.rows, self.catalog)
            nation.check_templates(self.forms, self.rows, self.catalog)
            await nation.mint_sessions(redis_url, self.rows, nonce, self.config.shards)

        started = time.monotonic()
        asyncio.run(prepare())
        nation.write_driver_data(self.work / "driver.tsv", self.rows, nonce, self.forms)
        nation.write_wrk_data(self.work / "wrk.tsv", self.rows, nonce, self.forms, WRK_CANDIDATES)
        self.results["sessions_seconds"] = round(time.monotonic() - started, 1)
        log(f"minted {len(self.rows):,} sessions in Redis in {self.results['sessions_seconds']}s")
        self.wrk = wrk.find_or_install()
        self.results["wrk"] = {"path": self.wrk.path, "note": self.wrk.note}
        if self.wrk.note:
            log(f"the wrk figures are skipped: {self.wrk.note}")
        self.settle()

    def settle(self) -> None:
        seconds = asyncio.run(
            nation.settle(self.env["EXAMREG_DATABASE_URL"], self.env["EXAMREG_REDIS_URL"])
        )
        self.results.setdefault("settle_seconds", []).append(round(seconds, 1))
        log(f"settled (VACUUM ANALYZE, CHECKPOINT, AOF rewrite) in {seconds:.1f}s")

    # -- 2 and 4: drain ------------------------------------------------------------------------

    def drain(self, label: str, writers: int | None = None) -> dict[str, Any]:
        """Writer rows/s from pre-filled streams, and COPY of the same rows (no writer running)."""
        writers = writers or self.config.writers
        count = self.config.drain_entries
        dsn, redis_url = self.env["EXAMREG_DATABASE_URL"], self.env["EXAMREG_REDIS_URL"]
        enqueue_seconds = asyncio.run(
            nation.prefill(
                redis_url, self.rows, self.forms, self.catalog, count, self.config.shards,
                f"drain{label}-",
            )
        )  # fmt: skip
        records = asyncio.run(nation.stream_rows(redis_url, self.config.shards))
        before = asyncio.run(nation.count_rows(dsn, "SELECT count(*) FROM registration_versions"))
        self.settle()
        self.start_writer(writers)
        # Timed from the first entry the writer takes to the last trimmed (after COMMIT): the
        # writer's own start-up (imports, connections) is not drain time.
        deadline = time.monotonic() + 600
        while self.unsettled() >= count and time.monotonic() < deadline:
            time.sleep(0.005)
        remaining = self.unsettled()  # the first batch is already settled: count from here
        roots = {
            "writer": self.procs.pid("writer"),
            "postgres": pid_file(self.services.pg_dir / "postmaster.pid"),
            "valkey": pid_file(self.services.redis_dir / "valkey.pid"),
        }
        probe = cpu.Probe(roots)
        probe.start()
        started = time.monotonic()
        # Persisted and acknowledged (what "acks included" means), then trimmed: a writer trims
        # at most once a second, so the streams empty up to a second after the last settle.
        while self.unsettled():
            if time.monotonic() - started > 600:
                raise RuntimeError("the streams were not settled within 600s")
            time.sleep(0.02)
        seconds = time.monotonic() - started
        spent = probe.stop()
        # Most of the entries must be drained inside the timed window: a drain over in one poll
        # (a tiny BENCH_QUICK volume, several writers) has no rate, not an absurd one.
        timed = remaining >= count // 2 and seconds >= 0.2
        trimmed_after = self.wait_drained(600)
        self.procs.stop("writer")
        after = asyncio.run(nation.count_rows(dsn, "SELECT count(*) FROM registration_versions"))
        copy_seconds = asyncio.run(nation.copy_ceiling(dsn, records))
        result: dict[str, Any] = {
            "entries": count,
            "existing_versions": before,
            "persisted": after - before,
            "writer_seconds": round(seconds, 2),
            "timed_rows": remaining,
            "writer_rows_per_s": round(remaining / seconds) if timed else None,
            "trimmed_after_s": round(trimmed_after, 2),
            "cpu_seconds": spent,
            "cpu_us_per_row": cpu.per_request_us(spent, remaining),
            "load_average": list(os.getloadavg()),
            "copy_seconds": round(copy_seconds, 2),
            "copy_rows_per_s": round(len(records) / max(copy_seconds, 1e-9)),
            "enqueue_per_s": round(count / enqueue_seconds),
            "writers": writers,
        }
        result["writer_to_copy"] = (
            round(result["writer_rows_per_s"] / result["copy_rows_per_s"], 3) if timed else None
        )
        log(f"drain ({label}): {result}")
        return result

    # -- 1: accept -----------------------------------------------------------------------------

    def step(self, peer: str, rate: float) -> dict[str, Any]:
        """One constant-rate step, with the CPU each process kind spent on it."""
        port, path, _ = PEERS[peer]
        if peer == "examreg":
            self.wait_drained(120)  # each step starts from an empty queue
        probe = cpu.Probe(self.cpu_roots(peer))
        probe.start()
        result = self.drive(
            port, path, rate, self.config.step_seconds, warmup=self.config.step_warmup, grace=10
        )
        if peer == "examreg":
            self.wait_drained(120)  # the writer's (and PostgreSQL's) share of these requests
        result["cpu"] = self.cpu_figure(probe.stop(), result["answered"])
        log(
            f"  {rate:8.0f}/s  p99 {result['p99_ms']:8.1f} ms"
            f"  ok {result['ok']}/{result['scheduled']}"
            f"  send lag p99 {result['send_lag_p99_ms']} ms"
            f"  {result['cpu']['us_per_request']['total']} µs CPU/request"
            f"  {'pass' if knee.passes({**result, 'target_rate': rate}) else 'FAIL'}"
        )
        return result

    def accept(self) -> None:
        accept: dict[str, Any] = {}
        self.results["accept"] = accept
        for peer in PEERS:
            accept[peer] = self.knee(peer)
        self.max_rate = accept["examreg"]["max_rate"]

    def knee(self, peer: str, workers: int | None = None, with_wrk: bool = True) -> dict[str, Any]:
        """The open-loop knee of one peer (and wrk's figure), from a settled database."""
        log(f"accept: {peer}" + (f", {workers} server process(es)" if workers else ""))
        self.settle()
        self.start_peer(peer, workers)
        port, path, _ = PEERS[peer]
        warm = 2 if self.config.quick else 3
        self.drive(port, path, 200, warm, warmup=1)  # warm-up, not reported
        found = knee.search(
            functools.partial(self.step, peer), FIRST_RATE[peer],
            bisections=self.config.bisections,
        )  # fmt: skip
        found["cpu_at_max"] = (found["at_max"] or {}).get("cpu")
        found["workers"] = workers or self.config.workers
        if with_wrk:
            found["wrk"] = self.wrk_figure(peer)
        log(f"accept: {peer} knee {found['max_rate']}/s; wrk {found.get('wrk')}")
        self.stop_peer(peer)
        if peer == "examreg":
            self.wait_drained_with_writer()
        return found

    def wrk_figure(self, peer: str) -> dict[str, Any]:
        """wrk's closed loop (64 connections, fixed duration): the same PUT bytes to every peer."""
        if self.wrk.path is None:
            return {"skipped": self.wrk.note}
        port, path, _ = PEERS[peer]
        if peer == "examreg":
            self.wait_drained(120)
        probe = cpu.Probe(self.cpu_roots(peer))
        probe.start()
        try:
            result = wrk.run(
                self.wrk.path, f"http://127.0.0.1:{port}", seconds=self.config.wrk_seconds,
                connections=self.config.wrk_connections, script=str(ROOT / "loadtest/accept.lua"),
                script_args=(str(self.work / "wrk.tsv"), path),
            )  # fmt: skip
        except (ValueError, subprocess.TimeoutExpired) as exc:
            return {"skipped": f"wrk gave no report: {exc}"}
        if peer == "examreg":
            self.wait_drained(300)
        result["cpu"] = self.cpu_figure(probe.stop(), result["requests"])
        return result

    def wait_drained_with_writer(self) -> None:
        if self.backlog():
            self.start_writer()
            self.wait_drained(300)
            self.procs.stop("writer")

    # -- 3: season -----------------------------------------------------------------------------

    def season(self) -> None:
        count = len(self.rows)
        connections = 64
        log(f"season: {count:,} registrations, closed loop, {connections} connections")
        self.settle()
        self.start_examreg()
        self.drive(18500, "/api/v1/me/registration", 200, 3, warmup=1)  # warm-up, not reported
        self.wait_drained(60)
        sampler = Sampler(self.env["EXAMREG_REDIS_URL"], self.config.shards)
        baseline_memory = sampler.sample()[1]
        sampler.start()
        ledger = self.work / "season-ledger.tsv"
        probe = cpu.Probe(self.cpu_roots("examreg"))
        probe.start()
        try:
            step = self.drive(
                # Closed loop: everything is scheduled at once, so the grace is the whole run.
                18500, "/api/v1/me/registration", 1, 1, warmup=0, grace=3300, count=count,
                closed_loop=True, retry_shed=True, key_prefix="season-", ledger=ledger,
                connections=connections, timeout=3500,
            )  # fmt: skip
            self.wait_drained(900)
            persisted_at = time.time()
        finally:
            sampler.stop()
        spent = self.cpu_figure(probe.stop(), step["answered"])
        check = asyncio.run(
            nation.check_ledger(self.env["EXAMREG_DATABASE_URL"], ledger, "season-")
        )
        self.results["season"] = {
            "registrations": count,
            "unanswered": step["unfinished"] + step["errors"],
            "connections": connections,
            "accepted_per_s": step["ok_per_s"],
            "wall_seconds": round(persisted_at - step["t0_epoch"], 1),
            "acknowledged_after_s": round(step["last_answer_after_schedule_s"], 1),
            "peak_backlog": sampler.peak_backlog,
            "peak_redis_memory_bytes": sampler.peak_memory,
            "redis_memory_before_bytes": baseline_memory,
            "accept": {
                k: step[k]
                for k in ("service_p50_ms", "service_p99_ms", "statuses", "retried", "errors")
            },
            "cpu": spent,
            **check,
        }
        log(f"season: {self.results['season']}")

    # -- 4: growth -----------------------------------------------------------------------------

    def growth(self) -> None:
        self.stop_examreg()
        target = self.config.history_target
        log(f"growth: filling the history to {target:,} versions")
        added, seconds = asyncio.run(nation.fill_history(self.env["EXAMREG_DATABASE_URL"], target))
        growth: dict[str, Any] = {"filler_rows": added, "filler_seconds": round(seconds, 1)}
        self.results["growth"] = growth
        growth["drain_at_target"] = self.drain("grown")
        if not self.max_rate:
            growth["accept"] = "skipped: examreg held no rate in the accept phase"
            return
        self.settle()
        self.start_examreg()
        for share in (0.5, 0.9):
            result = self.drive(
                18500, "/api/v1/me/registration", self.max_rate * share,
                self.config.growth_seconds, warmup=min(3, self.config.growth_seconds / 2),
                grace=15,
            )  # fmt: skip
            growth[f"accept_at_{int(share * 100)}pct"] = {
                k: result[k]
                for k in ("target_rate", "achieved_rate", "p50_ms", "p99_ms", "ok", "scheduled")
            }
            log(f"growth: accept at {share:.0%}: p99 {result['p99_ms']} ms")
        self.stop_examreg()

    # -- 5: spike ------------------------------------------------------------------------------

    def spike(self) -> None:
        """Twice examreg's knee, against examreg and then against the naive peer."""
        if not self.max_rate:
            self.results["spike"] = {"skipped": "examreg held no rate in the accept phase"}
            return
        rate = 2 * self.max_rate
        seconds = self.config.spike_seconds
        spike: dict[str, Any] = {"rate": round(rate), "seconds": seconds}
        self.results["spike"] = spike
        for peer in ("examreg", "naive"):
            log(f"spike: {peer}, {rate:.0f}/s (2× examreg's knee) for {seconds:.0f}s")
            if peer == "examreg":
                self.wait_drained_with_writer()
            self.settle()
            self.start_peer(peer)
            spike[peer] = self.spike_run(peer, rate, seconds)
            log(f"spike: {peer}: {spike[peer]}")
            self.stop_peer(peer)

    def spike_run(self, peer: str, rate: float, seconds: float) -> dict[str, Any]:
        port, path, _ = PEERS[peer]
        result = self.drive(
            port, path, rate, seconds, warmup=0, grace=180, give_up=10, connections=1024,
        )  # fmt: skip
        end = result["t0_epoch"] + seconds
        drained: float | None = None
        if peer == "examreg":  # the naive peer has no queue: a 202 is already committed
            self.wait_drained(600)
            drained = round(max(0.0, time.time() - end), 1)
        scheduled = result["scheduled"]
        return {
            "offered": scheduled,
            "admitted": result["ok"],
            "shed": result["shed"],
            "shed_share": round(result["shed"] / scheduled, 4),
            "abandoned_share": round(result["abandoned"] / scheduled, 4),
            "unfinished": result["unfinished"],
            "errors": result["errors"],
            "statuses": result["statuses"],
            "codes": result.get("codes", {}),
            "admitted_p99_ms": _admitted_p99(result),
            "service_p99_ms": result["service_p99_ms"],
            "send_lag_p99_ms": result["send_lag_p99_ms"],
            "driver_cpu_seconds": result["driver_cpu_seconds"],
            "answers_done_after_s": result["last_answer_after_schedule_s"],
            "queue_drained_after_s": drained,
        }

    # -- 6: logins -----------------------------------------------------------------------------

    def logins(self) -> None:
        """loadtest/login_storm.sh as a phase, open loop: /me p99 alone, then during a storm."""
        config = self.config
        seconds, port = config.storm_seconds, PEERS["examreg"][0]
        # A baseline that is itself past capacity would measure nothing: on a loaded machine the
        # users click at half examreg's accept knee (a GET costs less than a PUT) when lower.
        me_rate = min(config.me_rate, self.max_rate / 2) if self.max_rate else config.me_rate
        log(
            f"logins: GET /api/v1/me at {me_rate:.0f}/s, alone and during a login storm"
            f" of {config.storm_rate:.0f}/s offered"
        )
        self.settle()
        self.start_examreg()
        me = {"request": "me", "warmup": 1, "grace": 15}  # the first second is not measured
        alone = self.drive(port, "/api/v1/me", me_rate, seconds, **me)
        # The storm starts a second before the measured users and ends a second after them; the
        # logins still queued then are left unanswered (counted), not waited for.
        argv, out, limit = self.driver(
            port, "/api/v1/auth/login", config.storm_rate, seconds + 2, request="login",
            password=PASSWORD, warmup=1, grace=3, give_up=10,
            connections=config.storm_connections,
        )  # fmt: skip
        storm_proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL)
        try:
            time.sleep(1.0)
            during = self.drive(port, "/api/v1/me", me_rate, seconds, **me)
            storm_proc.wait(limit)
        finally:
            if storm_proc.poll() is None:
                storm_proc.kill()
                storm_proc.wait(10)
        storm = json.loads(out.read_text())
        self.results["logins"] = {
            "me_rate": me_rate,
            "storm_rate": config.storm_rate,
            "storm_connections": config.storm_connections,
            "seconds": seconds,
            "me_alone": _latency(alone),
            "me_during": _latency(during),
            "storm": {
                "offered": storm["scheduled"],
                "logged_in": storm["ok"],
                "logged_in_per_s": round(storm["ok"] / (seconds + 2), 1),
                "shed": storm["shed"],
                "abandoned": storm["abandoned"],
                "unanswered_at_the_end": storm["unfinished"],
                "statuses": storm["statuses"],
                "codes": storm.get("codes", {}),
                "admitted_p99_ms": _admitted_p99(storm),
            },
        }
        self.stop_examreg()
        log(f"logins: {self.results['logins']}")

    # -- 7: scale ------------------------------------------------------------------------------

    def scale(self) -> None:
        """Capacity per node (docs/capacity.md): the drain with 1, 2 and 4 writer processes, the
        accept knee with 1 and 2 API processes (the accept phase's figure is reused for its own
        process count), the enqueue on the cluster against the single node."""
        self.stop_examreg()
        scale: dict[str, Any] = {"drain": {}, "accept": {}}
        self.results["scale"] = scale
        for writers in SCALE_WRITERS:
            log(f"scale: drain with {writers} writer process(es)")
            scale["drain"][str(writers)] = self.drain(f"w{writers}", writers=writers)
        measured = (self.results.get("accept") or {}).get("examreg")
        for workers in SCALE_WORKERS:
            if measured and workers == self.config.workers:
                found = {k: measured.get(k) for k in ("max_rate", "cpu_at_max")}
                scale["accept"][str(workers)] = {**found, "workers": workers, "from": "accept"}
                continue
            found = self.knee("examreg", workers, with_wrk=False)
            scale["accept"][str(workers)] = {
                **{k: found.get(k) for k in ("max_rate", "cpu_at_max")},
                "workers": workers,
                "from": "scale",
            }
        # The enqueue on one Valkey against a 3-master cluster (a replica each), with and
        # without WAITAOF 1 1: servers of its own, started and removed by benchmarks/cluster.py.
        seconds = 3.0 if self.config.quick else 10.0
        log(f"scale: the enqueue, single node against the cluster, {seconds:g} s per case")
        scale["cluster"] = cluster.run(seconds=seconds)
        log(f"scale: {json.dumps(scale)[:2000]}")

    # -- run -----------------------------------------------------------------------------------

    def run(self) -> int:
        self.results["machine"] = machine_state("before")
        phases: tuple[tuple[str, Callable[[], None]], ...] = (
            ("setup", self.setup),
            ("drain", lambda: self.results.__setitem__("drain", self.drain("empty"))),
            ("accept", self.accept),
            ("season", self.season),
            ("growth", self.growth),
            ("spike", self.spike),
            ("logins", self.logins),
            ("scale", self.scale),
        )
        timings: dict[str, float] = {}
        wanted = os.environ.get("BENCH_PHASES", "")
        if wanted:  # e.g. BENCH_PHASES=drain,growth: setup always runs, the others as listed
            names = {"setup", *(n.strip() for n in wanted.split(","))}
            unknown = names - {name for name, _ in phases}
            if unknown:
                raise SystemExit(f"BENCH_PHASES: no phase {', '.join(sorted(unknown))}")
            phases = tuple((name, phase) for name, phase in phases if name in names)
        try:
            for name, phase in phases:
                started = time.monotonic()
                try:
                    phase()
                except BaseException as exc:
                    self.results["failed"] = {
                        "phase": name,
                        "error": "".join(traceback.format_exception_only(exc)).strip(),
                    }
                    raise
                timings[name] = round(time.monotonic() - started, 1)
                log(f"phase {name} took {timings[name]}s")
        finally:
            self.procs.stop_all()
            if self._redis is not None:
                self._redis.close()
            self.services.destroy()
            self.results["phase_seconds"] = timings
            self.results["total_seconds"] = round(time.monotonic() - self.started, 1)
            self.results["machine_after"] = machine_state("after")
            self.results["ratios"] = ratios.compute(self.results)
            self.config.out.mkdir(parents=True, exist_ok=True)
            (self.config.out / "results.json").write_text(json.dumps(self.results, indent=1))
            (self.config.out / "results.md").write_text(report.render(self.results))
            shutil.rmtree(self.work, ignore_errors=True)
        log(f"wrote {self.config.out}/results.md and results.json")
        return 0


def _admitted_p99(result: dict[str, Any]) -> float | None:
    """The driver's p99 of 2xx answers, or None when no 2xx answer was measured (its 0.0)."""
    return result["admitted_p99_ms"] if result.get("admitted_measured") else None


def _latency(result: dict[str, Any]) -> dict[str, Any]:
    """The open-loop figures of a /me run; percentiles null when nothing was measured."""
    measured = result["measured"] > 0
    return {
        "target_rate": result["target_rate"],
        "achieved_rate": result["achieved_rate"],
        "p50_ms": result["p50_ms"] if measured else None,
        "p99_ms": result["p99_ms"] if measured else None,
        "admitted_p99_ms": _admitted_p99(result),
        "ok": result["ok"],
        "scheduled": result["scheduled"],
        "statuses": result["statuses"],
        "unfinished": result["unfinished"],
        "errors": result["errors"],
    }


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through Bench.run's cleanup


def main() -> int:
    signal.signal(signal.SIGTERM, _terminate)
    config = Config.from_env()
    mode = "quick" if config.quick else f"scale {config.scale}"
    log(f"examreg bench: {mode}, results in {config.out}")
    return Bench(config).run()


if __name__ == "__main__":
    sys.exit(main())
