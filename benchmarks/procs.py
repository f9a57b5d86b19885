"""The benchmark's plumbing: the processes it starts, readiness, the stream backlog, the machine.

Owns what `make bench` starts (each in its own process group, stopped by its own id, never by
name) and the small probes the phases poll. It measures nothing itself.
"""

from __future__ import annotations

import os
import platform
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import redis

from engine.adapters import streams

ROOT = Path(__file__).resolve().parent.parent


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

    def pid(self, name: str) -> int:
        return self.running[name].pid

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


def pid_file(path: Path) -> int:
    """The pid on the first line of a pid file (valkey.pid, postmaster.pid)."""
    return int(path.read_text().splitlines()[0].strip())


def stream_backlog(client: redis.Redis, shards: int) -> int:
    """Entries in every shard's stream (not yet trimmed after COMMIT): one round trip."""
    pipe = client.pipeline(transaction=False)
    for shard in range(shards):
        pipe.xlen(streams.stream_key(shard))
    return sum(pipe.execute())


def stream_unsettled(client: redis.Redis, shards: int) -> int:
    """Entries not yet persisted and acknowledged (never delivered plus pending), every shard:
    one round trip. A shard whose group does not exist yet counts its whole stream."""
    pipe = client.pipeline(transaction=False)
    for shard in range(shards):
        pipe.xlen(streams.stream_key(shard))
        pipe.xinfo_groups(streams.stream_key(shard))
    results = pipe.execute(raise_on_error=False)
    total = 0
    for length, groups in zip(results[::2], results[1::2], strict=True):
        group = None
        if not isinstance(groups, BaseException):
            group = next((g for g in groups if g["name"] == streams.GROUP), None)
        if group is None or group.get("lag") is None:
            total += int(length)
        else:
            total += int(group["lag"]) + int(group["pending"])
    return total


class Sampler(threading.Thread):
    """Stream backlog (entries not yet trimmed) and Redis memory every 0.5 s, with their peaks."""

    def __init__(self, redis_url: str, shards: int) -> None:
        super().__init__(daemon=True)
        self.client = redis.Redis.from_url(redis_url, socket_timeout=10)
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
