"""Faults survived: a Valkey restart, a full or cold pool, a restart of the embedded servers.

After Valkey restarts, every connection in a pool is stale; each must be replaced on its next use
and the command sent again, not fail one request with 503. A burst that needs more connections
than the pool holds waits for one instead of failing with "Too many connections", and an API
process opens its connections at start, not during its first burst. And
`examreg services start` after a stop brings the servers back on the ports they had, although the
old connections are still in TIME_WAIT, so the running API and writers find them again.
"""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from engine.adapters import streams
from engine.adapters.embedded import EmbeddedServices
from engine.runtime import cli
from engine.services import container
from tests.conftest import Harness, Servers, make_harness
from tests.support import drain, form_for

pytestmark = pytest.mark.anyio


async def test_a_full_redis_pool_makes_commands_wait_instead_of_failing(redis_url: str) -> None:
    client = streams.connect(redis_url, timeout=5, max_connections=2)
    try:
        started = time.monotonic()
        # Five commands that each hold their connection for 0.2 s, on a pool of two.
        results = await asyncio.gather(*(client.blpop([f"nothing-{i}"], 0.2) for i in range(5)))
        assert results == [None] * 5
        assert time.monotonic() - started >= 0.4  # they queued for the two connections
    finally:
        await client.aclose()


async def test_an_api_process_opens_its_connections_before_the_first_burst(
    settings: Any, redis_url: str
) -> None:
    probe = streams.connect(redis_url)
    try:
        before = int((await probe.info("clients"))["connected_clients"])
        async for harness in make_harness(settings):
            pool = harness.services.pool
            assert (pool.get_size(), pool.get_idle_size()) == (settings.db_pool_size,) * 2
            opened = int((await probe.info("clients"))["connected_clients"]) - before
            # A burst's worth, opened before the first request (not the gate's whole ceiling).
            assert opened >= min(settings.max_inflight_requests, container.PREWARMED)
    finally:
        await probe.aclose()


async def test_after_a_valkey_restart_the_next_requests_succeed(
    servers: Servers, harness: Harness, roster: list[dict[str, Any]], pool: Any, aredis: Any
) -> None:
    if servers.embedded is None:
        pytest.skip("restarting Valkey needs the embedded servers (EXAMREG_REDIS_URL is external)")
    endpoints = servers.embedded.endpoints()
    assert endpoints is not None
    candidate = roster[0]
    auth = await harness.login(candidate)
    warm = await asyncio.gather(*(harness.client.get("/api/v1/me", headers=auth) for _ in range(8)))
    assert {r.status_code for r in warm} == {200}  # the pool now holds several connections

    await asyncio.to_thread(servers.embedded.stop_redis)
    await asyncio.to_thread(servers.embedded.start_redis, endpoints.redis_port)

    # Every pooled connection is stale now: none of them may cost a request.
    for _ in range(3):
        assert (await harness.client.get("/api/v1/me", headers=auth)).status_code == 200
    burst = await asyncio.gather(
        *(harness.client.get("/api/v1/me", headers=auth) for _ in range(16))
    )
    assert [r.status_code for r in burst] == [200] * 16
    put = await harness.client.put(
        "/api/v1/me/registration",
        json=form_for(candidate),
        headers={**auth, "Idempotency-Key": "after-restart"},
    )
    assert put.status_code == 202, put.text
    assert put.headers.get("Idempotent-Replayed") is None
    await drain(harness.settings, pool, aredis)
    receipt = await harness.client.get(
        f"/api/v1/me/receipts/{put.json()['receipt_id']}", headers=auth
    )
    assert receipt.json()["status"] == "persisted"


@pytest.mark.slow
def test_services_start_after_a_stop_keeps_the_ports_and_says_when_one_was_taken(
    server_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = str(server_dir / "services")
    said: list[str] = []

    def start() -> dict[str, str]:
        assert cli.main(["services", "start", "--data-dir", data_dir]) == 0
        out, err = capsys.readouterr()
        said.append(err)
        return dict(line.split("=", 1) for line in out.splitlines() if line.startswith("EXAMREG_"))

    urls = start()
    try:

        async def use(client: Any) -> None:  # a new PostgreSQL connection, the kept Redis client
            conn = await asyncpg.connect(urls["EXAMREG_DATABASE_URL"])
            try:
                assert await conn.fetchval("SELECT 1") == 1
            finally:
                await conn.close()
            assert await client.ping()

        async def scenario() -> None:
            client = streams.connect(urls["EXAMREG_REDIS_URL"], timeout=5)
            try:
                await use(client)
                # The servers close their clients' connections: those sockets linger in
                # TIME_WAIT on the servers' ports.
                assert cli.main(["services", "stop", "--data-dir", data_dir]) == 0
                assert start() == urls, "a restart must keep the ports"
                await use(client)  # the same client finds the server again
            finally:
                await client.aclose()

        asyncio.run(scenario())
        assert said == ["", ""]

        # Another program took the Valkey port meanwhile: the servers move, and say so.
        assert cli.main(["services", "stop", "--data-dir", data_dir]) == 0
        redis_port = int(urls["EXAMREG_REDIS_URL"].rsplit(":", 1)[1].split("/")[0])
        with socket.socket() as squatter:
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            squatter.bind(("127.0.0.1", redis_port))
            squatter.listen()
            moved = start()
        assert moved["EXAMREG_DATABASE_URL"] == urls["EXAMREG_DATABASE_URL"]
        assert moved["EXAMREG_REDIS_URL"] != urls["EXAMREG_REDIS_URL"]
        assert "restart the API and writers" in said[-1]
    finally:
        EmbeddedServices(Path(data_dir)).destroy()
