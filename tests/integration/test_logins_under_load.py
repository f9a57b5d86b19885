"""Logins under a storm (issue 11 item 5): hashing runs in worker processes, and a login refused
because the hashing queue is full costs no Redis or SQL call, so it takes nothing from the
logged-in users."""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests.conftest import Harness
from tests.support import TEST_PASSWORD

pytestmark = pytest.mark.anyio


async def _fcalls(aredis: Any) -> int:
    stats = await aredis.info("commandstats")
    return int(stats.get("cmdstat_fcall", {}).get("calls", 0))


async def test_a_login_refused_for_a_full_hash_queue_is_a_cheap_503(
    harness: Harness, roster: list[dict[str, Any]], aredis: Any
) -> None:
    passwords = harness.services.passwords
    passwords._waiting = harness.settings.login_queue_limit  # every place taken
    before = await _fcalls(aredis)
    refused = await harness.client.post(
        "/api/v1/auth/login",
        json={"login": roster[30]["national_id"], "password": TEST_PASSWORD},
    )
    assert refused.status_code == 503, refused.text
    assert refused.json()["code"] == "overloaded"
    assert int(refused.headers["Retry-After"]) >= harness.settings.retry_after_seconds
    assert await _fcalls(aredis) == before, "the throttle was neither counted nor uncounted"
    passwords._waiting = 0
    assert (await harness.login(roster[30]))["Authorization"].startswith("Bearer ")


async def test_the_api_process_verifies_no_password_itself(
    harness: Harness, roster: list[dict[str, Any]]
) -> None:
    await harness.login(roster[31])
    workers = harness.services.passwords._pool._processes
    assert workers, "the login was verified in a worker process"
    assert all(pid != os.getpid() for pid in workers)
