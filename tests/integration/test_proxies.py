"""Behind the TLS proxy: forwarded headers count only from EXAMREG_TRUSTED_PROXIES.

From a trusted proxy, X-Forwarded-For names the client (the audit log and the login throttle see
the candidate's address, not the proxy's) and X-Forwarded-Proto: https makes the session cookie
`Secure` and adds HSTS. From anyone else the same headers change nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import asyncpg
import pytest

from engine.adapters import store
from engine.adapters.passwords import make_hasher
from engine.settings import Settings
from tests.conftest import Harness, make_harness
from tests.support import TEST_PASSWORD

pytestmark = pytest.mark.anyio

PROXY = ("10.8.0.2", 41000)  # the TLS proxy's own address, as the API worker sees it
FORWARDED = {"X-Forwarded-For": "198.51.100.23", "X-Forwarded-Proto": "https"}


async def behind(
    settings: Settings, peer: tuple[str, int], **changes: Any
) -> AsyncIterator[Harness]:
    async for harness in make_harness(replace(settings, **changes), client=peer):
        yield harness


async def _login(harness: Harness, candidate: dict[str, Any]) -> Any:
    return await harness.client.post(
        "/api/v1/auth/login",
        json={"login": candidate["national_id"], "password": TEST_PASSWORD},
        headers=FORWARDED,
    )


async def test_a_trusted_proxys_https_gives_secure_cookies_and_hsts(
    settings: Settings, roster: list[dict[str, Any]]
) -> None:
    async for harness in behind(settings, PROXY, trusted_proxies=("10.8.0.0/16",)):
        response = await _login(harness, roster[20])
        assert response.status_code == 200
        cookie = response.headers["set-cookie"].lower()
        assert "examreg_session=" in cookie and "; secure" in cookie and "httponly" in cookie
        assert response.headers["strict-transport-security"] == "max-age=31536000"
        page = await harness.client.get("/login", headers=FORWARDED)
        assert "; secure" in page.headers["set-cookie"].lower()  # the login form's CSRF cookie
        assert "strict-transport-security" in page.headers
        plain = await harness.client.get("/healthz", headers={"X-Forwarded-Proto": "http"})
        assert "strict-transport-security" not in plain.headers


@pytest.mark.parametrize(
    ("peer", "trusted"),
    [
        (PROXY, ()),  # the default: no proxy is trusted
        (("203.0.113.9", 50000), ("10.8.0.0/16",)),  # a client that forges the headers itself
    ],
)
async def test_forwarded_headers_from_anyone_else_change_nothing(
    settings: Settings,
    roster: list[dict[str, Any]],
    peer: tuple[str, int],
    trusted: tuple[str, ...],
) -> None:
    async for harness in behind(settings, peer, trusted_proxies=trusted):
        response = await _login(harness, roster[21])
        assert response.status_code == 200
        assert "secure" not in response.headers["set-cookie"].lower()
        assert "strict-transport-security" not in response.headers


async def _audited_address(harness: Harness, pool: asyncpg.Pool, target: int) -> str:
    password_hash = make_hasher(harness.settings).hash("Desk-pass-2026")
    await store.create_staff(pool, "proxy.desk", password_hash, "support", None, False)
    login = await harness.client.post(
        "/api/v1/staff/login",
        json={"username": "proxy.desk", "password": "Desk-pass-2026"},
        headers=FORWARDED,
    )
    assert login.status_code == 200, login.text
    detail = await harness.client.get(
        f"/api/v1/support/candidates/{target}",
        params={"reason": "ticket 7"},
        headers={**FORWARDED, "Authorization": f"Bearer {login.json()['token']}"},
    )
    assert detail.status_code == 200, detail.text
    return str(await pool.fetchval("SELECT host(client_addr) FROM audit_log"))


async def test_the_audit_log_records_the_client_behind_a_trusted_proxy(
    settings: Settings, roster: list[dict[str, Any]], pool: asyncpg.Pool
) -> None:
    async for harness in behind(settings, PROXY, trusted_proxies=("10.8.0.2",)):
        assert await _audited_address(harness, pool, roster[22]["candidate_id"]) == "198.51.100.23"


async def test_the_audit_log_records_the_peer_when_no_proxy_is_trusted(
    settings: Settings, roster: list[dict[str, Any]], pool: asyncpg.Pool
) -> None:
    async for harness in behind(settings, PROXY):
        assert await _audited_address(harness, pool, roster[22]["candidate_id"]) == "10.8.0.2"
