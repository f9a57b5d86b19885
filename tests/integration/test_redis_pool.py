"""The Redis client's connection pool under a burst (`streams.connect`).

An API process has up to `EXAMREG_MAX_INFLIGHT_REQUESTS` (64) requests under way plus its own
background calls (the enqueuer's pipeline, the samplers), as many as the pool's 64 connections or
more. A burst past the pool waits for a connection, bounded by the I/O timeout; it used to fail at
once with MaxConnectionsError, which the API answers 503 `unavailable` (seen in the Locust replay
smoke run on a loaded machine).
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from engine.adapters import backend, streams
from engine.settings import Settings

pytestmark = pytest.mark.anyio


async def test_a_burst_past_the_pool_waits_for_a_free_connection(settings: Settings) -> None:
    assert settings.redis_url is not None
    client = streams.connect(settings.redis_url, timeout=5.0, max_connections=2)
    key = f"test:pool:{uuid.uuid4().hex}"
    try:
        # Eight calls that each hold a connection for 0.2 s, on two connections.
        answers = await asyncio.gather(*(client.blpop([key], timeout=0.2) for _ in range(8)))
    finally:
        await client.aclose()
    assert answers == [None] * 8


async def test_the_wait_for_a_connection_is_bounded_by_the_timeout(settings: Settings) -> None:
    assert settings.redis_url is not None
    client = streams.connect(settings.redis_url, timeout=0.5, max_connections=1)
    key = f"test:pool:{uuid.uuid4().hex}"
    pool = client.connection_pool
    held = await pool.get_connection()  # the only connection is taken
    try:
        started = time.monotonic()
        with pytest.raises(backend.REDIS_ERRORS):
            await client.get(key)
        waited = time.monotonic() - started
    finally:
        await pool.release(held)
        await client.aclose()
    assert 0.3 <= waited < 2.5  # the 0.5 s timeout, with room for a loaded machine
