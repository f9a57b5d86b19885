"""A candidate in a real headless Chromium, against real processes: the whole page flow.

`examreg serve` (twice: one server in the open window, one whose window has closed) and
`examreg writer` run as supervised processes on the test servers; Debian's `chromium` is driven by
Playwright (never a downloaded browser). The writer is paused (SIGSTOP) where the test needs a
submission to stay queued, so "queued → persisted without a reload" is observed, not assumed.
Screenshots of every page at phone (360×740) and desktop (1280×800) width go to
`test-artifacts/screenshots/`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis

from engine.adapters import streams
from tests.e2e.web_stack import DESKTOP, PHONE, SCREENSHOTS, chromium, processes, shoot
from tests.support import TEST_PASSWORD, form_for

# The first run on a fresh machine installs Chromium with apt inside the fixture (a minute or
# two); the flow itself takes about 20 s.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

NEW_PASSWORD = "Moi-mat-khau-2026"


@pytest.fixture
def browser() -> Iterator[Any]:
    """Function-scoped and requested after the database fixtures (see `web_stack.chromium`)."""
    with chromium() as launched:
        yield launched


@pytest.fixture
def stack(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Server A (open window, a one-entry shard limit), server B (closed window), a writer."""
    servers = {
        "open": {"EXAMREG_MAX_BACKLOG_PER_SHARD": "1", "EXAMREG_RETRY_AFTER_SECONDS": "1"},
        "closed": {"EXAMREG_OPENS_AT": "2020-01-01", "EXAMREG_CLOSES_AT": "2020-02-01"},
    }
    with processes(database_url, redis_url, tmp_path, servers) as running:
        yield running


@pytest.fixture
def issued_password(database_url: str, roster: list[dict[str, Any]]) -> dict[str, Any]:
    """The browser's candidate, still on the school-issued password (before the browser opens:
    see `web_stack.chromium`)."""
    candidate = roster[20]

    async def force() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(
                "UPDATE candidates SET must_change_password = true WHERE candidate_id = $1",
                candidate["candidate_id"],
            )
        finally:
            await conn.close()

    asyncio.run(force())
    return candidate


def _submit_filler(base: str, candidate: dict[str, Any]) -> None:
    """Another candidate on the same shard submits through the JSON API: the shard is full."""
    login = httpx.post(
        f"{base}/api/v1/auth/login",
        json={"login": candidate["national_id"], "password": TEST_PASSWORD},
    )
    token = login.json()["token"]
    put = httpx.put(
        f"{base}/api/v1/me/registration",
        json=form_for(candidate),
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "filler-1"},
    )
    assert put.status_code == 202, put.text


def _wait_drained(redis_url: str, shard: int) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        deadline = time.monotonic() + 30
        while client.xlen(streams.stream_key(shard)):
            assert time.monotonic() < deadline, "the writer did not drain the shard"
            time.sleep(0.1)
    finally:
        client.close()


# -- the flow --------------------------------------------------------------------------------------


def _log_in_and_change_password(page: Any, base: str, candidate: dict[str, Any]) -> None:
    page.goto(f"{base}/")
    assert page.url.endswith("/login")
    shoot(page, "01-login")
    page.fill("#f-login", candidate["national_id"])
    page.fill("#f-password", TEST_PASSWORD)
    page.click("#login-submit")
    page.wait_for_url("**/password")
    assert page.is_visible("#forced-notice")
    shoot(page, "02-password-change")
    page.fill("#f-current_password", TEST_PASSWORD)
    page.fill("#f-new_password", NEW_PASSWORD)
    page.fill("#f-new_password_confirm", NEW_PASSWORD)
    page.click("#password-submit")
    page.wait_for_url("**/registration")


def _fill_form_with_a_server_side_error(page: Any) -> None:
    """Fields only the server can judge: a landline number and both Technology subjects."""
    assert page.input_value("#f-national_id")  # prefilled from the roster
    page.select_option("#f-ethnicity", "Kinh")
    page.fill("#f-birthplace", "Thanh Hóa")
    page.fill("#f-residence-address", "12 Lê Lợi, Phường Ba Đình")
    page.check("input[name=purposes][value=graduation]")
    page.check("input[name=purposes][value=admission]")
    page.check("input[name=electives][value=CNCN]")
    page.check("input[name=electives][value=CNNN]")
    page.fill("#f-phone", "0212345678")
    # The school list follows the chosen province (app.js), here for grade 11.
    page.select_option("#f-schools-1-province_code", "28")
    page.wait_for_function("document.querySelector('#f-schools-1-school_code').options.length > 3")
    codes = page.eval_on_selector_all("#f-schools-1-school_code option", "o => o.map(x => x.value)")
    assert codes[:3] == ["", "001", "002"] and "900" in codes
    page.select_option("#f-schools-1-school_code", "002")
    page.click("#registration-submit")
    page.wait_for_selector("#error-summary")
    assert "không hợp lệ" in page.inner_text("#f-phone-error")
    assert "Công nghệ" in page.inner_text("#f-electives-error")
    # What was typed is still there.
    assert page.input_value("#f-phone") == "0212345678"
    assert page.input_value("#f-residence-address") == "12 Lê Lợi, Phường Ba Đình"
    assert page.input_value("#f-schools-1-school_code") == "002"
    shoot(page, "03-form-errors")


def _submit_through_a_network_error(page: Any, base: str) -> str:
    """The first submit reaches the server but the connection drops before the answer: the
    browser shows its error page. Back on the form, app.js has restored what was typed and the
    same Idempotency-Key, so pressing submit again replays the first receipt."""
    key = page.input_value("input[name=idempotency_key]")
    page.uncheck("input[name=electives][value=CNNN]")
    page.check("input[name=electives][value=LI]")
    page.fill("#f-phone", "0912345678")
    lost: list[int] = []

    def lose_the_answer(route: Any) -> None:
        lost.append(route.fetch(max_redirects=0).status)
        route.abort("connectionreset")

    page.route("**/registration", lose_the_answer)
    page.click("#registration-submit")
    page.wait_for_function("() => !document.getElementById('registration-submit')")
    page.unroute("**/registration")
    assert lost == [303], "the first submission did reach the server and was accepted"

    page.goto(f"{base}/registration")
    page.wait_for_selector("#pending-notice:not([hidden])")
    assert page.input_value("input[name=idempotency_key]") == key
    assert page.input_value("#f-phone") == "0912345678"
    assert page.is_checked("input[name=electives][value=LI]")
    page.click("#registration-submit")
    page.wait_for_url("**/receipts/*")
    return str(page.url)


def test_a_candidate_registers_edits_and_sees_the_closed_window_in_a_real_browser(
    stack: dict[str, Any],
    roster: list[dict[str, Any]],
    redis_url: str,
    issued_password: dict[str, Any],
    browser: Any,
) -> None:
    base = stack["open"]
    candidate = issued_password
    shard = candidate["candidate_id"] % 8
    filler = next(c for c in roster if c["candidate_id"] % 8 == shard and c is not candidate)
    writer = stack["writer"]
    writer.pause()
    context = browser.new_context(viewport=PHONE, locale="vi-VN")
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        _log_in_and_change_password(page, base, candidate)
        _fill_form_with_a_server_side_error(page)
        receipt_url = _submit_through_a_network_error(page, base)

        # Version 1 is queued: the writer is paused. Then it runs, and the page updates itself.
        assert page.inner_text("#receipt-version") == "1"
        assert page.get_attribute("#receipt-status", "data-status") == "queued"
        shoot(page, "04-receipt-queued")
        page.evaluate("window.__same_document = true")
        writer.resume()
        page.wait_for_selector("#receipt-status[data-status=persisted]", timeout=20_000)
        assert page.evaluate("window.__same_document === true"), "the page was reloaded"
        assert "cơ sở dữ liệu" in page.inner_text("#receipt-status")
        shoot(page, "05-receipt-persisted")
        page.set_viewport_size(DESKTOP)  # about an A4 page's width
        page.emulate_media(media="print")  # printable: the receipt without the site's chrome
        assert page.is_visible("#receipt-id") and not page.is_visible("header.top")
        page.screenshot(path=str(SCREENSHOTS / "05-receipt-print.png"), full_page=True)
        page.emulate_media(media="screen")
        page.set_viewport_size(PHONE)

        # Edit: the form comes back with version 1; a change makes version 2.
        page.goto(f"{base}/registration")
        assert page.input_value("#f-phone") == "0912345678"
        page.fill("#f-phone", "0987654321")
        page.click("#registration-submit")
        page.wait_for_url("**/receipts/*")
        assert page.url != receipt_url and page.inner_text("#receipt-version") == "2"
        page.wait_for_selector("#receipt-status[data-status=persisted]", timeout=20_000)
        page.goto(f"{base}/status")
        versions = page.eval_on_selector_all(
            "#history tr[data-version]", "r => r.map(x => x.dataset.version)"
        )
        assert versions == ["2", "1"], "the retried submission made no extra version"
        assert page.inner_text("#current-version") == "2"
        shoot(page, "06-status")

        # Overload: the shard is full (writer paused, another candidate queued). The retry page
        # keeps the form and retries by itself with the same key; a fake clock skips the wait.
        writer.pause()
        _submit_filler(base, filler)
        busy = context.new_page()
        busy.set_default_timeout(15_000)
        busy.clock.install()
        busy.goto(f"{base}/registration")
        busy.fill("#f-phone", "0977000111")
        busy.click("#registration-submit")
        busy.wait_for_selector("#retry-form")
        assert "CHƯA được ghi nhận" in busy.inner_text("main")
        assert busy.get_attribute("#retry-form input[name=phone]", "value") == "0977000111"
        shoot(busy, "07-overload-retry")
        with busy.expect_request(lambda r: r.method == "POST" and r.url.endswith("/registration")):
            busy.clock.run_for(200_000)  # the countdown ends: it resubmits, still overloaded
        busy.wait_for_selector("#retry-form")
        writer.resume()
        _wait_drained(redis_url, shard)
        with busy.expect_navigation(url="**/receipts/*"):
            busy.clock.run_for(200_000)
        assert busy.inner_text("#receipt-version") == "3"
        busy.close()
        page.goto(f"{base}/status")
        page.wait_for_function("document.querySelectorAll('#history tr[data-version]').length == 3")

        # English switch, then the closed window on the other server (same session cookie).
        page.click("#switch-language")
        assert page.inner_text("h1") == "My registration"
        page.click("#switch-language")
        page.goto(f"{stack['closed']}/status")
        assert page.get_attribute("#window-banner", "data-phase") == "closed"
        assert page.query_selector("#edit-link") is None
        shoot(page, "08-status-closed")
        page.goto(f"{stack['closed']}/registration")
        assert page.is_visible("#form-closed") and page.query_selector("#registration-form") is None
        shoot(page, "09-form-closed")
        assert errors == [], f"JavaScript errors: {errors}"
    finally:
        writer.resume()
        context.close()
