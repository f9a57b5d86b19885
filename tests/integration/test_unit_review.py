"""The registration unit's side on real PostgreSQL and Valkey, in-process (issue 13 items 4-6).

A `school` account reviews its unit's candidates: confirms one version, returns another with a
reason the candidate reads, sees a confirmed registration drop back to "changed since confirmed"
(with the differences) when the candidate edits it, and cannot see or confirm another unit's
candidate. It keys paper forms: a CSV with a bad row enqueues nothing and names the line and the
field; the good-rows-only choice enqueues the rest; a re-upload (CSV or the same rows as XLSX)
creates no version. Every step goes through the pages, as a browser does, and is checked in the
database, the streams and the audit log.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
from typing import Any

import asyncpg
import httpx
import pytest
from openpyxl import Workbook

from engine.adapters import streams
from engine.domain import paper_forms
from tests.conftest import Harness, make_harness, with_settings
from tests.integration.test_support_web import add_staff, audit_rows, other_client, signed_in
from tests.support import TEST_PASSWORD, drain, form_for, hidden

pytestmark = pytest.mark.anyio

RETURN_REASON = "Địa chỉ thường trú chưa ghi số nhà"


def unit_of(candidate: dict[str, Any]) -> tuple[str, str]:
    return candidate["province_code"], candidate["school_code"]


async def move_into(pool: asyncpg.Pool, unit: tuple[str, str], *candidates: dict[str, Any]) -> None:
    """Put roster candidates in one unit (the synthetic roster spreads them over schools)."""
    await pool.execute(
        "UPDATE candidates SET province_code = $1, school_code = $2"
        " WHERE candidate_id = ANY($3::bigint[])",
        *unit,
        [c["candidate_id"] for c in candidates],
    )


async def submit(harness: Harness, candidate: dict[str, Any], key: str, **changes: Any) -> int:
    response = await harness.client.put(
        "/api/v1/me/registration",
        json=form_for(candidate, **changes),
        headers={**await harness.login(candidate), "Idempotency-Key": key},
    )
    assert response.status_code == 202, response.text
    return int(response.json()["version"])


async def unit_console(harness: Harness, pool: asyncpg.Pool, unit: tuple[str, str]) -> str:
    await add_staff(harness, pool, "unit.staff", "school", school=unit)
    harness.client.cookies.clear()
    return await signed_in(harness.client, "unit.staff")


def states(page: str) -> dict[int, str]:
    """candidate_id → review state, as the queue shows them."""
    found = re.findall(r'data-candidate-id="(\d+)" data-state="([a-z_]+)"', page)
    return {int(cid): state for cid, state in found}


async def queue(harness: Harness) -> str:
    response = await harness.client.get("/support/review")
    assert response.status_code == 200, response.text
    return response.text


async def test_confirm_return_and_an_edit_after_confirming(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool
) -> None:
    first, second, absent = roster[0], roster[1], roster[2]
    unit = unit_of(first)
    await move_into(pool, unit, second, absent)
    assert await submit(harness, first, "r-1") == 1
    assert await submit(harness, second, "r-2") == 1
    await drain(harness.settings, pool, harness.services.redis)
    csrf = await unit_console(harness, pool, unit)

    shown = states(await queue(harness))
    assert shown[first["candidate_id"]] == "unreviewed"
    assert shown[second["candidate_id"]] == "unreviewed"
    assert shown[absent["candidate_id"]] == "not_registered"

    confirmed = await harness.client.post(
        f"/support/review/{first['candidate_id']}/confirm", data={"csrf_token": csrf, "version": 1}
    )
    assert confirmed.status_code == 303
    returned = await harness.client.post(
        f"/support/review/{second['candidate_id']}/return",
        data={"csrf_token": csrf, "version": 1, "reason": RETURN_REASON},
    )
    assert returned.status_code == 303
    shown = states(await queue(harness))
    assert shown[first["candidate_id"]] == "confirmed"
    assert shown[second["candidate_id"]] == "returned"
    row = await pool.fetchrow(
        "SELECT u.version, u.action, st.username FROM unit_reviews u JOIN staff st USING (staff_id)"
        " WHERE candidate_id = $1",
        first["candidate_id"],
    )
    assert tuple(row) == (1, "confirm", "unit.staff")

    # The candidates read it: confirmed by the unit; returned, with the unit's reason.
    mine = await harness.client.get("/api/v1/me/registration", headers=await harness.login(first))
    assert mine.json()["review"]["state"] == "confirmed"
    theirs = await harness.client.get(
        "/api/v1/me/registration", headers=await harness.login(second)
    )
    assert theirs.json()["review"] == {
        **theirs.json()["review"],
        "state": "returned",
        "reason": RETURN_REASON,
        "version": 1,
    }
    async with other_browser(harness) as browser:
        status = await candidate_page(browser, second, "/status")
        assert 'data-state="returned"' in status and RETURN_REASON in status

    # The confirmed candidate edits the form: "changed since confirmed", with the differences.
    address = "Số 12 đường Lê Lợi, phường Bến Thành"
    edited = form_for(first)
    edited["residence"] = {**edited["residence"], "address": address}
    assert await submit(harness, first, "r-3", residence=edited["residence"]) == 2
    # Still queued: a confirmation of version 1 is refused now, before the writer runs.
    stale = await harness.client.post(
        f"/support/review/{first['candidate_id']}/confirm", data={"csrf_token": csrf, "version": 1}
    )
    assert stale.status_code == 409 and 'id="review-notice"' in stale.text
    await drain(harness.settings, pool, harness.services.redis)
    page = await queue(harness)
    assert states(page)[first["candidate_id"]] == "changed"
    item = page[page.index(f'id="c-{first["candidate_id"]}"') :]
    item = item[: item.index("</li>")]
    assert 'data-field="residence.address"' in item and address in item
    async with other_browser(harness) as browser:
        status = await candidate_page(browser, first, "/status")
        assert 'data-state="changed"' in status
        assert 'data-field="residence.address"' in status and address in status

    # The unit's record of the candidate shows the same: the state, and each version's changes.
    record = await harness.client.post(
        f"/support/candidates/{first['candidate_id']}",
        data={"csrf_token": csrf, "reason": "kiểm tra phiếu sửa"},
    )
    assert 'id="review-state" data-state="changed"' in record.text
    assert 'id="changes-2"' in record.text and address in record.text

    again = await harness.client.post(
        f"/support/review/{first['candidate_id']}/confirm", data={"csrf_token": csrf, "version": 2}
    )
    assert again.status_code == 303
    assert states(await queue(harness))[first["candidate_id"]] == "confirmed"

    actions = [
        (r["action"], r["candidate_id"], r["detail"].get("outcome"), r["detail"].get("version"))
        for r in await audit_rows(pool)
        if r["action"].startswith("review_") and r["action"] != "review_queue"
    ]
    assert actions == [
        ("review_confirm", first["candidate_id"], "ok", 1),
        ("review_return", second["candidate_id"], "ok", 1),
        ("review_confirm", first["candidate_id"], "version_changed", 1),
        ("review_confirm", first["candidate_id"], "ok", 2),
    ]


async def test_a_unit_cannot_see_or_confirm_another_units_candidate(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool
) -> None:
    own = roster[0]
    other = next(c for c in roster if unit_of(c) != unit_of(own))
    await submit(harness, other, "o-1")
    await drain(harness.settings, pool, harness.services.redis)
    csrf = await unit_console(harness, pool, unit_of(own))
    page = await queue(harness)
    assert other["candidate_id"] not in states(page) and other["full_name"] not in page
    for action in ("confirm", "return"):
        refused = await harness.client.post(
            f"/support/review/{other['candidate_id']}/{action}",
            data={"csrf_token": csrf, "version": 1, "reason": RETURN_REASON},
        )
        assert refused.status_code == 404 and other["full_name"] not in refused.text
    assert await pool.fetchval("SELECT count(*) FROM unit_reviews") == 0
    outcomes = [
        r["detail"].get("outcome")
        for r in await audit_rows(pool)
        if r["action"] in ("review_confirm", "review_return")
    ]
    assert outcomes == ["outside_school", "outside_school"]
    # A desk agent (no unit) has no review queue at all.
    await add_staff(harness, pool, "desk.only", "support")
    harness.client.cookies.clear()
    await signed_in(harness.client, "desk.only")
    assert (await harness.client.get("/support/review")).status_code == 403


# -- keying paper forms --------------------------------------------------------------------------


def keyed_row(form: dict[str, Any]) -> list[str]:
    """A form as a row of the keying template, whatever columns the validator has."""
    return paper_forms.form_row(form)


def csv_file(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(paper_forms.COLUMNS)
    writer.writerows(rows)
    return out.getvalue().encode()


def xlsx_file(rows: list[list[str]]) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(list(paper_forms.COLUMNS))
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def upload(
    harness: Harness, csrf: str, name: str, data: bytes, *, good_only: bool = False
) -> dict[str, Any]:
    """Upload a keyed file and wait for its job, polling the progress endpoint as the page does."""
    fields = {"csrf_token": csrf, **({"good_only": "1"} if good_only else {})}
    response = await harness.client.post(
        "/support/keying/upload", data=fields, files={"file": (name, data)}
    )
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    for _ in range(400):
        progress = (await harness.client.get(f"{location}/progress")).json()
        if progress["finished"]:
            page = await harness.client.get(location)
            return {**progress, "page": page.text}
        await asyncio.sleep(0.05)
    raise AssertionError("the keyed file did not finish in 20 s")


async def versions(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM registration_versions"))


async def queued(harness: Harness) -> int:
    redis = harness.services.redis
    lengths = [
        await redis.xlen(streams.stream_key(s)) for s in range(harness.settings.stream_shards)
    ]
    return sum(lengths)


async def test_keyed_files_all_or_good_rows_only_and_reuploads_create_nothing(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool
) -> None:
    keyed = roster[:3]
    unit = unit_of(keyed[0])
    await move_into(pool, unit, *keyed[1:])
    csrf = await unit_console(harness, pool, unit)
    good = [keyed_row(form_for(c)) for c in keyed[:2]]
    bad = keyed_row(form_for(keyed[2], phone="12345"))
    mixed = csv_file([good[0], bad, good[1]])

    refused = await upload(harness, csrf, "lop12a.csv", mixed)
    assert (refused["state"], refused["enqueued"], refused["bad"]) == ("refused", 0, 1)
    assert 'data-line="3" data-field="phone" data-code="invalid_phone"' in refused["page"]
    assert await queued(harness) == 0 and await versions(pool) == 0

    partial = await upload(harness, csrf, "lop12a.csv", mixed, good_only=True)
    assert (partial["state"], partial["enqueued"], partial["replayed"], partial["bad"]) == (
        "done",
        2,
        0,
        1,
    )
    await drain(harness.settings, pool, harness.services.redis)
    assert await versions(pool) == 2
    keys = await pool.fetch("SELECT idempotency_key FROM registration_versions")
    assert all(r["idempotency_key"].startswith(paper_forms.KEY_PREFIX) for r in keys)

    again = await upload(harness, csrf, "lop12a.csv", csv_file(good))
    assert (again["state"], again["enqueued"], again["replayed"]) == ("done", 0, 2)
    as_xlsx = await upload(harness, csrf, "lop12a.xlsx", xlsx_file(good))
    assert (as_xlsx["state"], as_xlsx["enqueued"], as_xlsx["replayed"]) == ("done", 0, 2)
    await drain(harness.settings, pool, harness.services.redis)
    assert await versions(pool) == 2

    # One form at a time through the console: the same path, the same key for the same form.
    one = {c: v for c, v in zip(paper_forms.COLUMNS, keyed_row(form_for(keyed[2])), strict=True)}
    typed = await harness.client.post("/support/keying", data={"csrf_token": csrf, **one})
    assert typed.status_code == 200 and 'data-replayed="0"' in typed.text
    retyped = await harness.client.post("/support/keying", data={"csrf_token": csrf, **one})
    assert 'data-replayed="1"' in retyped.text
    wrong = await harness.client.post(
        "/support/keying", data={"csrf_token": csrf, **one, "electives": "LI"}
    )
    assert wrong.status_code == 422 and 'data-field="electives"' in wrong.text
    await drain(harness.settings, pool, harness.services.redis)
    assert await versions(pool) == 3

    # Another unit's candidate cannot be keyed in, and a file from another unit's job is hidden.
    other = next(c for c in roster[3:] if unit_of(c) != unit)
    foreign = await upload(harness, csrf, "x.csv", csv_file([keyed_row(form_for(other))]))
    assert foreign["state"] == "refused" and 'data-code="not_in_unit"' in foreign["page"]
    actions = [r["action"] for r in await audit_rows(pool) if r["action"].startswith("keying_")]
    assert actions.count("keying_upload") == 5 and actions.count("keying_submit") == 3


async def candidate_page(client: httpx.AsyncClient, candidate: dict[str, Any], path: str) -> str:
    """Log a candidate in through the login page of `client`, then GET `path`."""
    token = hidden((await client.get("/login")).text, "csrf_token")
    await client.post(
        "/login",
        data={"csrf_token": token, "login": candidate["national_id"], "password": TEST_PASSWORD},
    )
    response = await client.get(path)
    assert response.status_code == 200, response.text
    return response.text


def other_browser(harness: Harness) -> Any:
    return other_client(harness)


async def test_keyed_files_are_bounded_in_bytes_and_rows(
    settings: Any, roster: list[dict[str, Any]], pool: asyncpg.Pool
) -> None:
    bounded = with_settings(settings, keying_max_rows=1, keying_max_bytes=4096)
    async for harness in make_harness(bounded):
        unit = unit_of(roster[0])
        await move_into(pool, unit, roster[1])
        csrf = await unit_console(harness, pool, unit)
        rows = [keyed_row(form_for(c)) for c in roster[:2]]
        too_many = await upload(harness, csrf, "two.csv", csv_file(rows))
        assert too_many["state"] == "refused" and 'data-code="unreadable_file"' in too_many["page"]
        padded = csv_file(rows) + b"," * (4096 + 70 * 1024)  # past the limit and the slack
        refused = await harness.client.post(
            "/support/keying/upload",
            data={"csrf_token": csrf},
            files={"file": ("big.csv", padded)},
        )
        assert refused.status_code == 413
        assert await versions(pool) == 0 and await queued(harness) == 0
