"""The lock at the national close on real servers (issue 14 item 3): submissions racing the
instant, every 202 given before it persisted, every refusal after it a 409 with a stable code,
none lost; a replay of a key accepted in time still answers its 202; the writer drains after the
lock; the lock report counts what was accepted, stored and still queued."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from redis.exceptions import ResponseError

from engine.adapters import streams
from tests.conftest import Harness
from tests.integration.test_window_calendar import _login, _staff
from tests.support import drain, form_for

pytestmark = pytest.mark.anyio

RACERS = 12
LEAD = 3.0  # seconds from setting the close to the instant: the racers are all running by then
AFTER = 1.5  # seconds the racers go on past the instant
EPSILON = 0.005  # Redis's TIME and this process's clock are one machine's clock, read apart


async def test_submissions_racing_the_lock_are_kept_before_it_and_refused_after_it(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool, aredis: Any
) -> None:
    ops = await _staff(harness, pool, "ops.lock", "operator")
    racers = roster[:RACERS]
    auths = [await _login(harness, c) for c in racers]
    lock = datetime.now(UTC) + timedelta(seconds=LEAD)
    answer = await harness.client.put(
        "/api/v1/ops/window",
        json={
            "scope": "national",
            "kind": "official",
            "closes_at": lock.isoformat(),
            "reason": "khóa chức năng ĐKDT",
        },
        headers=ops,
    )
    assert answer.status_code == 200, answer.text
    lock_s = lock.timestamp()
    outcomes: list[dict[str, Any]] = []

    async def race(index: int) -> None:
        candidate, auth = racers[index], auths[index]
        n = 0
        while time.time() < lock_s + AFTER:
            n += 1
            key = f"race-{index}-{n}"
            sent = time.time()
            response = await harness.client.put(
                "/api/v1/me/registration",
                json=form_for(candidate, seed=n),
                headers={**auth, "Idempotency-Key": key},
            )
            outcomes.append(
                {
                    "candidate": candidate,
                    "key": key,
                    "seed": n,
                    "sent": sent,
                    "received": time.time(),
                    "status": response.status_code,
                    "body": response.json(),
                }
            )

    await asyncio.gather(*(race(i) for i in range(RACERS)))
    accepted = [o for o in outcomes if o["status"] == 202]
    refused = [o for o in outcomes if o["status"] == 409]
    assert len(accepted) + len(refused) == len(outcomes), {o["status"] for o in outcomes}
    assert accepted and refused, (len(accepted), len(refused))
    for o in accepted:
        assert o["sent"] < lock_s + EPSILON, o["key"]
    for o in refused:
        assert o["received"] >= lock_s - EPSILON, o["key"]
        assert o["body"]["code"] == "window_closed" and o["body"]["phase"] == "closed"

    # A retry of a key accepted in time is its original 202, the lock notwithstanding.
    early = accepted[0]
    replay = await harness.client.put(
        "/api/v1/me/registration",
        json=form_for(early["candidate"], seed=early["seed"]),
        headers={**auths[racers.index(early["candidate"])], "Idempotency-Key": early["key"]},
    )
    assert replay.status_code == 202 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["receipt_id"] == early["body"]["receipt_id"]
    fresh = await harness.client.put(
        "/api/v1/me/registration?lang=en",
        json=form_for(racers[0], seed=999),
        headers={**auths[0], "Idempotency-Key": "after-the-lock"},
    )
    assert fresh.status_code == 409 and "locked" in fresh.json()["detail"]
    vi = await harness.client.put(
        "/api/v1/me/registration",
        json=form_for(racers[0], seed=998),
        headers={**auths[0], "Idempotency-Key": "after-the-lock-vi"},
    )
    assert vi.status_code == 409 and "khóa" in vi.json()["detail"]

    # Before the writer: nothing stored yet, everything accepted still queued, by province;
    # on one shard a consumer holds two entries delivered and unacknowledged (pending).
    shard = harness.settings.shard_of(accepted[0]["candidate"]["candidate_id"])
    key = streams.stream_key(shard)
    with contextlib.suppress(ResponseError):  # BUSYGROUP: a writer made it already
        await aredis.xgroup_create(key, streams.GROUP, id="0", mkstream=True)
    held = await aredis.xreadgroup(streams.GROUP, "census-test", {key: ">"}, count=2)
    assert len(held[0][1]) == 2
    before = (await harness.client.get("/api/v1/ops/lock", headers=ops)).json()
    assert before["locked"] is True and before["final"] is False
    assert before["stored"]["versions"] == 0
    assert before["queued"]["entries"] == len(accepted)
    per_province = collections.Counter(o["candidate"]["province_code"] for o in accepted)
    assert before["queued"]["by_province_complete"] is True
    assert {p["province_code"]: p["entries"] for p in before["queued"]["by_province"]} == dict(
        per_province
    )

    await drain(harness.settings, pool, aredis)
    rows = await pool.fetch("SELECT receipt_id, stream_id, candidate_id FROM registration_versions")
    assert sorted(r["receipt_id"] for r in rows) == sorted(
        o["body"]["receipt_id"] for o in accepted
    )
    # Redis appended every one of them before the instant, on its own clock.
    assert max(int(r["stream_id"].split("-")[0]) for r in rows) < lock_s * 1000

    after = (await harness.client.get("/api/v1/ops/lock", headers=ops)).json()
    assert after["final"] is True and after["queued"]["entries"] == 0
    assert after["stored"]["versions"] == len(accepted)
    assert after["stored_after_lock"] == 0
    expected: dict[str, set[int]] = {}
    for o in accepted:
        expected.setdefault(o["candidate"]["province_code"], set()).add(
            o["candidate"]["candidate_id"]
        )
    assert {p["province_code"]: p["candidates"] for p in after["stored"]["by_province"]} == {
        code: len(ids) for code, ids in expected.items()
    }
    facts = await streams.read_shards(aredis, harness.settings.stream_shards)
    assert sum(f.lag + f.pending for f in facts) == 0
