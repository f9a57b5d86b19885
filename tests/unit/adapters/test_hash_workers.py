"""The argon2id worker processes: bounded, shedding politely, replaced when one dies, gone when
their API process is."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from engine.adapters.passwords import PasswordService
from engine.errors import Overloaded
from engine.settings import load

# Cheap hashing for a unit test: below the start-up floor on purpose, so set past `load`'s check.
CHEAP = dataclasses.replace(
    load(env={}), argon2_memory_kib=1024, argon2_time_cost=1, login_concurrency=1
)
ROOT = Path(__file__).resolve().parents[3]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _verifies() -> float:
    value = REGISTRY.get_sample_value(
        "examreg_password_hash_seconds_count", {"operation": "verify"}
    )
    return value or 0.0


def test_past_the_queue_limit_hashes_are_refused_at_once_with_retry_after() -> None:
    settings = dataclasses.replace(CHEAP, login_queue_limit=2, retry_after_seconds=7)

    async def run() -> list[object]:
        service = PasswordService(settings)
        try:
            stored = await service.hash("Trâu vàng 2026")
            calls = [service.verify(stored, "Trâu vàng 2026") for _ in range(5)]
            return await asyncio.gather(*calls, return_exceptions=True)
        finally:
            service.close()

    results = asyncio.run(run())
    assert results[:2] == [True, True], "one hashing, one waiting: the queue's limit"
    refused = results[2:]
    assert all(isinstance(r, Overloaded) for r in refused), refused
    assert {r.retry_after for r in refused if isinstance(r, Overloaded)} == {7}


def test_an_unknown_account_costs_a_real_hash() -> None:
    async def run() -> bool:
        service = PasswordService(CHEAP)
        try:
            return await service.verify(None, "whatever-it-is-2026")
        finally:
            service.close()

    before = _verifies()
    assert asyncio.run(run()) is False
    assert _verifies() == before + 1, "verified against the dummy hash, in a worker"


def test_a_killed_worker_is_replaced_and_the_next_login_works() -> None:
    async def run() -> tuple[bool, int, int]:
        service = PasswordService(CHEAP)
        try:
            stored = await service.hash("Trâu vàng 2026")
            first = service._pool.submit(os.getpid).result(timeout=60)
            assert first != os.getpid(), "hashes run in a worker process"
            os.kill(first, signal.SIGKILL)
            async with asyncio.timeout(30):
                while _alive(first):
                    await asyncio.sleep(0.05)
            ok = await service.verify(stored, "Trâu vàng 2026")
            second = service._pool.submit(os.getpid).result(timeout=60)
            return ok, first, second
        finally:
            service.close()

    ok, first, second = asyncio.run(run())
    assert ok
    assert second != first


CHILD = """
import asyncio, dataclasses, os, sys
from engine.adapters.passwords import PasswordService
from engine.settings import load

settings = dataclasses.replace(load(env={}), argon2_memory_kib=1024, argon2_time_cost=1,
                               login_concurrency=1)

async def main():
    service = PasswordService(settings)
    await service.hash("x")
    print(service._pool.submit(os.getpid).result(timeout=60), flush=True)
    await asyncio.sleep(120)

asyncio.run(main())
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_a_worker_exits_when_its_api_process_is_killed() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", CHILD], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        worker = int(parent.stdout.readline())
        assert worker != parent.pid and _alive(worker)
        parent.kill()  # kill -9: no shutdown, no atexit
        parent.wait(10)
        deadline = time.monotonic() + 15
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(worker), "an orphaned hashing worker keeps running"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(10)
        if parent.stdout is not None:
            parent.stdout.close()
