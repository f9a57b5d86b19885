"""Redis: the dead-letter streams, read by the candidate's status, the desk and the operator.

Owns what happens to an entry after the writer gave up on it (`StreamShard.dead_letter` moved it
to `examreg:{s}:dead` and marked its receipt `dead:<receipt>` in the candidate's hash): reading
the mark, listing and reading dead letters, and the replay into the shard's stream
(`examreg_replay`: re-enqueue first, then delete). Split from `engine.adapters.streams`, whose key
layout and client it shares; it must not know about HTTP or SQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.adapters.backend import Redis
from engine.adapters.streams import DEAD_LETTER_FIELDS, candidate_key, dead_key, stream_key


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One entry of a shard's dead-letter stream: the original fields and why it is there."""

    shard: int
    entry_id: str  # id in examreg:{shard}:dead
    fields: dict[str, str]  # the stream entry as the API enqueued it (the form included)
    source_id: str  # its id in the shard's stream
    reason: str  # "<SQLSTATE>: <exception>" or "malformed: …"

    @property
    def ref(self) -> str:
        """How an operator names it: `<shard>:<entry id>` (entry ids are per shard)."""
        return f"{self.shard}:{self.entry_id}"


def _dead_letter(shard: int, entry_id: str, raw: dict[str, str]) -> DeadLetter:
    fields = {k: v for k, v in raw.items() if k not in DEAD_LETTER_FIELDS}
    return DeadLetter(shard, entry_id, fields, raw.get("source_id", ""), raw.get("reason", ""))


async def mark(client: Redis, shard: int, candidate_id: int, receipt_id: str) -> str | None:
    """The dead-letter id of one of the candidate's queued receipts, or None."""
    value = await client.hget(candidate_key(shard, candidate_id), f"dead:{receipt_id}")
    return None if value is None else str(value)


async def read(client: Redis, shard: int, entry_id: str) -> DeadLetter | None:
    entries: Any = await client.xrange(dead_key(shard), entry_id, entry_id)
    return _dead_letter(shard, *entries[0]) if entries else None


async def listing(client: Redis, shards: int, count: int = 1000) -> list[DeadLetter]:
    """The oldest `count` dead letters of every shard, shard by shard (one pipeline)."""
    pipe = client.pipeline(transaction=False)
    for shard in range(shards):
        pipe.xrange(dead_key(shard), count=count)
    results = await pipe.execute()
    return [
        _dead_letter(shard, entry_id, raw)
        for shard, entries in enumerate(results)
        for entry_id, raw in entries
    ]


async def find(
    client: Redis, shard: int, candidate_id: int, receipt_id: str, scan: int = 1000
) -> DeadLetter | None:
    """The dead letter of a receipt: through its mark, else among the shard's newest `scan` (a
    dead letter moved before marks existed has none)."""
    entry_id = await mark(client, shard, candidate_id, receipt_id)
    if entry_id is not None:
        found = await read(client, shard, entry_id)
        if found is not None:
            return found
    entries: Any = await client.xrevrange(dead_key(shard), count=scan)
    for entry_id, raw in entries:
        if raw.get("rid") == receipt_id and raw.get("cid") == str(candidate_id):
            return _dead_letter(shard, entry_id, raw)
    return None


class ReplayRefused(RuntimeError):
    """The dead letter is gone (replayed already) or is not the candidate's it claims to be."""


async def replay(client: Redis, letter: DeadLetter, candidate_id: int) -> str:
    """Re-enqueue a dead letter into its shard's stream, then delete it; return the new entry id.

    Raises:
        ReplayRefused: it is no longer in the dead-letter stream, or its candidate changed.
    """
    shard = letter.shard
    keys = [stream_key(shard), dead_key(shard), candidate_key(shard, candidate_id)]
    result: Any = await client.fcall(
        "examreg_replay", len(keys), *keys, letter.entry_id, str(candidate_id)
    )
    if result[0] != "replayed":
        raise ReplayRefused(f"dead letter {letter.ref}: {result[0]}")
    return str(result[1])
