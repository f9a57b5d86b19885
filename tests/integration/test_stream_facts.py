"""One reader of the streams' facts (`streams.read_shards`) for the gauges and the forecast.

Both `/metrics` (`shard_stats`) and the capacity sampler (`telemetry.redis_sample`) derive from it,
so they agree on the backlog in every state a shard can be in, including the ones where Redis
itself cannot say (no consumer group yet).
"""

from __future__ import annotations

from typing import Any

import pytest

from engine.adapters import streams, telemetry

pytestmark = pytest.mark.anyio


async def test_a_shard_without_a_writer_group_counts_every_entry_as_backlog(aredis: Any) -> None:
    for i in range(5):
        await aredis.xadd(streams.stream_key(1), {"n": str(i)})
    facts = {f.shard: f for f in await streams.read_shards(aredis, 3)}
    assert (facts[1].length, facts[1].lag, facts[1].pending, facts[1].backlog) == (5, 5, 0, 5)
    assert facts[1].oldest_pending_age >= 0.0
    assert (facts[0].length, facts[0].backlog, facts[2].backlog) == (0, 0, 0)
    stats = {s.shard: s for s in await streams.shard_stats(aredis, 3)}
    samples, _ = await telemetry.redis_sample(aredis, 3, writer_seen_ms=15_000)
    assert stats[1].lag + stats[1].pending == samples[1].backlog == 5


async def test_delivered_entries_are_pending_and_the_writer_is_seen(aredis: Any) -> None:
    key = streams.stream_key(0)
    for i in range(4):
        await aredis.xadd(key, {"n": str(i)})
    await aredis.xgroup_create(key, streams.GROUP, id="0")
    await aredis.xreadgroup(streams.GROUP, "writer-a", {key: ">"}, count=3)
    (facts,) = await streams.read_shards(aredis, 1, writer_seen_ms=60_000)
    assert (facts.length, facts.added, facts.lag, facts.pending) == (4, 4, 1, 3)
    assert facts.writers == frozenset({"writer-a"})
    samples, writers = await telemetry.redis_sample(aredis, 1, writer_seen_ms=60_000)
    assert (samples[0].backlog, writers) == (4, 1)
