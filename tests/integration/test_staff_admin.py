"""Staff accounts administered from the command line take effect at once (issue 12, item 6).

`examreg staff create` never overwrites an account; `set-role` changes what the account's live
sessions may do on their next request; `disable` refuses its logins and ends its sessions, and
`enable` lets it back in. The commands run against the same database and Valkey as the app.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from engine.runtime.cli import main
from tests.conftest import Harness

pytestmark = pytest.mark.anyio

PASSWORD = "Desk-pass-2026"
NEW_PASSWORD = "Desk-new-pass-77"
AUDIT = "/api/v1/support/audit"
SEARCH = "/api/v1/support/candidates"


@pytest.fixture
def cli_env(harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The command line on the harness's own database and Valkey."""
    settings = harness.settings
    assert settings.database_url and settings.redis_url
    monkeypatch.setenv("EXAMREG_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("EXAMREG_REDIS_URL", settings.redis_url)
    monkeypatch.setenv("EXAMREG_DATA_DIR", str(tmp_path))


async def examreg(*argv: str) -> int:
    """`examreg ARGV` (it runs its own event loop, so in a thread)."""
    return await asyncio.to_thread(main, list(argv))


async def _login(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await client.post(
        "/api/v1/staff/login", json={"username": username, "password": password}
    )


async def _ready(client: httpx.AsyncClient, username: str) -> dict[str, str]:
    """Log in past the first-login change; the session's Authorization header."""
    token = (await _login(client, username, PASSWORD)).json()["token"]
    changed = await client.post(
        "/api/v1/staff/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert changed.status_code == 200, changed.text
    client.cookies.clear()  # the header alone says who is asking
    return {"Authorization": f"Bearer {changed.json()['token']}"}


async def test_create_refuses_to_overwrite_an_existing_account(
    harness: Harness, cli_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        await examreg("staff", "create", "desk.one", "--role", "support", "--password", PASSWORD)
        == 0
    )
    again = await examreg(
        "staff", "create", "desk.one", "--role", "admin", "--password", "Other-pass-2026"
    )
    assert again == 2
    assert "already exists" in capsys.readouterr().err
    row = await harness.services.pool.fetchrow(
        "SELECT role, password_hash FROM staff WHERE username = 'desk.one'"
    )
    assert row["role"] == "support", "the existing account's role was overwritten"
    assert (await _login(harness.client, "desk.one", PASSWORD)).status_code == 200
    assert (await _login(harness.client, "desk.one", "Other-pass-2026")).status_code == 401


async def test_bad_usernames_and_schools_are_one_line_errors(
    harness: Harness, cli_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await examreg("staff", "create", "Not Valid!", "--role", "support") == 2
    assert (
        await examreg("staff", "create", "school.y", "--role", "school", "--school", "99-999") == 2
    )
    assert (
        await examreg("staff", "create", "desk.z", "--role", "support", "--school", "01-001") == 2
    )
    assert await examreg("staff", "disable", "nobody.here") == 2
    assert await examreg("staff", "set-role", "nobody.here", "--role", "admin") == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "unknown school 99-999" in err and "no staff account" in err
    assert await harness.services.pool.fetchval("SELECT count(*) FROM staff") == 0


async def test_a_new_role_applies_to_the_sessions_already_open(
    harness: Harness, cli_env: None
) -> None:
    assert (
        await examreg("staff", "create", "desk.two", "--role", "admin", "--password", PASSWORD) == 0
    )
    auth = await _ready(harness.client, "desk.two")
    assert (await harness.client.get(AUDIT, headers=auth)).status_code == 200
    assert await examreg("staff", "set-role", "desk.two", "--role", "support") == 0
    demoted = await harness.client.get(AUDIT, headers=auth)
    assert demoted.status_code == 403 and demoted.json()["code"] == "forbidden"
    school = await harness.services.pool.fetchrow(
        "SELECT province_code, school_code FROM schools ORDER BY 1, 2 LIMIT 1"
    )
    code = f"{school['province_code']}-{school['school_code']}"
    assert await examreg("staff", "set-role", "desk.two", "--role", "school", "--school", code) == 0
    outside = await harness.services.pool.fetchval(
        "SELECT candidate_id FROM candidates WHERE (province_code, school_code) <> ($1, $2)"
        " ORDER BY candidate_id LIMIT 1",
        school["province_code"],
        school["school_code"],
    )
    other_school = await harness.client.get(
        f"{SEARCH}/{outside}", params={"reason": "ticket 3"}, headers=auth
    )
    assert other_school.status_code == 404, "the new school scope applies at once"


async def test_disable_ends_the_sessions_and_refuses_logins_until_enabled(
    harness: Harness, cli_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        await examreg("staff", "create", "desk.three", "--role", "support", "--password", PASSWORD)
        == 0
    )
    auth = await _ready(harness.client, "desk.three")
    params = {"candidate_id": "1", "reason": "ticket 4"}
    assert (await harness.client.get(SEARCH, params=params, headers=auth)).status_code == 200
    capsys.readouterr()
    assert await examreg("staff", "disable", "desk.three") == 0
    assert "1 session(s) ended" in capsys.readouterr().out
    assert (await harness.client.get(SEARCH, params=params, headers=auth)).status_code == 401
    refused = await _login(harness.client, "desk.three", NEW_PASSWORD)
    assert refused.status_code == 401 and refused.json()["code"] == "invalid_credentials"

    # A session Valkey still held (say the command could not reach it) is refused all the same.
    token, _ = await harness.services.sessions.create(
        await harness.services.pool.fetchval(
            "SELECT staff_id FROM staff WHERE username = 'desk.three'"
        ),
        "staff",
        "desk.three",
        {"must_change": False},
    )
    stale = {"Authorization": f"Bearer {token}"}
    assert (await harness.client.get(SEARCH, params=params, headers=stale)).status_code == 401
    page = await harness.client.get(
        "/support", headers={"Cookie": f"examreg_staff_session={token}"}
    )
    assert (page.status_code, page.headers["location"]) == (303, "/support/login")

    assert await examreg("staff", "enable", "desk.three") == 0
    back = await _login(harness.client, "desk.three", NEW_PASSWORD)
    assert back.status_code == 200
    again = {"Authorization": f"Bearer {back.json()['token']}"}
    assert (await harness.client.get(SEARCH, params=params, headers=again)).status_code == 200


async def test_reset_password_issues_a_new_one_to_change_and_ends_the_sessions(
    harness: Harness, cli_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """Since `create` no longer overwrites, a forgotten staff password has a command of its own."""
    assert (
        await examreg("staff", "create", "desk.four", "--role", "support", "--password", PASSWORD)
        == 0
    )
    auth = await _ready(harness.client, "desk.four")
    capsys.readouterr()
    assert (
        await examreg("staff", "reset-password", "desk.four", "--password", "Reset-pass-2026") == 0
    )
    assert "1 session(s) ended" in capsys.readouterr().out
    params = {"candidate_id": "1", "reason": "ticket 6"}
    assert (await harness.client.get(SEARCH, params=params, headers=auth)).status_code == 401
    assert (await _login(harness.client, "desk.four", NEW_PASSWORD)).status_code == 401
    fresh = await _login(harness.client, "desk.four", "Reset-pass-2026")
    assert fresh.status_code == 200 and fresh.json()["must_change_password"] is True
    forced = await harness.client.get(
        SEARCH, params=params, headers={"Authorization": f"Bearer {fresh.json()['token']}"}
    )
    assert forced.status_code == 403 and forced.json()["code"] == "password_change_required"
    assert await examreg("staff", "reset-password", "nobody.here") == 2
