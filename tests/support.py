"""Helpers shared by the tests: a small synthetic roster, sample forms, draining the streams."""

from __future__ import annotations

import asyncio
import html
import os
import random
import re
from dataclasses import asdict
from typing import Any

import asyncpg
import redis

from engine.adapters import store, streams
from engine.adapters.passwords import make_hasher
from engine.domain.rostergen import RosterEntry, generate_roster, sample_form
from engine.runtime.writer import ShardWriter
from engine.settings import Settings, load

ROSTER_SIZE = 40
ROSTER_SEED = 7
# The bigger profiles of the adversity battery (model, fuzzing, faults): off in `make test`.
LONG_TESTS = os.environ.get("EXAMREG_LONG_TESTS") == "1"
TEST_PASSWORD = "Test-password-2026"
HIDDEN_INPUT = re.compile(r'<input type="hidden" name="([^"]*)" value="([^"]*)">')


def hidden(page: str, name: str) -> str:
    """The value of the first hidden input called `name` on an HTML page."""
    values = [html.unescape(v) for n, v in HIDDEN_INPUT.findall(page) if n == name]
    assert values, f"no hidden input {name!r} on the page"
    return values[0]


def build_roster_rows() -> tuple[list[store.NewCandidate], list[dict[str, Any]]]:
    """ROSTER_SIZE synthetic candidates sharing one argon2id hash of TEST_PASSWORD."""
    password_hash = make_hasher(load(env={})).hash(TEST_PASSWORD)
    entries = list(generate_roster(ROSTER_SIZE, seed=ROSTER_SEED))
    rows = [
        store.NewCandidate(
            national_id=e.national_id,
            full_name=e.full_name,
            date_of_birth=e.date_of_birth,
            sex=e.sex,
            candidate_type=e.candidate_type,
            province_code=e.province_code,
            school_code=e.school_code,
            phone=e.phone,
            password_hash=password_hash,
            # The roster after the first-login change: a test of the forced change (403
            # password_change_required, the /password page) sets the flag for its own candidate.
            must_change_password=False,
        )
        for e in entries
    ]
    return rows, [asdict(e) for e in entries]


def form_for(candidate: dict[str, Any], seed: int = 1, **changes: Any) -> dict[str, Any]:
    """A valid registration form for this roster candidate, with optional changes."""
    entry = RosterEntry(**{k: v for k, v in candidate.items() if k != "candidate_id"})
    form = sample_form(entry, random.Random(seed))
    form.update(changes)
    return form


async def drain(settings: Settings, pool: asyncpg.Pool, client: Any, within: float = 20.0) -> None:
    """Run a writer over every shard until all streams are empty (or fail after `within` s)."""
    writers = [
        ShardWriter(settings, pool, streams.StreamShard(client, shard, "test-writer"))
        for shard in range(settings.stream_shards)
    ]
    for writer in writers:
        await writer.shard.ensure_group()

    async def step() -> bool:
        busy = False
        for writer in writers:
            # Claim first (what an earlier step left pending), then new entries: never both.
            entries = await writer.shard.claim_stale(0, settings.writer_batch_size)
            entries = entries or await writer.shard.read(settings.writer_batch_size, None)
            if entries:
                busy = True
                await writer.process(entries)
        return busy

    async with asyncio.timeout(within):
        while True:
            busy = await step()
            if not busy:  # writers trim at most once an interval: what any of them settled
                for writer in writers:  # (those of the test gone too), trim now
                    await writer.shard.trim()
            lengths = await asyncio.gather(
                *(client.xlen(streams.stream_key(s)) for s in range(settings.stream_shards))
            )
            if not busy and not any(lengths):
                return
            if not busy:  # entries another consumer holds: give it a moment
                await asyncio.sleep(0.05)


def replica_of(master_port: int, seeds: list[tuple[str, int]]) -> int:
    """The port of the cluster node that replicates the master on `master_port` (loopback)."""
    for _, port in seeds:
        client = redis.Redis(host="127.0.0.1", port=port, decode_responses=True, socket_timeout=2)
        try:
            info: Any = client.info("replication")
            if info["role"] == "slave" and int(info["master_port"]) == master_port:
                return port
        finally:
            client.close()
    raise AssertionError(f"no replica of 127.0.0.1:{master_port}")
