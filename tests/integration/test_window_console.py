"""The console's calendar page on real servers (issue 14 item 2): an operator reopens a unit from
the browser form (Vietnam time), sees it listed, closes it early; refusals show on the page with
422; every change is audited as the signed-in staff member; a post without the CSRF token is
refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from engine.settings import VIETNAM
from tests.conftest import Harness
from tests.integration.test_support_web import add_staff, console_login
from tests.integration.test_window_calendar import unit
from tests.support import hidden

pytestmark = pytest.mark.anyio


async def test_an_operator_reopens_a_unit_and_closes_it_early_from_the_console(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool
) -> None:
    client = harness.client
    await add_staff(harness, pool, "w-operator", "operator")
    assert (await console_login(client, "w-operator")).status_code == 303
    page = await client.get("/support/window")
    assert page.status_code == 200 and 'id="no-reopens"' in page.text
    csrf = hidden(page.text, "csrf_token")

    refused = await client.post(
        "/support/window/reopens",
        data={"csrf_token": csrf, "units": "01-999 nonsense", "until": "2020-01-01T10:00"},
    )
    assert refused.status_code == 422 and 'id="error-summary"' in refused.text
    assert "Không có đơn vị đăng ký" in refused.text or "Mã không hợp lệ" in refused.text
    assert 'value="01-999 nonsense"' in refused.text  # what was typed is kept

    until = (datetime.now(VIETNAM) + timedelta(hours=4)).replace(second=0, microsecond=0)
    created = await client.post(
        "/support/window/reopens",
        data={
            "csrf_token": csrf,
            "units": unit(roster[0]),
            "until": until.strftime("%Y-%m-%dT%H:%M"),  # what datetime-local sends
            "reason": "Phòng máy hỏng, CV 12",
        },
    )
    assert created.status_code == 303, created.text
    assert created.headers["location"].startswith("/support/window?done=created-")
    listed = await client.get(created.headers["location"])
    assert 'data-state="open"' in listed.text and unit(roster[0]) in listed.text
    assert until.strftime("%H:%M %d/%m/%Y") in listed.text
    reopen_id = int(created.headers["location"].rsplit("-", 1)[1])
    stored = await pool.fetchrow("SELECT until, created_by FROM window_reopens")
    assert stored["until"] == until.astimezone(UTC) and stored["created_by"] == "w-operator"

    english = await client.get("/support/window?lang=en")
    assert "Reopen registration" in english.text and "Close early" in english.text

    no_token = await client.post(
        f"/support/window/reopens/{reopen_id}/close", data={"reason": "done"}
    )
    assert no_token.status_code == 403
    closed = await client.post(
        f"/support/window/reopens/{reopen_id}/close", data={"csrf_token": csrf, "reason": "fixed"}
    )
    assert closed.status_code == 303
    after = await client.get(closed.headers["location"])
    assert 'data-state="closed"' in after.text and 'id="window-notice"' in after.text

    rows = await pool.fetch(
        "SELECT a.action, s.username, a.reason FROM audit_log a JOIN staff s USING (staff_id)"
        " WHERE a.action LIKE 'reopen_%' ORDER BY a.audit_id"
    )
    assert [(r["action"], r["username"], r["reason"]) for r in rows] == [
        ("reopen_create", "w-operator", "Phòng máy hỏng, CV 12"),
        ("reopen_close", "w-operator", "fixed"),
    ]
