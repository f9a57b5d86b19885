"""Redis streams: the durable queue between the API and the writers (architecture §2, §4).

Owns the key layout, the server-side functions (`lua/examreg.lua`), the start-up durability
check, the API's micro-batched enqueue, and the writer's stream operations (read, claim, ack,
trim, dead-letter) and backlog statistics. It must not know about HTTP or SQL.

Key layout, every key hash-tagged by shard so a shard lives in one Redis Cluster slot:
  examreg:{s}:stream            the shard's stream; consumer group "writers"
  examreg:{s}:dead              dead-letter stream of the shard
  examreg:{s}:cand:<id>         per-candidate hash: version counter, latest queued record, receipts
  examreg:{s}:idem:<id>:<key>   idempotency record (request hash and the original receipt)
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson
import redis.asyncio as aioredis
from redis.exceptions import OutOfMemoryError, RedisError, ResponseError

from engine.adapters import metrics
from engine.errors import IdempotencyKeyReused, Overloaded, Unavailable
from engine.types import ShardStats

GROUP = "writers"
_LUA = Path(__file__).resolve().parent / "lua" / "examreg.lua"


def stream_key(shard: int) -> str:
    return f"examreg:{{{shard}}}:stream"


def dead_key(shard: int) -> str:
    return f"examreg:{{{shard}}}:dead"


def candidate_key(shard: int, candidate_id: int) -> str:
    return f"examreg:{{{shard}}}:cand:{candidate_id}"


def idempotency_key(shard: int, candidate_id: int, key: str) -> str:
    return f"examreg:{{{shard}}}:idem:{candidate_id}:{key}"


def new_receipt_id() -> str:
    """An opaque, unguessable receipt id (80 random bits, Crockford-ish base32, upper case)."""
    return secrets.token_hex(10).upper()


def form_hash(form: dict[str, Any]) -> str:
    """SHA-256 of the canonical form: a retry with the same content hashes the same."""
    return hashlib.sha256(orjson.dumps(form, option=orjson.OPT_SORT_KEYS)).hexdigest()


class DurabilityError(RuntimeError):
    """Redis would not keep an acknowledged entry, or could evict queued keys."""


async def check_durability(client: aioredis.Redis) -> None:
    """Refuse to run unless every acknowledged write is fsynced and nothing is ever evicted.

    Raises:
        DurabilityError: with what to change in the Redis configuration.
    """
    config = await client.config_get("appendonly")
    config.update(await client.config_get("appendfsync"))
    config.update(await client.config_get("maxmemory-policy"))
    problems = []
    if config.get("appendonly") != "yes":
        problems.append("appendonly must be 'yes'")
    if config.get("appendfsync") != "always":
        problems.append("appendfsync must be 'always' (a 202 promises the entry is fsynced)")
    if config.get("maxmemory-policy") != "noeviction":
        problems.append("maxmemory-policy must be 'noeviction' (eviction would lose queued data)")
    if problems:
        raise DurabilityError(
            "Redis is not configured for durable queuing: "
            + "; ".join(problems)
            + ". Fix the server, or set EXAMREG_REDIS_CHECK_DURABILITY=false to run anyway."
        )


async def load_functions(client: aioredis.Redis) -> None:
    """Install (or replace) the server-side function library."""
    await client.function_load(_LUA.read_text(), replace=True)


def connect(url: str, *, timeout: float = 5.0, max_connections: int = 64) -> aioredis.Redis:
    return aioredis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        max_connections=max_connections,
        health_check_interval=30,
    )


# -- the API side: micro-batched enqueue ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Submission:
    """One validated registration, ready to enqueue."""

    candidate_id: int
    shard: int
    idempotency_key: str
    form: dict[str, Any]
    phase: Literal["trial", "official"]


@dataclass(frozen=True, slots=True)
class Receipt:
    """What a 202 (or its replay) carries."""

    receipt_id: str
    version: int
    accepted_at: str
    phase: str
    replayed: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "receipt_id": self.receipt_id,
            "version": self.version,
            "status": "queued",
            "phase": self.phase,
            "accepted_at": self.accepted_at,
        }


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class Enqueuer:
    """Coalesces the submissions of one event-loop tick into one Redis pipeline.

    With `appendfsync always` Redis fsyncs once per event-loop iteration, so a pipeline of N calls
    costs one fsync: the group commit that makes micro-batching pay (architecture §4).
    `retry_after` is the shed answer's Retry-After: fixed seconds, or a function of the full shard
    (None: Redis memory) that the API computes from the backlog and the drain rate.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        idempotency_ttl: int,
        max_backlog_per_shard: int,
        retry_after: int | Callable[[int | None], int],
        timeout: float,
    ) -> None:
        self._client = client
        self._ttl = idempotency_ttl
        self._max_len = max_backlog_per_shard
        self._retry_after = retry_after
        self._timeout = timeout
        self._pending: list[tuple[Submission, asyncio.Future[Receipt]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, submission: Submission) -> Receipt:
        """Enqueue durably, or replay the original receipt for a repeated key and body.

        Raises:
            IdempotencyKeyReused: same key, different body.
            Overloaded: the shard's stream is at its limit.
            Unavailable: Redis did not answer in time.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Receipt] = loop.create_future()
        self._pending.append((submission, future))
        if len(self._pending) == 1:
            loop.call_soon(self._flush_soon)
        return await future

    def _flush_soon(self) -> None:
        batch, self._pending = self._pending, []
        task = asyncio.create_task(self._flush(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flush(self, batch: list[tuple[Submission, asyncio.Future[Receipt]]]) -> None:
        pipe = self._client.pipeline(transaction=False)
        for submission, _ in batch:
            self._queue_call(pipe, submission)
        try:
            async with asyncio.timeout(self._timeout):
                results = await pipe.execute(raise_on_error=False)
        except (RedisError, OSError, TimeoutError) as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(Unavailable(extra={"reason": type(exc).__name__}))
            return
        metrics.ENQUEUE_BATCH_SIZE.observe(len(batch))
        for (submission, future), result in zip(batch, results, strict=True):
            if future.done():
                continue  # the client went away; the entry (if any) stays valid for its retry
            try:
                future.set_result(self._parse(result, submission.shard))
            except (IdempotencyKeyReused, Overloaded, Unavailable) as exc:
                future.set_exception(exc)

    def _queue_call(self, pipe: Any, sub: Submission) -> None:
        receipt_id = new_receipt_id()
        pipe.fcall(
            "examreg_submit",
            3,
            stream_key(sub.shard),
            candidate_key(sub.shard, sub.candidate_id),
            idempotency_key(sub.shard, sub.candidate_id, sub.idempotency_key),
            str(sub.candidate_id),
            sub.idempotency_key,
            form_hash(sub.form),
            receipt_id,
            _utc_now(),
            sub.phase,
            orjson.dumps(sub.form).decode(),
            str(self._ttl),
            str(self._max_len),
        )

    def _retry_after_for(self, shard: int | None) -> int:
        return self._retry_after(shard) if callable(self._retry_after) else self._retry_after

    def _parse(self, result: object, shard: int) -> Receipt:
        if isinstance(result, BaseException):
            # OOM (maxmemory reached with noeviction) is overload, anything else unavailability.
            # redis-py raises OutOfMemoryError for it, its message without the "OOM" prefix.
            if isinstance(result, OutOfMemoryError) or (
                isinstance(result, ResponseError) and str(result).startswith("OOM")
            ):
                raise Overloaded(
                    retry_after=self._retry_after_for(None), extra={"reason": "redis_memory"}
                )
            raise Unavailable(extra={"reason": "redis_error"})
        assert isinstance(result, list)
        outcome = result[0]
        if outcome == "reused":
            raise IdempotencyKeyReused()
        if outcome == "overloaded":
            raise Overloaded(retry_after=self._retry_after_for(shard), extra={"reason": "backlog"})
        return Receipt(
            receipt_id=str(result[2]),
            version=int(result[1]),
            accepted_at=str(result[3]),
            phase=str(result[4]),
            replayed=outcome == "replay",
        )


# -- read-your-writes ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LatestRecord:
    """What Redis remembers of a candidate's newest accepted version."""

    version: int
    receipt_id: str
    phase: str
    accepted_at: str
    stream_id: str
    form: dict[str, Any] | None  # still only in Redis; None once released after COMMIT


async def latest_record(
    client: aioredis.Redis, shard: int, candidate_id: int
) -> LatestRecord | None:
    values: list[Any] = await client.hmget(
        candidate_key(shard, candidate_id),
        [
            "latest_version",
            "latest_receipt",
            "latest_phase",
            "latest_at",
            "latest_stream_id",
            "latest_form",
        ],
    )
    if values[0] is None:
        return None
    return LatestRecord(
        int(values[0]),
        str(values[1]),
        str(values[2]),
        str(values[3]),
        str(values[4]),
        None if values[5] is None else orjson.loads(values[5]),
    )


async def latest_queued(
    client: aioredis.Redis, shard: int, candidate_id: int
) -> LatestRecord | None:
    """The newest accepted version while its form is still only in Redis."""
    record = await latest_record(client, shard, candidate_id)
    return record if record is not None and record.form is not None else None


async def queued_receipt_version(
    client: aioredis.Redis, shard: int, candidate_id: int, receipt_id: str
) -> int | None:
    value = await client.hget(candidate_key(shard, candidate_id), f"rcpt:{receipt_id}")
    return None if value is None else int(value)


async def entry_state(client: aioredis.Redis, shard: int, stream_id: str) -> dict[str, Any]:
    """Where one stream entry is: waiting for a writer, delivered (pending), or gone (trimmed)."""
    stream = stream_key(shard)
    try:
        pending: Any = await client.xpending_range(stream, GROUP, stream_id, stream_id, 1)
    except ResponseError as exc:  # NOGROUP: no writer has started on this shard yet
        if "NOGROUP" not in str(exc):
            raise
        pending = []
    if pending:
        row = pending[0]
        return {
            "state": "pending",
            "consumer": row["consumer"],
            "deliveries": int(row["times_delivered"]),
            "idle_seconds": int(row["time_since_delivered"]) / 1000,
        }
    if await client.xrange(stream, stream_id, stream_id):
        return {"state": "waiting"}
    return {"state": "gone"}


async def find_dead_letter(
    client: aioredis.Redis, shard: int, receipt_id: str, scan: int = 1000
) -> dict[str, Any] | None:
    """The dead-letter record of a receipt, among the shard's newest `scan` dead letters."""
    entries: Any = await client.xrevrange(dead_key(shard), count=scan)
    for entry_id, fields in entries:
        if fields.get("rid") == receipt_id:
            return {
                "dead_letter_id": entry_id,
                "reason": fields.get("reason", ""),
                "source_id": fields.get("source_id"),
            }
    return None


# -- the writer side ------------------------------------------------------------------------------


StreamEntries = list[tuple[str, dict[str, str]]]


class StreamShard:
    """One shard's stream as a writer sees it: read, claim, ack, trim, dead-letter."""

    def __init__(self, client: aioredis.Redis, shard: int, consumer: str) -> None:
        self.client = client
        self.shard = shard
        self.consumer = consumer
        self.stream = stream_key(shard)

    async def ensure_group(self) -> None:
        with contextlib.suppress(ResponseError):  # BUSYGROUP: it exists already
            await self.client.xgroup_create(self.stream, GROUP, id="0", mkstream=True)

    async def read(
        self, count: int, block_ms: int | None, *, own_pending: bool = False
    ) -> StreamEntries:
        """New entries (`>`), or this consumer's own unacknowledged ones (`0`) after a restart."""
        response: Any = await self.client.xreadgroup(
            GROUP,
            self.consumer,
            {self.stream: "0" if own_pending else ">"},
            count=count,
            block=None if own_pending else block_ms,
        )
        if not response:
            return []
        entries: StreamEntries = response[0][1]
        # XREADGROUP with 0 lists entries deleted meanwhile as (id, None); they are gone already.
        return [(entry_id, fields) for entry_id, fields in entries if fields]

    async def claim_stale(self, min_idle_ms: int, count: int) -> StreamEntries:
        """Take over entries another (dead) writer read but never acknowledged."""
        result = await self.client.xautoclaim(
            self.stream,
            GROUP,
            self.consumer,
            min_idle_time=min_idle_ms,
            start_id="0-0",
            count=count,
        )
        entries: StreamEntries = result[1]
        return [(entry_id, fields) for entry_id, fields in entries if fields]

    async def delivery_count(self, entry_id: str) -> int:
        rows = await self.client.xpending_range(self.stream, GROUP, entry_id, entry_id, 1)
        return int(rows[0]["times_delivered"]) if rows else 0

    async def ack(self, entry_ids: Sequence[str]) -> None:
        if entry_ids:
            await self.client.xack(self.stream, GROUP, *entry_ids)

    async def release(self, rows: Sequence[tuple[int, int, str]]) -> None:
        """Drop Redis copies PostgreSQL now answers for: (candidate_id, version, receipt_id)."""
        if not rows:
            return
        pipe = self.client.pipeline(transaction=False)
        for candidate_id, version, receipt in rows:
            pipe.fcall(
                "examreg_release", 1, candidate_key(self.shard, candidate_id), str(version), receipt
            )
        await pipe.execute()

    async def dead_letter(self, entry_id: str, fields: dict[str, str], reason: str) -> None:
        """Move an entry that can never be persisted to the shard's dead-letter stream."""
        pipe = self.client.pipeline(transaction=True)
        entry: dict[Any, Any] = {**fields, "source_id": entry_id, "reason": reason[:500]}
        pipe.xadd(dead_key(self.shard), entry)
        pipe.xack(self.stream, GROUP, entry_id)
        await pipe.execute()

    async def trim(self) -> int:
        """Remove entries below everything still pending or undelivered (architecture §3.4)."""
        summary = await self.client.xpending(self.stream, GROUP)
        if summary["pending"]:
            threshold = summary["min"]
        else:
            groups = await self.client.xinfo_groups(self.stream)
            last = next((g["last-delivered-id"] for g in groups if g["name"] == GROUP), "0-0")
            millis, seq = (int(part) for part in last.split("-"))
            threshold = f"{millis}-{seq + 1}"
        return int(await self.client.xtrim(self.stream, minid=threshold, approximate=False))


def _id_age(entry_id: str, now_ms: int) -> float:
    return max(0.0, (now_ms - int(entry_id.split("-")[0])) / 1000)


async def shard_stats(client: aioredis.Redis, shards: int) -> list[ShardStats]:
    """Lag, pending and oldest age for every shard (one pipeline)."""
    pipe = client.pipeline(transaction=False)
    for shard in range(shards):
        pipe.xlen(stream_key(shard))
        pipe.xinfo_groups(stream_key(shard))
        pipe.xpending(stream_key(shard), GROUP)
        pipe.xlen(dead_key(shard))
        pipe.xinfo_stream(stream_key(shard))
    results = await pipe.execute(raise_on_error=False)
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    stats = []
    for shard in range(shards):
        length, groups, pending, dead, info = results[shard * 5 : shard * 5 + 5]
        if isinstance(groups, BaseException) or isinstance(pending, BaseException):
            stats.append(
                ShardStats(shard, 0, 0, 0, 0.0, 0 if isinstance(dead, BaseException) else dead)
            )
            continue
        group = next((g for g in groups if g["name"] == GROUP), None)
        lag = int(group.get("lag") or 0) if group else int(length)
        oldest = _id_age(pending["min"], now_ms) if pending["pending"] else 0.0
        if not pending["pending"] and lag and not isinstance(info, BaseException):
            first = info.get("first-entry")
            oldest = _id_age(first[0], now_ms) if first else 0.0
        stats.append(
            ShardStats(shard, int(length), lag, int(pending["pending"]), oldest, int(dead))
        )
    return stats


async def memory_usage(client: aioredis.Redis) -> tuple[int, int]:
    """(used_memory, maxmemory) in bytes; maxmemory 0 means unlimited."""
    info = await client.info("memory")
    return int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
