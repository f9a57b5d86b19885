"""Slow sink and memory wall: PostgreSQL frozen (SIGSTOP), Valkey near `maxmemory`.

Both run against a PostgreSQL and a Valkey of this module's own (never the session's servers,
which other tests share). With PostgreSQL stopped the API keeps acknowledging until the shard's
backlog limit, then answers 503 `overloaded` with `Retry-After`, and after SIGCONT the writer
persists every acknowledged submission. With Valkey filling up, the API sheds with 503 before
Valkey itself refuses a write (Valkey counts no OOM error), and accepts again once memory falls.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
import pytest
import redis

from engine.adapters import store, streams
from engine.adapters.embedded import EmbeddedServices, Endpoints
from engine.errors import Overloaded
from engine.runtime.writer import run_writer
from engine.settings import Settings
from tests.conftest import Harness, make_harness
from tests.support import LONG_TESTS, TEST_PASSWORD, build_roster_rows, drain, form_for

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(900 if LONG_TESTS else 120)]

BACKLOG_LIMIT = 400 if LONG_TESTS else 24
SUBMITTERS = 4
IO_TIMEOUT = 1.0


@dataclass
class Own:
    """This module's own servers, and the roster loaded into its database."""

    services: EmbeddedServices
    endpoints: Endpoints
    roster: list[dict[str, Any]]

    def postgres_processes(self) -> list[psutil.Process]:
        pid = int((self.services.pg_dir / "postmaster.pid").read_text().splitlines()[0])
        postmaster = psutil.Process(pid)
        return [postmaster, *postmaster.children(recursive=True)]

    @contextlib.contextmanager
    def postgres_frozen(self) -> Iterator[None]:
        """SIGSTOP every PostgreSQL process (the backends too), SIGCONT on the way out."""
        frozen = self.postgres_processes()
        for process in frozen:
            # A short-lived backend or worker may be gone already; a stopped postmaster forks
            # no new one.
            with contextlib.suppress(psutil.NoSuchProcess):
                process.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            for process in frozen:
                with contextlib.suppress(psutil.NoSuchProcess):
                    process.send_signal(signal.SIGCONT)


async def _load_roster(database_url: str) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(database_url)
    try:
        await store.migrate(conn)
        rows, roster = build_roster_rows()
        ids = await store.insert_candidates(conn, rows)
    finally:
        await conn.close()
    return [{**entry, "candidate_id": ids[entry["national_id"]]} for entry in roster]


@pytest.fixture(scope="module")
def own(server_dirs: Path) -> Iterator[Own]:
    services = EmbeddedServices(server_dirs / "slow-sink", redis_maxmemory="256mb")
    endpoints = services.start()
    try:
        yield Own(services, endpoints, asyncio.run(_load_roster(endpoints.database_url)))
    finally:
        services.destroy()


@pytest.fixture
async def own_state(own: Own) -> AsyncIterator[Own]:
    """Empty streams and tables, Valkey's maxmemory and error counters as configured."""
    client = redis.Redis(port=own.endpoints.redis_port)
    client.flushall()
    client.config_set("maxmemory", "256mb")
    client.config_resetstat()
    client.close()
    conn = await asyncpg.connect(own.endpoints.database_url)
    try:
        await conn.execute("TRUNCATE registrations, registration_versions, unit_reviews")
    finally:
        await conn.close()
    return own


def _own_settings(settings: Settings, own: Own, **changes: Any) -> Settings:
    return replace(
        settings,
        database_url=own.endpoints.database_url,
        redis_url=own.endpoints.redis_url,
        stream_shards=1,  # one shard: its backlog limit is the whole queue's
        io_timeout_seconds=IO_TIMEOUT,
        **changes,
    )


async def _login(harness: Harness, candidate: dict[str, Any]) -> dict[str, str]:
    response = await harness.client.post(
        "/api/v1/auth/login", json={"login": candidate["national_id"], "password": TEST_PASSWORD}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


class Submitters:
    """A few candidates editing again and again, each edit with a fresh key; a ledger of 202s."""

    def __init__(self, harness: Harness, candidates: list[dict[str, Any]]) -> None:
        self.harness = harness
        self.candidates = candidates
        self.auth: list[dict[str, str]] = []
        self.acked: dict[str, str] = {}  # receipt → key
        self.requests: dict[str, tuple[int, int]] = {}  # key → (candidate index, form seed)
        self.sent = 0

    async def login(self) -> Submitters:
        self.auth = [await _login(self.harness, c) for c in self.candidates]
        return self

    async def put(self, i: int, key: str | None = None, seed: int | None = None) -> httpx.Response:
        """One edit by candidate i % n: a fresh key and form unless given."""
        self.sent += 1
        n = i % len(self.candidates)
        key = key or f"e{self.sent}"
        seed = self.sent % 50 if seed is None else seed
        started = time.monotonic()
        response = await self.harness.client.put(
            "/api/v1/me/registration",
            json=form_for(self.candidates[n], seed=seed),
            headers={**self.auth[n], "Idempotency-Key": key},
        )
        assert time.monotonic() - started < 5, "an acknowledgement waited on the stuck sink"
        assert response.status_code in (202, 503), response.text
        if response.status_code == 202:
            self.acked[response.json()["receipt_id"]] = key
            self.requests[key] = (n, seed)
        return response

    async def until_refused(self, limit: int) -> tuple[int, httpx.Response]:
        """Edits, SUBMITTERS at a time, until the first 503; (202s before it, the 503)."""
        accepted = 0
        for wave in range(limit):
            responses = await asyncio.gather(
                *(self.put(wave * SUBMITTERS + j) for j in range(SUBMITTERS))
            )
            accepted += sum(r.status_code == 202 for r in responses)
            refused = [r for r in responses if r.status_code == 503]
            if refused:
                return accepted, refused[0]
        raise AssertionError(f"{accepted} accepted and never a 503")


def assert_overloaded(response: httpx.Response, reason: str) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "overloaded" and body["reason"] == reason, body
    assert int(response.headers["Retry-After"]) >= 1


async def _history(database_url: str) -> dict[str, str]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT receipt_id, idempotency_key FROM registration_versions")
    finally:
        await conn.close()
    return {r["receipt_id"]: r["idempotency_key"] for r in rows}


async def test_with_postgres_frozen_accepts_go_on_to_the_backlog_limit_and_nothing_is_lost(
    settings: Settings, own_state: Own
) -> None:
    own = own_state
    app_settings = _own_settings(settings, own, max_backlog_per_shard=BACKLOG_LIMIT)
    assert app_settings.database_url and app_settings.redis_url
    pool = await store.create_pool(app_settings.database_url, size=2, io_timeout=IO_TIMEOUT)
    writer_redis = streams.connect(app_settings.redis_url, timeout=IO_TIMEOUT + 0.2)
    stop = asyncio.Event()
    writer = asyncio.create_task(run_writer(app_settings, pool, writer_redis, [0], "w", stop))
    try:
        async for harness in make_harness(app_settings):
            crowd = await Submitters(harness, own.roster[:SUBMITTERS]).login()
            for i in range(SUBMITTERS):
                assert (await crowd.put(i)).status_code == 202
            async with asyncio.timeout(30):  # persisted, acknowledged and trimmed
                while len(await _history(app_settings.database_url)) < SUBMITTERS or (
                    await harness.services.redis.xlen(streams.stream_key(0))
                ):
                    await asyncio.sleep(0.05)

            with own.postgres_frozen():
                accepted, refused = await crowd.until_refused(BACKLOG_LIMIT)
                # Exactly the backlog limit: every submission up to it was acknowledged.
                assert accepted == BACKLOG_LIMIT, accepted
                assert_overloaded(refused, "backlog")
                # A retry of an acknowledged one is still answered: its receipt, not a 503.
                receipt, key = next(iter(crowd.acked.items()))
                n, seed = crowd.requests[key]
                replay = await crowd.put(n, key=key, seed=seed)
                assert replay.status_code == 202 and replay.json()["receipt_id"] == receipt
                assert replay.headers["Idempotent-Replayed"] == "true"
                assert not writer.done()
            # Thawed: the writer catches up by itself; there is room again.
            async with asyncio.timeout(60):
                while len(await _history(app_settings.database_url)) < len(crowd.acked):
                    await asyncio.sleep(0.1)
            async with asyncio.timeout(30):
                while (await crowd.put(0)).status_code != 202:
                    await asyncio.sleep(0.2)
            await drain(app_settings, pool, harness.services.redis, within=60)
            history = await _history(app_settings.database_url)
            assert history == crowd.acked, "an acknowledged submission was lost or doubled"
    finally:
        stop.set()
        await asyncio.wait_for(writer, 30)
        await pool.close()
        await writer_redis.aclose()


def _memory(client: redis.Redis) -> tuple[int, int]:
    info: Any = client.info("memory")
    return int(info["used_memory"]), int(info["maxmemory"])


def _oom_errors(client: redis.Redis) -> int:
    stats: Any = client.info("errorstats")
    return int(stats.get("errorstat_OOM", {}).get("count", 0))


async def test_near_maxmemory_the_api_sheds_before_valkey_refuses_a_write(
    settings: Settings, own_state: Own
) -> None:
    own = own_state
    app_settings = _own_settings(settings, own)
    ratio = app_settings.redis_memory_limit_ratio
    admin = redis.Redis(port=own.endpoints.redis_port)
    try:
        async for harness in make_harness(app_settings):
            crowd = await Submitters(harness, own.roster[:SUBMITTERS]).login()
            used, _ = _memory(admin)
            # Headroom above the shedding line: a fifth of maxmemory, which must outlast the
            # memory watch's one-second poll at this process's submission rate (~3 MiB here
            # against ~0.6 MiB a second measured; production's gigabytes last far longer).
            maxmemory = used + (64 if LONG_TESTS else 16) * 2**20
            admin.config_set("maxmemory", str(maxmemory))
            # Other data (sessions, idempotency records, a busy day) fills Valkey to just under
            # the shedding line; the submissions then cross it. In 32 KiB values, measured as
            # they go: one huge value would need its size again while it is read.
            line = ratio * maxmemory
            n = 0
            while _memory(admin)[0] < line - 256 * 2**10:
                admin.set(f"examreg-test:filler:{n}", b"x" * 32 * 2**10)
                n += 1
            await asyncio.sleep(1.5)  # the memory watch has seen it: not shedding yet
            assert (await crowd.put(0)).status_code == 202

            accepted, refused = await crowd.until_refused(10_000)
            assert accepted > 0
            assert_overloaded(refused, "redis_memory")
            for wave in range(5):  # and it stays polite: 503s, never Valkey's own refusal
                responses = await asyncio.gather(*(crowd.put(wave + j) for j in range(SUBMITTERS)))
                for response in responses:
                    # Right at the line, memory may dip under it for a moment and let one in.
                    if response.status_code != 202:
                        assert_overloaded(response, "redis_memory")
            used_now, limit = _memory(admin)
            assert used_now < limit, "Valkey reached maxmemory"
            assert _oom_errors(admin) == 0, "Valkey refused a write (OOM) before the API shed"
            assert admin.set("examreg-test:probe", "still writable")

            admin.delete("examreg-test:probe", *admin.keys("examreg-test:filler:*"))
            async with asyncio.timeout(10):  # memory fell: accepted again, by itself
                while (await crowd.put(1)).status_code != 202:
                    await asyncio.sleep(0.2)
            assert app_settings.database_url is not None
            pool = await store.create_pool(app_settings.database_url, size=2)
            try:
                await drain(app_settings, pool, harness.services.redis, within=60)
            finally:
                await pool.close()
            history = await _history(app_settings.database_url)
            assert history == crowd.acked, "an acknowledged submission was lost or doubled"
    finally:
        admin.close()


async def test_when_valkey_itself_refuses_for_memory_the_enqueue_answers_overloaded(
    own_state: Own,
) -> None:
    """The last line behind the memory watch: Valkey's own OOM refusal is overload (503
    `overloaded`, reason `redis_memory`), not an outage, and nothing was enqueued."""
    client = streams.connect(own_state.endpoints.redis_url)
    await streams.load_functions(client)
    enqueuer = streams.Enqueuer(
        client, idempotency_ttl=60, max_backlog_per_shard=100, retry_after=7, timeout=IO_TIMEOUT
    )
    submission = streams.Submission(
        candidate_id=1, shard=0, idempotency_key="k", form={"full_name": "A"}, phase="official"
    )
    try:
        await client.config_set("maxmemory", "1")  # every write is now refused with OOM
        with pytest.raises(Overloaded) as refused:
            await enqueuer.submit(submission)
        assert refused.value.extra["reason"] == "redis_memory"
        assert refused.value.retry_after == 7
        await client.config_set("maxmemory", "256mb")
        assert await client.xlen(streams.stream_key(0)) == 0
        assert (await enqueuer.submit(submission)).version == 1
    finally:
        await client.config_set("maxmemory", "256mb")
        await client.aclose()
