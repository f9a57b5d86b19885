"""A registration unit's staff member in a real headless Chromium, against real processes.

`examreg serve` and `examreg writer` run as supervised processes (`tests.e2e.web_stack`). Two
candidates of the unit register through the JSON API; the unit's staff member opens the review
queue, confirms one, returns the other with a reason (which that candidate then reads on their
status page, in the browser), sees the confirmed one drop back to "changed since confirmed" with
the differences once the candidate edits the form, prints the unit's forms, and keys a file of
paper forms: refused whole for one bad row (line and field shown), then sent with the good rows
only, the progress bar polled to the end. Screenshots at phone and desktop width go to
`test-artifacts/screenshots/3x-unit-*.png`.
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

from engine.adapters import store
from engine.adapters.passwords import make_hasher
from engine.settings import load
from tests.e2e.web_stack import PHONE, chromium, processes, shoot
from tests.integration.test_unit_review import csv_file, keyed_row
from tests.support import TEST_PASSWORD, form_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

STAFF_PASSWORD = "Unit-pass-2026"
UNIT_STAFF = "unit.clerk"
REASON = "Ảnh và địa chỉ thường trú chưa đúng, em sửa lại giúp cô"


@pytest.fixture
def unit(database_url: str, roster: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Four candidates in one unit (roster[0]'s school) and that unit's staff account."""
    members = roster[:4]
    school = (members[0]["province_code"], members[0]["school_code"])

    async def create() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(
                "UPDATE candidates SET province_code = $1, school_code = $2"
                " WHERE candidate_id = ANY($3::bigint[])",
                *school,
                [c["candidate_id"] for c in members],
            )
        finally:
            await conn.close()
        password_hash = make_hasher(load(env={})).hash(STAFF_PASSWORD)
        pool = await store.create_pool(database_url, size=1)
        try:
            await store.create_staff(pool, UNIT_STAFF, password_hash, "school", school, False)
        finally:
            await pool.close()

    asyncio.run(create())
    return members


@pytest.fixture
def stack(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    with processes(database_url, redis_url, tmp_path, {"api": {}}) as running:
        yield running


@pytest.fixture
def browser() -> Iterator[Any]:
    """Requested last: no fixture may call asyncio.run() while it is open."""
    with chromium() as launched:
        yield launched


def _token(base: str, candidate: dict[str, Any]) -> dict[str, str]:
    login = httpx.post(
        f"{base}/api/v1/auth/login",
        json={"login": candidate["national_id"], "password": TEST_PASSWORD},
    )
    return {"Authorization": f"Bearer {login.json()['token']}"}


def _submit(base: str, candidate: dict[str, Any], key: str, **changes: Any) -> int:
    auth = _token(base, candidate)
    put = httpx.put(
        f"{base}/api/v1/me/registration",
        json=form_for(candidate, **changes),
        headers={**auth, "Idempotency-Key": key},
    )
    assert put.status_code == 202, put.text
    version = int(put.json()["version"])
    deadline = time.monotonic() + 20
    while True:
        got = httpx.get(f"{base}/api/v1/me/registration", headers=auth).json()
        if got["status"] == "persisted" and got["version"] == version:
            return version
        assert time.monotonic() < deadline, "not persisted in 20 s"
        time.sleep(0.2)


def _state(page: Any, candidate: dict[str, Any]) -> str:
    return str(page.get_attribute(f"#c-{candidate['candidate_id']}", "data-state"))


def _wait_job(page: Any) -> None:
    page.wait_for_selector("#keying-job[data-finished='1']", timeout=30_000)


def test_a_unit_reviews_confirms_returns_prints_and_keys_paper_forms(
    stack: dict[str, Any], unit: list[dict[str, Any]], browser: Any, tmp_path: Path
) -> None:
    base = stack["api"]
    first, second, third, fourth = unit
    _submit(base, first, "u-1")
    _submit(base, second, "u-2")
    context = browser.new_context(viewport=PHONE, locale="vi-VN")
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(f"{base}/support/login")
        page.fill("#f-username", UNIT_STAFF)
        page.fill("#f-password", STAFF_PASSWORD)
        page.click("#login-submit")
        page.wait_for_url("**/support")
        page.click("#nav-review")
        page.wait_for_selector("#group-unreviewed")
        assert _state(page, first) == _state(page, second) == "unreviewed"
        assert _state(page, third) == "not_registered"
        shoot(page, "30-unit-review-queue")

        page.click(f"#c-{first['candidate_id']} button.confirm")
        page.wait_for_selector("#review-done")
        assert _state(page, first) == "confirmed"
        page.click(f"#c-{second['candidate_id']} .return-prompt summary")
        page.fill(f"#f-return-{second['candidate_id']}-reason", REASON)
        page.click(f"#c-{second['candidate_id']} button.return")
        page.wait_for_selector("#review-done")
        assert _state(page, second) == "returned"
        assert REASON in page.inner_text(f"#c-{second['candidate_id']}")

        # The confirmed candidate edits the form: back to "changed since confirmed", with the diff.
        residence = {**form_for(first)["residence"], "address": "Số 99 đường Trần Phú, phường 5"}
        assert _submit(base, first, "u-3", residence=residence) == 2
        page.goto(f"{base}/support/review")
        assert _state(page, first) == "changed"
        changed = page.inner_text(f"#c-{first['candidate_id']}")
        assert "Số 99 đường Trần Phú" in changed and "Địa chỉ thường trú" in changed
        page.locator(f"#c-{first['candidate_id']}").scroll_into_view_if_needed()
        shoot(page, "31-unit-review-changed")

        page.goto(f"{base}/support/review/print")
        sheets = page.eval_on_selector_all(".print-sheet", "s => s.map(x => x.dataset.candidateId)")
        assert sorted(sheets) == sorted(str(c["candidate_id"]) for c in (first, second))
        shoot(page, "32-unit-print")

        # Keying: one bad row refuses the whole file; the good-rows-only choice sends the rest.
        bad = keyed_row(form_for(fourth, electives=["CNCN", "CNNN"]))
        upload = tmp_path / "phieu-giay.csv"
        upload.write_bytes(csv_file([keyed_row(form_for(third)), bad]))
        page.goto(f"{base}/support/keying")
        shoot(page, "33-unit-keying")
        page.set_input_files("#f-file", str(upload))
        page.click("#upload-submit")
        _wait_job(page)
        assert page.get_attribute("#keying-job", "data-state") == "refused"
        row = page.locator("#job-errors-table tr[data-line='3']").first
        assert row.get_attribute("data-field") == "electives"
        shoot(page, "34-unit-keying-refused")
        page.goto(f"{base}/support/keying")
        page.set_input_files("#f-file", str(upload))
        page.check("#f-good-only")
        page.click("#upload-submit")
        _wait_job(page)
        assert page.get_attribute("#keying-job", "data-state") == "done"
        counts = page.locator("#job-counts")
        assert (counts.get_attribute("data-enqueued"), counts.get_attribute("data-bad")) == (
            "1",
            "1",
        )
        shoot(page, "35-unit-keying-done")
        assert errors == [], f"JavaScript errors: {errors}"
    finally:
        context.close()

    # The returned candidate reads the unit's reason on their status page.
    context = browser.new_context(viewport=PHONE, locale="vi-VN")
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        page.goto(f"{base}/login")
        page.fill("#f-login", second["national_id"])
        page.fill("#f-password", TEST_PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url("**/status")
        assert page.get_attribute("#review-state", "data-state") == "returned"
        assert REASON in page.inner_text("#review-state")
        shoot(page, "36-unit-candidate-returned")
    finally:
        context.close()
    keyed = httpx.get(f"{base}/api/v1/me/registration", headers=_token(base, third))
    assert keyed.status_code == 200 and keyed.json()["version"] == 1
