"""An operator reopens one unit in a real headless Chromium, against real processes (issue 14).

`examreg serve` runs with the national window closed an hour ago (EXAMREG_CLOSES_AT). The
operator logs into the console, lands on the calendar, reopens one candidate's unit until a time
typed in Vietnam's time; that candidate then submits (202) and sees the new deadline on their
status page in Vietnamese and in English, while a candidate of another unit is refused (409).
Closing the reopen early closes the unit again. Screenshots go to
`test-artifacts/screenshots/25-…` to `27-…`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.adapters import store
from engine.adapters.passwords import make_hasher
from engine.settings import VIETNAM, load
from tests.e2e.web_stack import PHONE, chromium, processes, shoot
from tests.integration.test_window_calendar import neighbours, unit
from tests.support import TEST_PASSWORD, form_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

OPERATOR, PASSWORD = "ops.console", "Ops-console-2026"


@pytest.fixture
def operator(database_url: str) -> None:
    async def create() -> None:
        pool = await store.create_pool(database_url, size=1)
        try:
            hashed = make_hasher(load(env={})).hash(PASSWORD)
            await store.create_staff(pool, OPERATOR, hashed, "operator", None, False)
        finally:
            await pool.close()

    asyncio.run(create())


@pytest.fixture
def stack(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    closed = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    with processes(database_url, redis_url, tmp_path, {"api": {"EXAMREG_CLOSES_AT": closed}}) as s:
        yield s


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def _token(base: str, candidate: dict[str, Any]) -> str:
    login = httpx.post(
        f"{base}/api/v1/auth/login",
        json={"login": candidate["national_id"], "password": TEST_PASSWORD},
    )
    assert login.status_code == 200, login.text
    return str(login.json()["token"])


def _submit(base: str, token: str, candidate: dict[str, Any], key: str) -> httpx.Response:
    return httpx.put(
        f"{base}/api/v1/me/registration",
        json=form_for(candidate),
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key},
    )


def test_an_operator_reopens_one_unit_in_the_console_and_its_neighbour_stays_closed(
    stack: dict[str, Any], roster: list[dict[str, Any]], operator: None, browser: Any
) -> None:
    base = stack["api"]
    reopened, neighbour = neighbours(roster)
    tokens = {c["candidate_id"]: _token(base, c) for c in (reopened, neighbour)}
    assert _submit(base, tokens[reopened["candidate_id"]], reopened, "k0").status_code == 409
    until = (datetime.now(VIETNAM) + timedelta(hours=3)).replace(second=0, microsecond=0)
    context = browser.new_context(viewport=PHONE, locale="vi-VN")
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(f"{base}/support/login")
        page.fill("#f-username", OPERATOR)
        page.fill("#f-password", PASSWORD)
        page.click("#login-submit")
        page.wait_for_url("**/support/window")
        assert page.get_attribute("#national-window", "data-phase") == "closed"
        page.fill("#f-units", unit(reopened))
        page.fill("#f-until", until.strftime("%Y-%m-%dT%H:%M"))
        page.fill("#f-reopen-reason", "Phòng máy của trường hỏng ngày cuối")
        shoot(page, "25-window-reopen-form")
        page.click("#reopen-submit")
        page.wait_for_selector("#window-notice")
        row = page.locator("#reopens-table tr[data-state='open']")
        assert unit(reopened) in row.inner_text()
        shoot(page, "26-window-reopened")

        assert _submit(base, tokens[reopened["candidate_id"]], reopened, "k1").status_code == 202
        refused = _submit(base, tokens[neighbour["candidate_id"]], neighbour, "k2")
        assert refused.status_code == 409 and refused.json()["code"] == "window_closed"

        # The reopened candidate's own pages show the new deadline.
        candidate = browser.new_context(viewport=PHONE, locale="vi-VN")
        mine = candidate.new_page()
        mine.goto(f"{base}/login")
        mine.fill("#f-login", reopened["national_id"])
        mine.fill("#f-password", TEST_PASSWORD)
        mine.click("#login-submit")
        mine.wait_for_selector("#reopened-deadline")
        shown = until.strftime("%H:%M %d/%m/%Y")
        assert shown in mine.inner_text("#reopened-deadline")
        assert "Hạn cuối mới" in mine.inner_text("#reopened-deadline")
        shoot(mine, "27-window-candidate-new-deadline")
        mine.goto(f"{base}/status?lang=en")
        assert "New deadline" in mine.inner_text("#reopened-deadline")
        candidate.close()

        # Closed early: the unit is locked again.
        page.click("#reopens-table tr[data-state='open'] details summary")
        page.fill("#reopens-table tr[data-state='open'] input[name='reason']", "Đã sửa xong")
        page.click("#reopens-table tr[data-state='open'] button[type='submit']")
        page.wait_for_selector("#reopens-table tr[data-state='closed']")
        assert _submit(base, tokens[reopened["candidate_id"]], reopened, "k3").status_code == 409
        assert errors == [], f"JavaScript errors: {errors}"
    finally:
        context.close()
