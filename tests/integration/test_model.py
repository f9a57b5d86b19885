"""Model-based: a Hypothesis state machine drives submissions and writers against the real servers.

Rules submit and edit through the API, retry with the same key (same body: replayed; another body:
refused), and drive the writer the ways production does and worse: plain batches, batches
shuffled and split (newer versions before older ones), redelivery of entries already persisted,
and a writer that crashes after COMMIT but before XACK, or before writing at all, whose entries
another writer then claims. After every step the database and the API are checked against the
model (the ledger of acknowledged receipts):

- no history row that was not acknowledged, and never two rows for one receipt;
- the current row is the candidate's highest persisted version, and it never goes backwards;
- read-your-writes: the API shows the highest acknowledged version at every moment;
- once drained: each acknowledged receipt has exactly one history row and the current version is
  the highest acknowledged one, and the streams hold nothing.

`make test` runs a short profile; EXAMREG_LONG_TESTS=1 runs at least 10,000 steps.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass, field, replace
from typing import Any

import asyncpg
import httpx
import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from redis.exceptions import ConnectionError as RedisConnectionError

from engine.adapters import store, streams
from engine.adapters.streams import StreamEntries, StreamShard
from engine.app import create_app
from engine.runtime.writer import ShardWriter
from engine.settings import Settings
from tests.support import LONG_TESTS, TEST_PASSWORD, drain, form_for

CANDIDATES = 4  # on SHARDS shards: candidates share shards, so batches mix them
SHARDS = 2
# Short: a few seconds in `make test`. Long: at least 10,000 steps (asserted below).
EXAMPLES, STEPS = (150, 100) if LONG_TESTS else (8, 30)
MIN_LONG_STEPS = 10_000

# Generous: a failure is shrunk by replaying steps against the servers, which takes minutes.
pytestmark = pytest.mark.timeout(7200 if LONG_TESTS else 900)


class WriterCrashed(RedisConnectionError):
    """The simulated death of a writer between COMMIT and XACK."""


class CrashBeforeAck(StreamShard):
    """A shard whose XACK never happens: the writer dies right after its batch committed, before
    the one call that releases and acknowledges it (`settle`; `ack` too, should it be used)."""

    async def settle(self, *args: Any, **kwargs: Any) -> Any:
        raise WriterCrashed("killed after COMMIT, before XACK")

    async def ack(self, entry_ids: Any) -> None:
        raise WriterCrashed("killed after COMMIT, before XACK")


@dataclass
class World:
    """What every example shares: one event loop, the app, the connections, logged-in candidates."""

    runner: asyncio.Runner
    settings: Settings
    client: httpx.AsyncClient
    pool: asyncpg.Pool
    redis: Any
    candidates: list[dict[str, Any]]
    auth: dict[int, dict[str, str]]
    steps: int = 0
    examples: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def run(self, coro: Any) -> Any:
        return self.runner.run(coro)


@dataclass(frozen=True)
class Ack:
    """One acknowledged submission, as the client saw it."""

    candidate_id: int
    key: str
    seed: int
    receipt_id: str
    version: int
    body: dict[str, Any]


class RegistrationModel(RuleBasedStateMachine):
    world: World  # set by the test before the machine runs

    def __init__(self) -> None:
        super().__init__()
        self.acks: list[Ack] = []
        self.seen: list[tuple[int, str, dict[str, str]]] = []  # (shard, id, fields) delivered
        self.current: dict[int, int] = {}  # candidate → current version last seen in PostgreSQL
        self.crashes = 0
        self.keys = 0
        self.drained = 0  # acks already drained, so a drain comes after new work
        self.rng = random.Random()

    # -- set-up --------------------------------------------------------------------------------

    @initialize(seed=st.integers(0, 2**32 - 1))
    def reset(self, seed: int) -> None:
        """Start every example from empty streams and tables (sessions survive)."""
        self.rng.seed(seed)
        self.world.examples += 1
        self.world.run(self._reset())

    async def _reset(self) -> None:
        redis = self.world.redis
        keys = [
            k
            async for k in redis.scan_iter(match="examreg:{*", count=1000)
            if "}:session" not in k  # a candidate's session and its index carry its shard's tag
        ]
        if keys:
            await redis.delete(*keys)
        await self.world.pool.execute("TRUNCATE registrations, registration_versions, unit_reviews")
        for shard in range(SHARDS):
            await StreamShard(redis, shard, "model").ensure_group()

    def _step(self, name: str) -> None:
        self.world.steps += 1
        self.world.counts[name] = self.world.counts.get(name, 0) + 1

    # -- the client side -----------------------------------------------------------------------

    def _candidate(self, index: int) -> dict[str, Any]:
        return self.world.candidates[index % len(self.world.candidates)]

    def _highest(self, candidate_id: int) -> int:
        return max((a.version for a in self.acks if a.candidate_id == candidate_id), default=0)

    async def _put(self, candidate: dict[str, Any], key: str, seed: int) -> httpx.Response:
        return await self.world.client.put(
            "/api/v1/me/registration",
            json=form_for(candidate, seed=seed),
            headers={**self.world.auth[candidate["candidate_id"]], "Idempotency-Key": key},
        )

    @rule(
        edits=st.lists(
            st.tuples(st.integers(0, CANDIDATES - 1), st.integers(0, 50)), min_size=1, max_size=4
        )
    )
    def submit(self, edits: list[tuple[int, int]]) -> None:
        """First submissions and edits, one after another: each a new key, the next version.

        Sequential on purpose: Hypothesis replays a failing run step for step to shrink it, and
        concurrent requests would take their versions in a different order on each replay
        (`test_writer.py` sends concurrent edits).
        """
        self._step("submit")
        for index, seed in edits:
            candidate = self._candidate(index)
            cid = candidate["candidate_id"]
            key = self._new_key()
            response = self.world.run(self._put(candidate, key, seed))
            assert response.status_code == 202, response.text
            body = response.json()
            assert "Idempotent-Replayed" not in response.headers
            assert body["version"] == self._highest(cid) + 1, "versions are assigned in order"
            self.acks.append(Ack(cid, key, seed, body["receipt_id"], body["version"], body))

    def _new_key(self) -> str:
        self.keys += 1
        return f"k{self.keys}-{self.rng.randrange(10**9)}"

    @precondition(lambda self: self.acks)
    @rule(data=st.data())
    def retry_same_key(self, data: st.DataObject) -> None:
        """A retry (lost answer, double tap): the original receipt, nothing enqueued."""
        self._step("retry_same_key")
        ack = data.draw(st.sampled_from(self.acks))
        candidate = next(c for c in self.world.candidates if c["candidate_id"] == ack.candidate_id)
        before = self.world.run(self._entries_added())
        response = self.world.run(self._put(candidate, ack.key, ack.seed))
        assert response.status_code == 202, response.text
        assert response.json() == ack.body
        assert response.headers.get("Idempotent-Replayed") == "true"
        assert self.world.run(self._entries_added()) == before

    @precondition(lambda self: self.acks)
    @rule(data=st.data(), seed=st.integers(51, 100))
    def reuse_key_with_another_body(self, data: st.DataObject, seed: int) -> None:
        self._step("reuse_key_with_another_body")
        ack = data.draw(st.sampled_from(self.acks))
        candidate = next(c for c in self.world.candidates if c["candidate_id"] == ack.candidate_id)
        if streams.form_hash(form_for(candidate, seed=seed)) == streams.form_hash(
            form_for(candidate, seed=ack.seed)
        ):
            return  # two seeds drew the same form: that is a replay, covered above
        before = self.world.run(self._entries_added())
        response = self.world.run(self._put(candidate, ack.key, seed))
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "idempotency_key_reused"
        assert self.world.run(self._entries_added()) == before

    async def _entries_added(self) -> int:
        total = 0
        for shard in range(SHARDS):
            info = await self.world.redis.xinfo_stream(streams.stream_key(shard))
            total += int(info["entries-added"])
        return total

    # -- the writer side -----------------------------------------------------------------------

    def _writer(self, shard: int, consumer: str, kind: type[StreamShard] = StreamShard) -> Any:
        return ShardWriter(
            self.world.settings, self.world.pool, kind(self.world.redis, shard, consumer)
        )

    async def _read(self, writer: ShardWriter, count: int) -> StreamEntries:
        entries = await writer.shard.read(count, None)
        self.seen.extend((writer.shard.shard, i, f) for i, f in entries)
        return entries

    @precondition(lambda self: self.acks)
    @rule(shard=st.integers(0, SHARDS - 1), count=st.integers(1, 8))
    def write_batch(self, shard: int, count: int) -> None:
        """A healthy writer: read a batch, persist, acknowledge, release, trim."""
        self._step("write_batch")
        writer = self._writer(shard, "steady")

        async def go() -> None:
            entries = await self._read(writer, count)
            if entries:
                await writer.process(entries)

        self.world.run(go())

    @precondition(lambda self: self.acks)
    @rule(shard=st.integers(0, SHARDS - 1), count=st.integers(2, 12), chunks=st.integers(1, 4))
    def write_reordered(self, shard: int, count: int, chunks: int) -> None:
        """Out of order: one read shuffled and split, the pieces persisted in any order."""
        self._step("write_reordered")
        writer = self._writer(shard, "reorder")

        async def go() -> None:
            entries = await self._read(writer, count)
            self.rng.shuffle(entries)
            size = max(1, len(entries) // chunks)
            for start in range(0, len(entries), size):
                await writer.process(entries[start : start + size])

        self.world.run(go())

    @precondition(lambda self: self.seen)
    @rule(data=st.data(), many=st.integers(1, 5))
    def redeliver(self, data: st.DataObject, many: int) -> None:
        """Entries delivered again after they were persisted, acknowledged and trimmed."""
        self._step("redeliver")
        picked = [data.draw(st.sampled_from(self.seen)) for _ in range(many)]
        for shard in range(SHARDS):
            entries = [(i, f) for s, i, f in picked if s == shard]
            if entries:
                self.world.run(self._writer(shard, "late").process(entries))

    @precondition(lambda self: self.acks)
    @rule(shard=st.integers(0, SHARDS - 1), count=st.integers(1, 6), committed=st.booleans())
    def crash_before_ack(self, shard: int, count: int, committed: bool) -> None:
        """A writer dies holding a batch: after COMMIT but before XACK, or before writing at all."""
        self._step("crash_before_ack")
        self.crashes += 1
        writer = self._writer(shard, f"doomed-{self.crashes}", CrashBeforeAck)

        async def go() -> None:
            entries = await self._read(writer, count)
            if entries and committed:
                with pytest.raises(WriterCrashed):
                    await writer.process(entries)

        self.world.run(go())

    @precondition(lambda self: self.acks)
    @rule(shard=st.integers(0, SHARDS - 1))
    def claim_abandoned(self, shard: int) -> None:
        """Another writer takes over what dead writers held (their entries idle past the limit)."""
        self._step("claim_abandoned")
        writer = self._writer(shard, "rescuer")

        async def go() -> None:
            entries = await writer.shard.claim_stale(0, 100)
            if entries:
                await writer.process(entries)

        self.world.run(go())

    @precondition(lambda self: len(self.acks) >= self.drained + 3)
    @rule()
    def drain_everything(self) -> None:
        """Every writer catches up; then the strong checks hold."""
        self._step("drain")
        self.drained = len(self.acks)
        self.world.run(drain(self.world.settings, self.world.pool, self.world.redis))
        self.world.run(self._check_drained())

    # -- what must hold --------------------------------------------------------------------------

    async def _history(self) -> list[asyncpg.Record]:
        return await self.world.pool.fetch(
            "SELECT candidate_id, version, receipt_id, idempotency_key FROM registration_versions"
        )

    async def _check_rows(self) -> None:
        acked = {a.receipt_id: a for a in self.acks}
        history = await self._history()
        receipts = [r["receipt_id"] for r in history]
        assert len(receipts) == len(set(receipts)), "a receipt with two history rows"
        highest: dict[int, tuple[int, str]] = {}
        for row in history:
            ack = acked.get(row["receipt_id"])
            assert ack is not None, f"history row {row['receipt_id']} was never acknowledged"
            assert (row["candidate_id"], row["version"], row["idempotency_key"]) == (
                ack.candidate_id,
                ack.version,
                ack.key,
            )
            best = highest.get(row["candidate_id"], (0, ""))
            if row["version"] > best[0]:
                highest[row["candidate_id"]] = (row["version"], row["receipt_id"])
        current = {
            r["candidate_id"]: (r["version"], r["receipt_id"])
            for r in await self.world.pool.fetch(
                "SELECT candidate_id, version, receipt_id FROM registrations"
            )
        }
        assert current == highest, "the current row is not the highest persisted version"
        for cid, (version, _) in current.items():
            assert version >= self.current.get(cid, 0), f"candidate {cid}'s version went back"
            self.current[cid] = version

    async def _check_read_your_writes(self) -> None:
        for candidate in self.world.candidates:
            cid = candidate["candidate_id"]
            response = await self.world.client.get(
                "/api/v1/me/registration", headers=self.world.auth[cid]
            )
            highest = self._highest(cid)
            if highest == 0:
                assert response.status_code == 404, response.text
                continue
            assert response.status_code == 200, response.text
            assert response.json()["version"] == highest, "read-your-writes shows an older version"

    async def _check_drained(self) -> None:
        by_receipt = {r["receipt_id"]: r for r in await self._history()}
        for ack in self.acks:
            assert ack.receipt_id in by_receipt, f"acknowledged {ack.receipt_id} was lost"
        assert len(by_receipt) == len(self.acks)
        current = {
            r["candidate_id"]: r["version"]
            for r in await self.world.pool.fetch("SELECT candidate_id, version FROM registrations")
        }
        expected = {cid: self._highest(cid) for cid in {a.candidate_id for a in self.acks}}
        assert current == expected, "the current version is not the highest acknowledged one"
        for shard in range(SHARDS):
            assert await self.world.redis.xlen(streams.stream_key(shard)) == 0
            assert (await self.world.redis.xpending(streams.stream_key(shard), streams.GROUP))[
                "pending"
            ] == 0
            assert await self.world.redis.xlen(streams.dead_key(shard)) == 0

    @invariant()
    def rows_match_the_ledger(self) -> None:
        self.world.run(self._check_rows())
        self.world.run(self._check_read_your_writes())

    def teardown(self) -> None:
        if self.acks:
            self.world.run(drain(self.world.settings, self.world.pool, self.world.redis))
            self.world.run(self._check_drained())


@contextlib.contextmanager
def world(settings: Settings, roster: list[dict[str, Any]]) -> Any:
    # The event loop idles between steps while Hypothesis thinks: the lag gate must not count it.
    settings = replace(settings, stream_shards=SHARDS, max_event_loop_lag_ms=0)
    with asyncio.Runner() as runner:
        app = create_app(settings)
        stack = contextlib.AsyncExitStack()
        runner.run(stack.enter_async_context(app.router.lifespan_context(app)))
        transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 50000))
        client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
        assert settings.database_url and settings.redis_url
        pool = runner.run(store.create_pool(settings.database_url, size=4))
        redis = streams.connect(settings.redis_url)
        candidates = roster[:CANDIDATES]

        async def login(candidate: dict[str, Any]) -> dict[str, str]:
            response = await client.post(
                "/api/v1/auth/login",
                json={"login": candidate["national_id"], "password": TEST_PASSWORD},
            )
            assert response.status_code == 200, response.text
            return {"Authorization": f"Bearer {response.json()['token']}"}

        auth = {c["candidate_id"]: runner.run(login(c)) for c in candidates}
        client.cookies.clear()  # each request names its candidate by its bearer token
        try:
            yield World(runner, settings, client, pool, redis, candidates, auth)
        finally:
            runner.run(client.aclose())
            runner.run(redis.aclose())
            runner.run(pool.close())
            runner.run(stack.aclose())


def test_acknowledged_receipts_survive_retries_redelivery_reordering_and_writer_crashes(
    settings: Settings, roster: list[dict[str, Any]]
) -> None:
    started = time.monotonic()
    with world(settings, roster) as shared:
        RegistrationModel.world = shared
        run_state_machine_as_test(
            RegistrationModel,
            settings=hypothesis_settings(
                max_examples=EXAMPLES,
                stateful_step_count=STEPS,
                deadline=None,
                database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            ),
        )
    elapsed = time.monotonic() - started
    print(
        f"\nmodel: {shared.examples} examples, {shared.steps} steps in {elapsed:.1f} s;"
        f" rules: {dict(sorted(shared.counts.items()))}"
    )
    assert shared.counts.get("crash_before_ack") and shared.counts.get("write_reordered")
    if LONG_TESTS:
        assert shared.steps >= MIN_LONG_STEPS, f"only {shared.steps} steps"
