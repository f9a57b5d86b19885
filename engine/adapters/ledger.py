"""Redis for reconciliation: the streams, pending lists, dead letters and candidate hashes, read
page by page while the system runs.

Owns the reads `examreg reconcile` makes of Redis (issue 14 item 4): a snapshot of every shard's
stream (XRANGE in pages, each entry's state from XPENDING and the group's last-delivered id)
and dead-letter stream, the entries added since (to confirm suspects), every candidate hash
(SCAN, never KEYS, and one pipelined HGETALL per page) and the version counters of candidates
PostgreSQL names (pipelined HGET). Memory grows with the backlog (entries not yet trimmed), not
with the registrations. It must not know about SQL; the key layout is `engine.adapters.streams`'.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from redis.exceptions import ResponseError

from engine.adapters.backend import Redis
from engine.adapters.streams import GROUP, candidate_key, dead_key, scan_pages, stream_key
from engine.domain.reconciliation import CandidateFacts, DeadFact, StreamFact

_PAGE = 1000


def _number(value: str | None) -> int | None:
    return int(value) if value and value.isascii() and value.isdigit() and len(value) < 19 else None


def _id_ms(entry_id: str) -> int:
    head = entry_id.split("-", 1)[0]
    return int(head) if head.isdigit() else 0


def _age(fields: dict[str, str], entry_id: str, now_ms: int) -> float:
    """Seconds since the 202: the entry's `at`, else its id's time (a replay gets a new id)."""
    try:
        accepted_ms = datetime.fromisoformat(fields.get("at", "")).timestamp() * 1000
    except ValueError:
        accepted_ms = _id_ms(entry_id)
    return max(0.0, (now_ms - accepted_ms) / 1000)


@dataclass
class Snapshot:
    """What the streams held when read: entries and dead letters by (candidate, version)."""

    entries: dict[tuple[int, int], StreamFact] = field(default_factory=dict)
    dead: dict[tuple[int, int], DeadFact] = field(default_factory=dict)  # for lookups
    dead_letters: list[DeadFact] = field(default_factory=list)  # every one, each reported
    stream_last: dict[int, str] = field(default_factory=dict)  # last id read, per shard
    dead_last: dict[int, str] = field(default_factory=dict)


async def _xrange_pages(
    client: Redis, key: str, start: str = "-"
) -> AsyncIterator[list[tuple[str, dict[str, str]]]]:
    while True:
        page: Any = await client.xrange(key, start, "+", count=_PAGE)
        if not page:
            return
        yield page
        if len(page) < _PAGE:
            return
        start = "(" + page[-1][0]


async def _pending(client: Redis, key: str) -> tuple[str | None, dict[str, tuple[str, int]]]:
    """The group's last-delivered id (None: no group yet) and its pending entries."""
    try:
        groups: Any = await client.xinfo_groups(key)
    except ResponseError:  # no stream yet
        return None, {}
    group = next((g for g in groups if g["name"] == GROUP), None)
    if group is None:
        return None, {}
    pending: dict[str, tuple[str, int]] = {}
    start = "-"
    while True:
        rows: Any = await client.xpending_range(key, GROUP, start, "+", _PAGE)
        for row in rows:
            pending[row["message_id"]] = (str(row["consumer"]), int(row["times_delivered"]))
        if len(rows) < _PAGE:
            return str(group["last-delivered-id"]), pending
        start = "(" + rows[-1]["message_id"]


def _after(entry_id: str, last: str | None) -> bool:
    """Whether `entry_id` comes after `last` (never delivered to the group)."""
    if last is None:
        return True
    a, _, b = entry_id.partition("-")
    c, _, d = last.partition("-")
    return (int(a), int(b or 0)) > (int(c), int(d or 0))


def _add_entries(
    snapshot: Snapshot,
    shard: int,
    page: list[tuple[str, dict[str, str]]],
    last_delivered: str | None,
    pending: dict[str, tuple[str, int]],
    now_ms: int,
) -> None:
    for entry_id, fields in page:
        cid, version = _number(fields.get("cid")), _number(fields.get("v"))
        snapshot.stream_last[shard] = entry_id
        if cid is None or version is None:
            continue  # a malformed entry: the writer dead-letters it
        held = pending.get(entry_id)
        state: Literal["waiting", "pending", "acknowledged"] = "pending"
        if not held:
            state = "waiting" if _after(entry_id, last_delivered) else "acknowledged"
        fact = StreamFact(
            shard,
            entry_id,
            fields.get("rid", ""),
            state,
            _age(fields, entry_id, now_ms),
            held[0] if held else None,
            held[1] if held else 0,
        )
        known = snapshot.entries.get((cid, version))
        if known is None or (fact.queued and not known.queued):  # a replay's copy wins
            snapshot.entries[(cid, version)] = fact


def _add_dead(
    snapshot: Snapshot, shard: int, page: list[tuple[str, dict[str, str]]], now_ms: int
) -> None:
    for dead_id, fields in page:
        snapshot.dead_last[shard] = dead_id
        cid, version = _number(fields.get("cid")), _number(fields.get("v"))
        fact = DeadFact(
            shard,
            dead_id,
            cid,
            version,
            fields.get("rid"),
            fields.get("reason", ""),
            _age(fields, fields.get("source_id", dead_id), now_ms),
        )
        snapshot.dead_letters.append(fact)
        if cid is not None and version is not None:
            snapshot.dead[(cid, version)] = fact


async def snapshot(client: Redis, shards: int, now_ms: int) -> Snapshot:
    """Every shard's stream and dead letters. The pending list is read before the entries, so an
    entry delivered or acknowledged meanwhile is seen as still queued, never the reverse."""
    result = Snapshot()
    for shard in range(shards):
        last_delivered, pending = await _pending(client, stream_key(shard))
        async for page in _xrange_pages(client, stream_key(shard)):
            _add_entries(result, shard, page, last_delivered, pending, now_ms)
        async for page in _xrange_pages(client, dead_key(shard)):
            _add_dead(result, shard, page, now_ms)
    return result


async def tail(client: Redis, shards: int, since: Snapshot, now_ms: int) -> Snapshot:
    """The entries and dead letters added after `since` was read (all of them counted queued)."""
    result = Snapshot()
    for shard in range(shards):
        start = "(" + since.stream_last[shard] if shard in since.stream_last else "-"
        async for page in _xrange_pages(client, stream_key(shard), start):
            _add_entries(result, shard, page, "0-0", {}, now_ms)  # queued at the least
        start = "(" + since.dead_last[shard] if shard in since.dead_last else "-"
        async for page in _xrange_pages(client, dead_key(shard), start):
            _add_dead(result, shard, page, now_ms)
    return result


def _candidate_of(key: str) -> tuple[int, int] | None:
    head, _, candidate = key.partition("}:cand:")
    shard = head.removeprefix("examreg:{")
    if shard == head or not (shard.isdigit() and candidate.isdigit()):
        return None
    return int(shard), int(candidate)


def _facts(shard: int, candidate_id: int, values: dict[str, str]) -> CandidateFacts:
    markers = {
        name.removeprefix("rcpt:"): int(value)
        for name, value in values.items()
        if name.startswith("rcpt:") and value.isdigit()
    }
    return CandidateFacts(candidate_id, shard, _number(values.get("version")) or 0, markers)


async def candidates(
    client: Redis, shards: Collection[int], *, page: int = 2000
) -> AsyncIterator[list[CandidateFacts]]:
    """Every candidate hash on these shards, one SCAN page at a time (one pipelined HGETALL)."""
    async for keys in scan_pages(client, "examreg:*:cand:*", page):
        owned = [ids for ids in map(_candidate_of, keys) if ids and ids[0] in shards]
        if owned:
            pipe = client.pipeline(transaction=False)
            for shard, candidate_id in owned:
                pipe.hgetall(candidate_key(shard, candidate_id))
            values: list[Any] = await pipe.execute()
            yield [
                _facts(shard, candidate_id, found)
                for (shard, candidate_id), found in zip(owned, values, strict=True)
                if found
            ]


async def counters(client: Redis, candidates_of: Sequence[tuple[int, int]]) -> list[int | None]:
    """The version counter of each (shard, candidate), None where Redis has no hash."""
    pipe = client.pipeline(transaction=False)
    for shard, candidate_id in candidates_of:
        pipe.hget(candidate_key(shard, candidate_id), "version")
    values: list[Any] = await pipe.execute()
    return [_number(v) for v in values]


REPORT_KEY = "examreg:reconcile:last"


async def save_report(client: Redis, body: bytes) -> None:
    """Keep the last report (the /metrics gauges and GET /api/v1/ops/reconcile read it)."""
    await client.set(REPORT_KEY, body)


async def last_report(client: Redis) -> str | None:
    value: Any = await client.get(REPORT_KEY)
    return None if value is None else str(value)


RUNNING_KEY = "examreg:reconcile:running"


async def claim_run(client: Redis, holder: str, seconds: int) -> bool:
    """Take the one-run-at-a-time lock (it expires by itself should its holder die)."""
    return bool(await client.set(RUNNING_KEY, holder, nx=True, ex=seconds))


async def running(client: Redis) -> str | None:
    value: Any = await client.get(RUNNING_KEY)
    return None if value is None else str(value)


async def release_run(client: Redis, holder: str) -> None:
    """Drop the lock if it is still ours (compare and delete, atomically)."""
    await client.eval(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end"
        " return 0",
        1,
        RUNNING_KEY,
        holder,
    )
