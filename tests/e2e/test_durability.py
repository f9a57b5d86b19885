"""Nothing acknowledged is lost or duplicated: the writer is SIGKILLed and Valkey crashes mid-load.

Real processes: `examreg serve` and `examreg writer` (each under its supervisor) against the test
servers. Clients behave like browsers that retry with the same Idempotency-Key until they get an
answer. Afterwards every acknowledged receipt has exactly one history row, nothing is half-written,
and the streams are empty once drained.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
import pytest
import redis

from engine.adapters import streams
from tests.conftest import Servers
from tests.support import TEST_PASSWORD, form_for

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

EDITS_PER_CANDIDATE = 6


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def stack(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """API (1 worker) and writer (1 process) as real supervised process trees."""
    port = _free_port()
    env = {
        **os.environ,
        "EXAMREG_DATABASE_URL": database_url,
        "EXAMREG_REDIS_URL": redis_url,
        "EXAMREG_DATA_DIR": str(tmp_path),
        "EXAMREG_WRITER_CLAIM_IDLE_MS": "1000",
        "EXAMREG_WRITER_BLOCK_MS": "200",
        "EXAMREG_IO_TIMEOUT_SECONDS": "2",
        "EXAMREG_LOG_LEVEL": "warning",
    }
    logs = tmp_path / "logs"
    logs.mkdir()
    api_log = (logs / "api.log").open("w")
    writer_log = (logs / "writer.log").open("w")
    api = subprocess.Popen(
        [sys.executable, "-m", "engine", "serve", "--workers", "1", "--port", str(port)],
        env=env,
        stdout=api_log,
        stderr=subprocess.STDOUT,
    )
    writer = subprocess.Popen(
        [sys.executable, "-m", "engine", "writer", "--processes", "1"],
        env=env,
        stdout=writer_log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield {"base_url": f"http://127.0.0.1:{port}", "writer": writer, "logs": logs}
    finally:
        for proc in (api, writer):
            proc.send_signal(signal.SIGTERM)
        for proc in (api, writer):
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        api_log.close()
        writer_log.close()


async def _wait_ready(client: httpx.AsyncClient) -> None:
    async with asyncio.timeout(60):
        while True:
            try:
                if (await client.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)


async def _candidate_session(
    client: httpx.AsyncClient, candidate: dict[str, Any], ledger: dict[str, Any]
) -> None:
    """Log in and submit edits, retrying each with its own key until acknowledged."""
    token = None
    for i in range(EDITS_PER_CANDIDATE):
        key = f"{candidate['candidate_id']}-{i}"
        ledger["keys"].add((candidate["candidate_id"], key))
        for _attempt in range(200):
            try:
                if token is None:
                    login = await client.post(
                        "/api/v1/auth/login",
                        json={"login": candidate["national_id"], "password": TEST_PASSWORD},
                    )
                    if login.status_code != 200:
                        await asyncio.sleep(0.1)
                        continue
                    token = login.json()["token"]
                response = await client.put(
                    "/api/v1/me/registration",
                    json=form_for(candidate, seed=i),
                    headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key},
                )
            except httpx.TransportError:
                await asyncio.sleep(0.1)
                continue
            if response.status_code == 202:
                ledger["acked"].append(
                    (candidate["candidate_id"], key, response.json()["receipt_id"])
                )
                break
            if response.status_code == 401:
                token = None  # the session store was briefly unreachable
            assert response.status_code in (401, 503), response.text
            await asyncio.sleep(0.1)
        else:
            pytest.fail(f"submission {key} was never acknowledged")
        await asyncio.sleep(0.05)


async def _metric(client: httpx.AsyncClient, name: str) -> float:
    text = (await client.get("/metrics")).text
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")]
    assert values, f"{name} missing from /metrics"
    return values[0]


async def _wait_for_metric(client: httpx.AsyncClient, name: str, within: float = 60) -> float:
    """The metric's value once it is above zero (slow machines take longer to get there)."""
    async with asyncio.timeout(within):
        while (value := await _metric(client, name)) <= 0:
            await asyncio.sleep(0.1)
    return value


def _writer_child(writer: subprocess.Popen[bytes]) -> psutil.Process:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        children = psutil.Process(writer.pid).children()
        if children:
            return children[0]
        time.sleep(0.1)
    raise AssertionError("the writer supervisor has no child")


async def test_no_acknowledged_submission_is_lost_or_duplicated_through_crashes(
    servers: Servers,
    stack: dict[str, Any],
    roster: list[dict[str, Any]],
    database_url: str,
    redis_url: str,
) -> None:
    if servers.embedded is None:
        pytest.skip("restarting Redis needs the embedded servers (EXAMREG_REDIS_URL is external)")
    ledger: dict[str, Any] = {"acked": [], "keys": set()}
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(base_url=stack["base_url"], timeout=10, limits=limits) as client:
        await _wait_ready(client)
        load = asyncio.gather(*(_candidate_session(client, c, ledger) for c in roster))

        # 1. Kill the writer process with SIGKILL while it works (once it has persisted
        # something, however slow the machine); its supervisor restarts it.
        persisted_before_kill = await _wait_for_metric(
            client, "examreg_writer_rows_persisted_total"
        )
        victim = _writer_child(stack["writer"])
        victim.send_signal(signal.SIGKILL)
        killed_writer_after = len(ledger["acked"])

        # 2. Crash Valkey (SIGKILL) and start it again from its append-only file, once more
        # submissions were acknowledged after the writer's death.
        async with asyncio.timeout(60):
            while len(ledger["acked"]) <= killed_writer_after:
                await asyncio.sleep(0.1)
        acked_before_crash = list(ledger["acked"])
        endpoints = servers.embedded.endpoints()
        assert endpoints is not None
        await asyncio.to_thread(servers.embedded.kill_redis)
        await asyncio.sleep(0.5)
        await asyncio.to_thread(servers.embedded.start_redis, endpoints.redis_port)

        await load
        # The API serves the writers' counters too (multiprocess mode); the killed writer's
        # count is kept, so the total never goes backwards across its restart.
        await asyncio.sleep(1.0)
        persisted_after = await _metric(client, "examreg_writer_rows_persisted_total")
        assert persisted_before_kill > 0
        assert persisted_after >= persisted_before_kill

    assert killed_writer_after > 0 and len(acked_before_crash) > 0, "the crashes came too late"
    assert _writer_child(stack["writer"]).pid != victim.pid, "the writer was not restarted"

    # Drain: the restarted writer empties every shard.
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            lengths = [client.xlen(streams.stream_key(s)) for s in range(8)]
            if not any(lengths):
                break
            assert time.monotonic() < deadline, f"streams not drained: {lengths}"
            await asyncio.sleep(0.2)
        dead = sum(client.xlen(streams.dead_key(s)) for s in range(8))
        # No receipt answers `queued` once its entry is gone: the killed writer left no marker.
        queued = [
            (key, field)
            for key in client.scan_iter(match="examreg:*:cand:*", count=500)
            for field in client.hscan_iter(key, match="rcpt:*")
        ]
    finally:
        client.close()
    assert dead == 0
    assert queued == []

    conn = await asyncpg.connect(database_url)
    try:
        history = await conn.fetch(
            "SELECT candidate_id, idempotency_key, receipt_id, version FROM registration_versions"
        )
        current = {
            r["candidate_id"]: r["version"]
            for r in await conn.fetch("SELECT candidate_id, version FROM registrations")
        }
    finally:
        await conn.close()

    by_receipt = {}
    for row in history:
        by_receipt.setdefault(row["receipt_id"], []).append(row)
    # Every acknowledged receipt has exactly one history row, those acked before the crash too.
    for candidate_id, key, receipt_id in ledger["acked"]:
        rows = by_receipt.get(receipt_id, [])
        assert len(rows) == 1, f"receipt {receipt_id} has {len(rows)} rows"
        assert (rows[0]["candidate_id"], rows[0]["idempotency_key"]) == (candidate_id, key)
    # One row per request, and none that no client sent.
    keys = [(r["candidate_id"], r["idempotency_key"]) for r in history]
    assert len(keys) == len(set(keys))
    assert set(keys) <= ledger["keys"]
    assert len(ledger["acked"]) == len(roster) * EDITS_PER_CANDIDATE
    # Nothing half-written: the current row is each candidate's newest history row.
    newest: dict[int, int] = {}
    for row in history:
        newest[row["candidate_id"]] = max(newest.get(row["candidate_id"], 0), row["version"])
    assert current == newest
    assert all(v == EDITS_PER_CANDIDATE for v in current.values())
