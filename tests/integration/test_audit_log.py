"""An audit log that cannot be forged and says what was shown (issue 12, item 7).

The staff JSON API takes its session from the `Authorization` header only, so a link clicked in
the console (whose cookie a browser sends with any top-level GET) cannot run an audited read
under the agent's name with someone else's reason.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from engine.adapters.passwords import make_hasher
from tests.conftest import Harness
from tests.support import hidden

pytestmark = pytest.mark.anyio

PASSWORD = "Desk-pass-2026"
SEARCH = "/api/v1/support/candidates"


async def _desk_agent(harness: Harness, pool: asyncpg.Pool, username: str, role: str) -> str:
    """A staff member past the first-login change; their API token (the console cookie too)."""
    await pool.execute(
        "INSERT INTO staff (username, password_hash, role, must_change_password)"
        " VALUES ($1, $2, $3, false)",
        username,
        make_hasher(harness.settings).hash(PASSWORD),
        role,
    )
    response = await harness.client.post(
        "/api/v1/staff/login", json={"username": username, "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


async def test_the_staff_api_ignores_the_console_cookie(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool
) -> None:
    """What a link in an e-mail or a chat would make the agent's browser send: the cookie alone."""
    target = roster[24]
    await _desk_agent(harness, pool, "desk.victim", "admin")
    client = harness.client
    client.cookies.clear()
    token = hidden((await client.get("/support/login")).text, "csrf_token")
    login = await client.post(
        "/support/login",
        data={"csrf_token": token, "username": "desk.victim", "password": PASSWORD},
    )
    assert login.headers["location"] == "/support"  # the console's cookie is in the browser
    base = f"{SEARCH}/{target['candidate_id']}"
    forged = [
        await client.get(base, params={"reveal": "1", "reason": "attacker's reason"}),
        await client.get(SEARCH, params={"national_id": target["national_id"], "reason": "x-y-z"}),
        await client.get("/api/v1/support/audit"),
        await client.get("/api/v1/ops/capacity"),
        await client.post(f"{base}/password-reset", json={"reason": "attacker's reason"}),
        await client.post("/api/v1/staff/logout"),
    ]
    for response in forged:
        assert response.status_code == 401, (response.request.url, response.status_code)
        assert target["national_id"] not in response.text
    assert await pool.fetchval("SELECT count(*) FROM audit_log") == 0, "nothing was read"
    assert (await client.get("/support")).status_code == 200, "the console session still works"
    # The same agent's token, in the header, is the way in.
    api = await client.post(
        "/api/v1/staff/login", json={"username": "desk.victim", "password": PASSWORD}
    )
    client.cookies.clear()
    auth = {"Authorization": f"Bearer {api.json()['token']}"}
    detail = await client.get(base, params={"reason": "ticket 5"}, headers=auth)
    assert detail.status_code == 200
