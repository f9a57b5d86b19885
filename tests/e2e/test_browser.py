"""A candidate in a real headless Chromium, against real processes: the whole page flow.

`examreg serve` (twice: one server in the open window, one whose window has closed) and
`examreg writer` run as supervised processes on the test servers; Debian's `chromium` is driven by
Playwright (never a downloaded browser). The writer is paused (SIGSTOP) where the test needs a
submission to stay queued, so "queued → persisted without a reload" is observed, not assumed.
Screenshots of every page at phone (360×740) and desktop (1280×800) width go to
`test-artifacts/screenshots/`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import redis

from engine import queue
from tests.support import TEST_PASSWORD, form_for

# The first run on a fresh machine installs Chromium with apt inside the fixture (a minute or
# two); the flow itself takes about 20 s.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 800}
NEW_PASSWORD = "Moi-mat-khau-2026"
SERVE = [sys.executable, "-m", "engine", "serve", "--workers", "1"]


# -- the browser ------------------------------------------------------------------------------


def _install_chromium() -> None:
    """Debian's chromium through apt, when it is missing and we are root; else say what to do."""
    if CHROMIUM.exists():
        return
    how = "apt-get install chromium"
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.fail(f"Chromium is missing at {CHROMIUM}; install it as root: {how}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "chromium"]
    if subprocess.run(install, env=env, capture_output=True, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, check=False)
        done = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.fail(f"could not install Chromium ({how}): {done.stderr[-2000:]}")
    if not CHROMIUM.exists():
        pytest.fail(f"{how} ran but {CHROMIUM} is still missing")


@pytest.fixture
def browser() -> Iterator[Any]:
    """Function-scoped and requested after the database fixtures: Playwright's sync API runs an
    event loop of its own, so no fixture may call asyncio.run() while the browser is open."""
    _install_chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright for Python is missing: pip install -e '.[test]'")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def shoot(page: Any, name: str) -> None:
    """Full-page screenshots at phone and desktop width; the page goes back to phone width."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(size)
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{label}.png"), full_page=True)


# -- the processes ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(url: str, procs: list[subprocess.Popen[bytes]], logs: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        for proc in procs:
            assert proc.poll() is None, "\n".join(p.read_text() for p in logs.glob("*.log"))
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"{url} not ready in 60 s"
        time.sleep(0.2)


@pytest.fixture
def stack(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Server A (open window, a one-entry shard limit), server B (closed window), a writer."""
    base_env = {
        **os.environ,
        "EXAMREG_DATABASE_URL": database_url,
        "EXAMREG_REDIS_URL": redis_url,
        "EXAMREG_WRITER_BLOCK_MS": "200",
        "EXAMREG_IO_TIMEOUT_SECONDS": "2",
        "EXAMREG_LOG_LEVEL": "warning",
    }
    logs = tmp_path / "logs"
    logs.mkdir()
    ports = {"open": _free_port(), "closed": _free_port()}
    specs = {
        "open": {"EXAMREG_MAX_BACKLOG_PER_SHARD": "1", "EXAMREG_RETRY_AFTER_SECONDS": "1"},
        "closed": {"EXAMREG_OPENS_AT": "2020-01-01", "EXAMREG_CLOSES_AT": "2020-02-01"},
    }
    procs: dict[str, subprocess.Popen[bytes]] = {}
    handles = []
    try:
        for name, extra in specs.items():
            handle = (logs / f"{name}.log").open("w")
            handles.append(handle)
            procs[name] = subprocess.Popen(
                [*SERVE, "--port", str(ports[name])],
                env={**base_env, **extra, "EXAMREG_DATA_DIR": str(tmp_path / name)},
                stdout=handle,
                stderr=subprocess.STDOUT,
            )
        handle = (logs / "writer.log").open("w")
        handles.append(handle)
        procs["writer"] = subprocess.Popen(
            [sys.executable, "-m", "engine", "writer", "--processes", "1"],
            env={**base_env, "EXAMREG_DATA_DIR": str(tmp_path / "writer")},
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
        urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        for url in urls.values():
            _wait_ready(url, list(procs.values()), logs)
        yield {**urls, "writer": _Writer(procs["writer"])}
    finally:
        for proc in procs.values():
            for child in psutil.Process(proc.pid).children(recursive=True):
                child.send_signal(signal.SIGCONT)  # a paused writer must hear the SIGTERM
            proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        for handle in handles:
            handle.close()


class _Writer:
    """Pause and resume the writer process (its supervisor stays untouched)."""

    def __init__(self, supervisor: subprocess.Popen[bytes]) -> None:
        self.supervisor = supervisor

    def _child(self) -> psutil.Process:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            children = psutil.Process(self.supervisor.pid).children()
            if children:
                return children[0]
            time.sleep(0.1)
        raise AssertionError("the writer supervisor has no child")

    def pause(self) -> None:
        self._child().send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._child().send_signal(signal.SIGCONT)


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
        while client.xlen(queue.stream_key(shard)):
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
    stack: dict[str, Any], roster: list[dict[str, Any]], redis_url: str, browser: Any
) -> None:
    base = stack["open"]
    candidate = roster[20]
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
