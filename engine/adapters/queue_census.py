"""Which candidates the streams still hold: every entry not yet acknowledged, waiting or pending.

Owns reading the candidate ID of each unacknowledged entry of every shard, for the lock report's
"still queued, by province" (issue 14 item 3): the entries after the writers' group's last
delivered ID (waiting) and those in its pending list (delivered, not acknowledged). Entries
already acknowledged but not yet trimmed are not counted. Reads are bounded by `limit`; past it
the census says it is partial. It reads only: no entry is claimed, acknowledged or changed.
"""

from __future__ import annotations

from typing import Any

from redis.exceptions import ResponseError

from engine.adapters.backend import Redis
from engine.adapters.streams import GROUP, stream_key

_PAGE = 1000


def _cid(fields: Any) -> int | None:
    raw = str((fields or {}).get("cid", ""))
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 19 else None


async def _pending_ids(client: Redis, key: str, limit: int) -> list[str]:
    ids: list[str] = []
    start = "-"
    while len(ids) < limit:
        batch = await client.xpending_range(key, GROUP, min=start, max="+", count=_PAGE)
        if not batch:
            break
        ids.extend(str(p["message_id"]) for p in batch)
        start = "(" + str(batch[-1]["message_id"])
        if len(batch) < _PAGE:
            break
    return ids[:limit]


async def _entries(client: Redis, key: str, start: str, limit: int) -> list[int]:
    cids: list[int] = []
    while len(cids) < limit:
        batch = await client.xrange(key, min=start, max="+", count=min(_PAGE, limit - len(cids)))
        if not batch:
            break
        cids.extend(c for _, fields in batch if (c := _cid(fields)) is not None)
        start = "(" + str(batch[-1][0])
        if len(batch) < _PAGE:
            break
    return cids


async def _shard(client: Redis, shard: int, limit: int) -> list[int]:
    key = stream_key(shard)
    try:
        groups = await client.xinfo_groups(key)
    except ResponseError:  # no stream yet on this shard
        return []
    group = next((g for g in groups if g["name"] == GROUP), None)
    if group is None:  # no writer started here: everything in the stream waits
        return await _entries(client, key, "-", limit)
    cids: list[int] = []
    pending = await _pending_ids(client, key, limit)
    if pending:
        pipe = client.pipeline(transaction=False)
        for entry_id in pending:
            pipe.xrange(key, min=entry_id, max=entry_id, count=1)
        for found in await pipe.execute():
            cids.extend(c for _, fields in found if (c := _cid(fields)) is not None)
    last = str(group.get("last-delivered-id") or "0-0")
    cids += await _entries(client, key, "(" + last, limit - len(cids))
    return cids


async def queued_candidates(client: Redis, shards: int, limit: int) -> tuple[list[int], bool]:
    """The candidate ID of every unacknowledged entry (one per version), and whether all were
    read (False: `limit` was reached first)."""
    cids: list[int] = []
    for shard in range(shards):
        left = limit - len(cids)
        if left <= 0:
            return cids, False
        cids += await _shard(client, shard, left)
    return cids, len(cids) < limit
