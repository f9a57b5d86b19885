"""A writer killed after COMMIT leaves no receipt `queued`; the sweep repairs what older ones left.

The crash window of issue 12 (item 10): a writer that acknowledged its entries and died before it
released the read-your-writes records left receipts answering `queued` forever, although their rows
were in PostgreSQL, for no entry was left to deliver again. Here the writer is "killed" (an
exception nothing in the writer catches) before each of the Redis calls it makes after COMMIT in
turn, and the writer that restarts under the same consumer name must bring the receipt to
`persisted`. Markers already stale are released by `engine.services.reconciliation`, by the
writer at start and by `examreg reconcile`.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from engine.adapters import store, streams
from engine.adapters.streams import StreamShard
from engine.runtime import cli, writer
from engine.runtime.writer import ShardWriter
from engine.services.reconciliation import release_persisted_markers
from tests.conftest import Harness
from tests.support import drain, form_for

pytestmark = pytest.mark.anyio


class WriterKilled(BaseException):
    """Stands for SIGKILL: a BaseException, so no handler in the writer catches it."""


async def _submit(harness: Harness, candidate: dict[str, Any], key: str) -> str:
    auth = await harness.login(candidate)
    response = await harness.client.put(
        "/api/v1/me/registration",
        json=form_for(candidate, seed=len(key)),
        headers={**auth, "Idempotency-Key": key},
    )
    assert response.status_code == 202, response.text
    return str(response.json()["receipt_id"])


async def _receipt_status(harness: Harness, candidate: dict[str, Any], receipt: str) -> str:
    auth = await harness.login(candidate)
    response = await harness.client.get(f"/api/v1/me/receipts/{receipt}", headers=auth)
    assert response.status_code == 200, response.text
    return str(response.json()["status"])


def _kill_before_call(shard: StreamShard, after: Callable[[], bool], n: int) -> list[str]:
    """Make the n-th call (0-based) to any of `shard`'s methods once `after()` holds raise
    WriterKilled instead of running; returns the names of the calls made after `after()`."""
    made: list[str] = []
    for name, method in inspect.getmembers(shard, inspect.iscoroutinefunction):
        if name.startswith("_"):
            continue

        def wrap(name: str, method: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
            async def call(*args: Any, **kwargs: Any) -> Any:
                if after():
                    if len(made) == n:
                        raise WriterKilled(name)
                    made.append(name)
                return await method(*args, **kwargs)

            return call

        setattr(shard, name, wrap(name, method))
    return made


async def _restart_until(
    harness: Harness,
    pool: asyncpg.Pool,
    aredis: Any,
    shard_no: int,
    done: Callable[[], Any],
    why: str,
) -> None:
    """Run a writer under the dead one's consumer name (a supervisor's restart) until `done()`."""
    stop = asyncio.Event()
    restarted = ShardWriter(harness.settings, pool, StreamShard(aredis, shard_no, "doomed"))
    task = asyncio.create_task(restarted.run(stop))
    try:
        async with asyncio.timeout(30):  # generous: the machine may be loaded
            while not await done():
                assert not task.done(), task
                await asyncio.sleep(0.1)
    except TimeoutError:
        pytest.fail(f"still not done 30 s after the restart: {why}")
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


async def test_a_writer_killed_at_any_point_after_commit_leaves_no_receipt_queued(
    harness: Harness,
    roster: list[dict[str, Any]],
    pool: asyncpg.Pool,
    aredis: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    committed = False
    real_write_batch = store.write_batch

    async def write_batch(conn: Any, rows: Any) -> store.BatchResult:
        nonlocal committed
        result = await real_write_batch(conn, rows)
        committed = True  # COMMIT has returned: from here on every Redis call is a crash point
        return result

    def after_commit() -> bool:
        return committed

    monkeypatch.setattr(store, "write_batch", write_batch)
    crash_points: list[list[str]] = []
    for n, candidate in enumerate(roster[:6]):
        committed = False
        shard_no = harness.settings.shard_of(candidate["candidate_id"])
        receipt = await _submit(harness, candidate, f"crash-{n}")
        doomed = StreamShard(aredis, shard_no, "doomed")
        await doomed.ensure_group()
        entries = await doomed.read(10, None)
        assert [fields["rid"] for _, fields in entries] == [receipt]
        made = _kill_before_call(doomed, after_commit, n)
        try:
            await ShardWriter(harness.settings, pool, doomed).process(entries)
        except WriterKilled:
            crash_points.append(list(made))
        else:
            break  # n is past the writer's last call after COMMIT: every point was tried
        assert committed, "the crash came before COMMIT"

        async def persisted(candidate: dict[str, Any] = candidate, receipt: str = receipt) -> bool:
            return await _receipt_status(harness, candidate, receipt) == "persisted"

        why = f"receipt not persisted; the writer died after COMMIT and after {made or 'nothing'}"
        await _restart_until(harness, pool, aredis, shard_no, persisted, why)
        summary = await aredis.xpending(streams.stream_key(shard_no), streams.GROUP)
        assert summary["pending"] == 0
    else:
        pytest.fail("the writer kept calling Redis after COMMIT; the test needs more candidates")
    assert crash_points[0] == [], "the first crash point is right after COMMIT"
    # Release, acknowledge and trim are one pipelined call now (`settle`), so killing the writer
    # before it is the only point left after COMMIT; the run that was not killed shows it.
    assert made == ["settle"], made
    assert (
        await pool.fetchval("SELECT count(*) FROM registration_versions") == len(crash_points) + 1
    )


async def _stale_marker(
    harness: Harness, pool: asyncpg.Pool, aredis: Any, candidate: dict[str, Any], key: str
) -> str:
    """A persisted receipt whose queued marker is back, as a crash between ack and release left
    it; returns the receipt id."""
    receipt = await _submit(harness, candidate, key)
    hash_key = streams.candidate_key(
        harness.settings.shard_of(candidate["candidate_id"]), candidate["candidate_id"]
    )
    version = await aredis.hget(hash_key, f"rcpt:{receipt}")
    await drain(harness.settings, pool, aredis)
    assert await _receipt_status(harness, candidate, receipt) == "persisted"
    await aredis.hset(hash_key, f"rcpt:{receipt}", version)
    assert await _receipt_status(harness, candidate, receipt) == "queued"
    return receipt


async def test_the_sweep_releases_markers_of_persisted_versions_and_keeps_queued_ones(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool, aredis: Any
) -> None:
    stale = {
        c["candidate_id"]: (c, await _stale_marker(harness, pool, aredis, c, "s"))
        for c in roster[:3]
    }
    waiting = roster[3]
    queued = await _submit(harness, waiting, "w")  # in the stream, not persisted: must stay
    result = await release_persisted_markers(
        aredis, pool, range(harness.settings.stream_shards), page=2
    )
    assert (result.queued, result.released) == (4, 3)
    for candidate, receipt in stale.values():
        assert await _receipt_status(harness, candidate, receipt) == "persisted"
    assert await _receipt_status(harness, waiting, queued) == "queued"
    again = await release_persisted_markers(aredis, pool, range(harness.settings.stream_shards))
    assert (again.queued, again.released) == (1, 0)


async def test_a_writer_sweeps_its_shards_for_stale_markers_at_start(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool, aredis: Any
) -> None:
    candidate = roster[4]
    receipt = await _stale_marker(harness, pool, aredis, candidate, "start")
    shard_no = harness.settings.shard_of(candidate["candidate_id"])
    stop = asyncio.Event()
    task = asyncio.create_task(
        writer.run_writer(harness.settings, pool, aredis, [shard_no], "w", stop)
    )
    try:
        async with asyncio.timeout(30):
            while await _receipt_status(harness, candidate, receipt) != "persisted":
                assert not task.done(), task
                await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


async def test_examreg_reconcile_releases_stale_markers(
    harness: Harness,
    roster: list[dict[str, Any]],
    pool: asyncpg.Pool,
    aredis: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    candidate = roster[5]
    receipt = await _stale_marker(harness, pool, aredis, candidate, "cli")
    monkeypatch.setenv("EXAMREG_DATABASE_URL", harness.settings.database_url or "")
    monkeypatch.setenv("EXAMREG_REDIS_URL", harness.settings.redis_url or "")
    assert await asyncio.to_thread(cli.main, ["reconcile"]) == 0
    assert "stale queued markers released: 1" in capsys.readouterr().out
    assert await _receipt_status(harness, candidate, receipt) == "persisted"


async def test_a_writer_loads_the_functions_it_calls_itself(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool, aredis: Any
) -> None:
    candidate = roster[6]
    receipt = await _submit(harness, candidate, "functions")
    # Logged in before the flush: a login calls the throttle's functions, which only an API
    # process (or this writer, once it has started) loads again.
    auth = await harness.login(candidate)
    await aredis.function_flush()  # a Redis no API has loaded the library into since
    shard_no = harness.settings.shard_of(candidate["candidate_id"])

    async def persisted() -> bool:
        response = await harness.client.get(f"/api/v1/me/receipts/{receipt}", headers=auth)
        assert response.status_code == 200, response.text
        return response.json()["status"] == "persisted"

    try:
        await _restart_until(harness, pool, aredis, shard_no, persisted, "examreg_settle missing")
    finally:
        await streams.load_functions(aredis)
