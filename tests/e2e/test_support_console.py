"""A support agent in a real headless Chromium, against real processes: the console's whole flow.

`examreg serve` and `examreg writer` run as supervised processes (`tests.e2e.web_stack`). A
candidate submits through the JSON API while the writer is paused, so the agent sees the
submission in the stream first and persisted once the writer runs: observed, not assumed. The
agent finds the candidate by an accent-free name, opens the record with a reason, reveals the
national ID, resets the password and reads the one-time password, which then logs the candidate
in. The audit log, read through the admin's API, holds every one of those reads. Screenshots at
phone and desktop width go to `test-artifacts/screenshots/2x-support-*.png`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.adapters import store
from engine.adapters.passwords import make_hasher
from engine.adapters.support_store import fold_name
from engine.settings import load
from tests.e2e.web_stack import PHONE, chromium, processes, shoot
from tests.support import TEST_PASSWORD, form_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

STAFF_PASSWORD = "Desk-pass-2026"
AGENT, ADMIN = "desk.agent", "desk.admin"
TICKET = "Phiếu #4711: thí sinh hỏi đã nộp được chưa"


@pytest.fixture
def staff(database_url: str) -> None:
    """A support agent and an admin (to read the audit log), before the browser opens."""

    async def create() -> None:
        password_hash = make_hasher(load(env={})).hash(STAFF_PASSWORD)
        pool = await store.create_pool(database_url, size=1)
        try:
            for username, role in ((AGENT, "support"), (ADMIN, "admin")):
                await store.create_staff(pool, username, password_hash, role, None, False)
        finally:
            await pool.close()

    asyncio.run(create())


@pytest.fixture
def stack(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    with processes(database_url, redis_url, tmp_path, {"api": {}}) as running:
        yield running


@pytest.fixture
def browser() -> Iterator[Any]:
    """Requested last: no fixture may call asyncio.run() while it is open."""
    with chromium() as launched:
        yield launched


def _submit(base: str, candidate: dict[str, Any]) -> str:
    login = httpx.post(
        f"{base}/api/v1/auth/login",
        json={"login": candidate["national_id"], "password": TEST_PASSWORD},
    )
    put = httpx.put(
        f"{base}/api/v1/me/registration",
        json=form_for(candidate),
        headers={
            "Authorization": f"Bearer {login.json()['token']}",
            "Idempotency-Key": "console-1",
        },
    )
    assert put.status_code == 202, put.text
    return str(put.json()["receipt_id"])


def _log_in_and_search(page: Any, base: str, candidate: dict[str, Any]) -> None:
    page.goto(f"{base}/support")
    assert page.url.endswith("/support/login")
    shoot(page, "19-support-login")
    page.fill("#f-username", AGENT)
    page.fill("#f-password", STAFF_PASSWORD)
    page.click("#login-submit")
    page.wait_for_url("**/support")
    plain = fold_name(candidate["full_name"])  # "NGUYỄN THỊ THU HÀ" → "nguyen thi thu ha"
    assert plain.isascii() and plain != candidate["full_name"].lower()
    page.fill("#f-name", plain)
    page.fill("#f-search-reason", TICKET)
    page.click("#search-submit")
    page.wait_for_selector("#results")
    row = f"tr[data-candidate-id='{candidate['candidate_id']}']"
    assert candidate["full_name"] in page.inner_text(row)
    national_id = candidate["national_id"]
    assert national_id[:3] + "*" * 7 + national_id[-2:] in page.inner_text(row)
    assert national_id not in page.content()
    shoot(page, "20-support-search")
    page.click(f"{row} button.open")
    page.wait_for_selector("#pipeline-state")


def _wait_persisted(page: Any) -> None:
    """The agent presses "refresh" until the writer has stored the submission."""
    deadline = time.monotonic() + 20
    while page.get_attribute("#pipeline-state", "data-state") != "persisted":
        assert time.monotonic() < deadline, "the submission was not persisted in 20 s"
        time.sleep(0.3)
        with page.expect_navigation():
            page.click("#refresh")


def test_a_support_agent_finds_a_candidate_sees_the_pipeline_reveals_and_resets(
    stack: dict[str, Any], roster: list[dict[str, Any]], staff: None, browser: Any
) -> None:
    base, writer = stack["api"], stack["writer"]
    candidate = next(c for c in roster[20:] if any(ord(ch) > 127 for ch in c["full_name"]))
    writer.pause()
    receipt_id = _submit(base, candidate)
    context = browser.new_context(viewport=PHONE, locale="vi-VN")
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        _log_in_and_search(page, base, candidate)

        # In the stream: accepted and counted, not persisted by the (stopped) writer. A writer
        # stopped while blocked in XREADGROUP has the entry delivered to it by Redis: "pending".
        assert page.get_attribute("#pipeline-state", "data-state") == "in_stream"
        assert page.get_attribute("#pipeline-delivery", "data-delivery") in ("waiting", "pending")
        assert page.inner_text("#pipeline-receipt") == receipt_id
        assert TICKET in page.inner_text("main")
        assert page.inner_text("#national-id") != candidate["national_id"]
        shoot(page, "21-support-record-queued")
        writer.resume()
        _wait_persisted(page)
        assert page.inner_text("#current-version") == "1"
        assert page.eval_on_selector_all(
            "#versions tr[data-version]", "r => r.map(x => x.dataset.version)"
        ) == ["1"]
        shoot(page, "22-support-record-persisted")

        # Reveal, with a reason of its own (the prompt opens without JavaScript: <details>).
        page.click("#reveal-prompt summary")
        page.fill("#f-reveal-reason", "Xác minh người gọi là thí sinh")
        page.click("#reveal-submit")
        page.wait_for_selector("#revealed-notice")
        assert page.inner_text("#national-id") == candidate["national_id"]
        assert page.inner_text("#phone") == candidate["phone"]
        shoot(page, "23-support-revealed")

        # Password reset: the one-time password is shown once, and it works.
        page.click("#reset-prompt summary")
        page.fill("#f-reset-reason", "Thí sinh quên mật khẩu, phiếu #4711")
        page.click("#reset-submit")
        page.wait_for_selector("#one-time-password")
        password = page.inner_text("#one-time-password")
        shoot(page, "24-support-reset")
        login = httpx.post(
            f"{base}/api/v1/auth/login",
            json={"login": candidate["national_id"], "password": password},
        )
        assert login.status_code == 200 and login.json()["must_change_password"] is True

        # English on request, then log out.
        page.goto(f"{base}/support?lang=en")
        assert page.inner_text("h1") == "Find a candidate"
        page.click("#switch-language")
        assert page.inner_text("h1") == "Tìm thí sinh"
        page.click("#logout")
        page.wait_for_url("**/support/login?logged_out=1")
        assert errors == [], f"JavaScript errors: {errors}"
    finally:
        writer.resume()
        context.close()

    admin = httpx.post(
        f"{base}/api/v1/staff/login", json={"username": ADMIN, "password": STAFF_PASSWORD}
    )
    log = httpx.get(
        f"{base}/api/v1/support/audit",
        params={"staff": AGENT},
        headers={"Authorization": f"Bearer {admin.json()['token']}"},
    ).json()["entries"]
    actions = [(e["action"], e["reason"]) for e in reversed(log)]
    assert actions[0] == ("search", TICKET)
    assert actions[1] == ("detail", TICKET)
    assert ("reveal", "Xác minh người gọi là thí sinh") in actions
    assert actions[-1] == ("password_reset", "Thí sinh quên mật khẩu, phiếu #4711")
    assert {e["candidate_id"] for e in log if e["action"] != "search"} == {
        candidate["candidate_id"]
    }


def test_an_admin_filters_the_record_of_actions_in_the_console(
    stack: dict[str, Any], roster: list[dict[str, Any]], staff: None, browser: Any
) -> None:
    """A candidate's login and submission, then the admin's page: by actor, then by action."""
    base = stack["api"]
    candidate = roster[21]
    _submit(base, candidate)
    context = browser.new_context(viewport=PHONE, locale="vi-VN")
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(f"{base}/support/login")
        page.fill("#f-username", ADMIN)
        page.fill("#f-password", STAFF_PASSWORD)
        page.click("#login-submit")
        page.wait_for_url("**/support")
        page.click("#nav-audit")
        page.wait_for_url("**/support/audit")
        assert page.inner_text("h1") == "Nhật ký thao tác"
        page.fill("#f-actor", f"candidate:{candidate['candidate_id']}")
        page.fill("#f-audit-reason", "Kiểm tra định kỳ")
        page.click("#audit-submit")
        page.wait_for_selector("#audit-results")
        actions = page.eval_on_selector_all(
            "#audit-table tr[data-action]", "r => r.map(x => x.dataset.action)"
        )
        assert "login" in actions, actions  # the submission shows once the writer stored it
        assert candidate["national_id"] not in page.content()
        shoot(page, "25-support-audit")
        page.fill("#f-actor", "")
        page.fill("#f-action", "audit_read")
        page.click("#audit-submit")
        page.wait_for_selector("#audit-results")
        rows = page.eval_on_selector_all(
            "#audit-table tr[data-action]", "r => r.map(x => x.dataset.action)"
        )
        assert rows and set(rows) == {"audit_read"}
        assert errors == [], f"JavaScript errors: {errors}"
    finally:
        context.close()
