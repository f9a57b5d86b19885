"""Small HTTP holes of issue 12 (item 9), on the real app: the Host header, caching, 405.

A Host header the deployment does not serve is refused before routing, so no redirect can ever
point a browser at it; JSON that carries a token or personal data is never stored by a cache;
a 405 says which methods the path has.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from engine.adapters.passwords import make_hasher
from tests.conftest import Harness
from tests.support import TEST_PASSWORD, form_for

pytestmark = pytest.mark.anyio

STAFF_PASSWORD = "Desk-pass-2026"


# -- the Host header ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/support/", "/registration/", "/api/v1/window", "/login"])
async def test_an_untrusted_host_is_refused_and_never_echoed_in_a_redirect(
    harness: Harness, path: str
) -> None:
    response = await harness.client.get(path, headers={"Host": "evil.example"})
    assert response.status_code == 400, (response.status_code, response.headers)
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "untrusted_host"
    assert "evil.example" not in response.headers.get("location", "")
    assert "evil.example" not in response.text


async def test_a_trusted_host_with_a_port_is_served_and_redirects_stay_on_it(
    harness: Harness,
) -> None:
    slash = await harness.client.get("/support/", headers={"Host": "testserver:8443"})
    assert slash.status_code in (307, 308)
    assert slash.headers["location"] in ("/support", "http://testserver:8443/support")
    window = await harness.client.get("/api/v1/window", headers={"Host": "TestServer"})
    assert window.status_code == 200


async def test_probes_and_scrapers_may_use_any_host(harness: Harness) -> None:
    # Kubernetes probes and Prometheus address a pod by its IP; these answers carry no URL.
    for path in ("/healthz", "/readyz", "/metrics"):
        response = await harness.client.get(path, headers={"Host": "10.1.2.3:8000"})
        assert response.status_code == 200, path


# -- caching ------------------------------------------------------------------------------------


async def test_json_with_tokens_or_personal_data_is_never_stored(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool
) -> None:
    candidate = roster[5]
    client = harness.client
    login = await client.post(
        "/api/v1/auth/login", json={"login": candidate["national_id"], "password": TEST_PASSWORD}
    )
    auth = {"Authorization": f"Bearer {login.json()['token']}"}
    put = await client.put(
        "/api/v1/me/registration",
        json=form_for(candidate),
        headers={**auth, "Idempotency-Key": "no-store-1"},
    )
    assert put.status_code == 202, put.text
    await pool.execute(
        "INSERT INTO staff (username, password_hash, role, must_change_password)"
        " VALUES ('c-admin', $1, 'admin', false)",
        make_hasher(harness.settings).hash(STAFF_PASSWORD),
    )
    staff_login = await client.post(
        "/api/v1/staff/login", json={"username": "c-admin", "password": STAFF_PASSWORD}
    )
    staff = {"Authorization": f"Bearer {staff_login.json()['token']}"}
    desk = f"/api/v1/support/candidates/{candidate['candidate_id']}"
    answers = {
        "candidate login": login,
        "registration": put,
        "me": await client.get("/api/v1/me", headers=auth),
        "newest registration": await client.get("/api/v1/me/registration", headers=auth),
        "receipt": await client.get(
            f"/api/v1/me/receipts/{put.json()['receipt_id']}", headers=auth
        ),
        "staff login": staff_login,
        "search": await client.get(
            "/api/v1/support/candidates",
            params={"candidate_id": candidate["candidate_id"], "reason": "ticket 7"},
            headers=staff,
        ),
        "detail": await client.get(desk, params={"reason": "ticket 7"}, headers=staff),
        "audit": await client.get("/api/v1/support/audit", headers=staff),
    }
    for name, response in answers.items():
        assert response.status_code in (200, 202), (name, response.text)
        assert response.headers.get("cache-control") == "no-store", name
    # Public reference data stays cacheable.
    reference = await client.get("/api/v1/reference")
    assert reference.headers["cache-control"].startswith("public")


# -- 405 ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/api/v1/window", {"GET", "HEAD"}),
        # Two routes share this path (PUT and GET): Allow names the methods of both.
        ("DELETE", "/api/v1/me/registration", {"GET", "HEAD", "PUT"}),
        ("GET", "/api/v1/auth/login", {"POST"}),
        ("PATCH", "/registration", {"GET", "HEAD", "POST"}),
    ],
)
async def test_a_wrong_method_gets_405_with_allow(
    harness: Harness, method: str, path: str, allowed: set[str]
) -> None:
    response = await harness.client.request(method, path)
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"
    assert {m.strip() for m in response.headers["allow"].split(",")} == allowed
