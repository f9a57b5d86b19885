"""The capacity forecast on real servers: `GET /api/v1/ops/capacity` for operators only, its numbers
following real submissions and a real drain, the new gauges on /metrics, the Retry-After of a full
shard computed from its drain, and `examreg capacity` in the terminal."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from engine.adapters import streams
from engine.adapters.passwords import make_hasher
from engine.runtime.cli import main
from engine.settings import Settings
from tests.conftest import Harness, make_harness
from tests.support import drain, form_for

pytestmark = pytest.mark.anyio

PASSWORD = "Ops-pass-2026"
CAPACITY = "/api/v1/ops/capacity"


async def _staff_token(harness: Harness, pool: asyncpg.Pool, username: str, role: str) -> str:
    await pool.execute(
        "INSERT INTO staff (username, password_hash, role, must_change_password)"
        " VALUES ($1, $2, $3, false)",  # past the first-login change
        username,
        make_hasher(harness.settings).hash(PASSWORD),
        role,
    )
    response = await harness.client.post(
        "/api/v1/staff/login", json={"username": username, "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    harness.client.cookies.clear()  # each request below says who it is with its own header
    return str(response.json()["token"])


async def _submit(harness: Harness, candidate: dict[str, Any], key: str, seed: int = 1) -> Any:
    auth = await harness.login(candidate)
    harness.client.cookies.clear()
    return await harness.client.put(
        "/api/v1/me/registration",
        json=form_for(candidate, seed=seed),
        headers={**auth, "Idempotency-Key": key},
    )


async def test_only_operators_and_admins_see_the_forecast(
    harness: Harness, pool: asyncpg.Pool
) -> None:
    assert (await harness.client.get(CAPACITY)).status_code == 401
    support = await _staff_token(harness, pool, "desk.one", "support")
    refused = await harness.client.get(CAPACITY, headers={"Authorization": f"Bearer {support}"})
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    for username, role in (("ops.one", "operator"), ("boss.one", "admin")):
        token = await _staff_token(harness, pool, username, role)
        answer = await harness.client.get(CAPACITY, headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["backlog"] == 0


async def test_a_bad_target_is_a_field_error(harness: Harness, pool: asyncpg.Pool) -> None:
    token = await _staff_token(harness, pool, "ops.two", "operator")
    for bad in ("0", "abc", "1e9"):
        answer = await harness.client.get(
            CAPACITY, params={"target_seconds": bad}, headers={"Authorization": f"Bearer {token}"}
        )
        assert answer.status_code == 422
        assert answer.json()["errors"][0]["field"] == "target_seconds"


async def test_the_forecast_follows_submissions_and_the_drain(
    harness: Harness,
    pool: asyncpg.Pool,
    aredis: Any,
    settings: Settings,
    roster: list[dict[str, Any]],
) -> None:
    auth = {"Authorization": f"Bearer {await _staff_token(harness, pool, 'ops.three', 'operator')}"}
    sampler = harness.services.sampler
    await sampler.sample()
    for i, candidate in enumerate(roster[:6]):
        assert (await _submit(harness, candidate, f"ops-{i}")).status_code == 202

    queued = (
        await harness.client.get(CAPACITY, params={"target_seconds": 30}, headers=auth)
    ).json()
    assert queued["backlog"] == 6
    assert queued["arrival_rate"] > 0
    assert queued["drain_rate"] == 0
    assert queued["backlog_limit"] == settings.max_backlog_per_shard * settings.stream_shards
    assert queued["recommendation"]["target_seconds"] == 30
    # Nothing drains and no writer reads: at least one writer is needed.
    assert queued["recommendation"]["writers"] == 0
    assert queued["recommendation"]["writers_needed"] >= 1
    assert "EXAMREG_CLOSES_AT is not set: no deadline projection" in queued["notes"]
    assert queued["projection"] is None

    await drain(settings, pool, aredis)
    await sampler.sample()
    drained = (await harness.client.get(CAPACITY, headers=auth)).json()
    assert drained["backlog"] == 0
    assert drained["drain_rate"] > 0
    assert drained["expected_wait_seconds"] == 0
    assert drained["recommendation"]["writers"] == 1  # the test's drain read as one consumer
    assert drained["recommendation"]["writer_capacity"] > 0
    assert drained["samples"] >= 3


async def test_the_forecast_projects_to_the_configured_close(
    settings: Settings, pool: asyncpg.Pool, roster: list[dict[str, Any]]
) -> None:
    from datetime import UTC, datetime, timedelta

    from engine.settings import Window

    closes = datetime.now(UTC) + timedelta(hours=3)
    async for harness in make_harness(replace(settings, window=Window(closes_at=closes))):
        auth = {
            "Authorization": f"Bearer {await _staff_token(harness, pool, 'ops.four', 'operator')}"
        }
        await harness.services.sampler.sample()
        assert (await _submit(harness, roster[0], "close-1")).status_code == 202
        answer = (await harness.client.get(CAPACITY, headers=auth)).json()
        projection = answer["projection"]
        assert projection is not None
        assert datetime.fromisoformat(projection["closes_at"]) == closes
        assert 3 * 3600 - 60 < projection["seconds_to_close"] <= 3 * 3600
        assert projection["arrivals_until_close"] > 0
        assert projection["backlog_at_close"] >= 1  # no writer: everything stays queued
        # Beside the raw numbers, the same figures in words.
        shown = answer["display"]
        assert shown["projection"]["closes_in"] in {"in 3 h", "in 2 h 59 min"}
        assert shown["horizon"].endswith("the window's close")
        assert shown["backlog"] == f"{answer['backlog']} entries"


async def test_metrics_expose_the_limits_pool_and_worker_gauges(harness: Harness) -> None:
    await harness.services.sampler.sample()
    text = (await harness.client.get("/metrics")).text
    values = {
        line.split(" ")[0]: float(line.split(" ")[-1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    limit = float(harness.settings.max_backlog_per_shard)
    assert values["examreg_queue_backlog_limit"] == limit
    assert values["examreg_queue_consumers_active"] == 0
    assert values["examreg_login_hashes_limit"] == harness.settings.login_queue_limit
    assert values["examreg_login_hash_slots"] == harness.settings.login_concurrency
    assert values["examreg_api_processes"] == 1
    assert values["examreg_db_pool_max_connections"] == harness.settings.db_pool_size
    assert 'examreg_db_pool_connections{state="idle"}' in values
    assert values["examreg_api_cpu_seconds_total"] > 0


def _gauges(text: str) -> dict[str, float]:
    return {
        line.split(" ")[0]: float(line.split(" ")[-1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


async def test_metrics_count_a_writer_that_started_after_the_last_sample(
    harness: Harness, aredis: Any
) -> None:
    # The sampler's newest sample saw no writer; one starts reading before the next sample.
    # The scrape reads the consumers now (it used the sample: 0 writers, up to 5 s late, and
    # tests/e2e/test_prometheus.py saw examreg:writers:count == 0 after a full drain).
    await harness.services.sampler.sample()
    assert (
        _gauges((await harness.client.get("/metrics")).text)["examreg_queue_consumers_active"] == 0
    )
    shard = streams.StreamShard(aredis, 0, "late-writer")
    await shard.ensure_group()
    await shard.read(10, None)
    gauges = _gauges((await harness.client.get("/metrics")).text)
    assert gauges["examreg_queue_consumers_active"] == 1


async def test_retry_after_of_a_full_shard_follows_its_drain(
    settings: Settings, pool: asyncpg.Pool, aredis: Any, roster: list[dict[str, Any]]
) -> None:
    candidate = roster[3]
    async for harness in make_harness(replace(settings, max_backlog_per_shard=2)):
        sampler = harness.services.sampler
        await sampler.sample()
        for i in range(2):
            assert (await _submit(harness, candidate, f"full-{i}", seed=i)).status_code == 202
        await sampler.sample()
        await sampler.sample()
        # Full, and nothing drained between the samples: writers look absent, come back late.
        shed = await _submit(harness, candidate, "full-x", seed=9)
        assert shed.status_code == 503 and shed.json()["reason"] == "backlog"
        assert int(shed.headers["Retry-After"]) == 120

        await drain(settings, pool, aredis)
        for i in range(2, 4):
            assert (await _submit(harness, candidate, f"full-{i}", seed=i)).status_code == 202
        await sampler.sample()
        # Full again, but this shard drained two entries a moment ago: the excess over 90% of
        # the limit takes no time at that rate, so the floor (5 s) with its jitter remains.
        shed = await _submit(harness, candidate, "full-y", seed=10)
        assert shed.status_code == 503
        assert 5 <= int(shed.headers["Retry-After"]) <= 8


def test_the_capacity_command_prints_a_report_and_json(
    database_url: str,
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("EXAMREG_DATABASE_URL", database_url)
    monkeypatch.setenv("EXAMREG_REDIS_URL", redis_url)
    monkeypatch.setenv("EXAMREG_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("EXAMREG_CLOSES_AT", "2030-06-20")
    assert main(["capacity", "--interval", "0.2"]) == 0
    text = capsys.readouterr().out
    assert "examreg capacity at" in text and "(2 samples over" in text
    assert "window closes   2030-06-20T17:00:00+07:00" in text
    assert "time to limit   not at this rate" in text  # nothing grows on an idle Redis
    assert main(["capacity", "--interval", "0.1", "--json", "--target-seconds", "20"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["samples"] == 2 and body["backlog"] == 0
    assert body["recommendation"]["target_seconds"] == 20
    assert body["display"]["recommendation"]["target"] == "20 s"


def test_the_capacity_command_explains_an_unreachable_redis(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EXAMREG_DATABASE_URL", database_url)
    monkeypatch.setenv("EXAMREG_REDIS_URL", "redis://127.0.0.1:1/0")
    assert main(["capacity", "--interval", "0.1"]) == 2
    assert "cannot read the streams from Redis" in capsys.readouterr().err
