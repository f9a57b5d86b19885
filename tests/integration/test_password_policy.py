"""The password policy through the API and the pages (issue 12, item 8): the review's weak
passwords are refused with their reason, and a password is one password on every keyboard."""

from __future__ import annotations

import unicodedata
from typing import Any

import asyncpg
import pytest

from engine.adapters import store
from engine.adapters.passwords import make_hasher
from tests.conftest import Harness
from tests.support import TEST_PASSWORD, hidden

pytestmark = pytest.mark.anyio

ARABIC_INDIC_ONE = "\u0661"


async def test_the_reviews_weak_passwords_are_refused_with_their_reason(
    harness: Harness, roster: list[dict[str, Any]]
) -> None:
    candidate = roster[30]
    auth = await harness.login(candidate)
    weak = {
        "password1": "too_common",
        "aaaaaaa1": "too_common",
        candidate["national_id"] + "a": "contains_login",
        "ｐａｓｓｗｏｒｄ１２３": "too_common",  # full-width
        "password" + ARABIC_INDIC_ONE: "too_common",  # Arabic-Indic digit one
        "xyzxyzxyz1": "repetitive",
    }
    for password, code in weak.items():
        response = await harness.client.post(
            "/api/v1/auth/password",
            json={"current_password": TEST_PASSWORD, "new_password": password},
            headers={**auth, "Accept-Language": "en"},
        )
        assert response.status_code == 422, password
        body = response.json()
        assert body["code"] == "weak_password"
        assert response.headers["content-type"].startswith("application/problem+json")
        error = body["errors"][0]
        assert (error["field"], error["code"]) == ("new_password", code), password
        assert body["detail"] == body["errors"][0]["message"]
    # Refused by the policy before any hash: none of those counted against the account.
    ok = await harness.client.post(
        "/api/v1/auth/password",
        json={"current_password": TEST_PASSWORD, "new_password": "Hoa sen trên hồ"},
        headers=auth,
    )
    assert ok.status_code == 200  # the new session (every session of the account ended)


async def test_a_staff_password_may_not_contain_the_username(
    harness: Harness, pool: asyncpg.Pool
) -> None:
    password_hash = make_hasher(harness.settings).hash("Desk-pass-2026")
    await store.create_staff(pool, "lan.nguyen", password_hash, "support", None, False)
    login = await harness.client.post(
        "/api/v1/staff/login", json={"username": "lan.nguyen", "password": "Desk-pass-2026"}
    )
    auth = {"Authorization": f"Bearer {login.json()['token']}"}
    refused = await harness.client.post(
        "/api/v1/staff/password",
        json={"current_password": "Desk-pass-2026", "new_password": "LanNguyen-2026"},
        headers=auth,
    )
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["code"] == "contains_login"


async def test_the_password_page_says_why_in_vietnamese(
    harness: Harness, roster: list[dict[str, Any]]
) -> None:
    client = harness.client
    await harness.login(roster[31])  # the cookie is set on the client
    csrf = hidden((await client.get("/password")).text, "csrf_token")
    weak = await client.post(
        "/password",
        data={
            "csrf_token": csrf,
            "current_password": TEST_PASSWORD,
            "new_password": "iloveyou2026",
            "new_password_confirm": "iloveyou2026",
        },
    )
    assert weak.status_code == 422
    assert "Mật khẩu này quá phổ biến" in weak.text and 'id="f-new_password-error"' in weak.text


async def test_a_password_set_with_combining_marks_logs_in_typed_precomposed(
    harness: Harness, roster: list[dict[str, Any]]
) -> None:
    candidate = roster[32]
    composed = "Trâu vàng gặm cỏ 2026"
    decomposed = unicodedata.normalize("NFD", composed)
    auth = await harness.login(candidate)
    changed = await harness.client.post(
        "/api/v1/auth/password",
        json={"current_password": TEST_PASSWORD, "new_password": decomposed},
        headers=auth,
    )
    assert changed.status_code == 200  # the new session
    login = await harness.client.post(
        "/api/v1/auth/login", json={"login": candidate["national_id"], "password": composed}
    )
    assert login.status_code == 200
