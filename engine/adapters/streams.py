"""Redis streams: the durable queue between the API and the writers (architecture §2, §4).

Owns the key layout, the server-side functions (`lua/examreg.lua`), the start-up durability
check, the API's micro-batched enqueue, and the writer's stream operations (read, claim, ack,
trim, dead-letter) and backlog statistics. It must not know about HTTP or SQL.

Key layout, every key hash-tagged by shard so a shard lives in one Redis Cluster slot:
  examreg:{s}:stream            the shard's stream; consumer group "writers"
  examreg:{s}:dead              dead-letter stream of the shard
  examreg:{s}:cand:<id>         per-candidate hash: version counter, latest accepted record
                                (version, receipt, phase, time, stream id: not the form),
                                receipts still queued (rcpt:…), dead-letter marks (dead:…)
  examreg:{s}:idem:<id>:<key>   idempotency record, one string with its TTL:
                                "<request hash> <version> <receipt> <accepted_at> <phase>"
  examreg:{s}:session:<digest>  a candidate's session (engine/adapters/sessions.py), checked by
                                examreg_submit in the same call

On a Valkey Cluster (`redis+cluster://host:port[,host:port…]`) every call above stays in one
slot, the function library is loaded on every master, a tick's pipeline is split per node, and
an accepted submission is answered only once `WAITAOF 1 1` on the same connection says the entry
is fsynced on its master and on at least one replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
import time
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, NoReturn

import orjson
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.exceptions import (
    AskError,
    MovedError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError

from engine.adapters import metrics
from engine.adapters.backend import Redis, dropped_connection
from engine.errors import (
    IdempotencyKeyReused,
    Overloaded,
    PasswordChangeRequired,
    Unauthenticated,
    Unavailable,
    WindowClosed,
)
from engine.types import ShardStats

GROUP = "writers"
DEAD_LETTER_FIELDS = ("source_id", "reason")  # what a dead letter adds to the stream entry
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


CLUSTER_SCHEME = "redis+cluster://"


def is_cluster(url: str) -> bool:
    """Whether `url` names a Valkey/Redis Cluster (`redis+cluster://seed[,seed…]`)."""
    return url.startswith(CLUSTER_SCHEME)


def cluster_seeds(url: str) -> list[tuple[str, int]]:
    """The seed nodes of `redis+cluster://host:port[,host:port…]`.

    Raises:
        ValueError: the URL names no seed, or a seed without a numeric port.
    """
    seeds = []
    for part in url.removeprefix(CLUSTER_SCHEME).rstrip("/").split(","):
        host, colon, port = part.strip().rpartition(":")
        if not colon or not host or not port.isdigit():
            raise ValueError(f"a cluster seed must be host:port, not {part!r}")
        seeds.append((host.strip("[]"), int(port)))
    return seeds


async def check_durability(client: Redis) -> None:
    """Refuse to run unless every acknowledged write is fsynced and nothing is ever evicted (on a
    cluster: on every node, masters and replicas alike, since a replica may become a master).

    Raises:
        DurabilityError: with what to change in the Redis configuration.
    """
    if isinstance(client, RedisCluster):
        await client.initialize()
        for node in client.get_nodes():
            await _check_node(client, node)
        return
    await _check_node(client, None)


async def _check_node(client: Redis, node: ClusterNode | None) -> None:
    config: dict[str, Any] = {}
    for name in ("appendonly", "appendfsync", "maxmemory-policy"):
        if node is None:
            answer: Any = await client.config_get(name)
        else:
            answer = await client.config_get(name, target_nodes=node)
        config.update(answer)
    problems = []
    if config.get("appendonly") != "yes":
        problems.append("appendonly must be 'yes'")
    if config.get("appendfsync") != "always":
        problems.append("appendfsync must be 'always' (a 202 promises the entry is fsynced)")
    if config.get("maxmemory-policy") != "noeviction":
        problems.append("maxmemory-policy must be 'noeviction' (eviction would lose queued data)")
    if problems:
        where = "" if node is None else f" (node {node.name})"
        raise DurabilityError(
            f"Redis{where} is not configured for durable queuing: "
            + "; ".join(problems)
            + ". Fix the server, or set EXAMREG_REDIS_CHECK_DURABILITY=false to run anyway."
        )


async def load_functions(client: Redis) -> None:
    """Install (or replace) the server-side function library; on a cluster on every master
    (redis-py sends FUNCTION LOAD to all primaries; a replica gets it by replication)."""
    await client.function_load(_LUA.read_text(), replace=True)


async def _stale_map(client: RedisCluster, exc: ReadOnlyError) -> NoReturn:
    """A write reached a node that is now a replica (a failed master back as its successor's
    replica, before redis-py saw the change): read the slot map again, and fail the command as a
    dropped connection, which every caller retries (the writer after a second)."""
    with contextlib.suppress(RedisError, OSError):
        await client.nodes_manager.initialize()
    raise RedisConnectionError(f"stale slot map: {exc}") from exc


class _ClusterPipeline(ClusterPipeline):
    """A cluster pipeline whose connection another task closed under it raises ConnectionError."""

    async def execute(
        self, raise_on_error: bool = True, allow_redirections: bool = True
    ) -> list[Any]:
        try:
            return await super().execute(raise_on_error, allow_redirections)
        except AttributeError as exc:
            if dropped_connection(exc):
                raise RedisConnectionError(str(exc)) from exc
            raise
        except ReadOnlyError as exc:
            await _stale_map(self.cluster_client, exc)


class _Cluster(RedisCluster):
    """redis-py's cluster client, with a connection another task closed under a command (on
    CLUSTERDOWN, `backend.dropped_connection`) raised as the ConnectionError it is: every caller
    then answers 503 and retries as after any dropped connection, never 500."""

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().execute_command(*args, **kwargs)
        except AttributeError as exc:
            if dropped_connection(exc):
                raise RedisConnectionError(str(exc)) from exc
            raise
        except ReadOnlyError as exc:
            await _stale_map(self, exc)

    def pipeline(
        self, transaction: Any | None = None, shard_hint: Any | None = None
    ) -> ClusterPipeline:
        if shard_hint:
            return super().pipeline(transaction, shard_hint)  # refused by redis-py, as before
        return _ClusterPipeline(self, transaction)  # type: ignore[abstract]


def connect(url: str, *, timeout: float = 5.0, max_connections: int = 64) -> Redis:
    """A client whose pool waits for a free connection and survives a Redis restart.

    Past `max_connections` commands in flight a command waits (up to `timeout`) for a
    connection to come back instead of failing at once with "Too many connections": a burst
    queues for milliseconds rather than ending in 503s. A command that meets a connection error
    is sent once more on a fresh connection: after Valkey restarts every pooled connection is
    stale, and without the retry each one would fail one request. Timeouts are not retried (the
    command may have run, and the caller's deadline is already spent).

    A `redis+cluster://` URL gives redis-py's cluster client instead: the slot map from the
    seeds, MOVED/ASK followed, a pool of `max_connections` per node (not blocking: past it a
    command fails, a 503), and after a connection error the slot map is read again, which is how
    it finds a replica promoted in place of a dead master.
    """
    if is_cluster(url):
        return _Cluster(
            startup_nodes=[ClusterNode(host, port) for host, port in cluster_seeds(url)],
            decode_responses=True,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            max_connections=max_connections,
            retry=Retry(NoBackoff(), retries=1, supported_errors=(RedisConnectionError,)),
        )
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        decode_responses=True,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        max_connections=max_connections,
        timeout=timeout,
        health_check_interval=30,
        retry=Retry(NoBackoff(), retries=1, supported_errors=(RedisConnectionError,)),
    )
    return aioredis.Redis.from_pool(pool)


async def open_connections(client: Redis, count: int) -> None:
    """Open `count` pooled connections now (one PING each, at once), so that a burst finds them
    ready: a new connection costs a TCP handshake and set-up commands, and during a burst every
    round trip waits for Valkey's fsync of the writes in flight. On a cluster, `count` spread
    over the masters (PING goes to all of them)."""
    if isinstance(client, RedisCluster):
        await client.initialize()
        per_node = max(1, count // max(1, len(client.get_primaries())))
        await asyncio.gather(
            *(client.ping(target_nodes=RedisCluster.PRIMARIES) for _ in range(per_node))
        )
        return
    await asyncio.gather(*(client.ping() for _ in range(count)))


# -- the API side: micro-batched enqueue ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionCheck:
    """The candidate session examreg_submit checks in the enqueue's own call (one round trip).

    `key` must be the session's key in the submission's shard (`sessions.candidate_session_key`).
    """

    key: str
    absolute_seconds: int
    idle_seconds: int
    national_id: str  # the form's: the session must have been opened with it
    unit: str = ""  # the unit the token claims ('' none): the session must have been opened for it


class SessionUnsettled(Exception):
    """The server-side check could not settle the session alone: a session without the forced
    change flag, or a form whose national ID is not the session's. The caller answers by the
    slow path (the session read first, then the roster and the full validation)."""


@dataclass(frozen=True, slots=True)
class Submission:
    """One validated registration, ready to enqueue."""

    candidate_id: int
    shard: int
    idempotency_key: str
    form: dict[str, Any]
    phase: Literal["trial", "official"]
    deadline_ms: int = 0  # the candidate's close, epoch ms; Redis refuses at or after it (0: none)
    session: SessionCheck | None = None  # None: the caller has checked the session already


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


async def key_accepted(client: Redis, shard: int, candidate_id: int, key: str) -> bool:
    """Whether this Idempotency-Key of the candidate was accepted (its record is still kept)."""
    return bool(await client.exists(idempotency_key(shard, candidate_id, key)))


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class Enqueuer:
    """Coalesces the submissions of one event-loop tick into one Redis pipeline.

    With `appendfsync always` Redis fsyncs once per event-loop iteration, so a pipeline of N calls
    costs one fsync: the group commit that makes micro-batching pay (architecture §4). On a
    cluster the pipeline is split per node (one connection per node, the nodes at once), and
    each node's part is followed by `WAITAOF 1 1` on the same connection: an accepted
    submission is answered only when its master and at least one replica have fsynced it,
    otherwise 503 `unavailable` (the entry may be kept; the retry with the same
    Idempotency-Key is then a replay).
    `retry_after` is the shed answer's Retry-After: fixed seconds, or a function of the full shard
    (None: Redis memory) that the API computes from the backlog and the drain rate.
    """

    def __init__(
        self,
        client: Redis,
        *,
        idempotency_ttl: int,
        max_backlog_per_shard: int,
        retry_after: int | Callable[[int | None], int],
        timeout: float,
        replica_timeout_ms: int = 1000,
    ) -> None:
        self._client = client
        self._replica_timeout_ms = replica_timeout_ms
        self._slot_map_read = 0.0  # monotonic time the cluster's slot map was last re-read
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
        replicated: list[bool] | None = None
        try:
            async with asyncio.timeout(self._timeout):
                if isinstance(self._client, RedisCluster):
                    results, replicated = await self._execute_on_cluster(self._client, batch)
                else:
                    pipe = self._client.pipeline(transaction=False)
                    for submission, _ in batch:
                        self._queue_call(pipe, submission)
                    results = await pipe.execute(raise_on_error=False)
        except (RedisError, OSError, TimeoutError) as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(Unavailable(extra={"reason": type(exc).__name__}))
            return
        metrics.ENQUEUE_BATCH_SIZE.observe(len(batch))
        for i, ((submission, future), result) in enumerate(zip(batch, results, strict=True)):
            if future.done():
                continue  # the client went away; the entry (if any) stays valid for its retry
            try:
                receipt = self._parse(result, submission.shard)
                if replicated is not None and not replicated[i]:
                    # Appended on the master, not proven on a replica: no 202 (architecture §8).
                    metrics.ENQUEUE_UNREPLICATED.inc()
                    raise Unavailable(extra={"reason": "not_replicated"})
                future.set_result(receipt)
            except (
                IdempotencyKeyReused,
                Overloaded,
                Unavailable,
                WindowClosed,
                Unauthenticated,
                PasswordChangeRequired,
                SessionUnsettled,
            ) as exc:
                future.set_exception(exc)

    async def _execute_on_cluster(
        self, client: RedisCluster, batch: list[tuple[Submission, asyncio.Future[Receipt]]]
    ) -> tuple[list[Any], list[bool]]:
        """The batch's FCALLs grouped by the master of their slot, each group on one connection
        of that node (the nodes at once), then WAITAOF on the same connection; the answers, and
        for each submission whether its node's WAITAOF proved it on a replica.

        Why not redis-py's ClusterPipeline with the WAITAOF in it: Valkey's replica answers the
        master's GETACK before its own fsync of the writes that came with it, so a WAITAOF
        pipelined behind its writes waits for the replica's next periodic ACK, about a second
        (measured: benchmarks/cluster.py). Sent after the writes' answers, the GETACK it causes
        reaches the replica after those writes; should the replica still be behind, a short
        WAITAOF is sent again (each one asks for a fresh ACK) until the timeout.
        """
        await client.initialize()
        manager = client.nodes_manager
        groups: dict[str, list[int]] = {}
        for index, (sub, _) in enumerate(batch):
            node = manager.get_node_from_slot(key_slot(stream_key(sub.shard).encode()))
            groups.setdefault(node.name, []).append(index)
        results: list[Any] = [None] * len(batch)
        proven = [False] * len(batch)

        async def run(name: str, indexes: list[int]) -> None:
            node = client.get_node(node_name=name)
            assert node is not None
            answers, replicated = await self._on_node(node, [batch[i][0] for i in indexes])
            for i, answer in zip(indexes, answers, strict=True):
                results[i], proven[i] = answer, replicated

        outcomes = await asyncio.gather(
            *(run(name, indexes) for name, indexes in groups.items()), return_exceptions=True
        )
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        if failures:
            # A node down or a slot moved: read the slot map again now (the promoted replica's
            # address comes from it), without closing the connections other calls are using,
            # and refuse what that node had.
            if time.monotonic() - self._slot_map_read >= 0.25:  # a few times a second at most
                self._slot_map_read = time.monotonic()
                with contextlib.suppress(RedisError, OSError):
                    await manager.initialize()
            for indexes, outcome in zip(groups.values(), outcomes, strict=True):
                if isinstance(outcome, BaseException):
                    for i in indexes:
                        results[i] = outcome
        return results, proven

    async def _on_node(self, node: ClusterNode, subs: list[Submission]) -> tuple[list[Any], bool]:
        """FCALLs on one connection of `node`, then WAITAOF 1 1 there; (answers, replicated)."""
        connection = node.acquire_connection()
        try:
            await connection.send_packed_command(
                connection.pack_commands([self._call_args(sub) for sub in subs])
            )
            answers: list[Any] = []
            for _ in subs:
                try:
                    answers.append(await connection.read_response())
                except ResponseError as exc:  # MOVED, OOM, a script error: this call only
                    answers.append(exc)
            if any(isinstance(a, (MovedError, AskError)) for a in answers):
                raise next(a for a in answers if isinstance(a, (MovedError, AskError)))
            written = any(not isinstance(a, BaseException) for a in answers)
            return answers, written and await self._replicated(connection)
        except BaseException:
            await connection.disconnect()
            raise
        finally:
            node.release(connection)

    async def _replicated(self, connection: Any) -> bool:
        """WAITAOF 1 1 on `connection` until a replica has fsynced its writes, within the
        replica timeout: short waits, each one making the master ask the replicas again."""
        deadline = time.monotonic() + self._replica_timeout_ms / 1000
        step_ms = 20
        while True:
            left_ms = int((deadline - time.monotonic()) * 1000)
            await connection.send_command("WAITAOF", 1, 1, max(1, min(step_ms, left_ms)))
            local, replicas = (int(n) for n in await connection.read_response())
            if local >= 1 and replicas >= 1:
                return True
            if left_ms <= step_ms:
                return False

    def _call_args(self, sub: Submission) -> list[Any]:
        """The submission's FCALL, as a command: every key in the candidate's shard's slot."""
        receipt_id = new_receipt_id()
        keys = [
            stream_key(sub.shard),
            candidate_key(sub.shard, sub.candidate_id),
            idempotency_key(sub.shard, sub.candidate_id, sub.idempotency_key),
        ]
        check: list[str] = []
        if sub.session is not None:
            keys.append(sub.session.key)
            check = [
                repr(time.time()),
                str(sub.session.absolute_seconds),
                str(sub.session.idle_seconds),
                sub.session.national_id,
                sub.session.unit,
            ]
        return [
            "FCALL",
            "examreg_submit_v2",  # the old name stays for old processes (see examreg.lua)
            len(keys),
            *keys,
            str(sub.candidate_id),
            sub.idempotency_key,
            form_hash(sub.form),
            receipt_id,
            _utc_now(),
            sub.phase,
            orjson.dumps(sub.form).decode(),
            str(self._ttl),
            str(self._max_len),
            str(sub.deadline_ms),
            *check,
        ]

    def _queue_call(self, pipe: Any, sub: Submission) -> None:
        pipe.execute_command(*self._call_args(sub))

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
        if outcome == "closed":
            raise WindowClosed(extra={"phase": "closed"})
        if outcome == "unauthenticated":
            raise Unauthenticated()
        if outcome == "must_change":
            raise PasswordChangeRequired()
        if outcome in ("unflagged", "mismatch"):
            raise SessionUnsettled(outcome)
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
    """What Redis remembers of a candidate's newest accepted version (not its form: that is in
    the stream entry `stream_id` until trimmed, and trimmed only once PostgreSQL holds it)."""

    version: int
    receipt_id: str
    phase: str
    accepted_at: str
    stream_id: str


async def latest_record(client: Redis, shard: int, candidate_id: int) -> LatestRecord | None:
    values: list[Any] = await client.hmget(
        candidate_key(shard, candidate_id),
        ["latest_version", "latest_receipt", "latest_phase", "latest_at", "latest_stream_id"],
    )
    if values[0] is None:
        return None
    return LatestRecord(
        int(values[0]), str(values[1]), str(values[2]), str(values[3]), str(values[4])
    )


async def queued_form(
    client: Redis, shard: int, candidate_id: int, latest: LatestRecord
) -> tuple[dict[str, Any] | None, str | None]:
    """(form, dead-letter id) of the newest accepted version, in one pipeline: the form from its
    stream entry, None once the entry is trimmed (the writer trims only after COMMIT, so
    PostgreSQL then holds it, unless the dead-letter id says it was given up on)."""
    pipe = client.pipeline(transaction=False)
    pipe.xrange(stream_key(shard), latest.stream_id, latest.stream_id)
    pipe.hget(candidate_key(shard, candidate_id), f"dead:{latest.receipt_id}")
    entries, dead = await pipe.execute()
    form = None
    if entries and entries[0][1] and "form" in entries[0][1]:
        form = orjson.loads(entries[0][1]["form"])
    return form, None if dead is None else str(dead)


async def queued_receipt(
    client: Redis, shard: int, candidate_id: int, receipt_id: str
) -> tuple[int | None, str | None]:
    """(version, dead-letter id) of a receipt still queued in Redis; (None, None) once persisted.

    A dead-letter id means the writer gave up on it: it needs attention (an operator's replay).
    """
    values: list[Any] = await client.hmget(
        candidate_key(shard, candidate_id), [f"rcpt:{receipt_id}", f"dead:{receipt_id}"]
    )
    version, dead = values
    return (None if version is None else int(version)), (None if dead is None else str(dead))


async def entry_state(client: Redis, shard: int, stream_id: str) -> dict[str, Any]:
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


# -- reconciliation: queued markers of versions already persisted -------------------------------


@dataclass(frozen=True, slots=True)
class QueuedMarker:
    """A receipt Redis answers `queued` for: the `rcpt:<receipt>` field of a candidate hash."""

    shard: int
    candidate_id: int
    receipt_id: str
    version: int


def _candidate_of(key: str) -> tuple[int, int] | None:
    """(shard, candidate_id) of a key `examreg:{s}:cand:<id>`, or None for any other key."""
    head, _, candidate = key.partition("}:cand:")
    shard = head.removeprefix("examreg:{")
    if not (shard.isdigit() and candidate.isdigit()) or shard == head:
        return None
    return int(shard), int(candidate)


async def queued_markers(
    client: Redis, shards: Collection[int], *, page: int = 500
) -> AsyncIterator[list[QueuedMarker]]:
    """Every queued marker on these shards, one SCAN page at a time (never KEYS: the keyspace
    holds every candidate of the season, and SCAN keeps each step short)."""
    match = f"examreg:{{{next(iter(shards))}}}:cand:*" if len(shards) == 1 else "examreg:*:cand:*"
    async for keys in scan_pages(client, match, page):
        found = [(key, _candidate_of(key)) for key in keys]
        owned = [(key, ids) for key, ids in found if ids is not None and ids[0] in shards]
        markers = await _markers_of(client, owned)
        if markers:
            yield markers


async def scan_pages(client: Redis, match: str, page: int) -> AsyncIterator[list[str]]:
    """The keys matching `match`, `page` at a time, by SCAN (never KEYS); on a cluster, every
    master's keyspace one after the other (redis-py's cluster `scan_iter`)."""
    keys: list[str] = []
    async for key in client.scan_iter(match=match, count=page):
        keys.append(str(key))
        if len(keys) >= page:
            yield keys
            keys = []
    if keys:
        yield keys


async def _markers_of(
    client: Redis, owned: list[tuple[str, tuple[int, int]]]
) -> list[QueuedMarker]:
    """The `rcpt:` fields of these candidate hashes, one pipelined HSCAN each."""
    pipe = client.pipeline(transaction=False)
    for key, _ in owned:
        pipe.hscan(key, 0, match="rcpt:*")
    markers: list[QueuedMarker] = []
    for (key, (shard, candidate_id)), answer in zip(owned, await pipe.execute(), strict=True):
        field_cursor, fields = answer
        while True:  # a small hash answers in one HSCAN, a large one may need a few more
            markers += [
                QueuedMarker(shard, candidate_id, name.removeprefix("rcpt:"), int(version))
                for name, version in fields.items()
            ]
            if field_cursor == 0:
                break
            field_cursor, fields = await client.hscan(key, field_cursor, match="rcpt:*")
    return markers


async def release(client: Redis, markers: Sequence[QueuedMarker]) -> None:
    """Drop the queued markers of versions PostgreSQL already holds."""
    if not markers:
        return
    pipe = client.pipeline(transaction=False)
    for m in markers:
        key = candidate_key(m.shard, m.candidate_id)
        pipe.fcall("examreg_release", 1, key, str(m.version), m.receipt_id)
    await pipe.execute()


# -- the writer side ------------------------------------------------------------------------------


StreamEntries = list[tuple[str, dict[str, str]]]


class StreamShard:
    """One shard's stream as a writer sees it: read, claim, ack, trim, dead-letter."""

    def __init__(self, client: Redis, shard: int, consumer: str) -> None:
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

    async def dead_letter(self, entry_id: str, fields: dict[str, str], reason: str) -> str:
        """Move an entry that can never be persisted to the shard's dead-letter stream.

        One server-side call adds it there, acknowledges it, and marks its receipt in the
        candidate's hash (`dead:<receipt>`), so the candidate's status turns to needs-attention at
        the same instant; returns the dead-letter id.
        """
        keys = [self.stream, dead_key(self.shard)]
        candidate = fields.get("cid", "")
        if candidate.isascii() and candidate.isdigit():  # a malformed entry may name no one
            keys.append(candidate_key(self.shard, int(candidate)))
        pairs = [
            item
            for name, value in fields.items()
            if name not in DEAD_LETTER_FIELDS
            for item in (name, value)
        ]
        args = [GROUP, entry_id, reason[:500], fields.get("rid", ""), *pairs]
        result: Any = await self.client.fcall("examreg_dead_letter", len(keys), *keys, *args)
        return str(result)

    async def trim(self) -> TrimResult:
        """Remove entries below everything still pending or undelivered (architecture §3.4)."""
        return _trim_result(await self.client.fcall("examreg_trim", 1, self.stream, GROUP))

    async def settle(
        self, entries: Sequence[tuple[str, int, int, str]], *, trim: bool = False
    ) -> Settled:
        """After COMMIT: drop the Redis copies PostgreSQL now answers for and acknowledge the
        entries, in one atomic call; with `trim`, trim after it in the same pipeline (one round
        trip per batch; the trim already sees this batch acknowledged). Each entry is
        (stream id, candidate_id, version, receipt_id)."""
        if not entries and not trim:
            return Settled(0, None)
        pipe = self.client.pipeline(transaction=False)
        if entries:
            keys = [self.stream, *(candidate_key(self.shard, e[1]) for e in entries)]
            args = [GROUP]
            for entry_id, _, version, receipt in entries:
                args += [entry_id, str(version), receipt]
            pipe.fcall("examreg_settle", len(keys), *keys, *args)
        if trim:
            pipe.fcall("examreg_trim", 1, self.stream, GROUP)
        results = await pipe.execute()
        return Settled(
            int(results[0]) if entries else 0, _trim_result(results[-1]) if trim else None
        )


@dataclass(frozen=True, slots=True)
class TrimResult:
    """What one trim removed, and the shard's backlog as Valkey saw it then."""

    trimmed: int
    lag: int | None  # entries never delivered (None: Valkey could not tell)
    pending: int  # delivered, not yet acknowledged

    @property
    def backlog(self) -> int | None:
        return None if self.lag is None else self.lag + self.pending


@dataclass(frozen=True, slots=True)
class Settled:
    """What one settle acknowledged, and its trim's result when it trimmed."""

    acked: int
    trim: TrimResult | None


def _trim_result(answer: Any) -> TrimResult:
    trimmed, lag, pending = (int(v) for v in answer)
    return TrimResult(trimmed, None if lag < 0 else lag, pending)


def _id_age(entry_id: str, now_ms: int) -> float:
    return max(0.0, (now_ms - int(entry_id.split("-")[0])) / 1000)


@dataclass(frozen=True, slots=True)
class ShardFacts:
    """What Redis says about one shard, read in one pipeline with every other shard's."""

    shard: int
    length: int  # entries in the stream (queued and not yet trimmed)
    added: int  # entries ever added (XINFO STREAM entries-added): the arrivals
    lag: int  # entries never delivered to a writer
    pending: int  # delivered, not yet acknowledged
    oldest_pending_age: float  # seconds the oldest waiting entry has waited; 0 when none
    dead_letters: int
    writers: frozenset[str]  # consumers active within `writer_seen_ms` (when asked for)

    @property
    def backlog(self) -> int:
        """Everything not yet persisted: never delivered plus delivered and unacknowledged."""
        return self.lag + self.pending


def _shard_facts(shard: int, results: list[Any], now_ms: int, seen_ms: int | None) -> ShardFacts:
    info, groups, pending, dead, *rest = results
    dead_letters = 0 if isinstance(dead, BaseException) else int(dead)
    if isinstance(info, BaseException):  # no stream yet: nothing ever added
        return ShardFacts(shard, 0, 0, 0, 0, 0.0, dead_letters, frozenset())
    length = int(info.get("length") or 0)
    added = int(info.get("entries-added") or 0)
    group = None
    if not isinstance(groups, BaseException):
        group = next((g for g in groups if g["name"] == GROUP), None)
    if group is None or isinstance(pending, BaseException):  # no writer has started here yet
        waiting, lag, oldest_id = 0, length, None
    else:
        waiting = int(pending["pending"])
        # Redis reports no lag when it cannot tell (deleted entries in the range); the
        # undelivered entries are then at most what is in the stream and not pending.
        raw_lag = group.get("lag")
        lag = int(raw_lag) if raw_lag is not None else max(0, length - waiting)
        oldest_id = pending["min"] if waiting else None
    if oldest_id is None and lag:
        first = info.get("first-entry")
        oldest_id = first[0] if first else None
    oldest = _id_age(oldest_id, now_ms) if oldest_id else 0.0
    writers: frozenset[str] = frozenset()
    if seen_ms is not None and rest and not isinstance(rest[0], BaseException):
        writers = frozenset(c["name"] for c in rest[0] if int(c.get("idle") or 0) < seen_ms)
    return ShardFacts(shard, length, added, lag, waiting, oldest, dead_letters, writers)


async def read_shards(
    client: Redis, shards: int, *, writer_seen_ms: int | None = None
) -> list[ShardFacts]:
    """Every shard's length, arrivals, backlog, oldest waiting entry and dead letters, and with
    `writer_seen_ms` the writers seen within it: one pipeline, the one reader of these facts
    (the operators' gauges and the capacity forecast both derive from it)."""
    per_shard = 5 if writer_seen_ms is not None else 4
    pipe = client.pipeline(transaction=False)
    for shard in range(shards):
        pipe.xinfo_stream(stream_key(shard))
        pipe.xinfo_groups(stream_key(shard))
        pipe.xpending(stream_key(shard), GROUP)
        pipe.xlen(dead_key(shard))
        if writer_seen_ms is not None:
            pipe.xinfo_consumers(stream_key(shard), GROUP)
    results = await pipe.execute(raise_on_error=False)
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    return [
        _shard_facts(
            shard, results[shard * per_shard : (shard + 1) * per_shard], now_ms, writer_seen_ms
        )
        for shard in range(shards)
    ]


def stats_of(facts: list[ShardFacts]) -> list[ShardStats]:
    """Lag, pending and oldest age for every shard, as the operators' gauges show them."""
    return [
        ShardStats(f.shard, f.length, f.lag, f.pending, f.oldest_pending_age, f.dead_letters)
        for f in facts
    ]


def writers_of(facts: list[ShardFacts]) -> int:
    """Writer processes seen on any shard: distinct consumer names (one per writer process)."""
    return len(frozenset[str]().union(*(f.writers for f in facts)))


async def shard_stats(client: Redis, shards: int) -> list[ShardStats]:
    """Lag, pending and oldest age for every shard, as the operators' gauges show them."""
    return stats_of(await read_shards(client, shards))


async def memory_usage(client: Redis) -> tuple[int, int]:
    """(used_memory, maxmemory) in bytes; maxmemory 0 means unlimited. On a cluster, the
    fullest master's (a full master refuses its slots' writes whatever the others hold)."""
    if isinstance(client, RedisCluster):
        answers: Any = await client.info("memory", target_nodes=RedisCluster.PRIMARIES)
        usages = [
            (int(info.get("used_memory", 0)), int(info.get("maxmemory", 0)))
            for info in answers.values()
        ]
        return max(usages, key=lambda u: u[0] / u[1] if u[1] else 0.0)
    info = await client.info("memory")
    return int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
