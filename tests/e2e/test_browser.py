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


# -- the whole Phiếu with a photo, and its print view (issue 13) -------------------------------


@pytest.fixture
def form_stack(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """One server with a fixed secret (the verification code is the same on every worker)."""
    servers = {"open": {"EXAMREG_SECRET_KEY": "browser-test-secret"}}
    with processes(database_url, redis_url, tmp_path, servers) as running:
        yield running


@pytest.fixture
def photos(tmp_path: Path) -> dict[str, Path]:
    """A phone-camera-sized portrait and a photo too small, as files the file input takes."""
    from PIL import Image, ImageDraw

    made = {}
    for name, size in (("portrait", (900, 1350)), ("small", (300, 450))):
        image = Image.new("RGB", size, (214, 228, 240))
        draw = ImageDraw.Draw(image)
        w, h = size
        draw.ellipse((w * 0.3, h * 0.15, w * 0.7, h * 0.5), fill=(224, 172, 140))  # a face
        draw.rectangle((w * 0.18, h * 0.55, w * 0.82, h), fill=(40, 60, 110))  # shoulders
        made[name] = tmp_path / f"{name}.jpg"
        image.save(made[name], "JPEG", quality=90)
    return made


@pytest.fixture
def form_candidate(database_url: str, roster: list[dict[str, Any]]) -> dict[str, Any]:
    """A grade-12 candidate past the first-login change."""
    candidate = next(c for c in roster[30:] if c["candidate_type"] == "a")

    async def ready() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(
                "UPDATE candidates SET must_change_password = false WHERE candidate_id = $1",
                candidate["candidate_id"],
            )
        finally:
            await conn.close()

    asyncio.run(ready())
    return candidate


def _no_horizontal_overflow(page: Any) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"] + 1, f"{width}px wide at {page.viewport_size}"


def test_the_whole_form_with_a_photo_and_its_printed_phieu_in_a_real_browser(
    form_stack: dict[str, Any],
    form_candidate: dict[str, Any],
    photos: dict[str, Path],
    browser: Any,
) -> None:
    base = form_stack["open"]
    candidate = form_candidate
    context = browser.new_context(viewport=PHONE, locale="vi-VN")
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(f"{base}/login")
        page.fill("#f-login", candidate["national_id"])
        page.fill("#f-password", TEST_PASSWORD)
        page.click("#login-submit")
        page.wait_for_url("**/status")
        page.goto(f"{base}/registration")
        # The file input opens the camera on a phone (capture) or a file chooser elsewhere.
        assert page.get_attribute("#f-photo", "capture") == "user"
        assert "image/" in (page.get_attribute("#f-photo", "accept") or "")
        page.select_option("#f-ethnicity", "Tày")
        page.fill("#f-birthplace", "Lạng Sơn")
        page.fill("#f-residence-address", "Thôn Nà Phặc, xã Bằng Thành")
        page.check("#f-residence-kv1_over_18_months")
        page.fill("#f-class_12", "12A2")
        page.fill("#f-contact_address", "Số 5 phố Tràng Tiền, Hoàn Kiếm, Hà Nội")
        page.select_option("#f-curriculum", "GDPT2018")
        page.select_option("#f-study_track", "THPT")
        page.check("input[name=purposes][value=graduation]")
        page.check("input[name=purposes][value=admission]")
        page.check("input[name=electives][value=LI]")
        page.check("input[name=electives][value=NN]")
        page.select_option("#f-foreign_language", "N1")
        page.select_option("#f-exemptions-foreign_language_certificate", "IELTS")
        page.fill("#f-exemptions-certificate_score", "6.5")
        page.fill("#f-exemptions-certificate_expires_on", "2030-01-31")
        page.select_option("#f-graduation_priority", "P025")
        page.fill("#f-phone", "0912345678")
        # First a photo that is too small: the server says so next to the input.
        page.set_input_files("#f-photo", str(photos["small"]))
        page.click("#registration-submit")
        page.wait_for_selector("#error-summary")
        assert "400×600" in page.inner_text("#f-photo_sha256-error")
        assert page.input_value("#f-class_12") == "12A2", "typed values kept"
        assert page.input_value("#f-exemptions-certificate_score") == "6.5"
        shoot(page, "30-phieu-form-photo-too-small")
        # Then a real one.
        page.set_input_files("#f-photo", str(photos["portrait"]))
        shoot(page, "31-phieu-form-full")
        page.click("#registration-submit")
        page.wait_for_url("**/receipts/*")
        page.wait_for_selector("#receipt-status[data-status=persisted]", timeout=20_000)
        receipt = page.inner_text("#receipt-id")

        # The form now shows the stored photo.
        page.goto(f"{base}/registration")
        page.wait_for_selector("#photo-preview")
        assert page.evaluate("document.getElementById('photo-preview').naturalWidth") == 800

        # The print view: every item, the photo, version, receipt, code, both signature blanks.
        page.goto(f"{base}/registration/print")
        for selector in ("#phieu", "#sign-unit", "#sign-candidate", "#phieu-code"):
            assert page.is_visible(selector), selector
        assert page.inner_text("#phieu-receipt") == receipt
        assert page.inner_text("#phieu-version") == "1"
        text = page.inner_text("#phieu-items")
        for expected in (
            candidate["full_name"],
            "12A2",
            "Số 5 phố Tràng Tiền",
            "Vật lí, Ngoại ngữ",
            "IELTS",
            "Diện ưu tiên cộng 0,25 điểm",
            "Tày",
        ):
            assert expected in text, expected
        assert page.evaluate("document.querySelector('#phieu-photo img').naturalWidth") > 0
        _no_horizontal_overflow(page)
        shoot(page, "32-phieu-print-view")
        page.set_viewport_size(PHONE)
        _no_horizontal_overflow(page)
        # Printed: A4 from @page, none of the site's chrome.
        page.set_viewport_size({"width": 794, "height": 1123})  # A4 at 96 dpi
        page.emulate_media(media="print")
        assert not page.is_visible("header.top") and not page.is_visible("#print-button")
        page.screenshot(path=str(SCREENSHOTS / "33-phieu-print-a4.png"), full_page=True)
        pdf = page.pdf(format="A4", print_background=True)
        (SCREENSHOTS / "33-phieu-print-a4.pdf").write_bytes(pdf)
        page.emulate_media(media="screen")
        page.set_viewport_size(PHONE)
        # The server's own PDF.
        answer = page.request.get(f"{base}/registration/print.pdf")
        assert answer.status == 200 and answer.headers["content-type"] == "application/pdf"
        assert answer.body().startswith(b"%PDF-")
        (SCREENSHOTS / "34-phieu-server.pdf").write_bytes(answer.body())
        # English labels beside the official Vietnamese ones.
        page.goto(f"{base}/registration/print?lang=en")
        assert "Full name" in page.inner_text("#phieu-items")
        page.goto(f"{base}/registration/print?lang=vi")
        assert errors == [], f"JavaScript errors: {errors}"
    finally:
        context.close()
