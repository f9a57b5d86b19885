"""The stream writer: drains Redis shards into PostgreSQL in batches (architecture §2, §3.3–4).

Owns the loop of one writer process: for each of its shards, read a batch, persist it in one
transaction, and only after COMMIT release the Redis copies and acknowledge (one atomic call),
with the trim (at most once per `writer_trim_interval_ms`) pipelined after it. The next batch is
read while the current one commits; batches are still committed one after the other, in the
order they were read. Batch size and linger follow the shard's backlog
(`engine.domain.batching`). At start it sweeps its shards for queued markers of versions already
persisted (`engine.services.reconciliation`). Entries left by a dead writer are claimed after they
idle; an entry that fails alone is retried until it has been delivered `writer_max_deliveries`
times and then dead-lettered; a failing batch is halved until the bad entry stands alone, so it
never blocks the rest. Shutdown (SIGTERM) stops reading, lets the batch in hand finish within
`writer_shutdown_seconds`, then cancels; anything not acknowledged (the batch read ahead
included) is simply delivered again later, which the version guard and `ON CONFLICT DO NOTHING`
make harmless. The process runs at `writer_nice` above its parent's niceness, so that during a
spike the kernel gives the API workers the CPU first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from engine.adapters import backend, metrics, store, streams
from engine.adapters.streams import StreamEntries, StreamShard
from engine.domain.batching import BatchPolicy, BatchSizer
from engine.domain.entries import PoisonEntry, VersionRow, to_row
from engine.services import reconciliation
from engine.settings import Settings

log = logging.getLogger("examreg.writer")

Item = tuple[str, dict[str, str], VersionRow]


class ShardWriter:
    """Persists one shard's entries; several may run side by side in one process."""

    def __init__(self, settings: Settings, pool: backend.Pool, shard: StreamShard) -> None:
        self.settings = settings
        self.pool = pool
        self.shard = shard
        self.sizer = BatchSizer(
            BatchPolicy(
                settings.writer_batch_min,
                settings.writer_batch_size,
                settings.writer_linger_ms,
                settings.writer_pace_ms,
            )
        )
        self._last_claim = 0.0
        self._last_trim: float | None = None  # never trimmed yet: the first settle trims
        self._untrimmed = False  # settled entries that no trim has removed yet
        self._next: asyncio.Task[StreamEntries] | None = None  # the read ahead

    async def run(self, stop: asyncio.Event) -> None:
        """Loop until `stop` is set: own pending entries first, then claims and new entries."""
        ready = False
        try:
            while not stop.is_set():
                try:
                    if not ready:  # inside the loop: Redis may be down when the writer starts
                        # The writer calls examreg_settle: it must not depend on an API having
                        # loaded the library (a new Redis, or writers upgraded first).
                        await streams.load_functions(self.shard.client)
                        await self.shard.ensure_group()
                        await self._drain_own_pending()
                        # What a writer gone before its next trim settled stays until a trim:
                        # one now, whatever the interval.
                        self._untrimmed = True
                        await self.flush()
                        ready = True
                    await self._step(stop)
                except (backend.RedisError, OSError, AttributeError) as exc:
                    if isinstance(exc, AttributeError) and not backend.dropped_connection(exc):
                        raise
                    metrics.WRITER_ERRORS.labels("redis").inc()
                    log.warning("redis error on shard %d: %s", self.shard.shard, type(exc).__name__)
                    ready = False  # a failed read may have been delivered: finish our own first
                    await self._abandon_read()
                    await _sleep_or_stop(stop, 1.0)
                except (
                    backend.PostgresError,
                    backend.InterfaceError,
                    backend.InternalClientError,
                    TimeoutError,
                ) as exc:
                    metrics.WRITER_ERRORS.labels("postgres").inc()
                    log.warning(
                        "postgres error on shard %d: %s", self.shard.shard, type(exc).__name__
                    )
                    ready = False
                    await self._abandon_read()
                    await _sleep_or_stop(stop, 1.0)
        finally:
            # What the read ahead took stays pending on this consumer: a restart under the same
            # name reads it again at once, any other writer claims it once idle.
            await self._abandon_read()

    async def _step(self, stop: asyncio.Event) -> None:
        now = time.monotonic()
        if now - self._last_claim >= self.settings.writer_claim_idle_ms / 2000:
            self._last_claim = now
            claimed = await self.shard.claim_stale(
                self.settings.writer_claim_idle_ms, self.settings.writer_batch_size
            )
            if claimed:
                metrics.ENTRIES_CLAIMED.inc(len(claimed))
                await self.process(claimed)
        if self._next is None:
            self._next = asyncio.create_task(self._read_batch())
        entries = await self._await_read(self._next)
        self._next = None
        if not entries:
            return
        if not stop.is_set():
            # Read ahead: the next batch (and its linger) is fetched while this one commits. It
            # is committed only after this one, so batches of a shard commit in read order.
            self._next = asyncio.create_task(self._read_batch())
        await self.process(entries)

    async def _read_batch(self) -> StreamEntries:
        """Size or time: a short read lingers to fill the batch, for as long as the backlog says,
        so each PostgreSQL commit and each Valkey settle carries many entries instead of one."""
        plan = self.sizer.plan()
        entries = await self.shard.read(plan.size, self.settings.writer_block_ms)
        if entries and len(entries) < plan.size:
            linger = self.sizer.linger(plan, time.monotonic())
            if linger > 0:
                await asyncio.sleep(linger)
                entries += await self.shard.read(plan.size - len(entries), None)
        self.sizer.read(plan.size, len(entries), time.monotonic())
        return entries

    async def _await_read(self, read: asyncio.Task[StreamEntries]) -> StreamEntries:
        """The read's entries; while it blocks on an idle stream, the trim that is due runs, so
        the last batch of a burst is trimmed at most one interval after its settle."""
        while True:
            wait = self._trim_wait()
            done, _ = await asyncio.wait({read}, timeout=wait)
            if done:
                return read.result()
            await self.flush()

    async def _abandon_read(self) -> None:
        read, self._next = self._next, None
        if read is not None:
            read.cancel()
            await asyncio.gather(read, return_exceptions=True)

    def _trim_due(self) -> bool:
        interval = self.settings.writer_trim_interval_ms / 1000
        return self._last_trim is None or time.monotonic() - self._last_trim >= interval

    def _trim_wait(self) -> float | None:
        """Seconds until a trim is due, if entries wait for one; None if none do."""
        if not self._untrimmed:
            return None
        if self._last_trim is None:
            return 0.0
        interval = self.settings.writer_trim_interval_ms / 1000
        return max(0.0, self._last_trim + interval - time.monotonic())

    async def flush(self) -> None:
        """Trim now what this writer settled or dead-lettered since its last trim (whatever the
        interval)."""
        if self._untrimmed:
            self._trimmed(await self.shard.trim())

    def _trimmed(self, result: streams.TrimResult) -> None:
        self._last_trim = time.monotonic()
        self._untrimmed = False
        if result.backlog is not None:
            self.sizer.reported(result.backlog)

    async def _drain_own_pending(self) -> None:
        """After a restart or an error, finish what this consumer had read but not acknowledged.

        Redis marks entries delivered when it answers XREADGROUP; a read that then failed on our
        side (a timeout, a dropped connection) leaves them pending on this consumer, where only
        this re-read, not the 30 s idle claim, picks them up at once.
        """
        entries = await self.shard.read(self.settings.writer_batch_size, None, own_pending=True)
        seen: set[str] = set()
        while entries and not seen.issuperset(e[0] for e in entries):
            seen.update(e[0] for e in entries)
            await self.process(entries)
            entries = await self.shard.read(self.settings.writer_batch_size, None, own_pending=True)

    async def process(self, entries: StreamEntries) -> None:
        """Decode a batch (dead-lettering undecodable entries) and persist the rest."""
        items: list[Item] = []
        # One entry once per batch, even if a claim and a read both returned it.
        for entry_id, fields in dict(entries).items():
            try:
                items.append((entry_id, fields, to_row(entry_id, self.shard.shard, fields)))
            except PoisonEntry as exc:
                await self.shard.dead_letter(entry_id, fields, f"malformed: {exc}")
                self._untrimmed = True
                metrics.DEAD_LETTERS.labels("malformed").inc()
                log.error(
                    "dead-lettered malformed entry %s on shard %d", entry_id, self.shard.shard
                )
        if items:
            await self._persist(items)
        elif self._trim_due():  # only dead letters: nothing to settle, trim on its own
            await self.flush()

    async def _persist(self, items: Sequence[Item]) -> None:
        started = time.perf_counter()
        try:
            result = await self._write_with_retry([item[2] for item in items])
        except (backend.PostgresError, backend.DataError) as exc:
            if store.is_transient(exc):
                raise
            metrics.WRITER_BATCHES.labels("split" if len(items) > 1 else "failed").inc()
            if len(items) == 1:
                await self._failed_alone(items[0], exc)
                return
            middle = len(items) // 2
            await self._persist(items[:middle])
            await self._persist(items[middle:])
            return
        metrics.WRITER_BATCHES.labels("committed").inc()
        metrics.WRITER_BATCH_SIZE.observe(len(items))
        metrics.WRITER_BATCH_SECONDS.observe(time.perf_counter() - started)
        metrics.ROWS_PERSISTED.inc(result.history_rows)
        now = datetime.now(UTC)
        metrics.observe_many(
            metrics.ACCEPT_TO_PERSIST,
            [max(0.0, (now - row.accepted_at).total_seconds()) for _, _, row in items],
        )
        # Only now, after COMMIT, may Redis forget the entries (architecture §3.4). Releasing the
        # read-your-writes copies and acknowledging is one atomic call: acknowledged first and
        # released after, a writer killed in between left receipts `queued` forever, for no entry
        # was left to deliver again. Killed before the call, the entries are simply redelivered.
        # The trim, when due, rides in the same pipeline, after the settle.
        trim = self._trim_due()
        self._untrimmed = True
        settled = await self.shard.settle(
            [(e, r.candidate_id, r.version, r.receipt_id) for e, _, r in items], trim=trim
        )
        if settled.trim is not None:
            self._trimmed(settled.trim)

    async def _write_with_retry(self, rows: list[VersionRow]) -> store.BatchResult:
        """Retry deadlocks and serialization failures a few times before giving up on the batch."""
        for attempt in range(4):
            try:
                async with self.pool.acquire(timeout=self.settings.io_timeout_seconds) as conn:
                    return await store.write_batch(conn, rows)
            except (backend.PostgresError, backend.DataError) as exc:
                if not store.is_transient(exc) or attempt == 3:
                    raise
                metrics.WRITER_ERRORS.labels("transient").inc()
                await asyncio.sleep(0.05 * 2**attempt)
        raise AssertionError("unreachable")

    async def _failed_alone(self, item: Item, exc: Exception) -> None:
        entry_id, fields, _ = item
        deliveries = await self.shard.delivery_count(entry_id)
        reason = store.refusal_reason(exc)
        if deliveries >= self.settings.writer_max_deliveries:
            await self.shard.dead_letter(entry_id, fields, reason)
            self._untrimmed = True
            metrics.DEAD_LETTERS.labels("rejected_by_database").inc()
            log.error(
                "dead-lettered entry %s on shard %d after %d deliveries (%s)",
                entry_id,
                self.shard.shard,
                deliveries,
                reason,
            )
        else:
            # Left pending: it is claimed again once idle, with its delivery count raised.
            log.warning(
                "entry %s on shard %d failed alone (%s), delivery %d of %d",
                entry_id,
                self.shard.shard,
                reason,
                deliveries,
                self.settings.writer_max_deliveries,
            )


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _sweep(client: backend.Redis, pool: backend.Pool, shard_numbers: Sequence[int]) -> None:
    """Once at start: release queued markers of persisted versions (an older writer's crash)."""
    try:
        await reconciliation.release_persisted_markers(client, pool, set(shard_numbers))
    except backend.REDIS_ERRORS + backend.POSTGRES_ERRORS as exc:
        metrics.WRITER_ERRORS.labels("reconcile").inc()
        log.warning("reconciliation sweep failed: %s", type(exc).__name__)


def shards_for(process_index: int, processes: int, shards: int) -> list[int]:
    """Which shards writer process `process_index` of `processes` reads.

    With more processes than shards, several processes share a shard through the consumer group.
    """
    if processes <= shards:
        return [s for s in range(shards) if s % processes == process_index]
    return [process_index % shards]


async def run_writer(
    settings: Settings,
    pool: backend.Pool,
    client: backend.Redis,
    shard_numbers: Sequence[int],
    consumer: str,
    stop: asyncio.Event,
) -> None:
    """Run one ShardWriter per shard until `stop`, then drain within the shutdown bound."""
    writers = [
        ShardWriter(settings, pool, StreamShard(client, shard, consumer)) for shard in shard_numbers
    ]
    tasks = [asyncio.create_task(w.run(stop), name=f"shard-{w.shard.shard}") for w in writers]
    sweep = asyncio.create_task(_sweep(client, pool, shard_numbers), name="reconcile")
    stopped = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([*tasks, stopped], return_when=asyncio.FIRST_COMPLETED)
    crashed = [t for t in done if t is not stopped and t.exception() is not None]
    stop.set()
    _, pending = await asyncio.wait(tasks, timeout=settings.writer_shutdown_seconds)
    for task in (*pending, sweep):
        task.cancel()
    await asyncio.gather(*pending, sweep, return_exceptions=True)
    if crashed:
        raise crashed[0].exception()  # type: ignore[misc]


def yield_cpu(increment: int) -> int:
    """Lower this process's CPU priority by `increment` (nice); returns the niceness now.

    Absorbing a spike is the queue's point: while entries wait in Valkey they are safe, so the
    API workers, which answer candidates, get the CPU first. Niceness weighs, it does not starve:
    at +5 a writer sharing a busy core with one API worker still gets about a quarter of it
    (CFS weights 335 against 1024), and the whole core once the API is idle. An unprivileged
    process cannot take the priority back, so the writer does not speed up near the backlog
    limit; its batches grow with the backlog instead (less CPU per row), and the limit itself
    sheds with 503 + Retry-After.
    """
    return os.nice(increment)


async def main(settings: Settings, process_index: int, processes: int) -> int:
    """Entry point of one writer process: connect, run until SIGTERM/SIGINT, shut down cleanly."""
    if not settings.database_url or not settings.redis_url:
        raise RuntimeError("EXAMREG_DATABASE_URL and EXAMREG_REDIS_URL must be set")
    niceness = yield_cpu(settings.writer_nice)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    client = streams.connect(
        settings.redis_url,
        # A blocked XREADGROUP must outlast its BLOCK time before the socket times out.
        timeout=settings.io_timeout_seconds + settings.writer_block_ms / 1000,
    )
    pool = await store.create_pool(
        settings.database_url,
        size=max(2, settings.stream_shards),
        io_timeout=settings.io_timeout_seconds,
        role=settings.service_role,
        statement_cache_size=settings.db_statement_cache_size,
        # Behind a transaction pooler (statement cache off, see README) a session's temp table
        # does not follow the next transaction to its server connection: create it per batch.
        staging=settings.db_statement_cache_size > 0,
    )
    # A stable consumer name per slot: a restarted writer finds its own pending entries again.
    consumer = f"{socket.gethostname()}-w{process_index}"
    shard_numbers = shards_for(process_index, processes, settings.stream_shards)
    log.info("writer %s reading shards %s at niceness %d", consumer, shard_numbers, niceness)
    try:
        await run_writer(settings, pool, client, shard_numbers, consumer, stop)
    finally:
        await pool.close()
        await client.aclose()
    return 0
