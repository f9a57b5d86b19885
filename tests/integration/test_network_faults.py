"""Network faults between the API or the writer and Valkey or PostgreSQL (tests/faults.py proxy).

While a link is cut, stalled or slower than the timeout, the API answers 503 with a code and
`Retry-After` within its timeout, never hangs and never 500s; once the link is back it recovers by
itself; and nothing acknowledged is lost: every 202 ends as exactly one history row. The proxies
sit in front of the session's servers, which are never paused themselves.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

from engine.adapters import store, streams
from engine.runtime.writer import run_writer
from engine.settings import Settings
from tests.conftest import Harness, make_harness
from tests.faults import FaultProxy
from tests.support import LONG_TESTS, drain, form_for

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(600 if LONG_TESTS else 120)]

IO_TIMEOUT = 1.0
ROUNDS = 5 if LONG_TESTS else 1  # cut/restore cycles per test


async def _proxy_for(url: str) -> FaultProxy:
    parts = urlsplit(url)
    assert parts.hostname and parts.port
    return await FaultProxy(parts.hostname, parts.port).start()


def _through(url: str, proxy: FaultProxy) -> str:
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.replace(str(parts.port), str(proxy.port))).geturl()


@pytest.fixture
async def proxies(settings: Settings) -> AsyncIterator[dict[str, FaultProxy]]:
    assert settings.redis_url and settings.database_url
    made = {
        "redis": await _proxy_for(settings.redis_url),
        "postgres": await _proxy_for(settings.database_url),
    }
    try:
        yield made
    finally:
        for proxy in made.values():
            await proxy.close()


def _proxied(settings: Settings, proxies: dict[str, FaultProxy], **changes: Any) -> Settings:
    assert settings.redis_url and settings.database_url
    return replace(
        settings,
        redis_url=_through(settings.redis_url, proxies["redis"]),
        database_url=_through(settings.database_url, proxies["postgres"]),
        io_timeout_seconds=IO_TIMEOUT,
        **changes,
    )


@pytest.fixture
async def api(settings: Settings, proxies: dict[str, FaultProxy]) -> AsyncIterator[Harness]:
    """The app under test, reaching Valkey and PostgreSQL only through the proxies."""
    async for harness in make_harness(_proxied(settings, proxies)):
        yield harness


class Ledger:
    """What a client was told: every 202's receipt, and every refusal while the link was down."""

    def __init__(self, harness: Harness, candidate: dict[str, Any], auth: dict[str, str]) -> None:
        self.harness = harness
        self.candidate = candidate
        self.auth = auth
        self.acked: dict[str, dict[str, Any]] = {}  # key → receipt
        self.refusals: list[httpx.Response] = []

    async def put(self, key: str, seed: int) -> httpx.Response:
        started = time.monotonic()
        response = await self.harness.client.put(
            "/api/v1/me/registration",
            json=form_for(self.candidate, seed=seed),
            headers={**self.auth, "Idempotency-Key": key},
        )
        # Never a hang: the timeouts bound every answer (one Redis call, generous margin).
        assert time.monotonic() - started < 4 * IO_TIMEOUT + 2, "the API hung on a dead link"
        if response.status_code == 202:
            self.acked[key] = response.json()
        else:
            self.refusals.append(response)
        return response

    async def until_acknowledged(self, key: str, seed: int, within: float = 20) -> httpx.Response:
        """Retry like a phone does, with the same key, until the service is back."""
        deadline = time.monotonic() + within
        while True:
            response = await self.put(key, seed)
            if response.status_code == 202:
                return response
            assert time.monotonic() < deadline, f"no recovery within {within}s: {response.text}"
            await asyncio.sleep(0.2)


def assert_polite_503(response: httpx.Response, codes: tuple[str, ...] = ("unavailable",)) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] in codes, response.text
    assert int(response.headers["Retry-After"]) >= 1, response.headers
    assert "Traceback" not in response.text


async def assert_nothing_lost(
    settings: Settings, pool: asyncpg.Pool, aredis: Any, *ledgers: Ledger
) -> None:
    """Drain (directly, not through the proxies): each 202 has exactly one history row."""
    await drain(settings, pool, aredis, within=60)
    rows = await pool.fetch("SELECT receipt_id, idempotency_key FROM registration_versions")
    by_receipt = {r["receipt_id"]: r["idempotency_key"] for r in rows}
    assert len(by_receipt) == len(rows)
    acked = {r["receipt_id"]: key for ledger in ledgers for key, r in ledger.acked.items()}
    assert acked, "the test acknowledged nothing"
    assert by_receipt == acked, "history rows and acknowledged receipts differ"
    dead = sum([await aredis.xlen(streams.dead_key(s)) for s in range(settings.stream_shards)])
    assert dead == 0


async def test_while_valkey_is_cut_the_api_answers_503_and_recovers_by_itself(
    api: Harness,
    proxies: dict[str, FaultProxy],
    roster: list[dict[str, Any]],
    settings: Settings,
    pool: asyncpg.Pool,
    aredis: Any,
) -> None:
    ledger = Ledger(api, roster[20], await api.login(roster[20]))
    assert (await ledger.put("before", 1)).status_code == 202
    for round_ in range(ROUNDS):
        with proxies["redis"].cut_for_now():
            assert_polite_503(await ledger.put(f"during-{round_}", 2 + round_))
            assert_polite_503(await api.client.get("/api/v1/me", headers=ledger.auth))
            ready = await api.client.get("/readyz")
            assert ready.status_code == 503 and ready.json()["redis"] != "ok"
        # The key that was refused is used again, and it is accepted as new work.
        response = await ledger.until_acknowledged(f"during-{round_}", 2 + round_)
        assert "Idempotent-Replayed" not in response.headers
    assert (await api.client.get("/readyz")).status_code == 200
    await assert_nothing_lost(settings, pool, aredis, ledger)


async def test_while_valkey_is_stalled_the_api_answers_503_within_its_timeout(
    api: Harness,
    proxies: dict[str, FaultProxy],
    roster: list[dict[str, Any]],
    settings: Settings,
    pool: asyncpg.Pool,
    aredis: Any,
) -> None:
    ledger = Ledger(api, roster[21], await api.login(roster[21]))
    assert (await ledger.put("before", 1)).status_code == 202
    for round_ in range(ROUNDS):
        proxies["redis"].stall()
        try:
            started = time.monotonic()
            assert_polite_503(await ledger.put(f"stalled-{round_}", 2 + round_))
            assert time.monotonic() - started >= IO_TIMEOUT * 0.9, "answered before the timeout?"
        finally:
            proxies["redis"].restore()
        await ledger.until_acknowledged(f"stalled-{round_}", 2 + round_)
    await assert_nothing_lost(settings, pool, aredis, ledger)


async def test_latency_below_the_timeout_is_absorbed_and_above_it_answers_503(
    api: Harness,
    proxies: dict[str, FaultProxy],
    roster: list[dict[str, Any]],
    settings: Settings,
    pool: asyncpg.Pool,
    aredis: Any,
) -> None:
    ledger = Ledger(api, roster[22], await api.login(roster[22]))
    proxies["redis"].latency = proxies["postgres"].latency = 0.05
    for i in range(3):
        assert (await ledger.put(f"slow-{i}", i)).status_code == 202
    assert (await api.client.get("/api/v1/me/registration", headers=ledger.auth)).status_code == 200
    proxies["redis"].latency = IO_TIMEOUT * 1.5  # each way: the answer comes after the timeout
    assert_polite_503(await ledger.put("too-slow", 9))
    proxies["redis"].latency = 0.0
    await ledger.until_acknowledged("too-slow", 9)
    # The late submission may have been enqueued before its answer timed out: then the retry
    # was its replay, and it still has exactly one row.
    await assert_nothing_lost(settings, pool, aredis, ledger)


@pytest.mark.parametrize("delivered", [False, True], ids=["lost-request", "lost-answer"])
async def test_a_link_cut_mid_enqueue_is_resent_once_and_neither_loses_nor_duplicates(
    api: Harness,
    proxies: dict[str, FaultProxy],
    roster: list[dict[str, Any]],
    settings: Settings,
    pool: asyncpg.Pool,
    aredis: Any,
    delivered: bool,
) -> None:
    candidate = roster[23]
    ledger = Ledger(api, candidate, await api.login(candidate))
    assert (await ledger.put("first", 1)).status_code == 202
    proxies["redis"].drop_once(b"examreg_submit", deliver=delivered)
    # One dropped link is not an outage: the client sends the call once more on a fresh
    # connection (engine.adapters.streams.connect), and the submission's idempotency makes that
    # safe. If the entry reached Valkey before the link went, the resend is its replay.
    retry = await ledger.until_acknowledged("cut", 2)
    assert proxies["redis"].dropped == 1
    assert (retry.headers.get("Idempotent-Replayed") == "true") is delivered
    assert retry.json()["version"] == 2
    await assert_nothing_lost(settings, pool, aredis, ledger)
    assert await pool.fetchval("SELECT count(*) FROM registration_versions") == 2


async def test_while_postgres_is_cut_submissions_are_accepted_and_reads_answer_503(
    api: Harness,
    proxies: dict[str, FaultProxy],
    roster: list[dict[str, Any]],
    settings: Settings,
    pool: asyncpg.Pool,
    aredis: Any,
) -> None:
    ledger = Ledger(api, roster[24], await api.login(roster[24]))
    for round_ in range(ROUNDS):
        with proxies["postgres"].cut_for_now():
            # The hot path needs no database: Valkey acknowledges, the writers catch up later.
            assert (await ledger.put(f"pg-down-{round_}", round_)).status_code == 202
            read = await api.client.get("/api/v1/me/registration", headers=ledger.auth)
            assert_polite_503(read)
            ready = await api.client.get("/readyz")
            assert ready.status_code == 503 and ready.json()["postgres"] != "ok"
        async with asyncio.timeout(20):
            while (await api.client.get("/readyz")).status_code != 200:
                await asyncio.sleep(0.2)
        read = await api.client.get("/api/v1/me/registration", headers=ledger.auth)
        assert read.status_code == 200 and read.json()["version"] == round_ + 1
    await assert_nothing_lost(settings, pool, aredis, ledger)


async def _persisted(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM registration_versions"))


async def _wait_persisted(pool: asyncpg.Pool, count: int, within: float = 30) -> None:
    async with asyncio.timeout(within):
        while await _persisted(pool) < count:
            await asyncio.sleep(0.1)


@pytest.mark.parametrize("fault", ["cut", "stall"])
@pytest.mark.parametrize("link", ["postgres", "redis"])
async def test_a_writer_cut_from_its_servers_recovers_by_itself_and_loses_nothing(
    harness: Harness,
    settings: Settings,
    proxies: dict[str, FaultProxy],
    roster: list[dict[str, Any]],
    pool: asyncpg.Pool,
    aredis: Any,
    link: str,
    fault: str,
) -> None:
    """A writer process (run_writer, as `examreg writer` runs it) behind the proxies."""
    writer_settings = _proxied(settings, proxies)
    assert writer_settings.database_url and writer_settings.redis_url
    writer_pool = await store.create_pool(
        writer_settings.database_url, size=2, io_timeout=IO_TIMEOUT
    )
    writer_redis = streams.connect(writer_settings.redis_url, timeout=IO_TIMEOUT + 0.1)
    stop = asyncio.Event()
    shards = list(range(settings.stream_shards))
    task = asyncio.create_task(
        run_writer(writer_settings, writer_pool, writer_redis, shards, "w-proxied", stop)
    )
    # The API talks to the servers directly: only the writer's links fail.
    ledgers = [Ledger(harness, c, await harness.login(c)) for c in roster[25:29]]
    try:
        for ledger in ledgers:
            assert (await ledger.put("warm", 0)).status_code == 202
        await _wait_persisted(pool, len(ledgers))
        for round_ in range(ROUNDS):
            before = await _persisted(pool)  # everything acknowledged so far
            getattr(proxies[link], fault)()
            try:
                for i, ledger in enumerate(ledgers):
                    assert (await ledger.put(f"r{round_}", i + 1)).status_code == 202
                await asyncio.sleep(2 * IO_TIMEOUT)  # the writer is failing now, not crashing
                assert not task.done(), task
                assert await _persisted(pool) == before, "the fault did not reach the writer"
            finally:
                proxies[link].restore()
            await _wait_persisted(pool, sum(len(ledger.acked) for ledger in ledgers))
        assert not task.done()
    finally:
        stop.set()
        await asyncio.wait_for(task, settings.writer_shutdown_seconds + 5)
        await writer_pool.close()
        await writer_redis.aclose()
    await assert_nothing_lost(settings, pool, aredis, *ledgers)
