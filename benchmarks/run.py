"""`make bench`: examreg against its peers on this machine, every figure side by side in one run.

    make bench                  # BENCH_OUT=bench BENCH_SCALE=1: 1.2 M candidates, 5 M versions
    BENCH_SCALE=0.1 make bench  # a tenth of every volume (a quick rehearsal)

Starts its own embedded PostgreSQL + Valkey in a temporary directory, seeds the synthetic nation,
runs the phases below against loopback only, stops everything it started and removes the
directory, and writes `results.json` and `results.md` to BENCH_OUT. Every loop is bounded in count
and in time. The phases (figure numbers as in issue 6):

1. accept: max sustained PUT /api/v1/me/registration rate with p99 < 100 ms, by stepping the
   open-loop driver (`loadtest/driver.py`) ×1.5 until a step fails, then bisecting; for examreg
   (`examreg serve` + one writer draining), the naive baseline (`benchmarks/naive_app.py`) and
   hello-world (`loadtest/hello_app.py`), each with BENCH_WORKERS server processes.
2. drain: writer rows/s from pre-filled streams into PostgreSQL, next to COPY of the same rows.
3. season: the whole roster's registrations, open loop at examreg's max rate, from an empty queue
   to all persisted; the driver's ledger of acknowledged receipts is checked against the history.
4. growth: the drain again with 5 M versions in the history; accept p99 at 50% and 90% of max.
5. spike: twice the max rate for 60 s; shed share, p99 of admitted requests, time to drain.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import redis

from benchmarks import naive_app, nation, report
from engine.adapters import streams
from engine.adapters.embedded import EmbeddedServices

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PASSWORD = "Load-test-2026"  # noqa: S105 - LOAD TESTS ONLY: one shared hash for the whole synthetic roster


@dataclass(frozen=True)
class Config:
    """Sizes and durations; BENCH_SCALE multiplies the volumes, not the durations.

    BENCH_STEP_SECONDS (7) and BENCH_SPIKE_SECONDS (60) shorten rehearsals; BENCH_WORKERS (2) and
    BENCH_WRITERS (1) set the process counts.
    """

    out: Path
    scale: float
    candidates: int
    drain_entries: int
    history_target: int
    workers: int
    writers: int
    shards: int
    step_seconds: float
    growth_seconds: float
    spike_seconds: float
    bisections: int

    @classmethod
    def from_env(cls) -> Config:
        scale = float(os.environ.get("BENCH_SCALE", "1"))
        if not 0 < scale <= 1:
            raise SystemExit("BENCH_SCALE must be in (0, 1]")
        return cls(
            out=Path(os.environ.get("BENCH_OUT", "bench")).resolve(),
            scale=scale,
            candidates=max(2000, int(1_200_000 * scale)),
            drain_entries=max(5000, int(100_000 * scale)),
            history_target=max(10_000, int(5_000_000 * scale)),
            workers=int(os.environ.get("BENCH_WORKERS", "2")),
            writers=int(os.environ.get("BENCH_WRITERS", "1")),
            shards=8,
            step_seconds=float(os.environ.get("BENCH_STEP_SECONDS", "7")),
            growth_seconds=15.0,
            spike_seconds=float(os.environ.get("BENCH_SPIKE_SECONDS", "60")),
            bisections=2,
        )


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class Processes:
    """What the benchmark started, each in its own process group, stopped by its own id."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        with (self.logs / f"{name}.log").open("ab") as out:
            self.running[name] = subprocess.Popen(
                argv,
                env=env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self, name: str, timeout: float = 30) -> None:
        proc = self.running.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def stop_all(self) -> None:
        for name in list(self.running):
            self.stop(name)


def wait_http(url: str, method: str = "GET", timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            request = urllib.request.Request(url, method=method)  # noqa: S310 - loopback
            with urllib.request.urlopen(request, timeout=2):  # noqa: S310 - loopback
                return
        except urllib.error.HTTPError:
            return  # it answered
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")


def stream_backlog(client: redis.Redis, shards: int) -> int:
    """Entries in every shard's stream (not yet trimmed after COMMIT): one round trip."""
    pipe = client.pipeline(transaction=False)
    for shard in range(shards):
        pipe.xlen(streams.stream_key(shard))
    return sum(pipe.execute())


class Sampler(threading.Thread):
    """Stream backlog (entries not yet trimmed) and Redis memory every 0.5 s, with their peaks."""

    def __init__(self, redis_url: str, shards: int) -> None:
        super().__init__(daemon=True)
        self.client = redis.Redis.from_url(redis_url)
        self.shards = shards
        self.stop_event = threading.Event()
        self.peak_backlog = 0
        self.peak_memory = 0
        self.series: list[tuple[float, int, int]] = []

    def sample(self) -> tuple[int, int]:
        backlog = stream_backlog(self.client, self.shards)
        memory = int(self.client.info("memory")["used_memory"])
        return backlog, memory

    def run(self) -> None:
        while not self.stop_event.is_set():
            backlog, memory = self.sample()
            self.peak_backlog = max(self.peak_backlog, backlog)
            self.peak_memory = max(self.peak_memory, memory)
            self.series.append((time.time(), backlog, memory))
            self.stop_event.wait(0.5)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(5)
        self.client.close()


class Bench:
    """One run: setup, the five figures, teardown; `results` becomes results.json."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.work = Path(tempfile.mkdtemp(prefix="examreg-bench-"))
        (self.work / "logs").mkdir()
        self.procs = Processes(self.work / "logs")
        self.services = EmbeddedServices(self.work / "services", redis_maxmemory="6gb")
        self.results: dict[str, Any] = {"config": {**asdict(config), "out": str(config.out)}}
        self.started = time.monotonic()
        self.env: dict[str, str] = {}
        self.max_rate = 0.0
        self.step_count = 0
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
            self._redis = redis.Redis.from_url(self.env["EXAMREG_REDIS_URL"])
        return stream_backlog(self._redis, self.config.shards)

    def wait_drained(self, timeout: float) -> float:
        """Seconds until every stream is empty (trimmed after COMMIT); raises past `timeout`."""
        started = time.monotonic()
        while self.backlog():
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"the streams did not drain within {timeout:.0f}s")
            time.sleep(0.1)
        return time.monotonic() - started

    def drive(
        self, port: int, path: str, rate: float, duration: float, **extra: Any
    ) -> dict[str, Any]:
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
        subprocess.run(argv, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, timeout=limit)
        result: dict[str, Any] = json.loads(out.read_text())
        return result

    def start_examreg(self) -> None:
        self.procs.start(
            "examreg-api",
            [
                str(BIN / "examreg"),
                "serve",
                "--workers",
                str(self.config.workers),
                "--port",
                "18500",
            ],
            self.env,
        )
        self.start_writer()
        wait_http("http://127.0.0.1:18500/readyz")

    def start_writer(self) -> None:
        self.procs.start(
            "writer",
            [str(BIN / "examreg"), "writer", "--processes", str(self.config.writers)],
            self.env,
        )

    def stop_examreg(self) -> None:
        self.procs.stop("examreg-api")
        self.procs.stop("writer")

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

        nonce = os.urandom(8).hex() + "x"  # tokens are <nonce><candidate_id>

        async def prepare() -> None:
            self.rows = await nation.candidates(dsn)
            self.catalog = await nation.catalog(dsn)
            self.forms = nation.templates(self.rows, self.catalog)
            nation.check_templates(self.forms, self.rows, self.catalog)
            await nation.mint_sessions(redis_url, self.rows, nonce)

        started = time.monotonic()
        asyncio.run(prepare())
        nation.write_driver_data(self.work / "driver.tsv", self.rows, nonce, self.forms)
        self.results["sessions_seconds"] = round(time.monotonic() - started, 1)
        log(f"minted {len(self.rows):,} sessions in Redis in {self.results['sessions_seconds']}s")
        self.settle()

    def settle(self) -> None:
        seconds = asyncio.run(
            nation.settle(self.env["EXAMREG_DATABASE_URL"], self.env["EXAMREG_REDIS_URL"])
        )
        self.results.setdefault("settle_seconds", []).append(round(seconds, 1))
        log(f"settled (VACUUM ANALYZE, CHECKPOINT, AOF rewrite) in {seconds:.1f}s")

    # -- 2 and 4: drain ------------------------------------------------------------------------

    def drain(self, label: str) -> dict[str, Any]:
        """Writer rows/s from pre-filled streams, and COPY of the same rows (no writer running)."""
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
        self.start_writer()
        # Timed from the first entry the writer takes to the last trimmed (after COMMIT): the
        # writer's own start-up (imports, connections) is not drain time.
        deadline = time.monotonic() + 600
        while self.backlog() >= count and time.monotonic() < deadline:
            time.sleep(0.02)
        remaining = self.backlog()  # the first batch is already committed: count from here
        seconds = self.wait_drained(600)
        self.procs.stop("writer")
        after = asyncio.run(nation.count_rows(dsn, "SELECT count(*) FROM registration_versions"))
        copy_seconds = asyncio.run(nation.copy_ceiling(dsn, records))
        result = {
            "entries": count,
            "existing_versions": before,
            "persisted": after - before,
            "writer_seconds": round(seconds, 2),
            "writer_rows_per_s": round(remaining / max(seconds, 1e-9)),
            "copy_seconds": round(copy_seconds, 2),
            "copy_rows_per_s": round(len(records) / max(copy_seconds, 1e-9)),
            "enqueue_per_s": round(count / enqueue_seconds),
            "writers": self.config.writers,
        }
        result["writer_to_copy"] = round(result["writer_rows_per_s"] / result["copy_rows_per_s"], 3)
        log(f"drain ({label}): {result}")
        return result

    # -- 1: accept -----------------------------------------------------------------------------

    def passes(self, step: dict[str, Any]) -> bool:
        answered = step["answered"]
        return bool(
            step["p99_ms"] < 100
            and step["unfinished"] == 0
            and step["errors"] == 0
            and answered == step["scheduled"]
            and step["ok"] >= 0.999 * answered
            and step["achieved_rate"] >= 0.97 * step["target_rate"]
        )

    def step(self, port: int, path: str, rate: float) -> dict[str, Any]:
        if port == 18500:
            self.wait_drained(120)  # each step starts from an empty queue
        result = self.drive(port, path, rate, self.config.step_seconds, warmup=2, grace=10)
        result["pass"] = self.passes(result)
        log(
            f"  {rate:8.0f}/s  p99 {result['p99_ms']:8.1f} ms"
            f"  ok {result['ok']}/{result['scheduled']}"
            f"  send lag p99 {result['send_lag_p99_ms']} ms  {'pass' if result['pass'] else 'FAIL'}"
        )
        return result

    def search(self, port: int, path: str, start: float) -> dict[str, Any]:
        """Max rate whose step passes: ×1.5 until a step fails twice, then bisect."""
        steps: list[dict[str, Any]] = []
        good: dict[str, Any] | None = None
        bad_rate = 0.0
        rate = start
        for _ in range(14):
            result = self.step(port, path, rate)
            steps.append(result)
            if not result["pass"]:  # one retry: a neighbour's test run may have stolen the step
                result = self.step(port, path, rate)
                steps.append(result)
            if not result["pass"]:
                bad_rate = rate
                break
            good = result
            rate *= 1.5
        low = good["target_rate"] if good else 0.0
        high = bad_rate or rate
        for _ in range(self.config.bisections if bad_rate else 0):
            middle = (low + high) / 2
            result = self.step(port, path, middle)
            steps.append(result)
            if result["pass"]:
                low, good = middle, result
            else:
                high = middle
        failing = [s for s in steps if not s["pass"]]
        return {
            "first_failure": _why(failing[0]) if failing else None,
            "max_rate": round(low),
            "at_max": good,
            "first_failing_rate": round(high),
            "steps": [
                {
                    k: s[k]
                    for k in (
                        "target_rate",
                        "p99_ms",
                        "ok",
                        "scheduled",
                        "statuses",
                        "errors",
                        "unfinished",
                        "send_lag_p99_ms",
                        "dispatch_lag_max_ms",
                        "pass",
                    )
                }
                for s in steps
            ],
        }

    def accept(self) -> None:
        workers = str(self.config.workers)
        uvicorn = [
            str(BIN / "uvicorn"), "--loop", "uvloop", "--http", "httptools", "--workers", workers,
            "--no-access-log", "--log-level", "warning", "--host", "127.0.0.1",
        ]  # fmt: skip
        accept: dict[str, Any] = {}
        log("accept: examreg (serve + writer draining)")
        self.settle()
        self.start_examreg()
        self.drive(18500, "/api/v1/me/registration", 200, 3, warmup=1)  # warm-up, not reported
        accept["examreg"] = self.search(18500, "/api/v1/me/registration", 600)
        self.stop_examreg()
        self.wait_drained_with_writer()
        self.settle()
        log("accept: naive baseline (INSERT … ON CONFLICT per request)")
        self.procs.start(
            "naive", [*uvicorn, "--port", "18501", "benchmarks.naive_app:app"], self.env
        )
        wait_http("http://127.0.0.1:18501/")
        self.drive(18501, "/api/v1/me/registration", 200, 3, warmup=1)
        accept["naive"] = self.search(18501, "/api/v1/me/registration", 450)
        self.procs.stop("naive")
        self.settle()
        log("accept: hello-world")
        self.procs.start("hello", [*uvicorn, "--port", "18502", "loadtest.hello_app:app"], self.env)
        wait_http("http://127.0.0.1:18502/hello")
        self.drive(18502, "/hello", 500, 3, warmup=1)
        accept["hello"] = self.search(18502, "/hello", 4000)
        accept["hello_wrk_closed_loop"] = self.wrk_hello()
        self.procs.stop("hello")
        self.max_rate = float(accept["examreg"]["max_rate"])
        self.results["accept"] = accept

    def wrk_hello(self) -> dict[str, Any] | None:
        """For reference only: wrk (C, closed loop, 64 connections) on the same hello-world."""
        if shutil.which("wrk") is None:
            return None
        out = subprocess.run(
            ["wrk", "-t2", "-c64", "-d6s", "--latency", "http://127.0.0.1:18502/hello"],
            capture_output=True, text=True, timeout=60, check=False,
        ).stdout  # fmt: skip
        rate = next((line.split()[1] for line in out.splitlines() if "Requests/sec" in line), "0")
        return {"requests_per_s": round(float(rate))}

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
        growth["drain_at_target"] = self.drain("grown")
        self.settle()
        self.start_examreg()
        for share in (0.5, 0.9):
            result = self.drive(
                18500, "/api/v1/me/registration", self.max_rate * share, self.config.growth_seconds,
                warmup=3, grace=15,
            )  # fmt: skip
            growth[f"accept_at_{int(share * 100)}pct"] = {
                k: result[k]
                for k in ("target_rate", "achieved_rate", "p50_ms", "p99_ms", "ok", "scheduled")
            }
            log(f"growth: accept at {share:.0%}: p99 {result['p99_ms']} ms")
        self.results["growth"] = growth

    # -- 5: spike ------------------------------------------------------------------------------

    def spike(self) -> None:
        rate = 2 * self.max_rate
        seconds = self.config.spike_seconds
        log(f"spike: {rate:.0f}/s (2× max) for {seconds:.0f}s")
        self.wait_drained(300)
        self.settle()
        result = self.drive(
            18500, "/api/v1/me/registration", rate, seconds, warmup=0, grace=180, give_up=10,
            connections=1024,
        )  # fmt: skip
        end = result["t0_epoch"] + seconds
        self.wait_drained(600)
        drained = time.time()
        scheduled = result["scheduled"]
        self.results["spike"] = {
            "rate": round(rate),
            "seconds": seconds,
            "offered": scheduled,
            "admitted": result["ok"],
            "shed": result["shed"],
            "shed_share": round(result["shed"] / scheduled, 4),
            "abandoned_share": round(result["abandoned"] / scheduled, 4),
            "unfinished": result["unfinished"],
            "errors": result["errors"],
            "statuses": result["statuses"],
            "codes": result.get("codes", {}),
            "admitted_p99_ms": result["admitted_p99_ms"],
            "service_p99_ms": result["service_p99_ms"],
            "send_lag_p99_ms": result["send_lag_p99_ms"],
            "driver_cpu_seconds": result["driver_cpu_seconds"],
            "answers_done_after_s": result["last_answer_after_schedule_s"],
            "queue_drained_after_s": round(max(0.0, drained - end), 1),
        }
        log(f"spike: {self.results['spike']}")

    # -- run -----------------------------------------------------------------------------------

    def run(self) -> int:
        self.results["machine"] = machine_state("before")
        phases = (
            ("setup", self.setup),
            ("drain", lambda: self.results.__setitem__("drain", self.drain("empty"))),
            ("accept", self.accept),
            ("season", self.season),
            ("growth", self.growth),
            ("spike", self.spike),
        )
        timings: dict[str, float] = {}
        try:
            for name, phase in phases:
                started = time.monotonic()
                phase()
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
            self.config.out.mkdir(parents=True, exist_ok=True)
            (self.config.out / "results.json").write_text(json.dumps(self.results, indent=1))
            (self.config.out / "results.md").write_text(report.render(self.results))
            shutil.rmtree(self.work, ignore_errors=True)
        log(f"wrote {self.config.out}/results.md and results.json")
        return 0


def machine_state(when: str) -> dict[str, Any]:
    load = os.getloadavg()
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")), platform.processor(),
    )  # fmt: skip
    return {
        "when": when,
        "at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "cores": os.cpu_count(),
        "cpu": cpu,
        "load_average": [round(x, 2) for x in load],
        "python": platform.python_version(),
    }


def _why(step: dict[str, Any]) -> str:
    """Why a step failed, in a few words for the table."""
    reasons = [f"p99 {step['p99_ms']:,.0f} ms"] if step["p99_ms"] >= 100 else []
    refused = {s: n for s, n in step["statuses"].items() if not s.startswith("2")}
    reasons += [f"{n:,}× HTTP {s}" for s, n in refused.items()]
    if step["unfinished"] or step["errors"]:
        reasons.append(f"{step['unfinished'] + step['errors']:,} unanswered")
    if step["achieved_rate"] < 0.97 * step["target_rate"]:
        reasons.append(f"achieved {step['achieved_rate']:,.0f}/s")
    return f"at {step['target_rate']:,.0f}/s: " + ", ".join(reasons or ["?"])


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through Bench.run's cleanup


def main() -> int:
    signal.signal(signal.SIGTERM, _terminate)
    config = Config.from_env()
    log(f"examreg bench: scale {config.scale}, results in {config.out}")
    return Bench(config).run()


if __name__ == "__main__":
    sys.exit(main())
