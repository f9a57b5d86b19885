"""The support console's pages on real PostgreSQL and Valkey, in-process: login, CSRF, roles,
audit, masking, the pipeline state and bad input.

Each test drives the pages the way a browser does (form posts, cookies, redirects) and checks the
audit log, the session store and the JSON API afterwards, so the pages are proven to go through
the desk's one path (`engine.services.support_desk`) and its rules.
"""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import asyncpg
import httpx
import pytest

from engine.adapters import store, streams
from engine.adapters.passwords import make_hasher
from engine.adapters.support_store import fold_name
from engine.settings import Settings
from tests.conftest import Harness, make_harness
from tests.support import drain, form_for, hidden

pytestmark = pytest.mark.anyio

PASSWORD = "Desk-pass-2026"
NEW_PASSWORD = "Desk-new-pass-77"


async def add_staff(
    harness: Harness,
    pool: asyncpg.Pool,
    username: str,
    role: str,
    *,
    school: tuple[str, str] | None = None,
    must_change: bool = False,
) -> None:
    password_hash = make_hasher(harness.settings).hash(PASSWORD)
    await store.create_staff(pool, username, password_hash, role, school, must_change)


async def console_login(
    client: httpx.AsyncClient, username: str, password: str = PASSWORD
) -> httpx.Response:
    token = hidden((await client.get("/support/login")).text, "csrf_token")
    return await client.post(
        "/support/login",
        data={"csrf_token": token, "username": username, "password": password},
    )


@asynccontextmanager
async def other_client(harness: Harness) -> AsyncIterator[httpx.AsyncClient]:
    """A second browser on the same app (its own cookies)."""
    transport = harness.client._transport
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def signed_in(client: httpx.AsyncClient, username: str) -> str:
    """Log `username` in through the page; return the session's CSRF token."""
    response = await console_login(client, username)
    assert (response.status_code, response.headers["location"]) == (303, "/support")
    return hidden((await client.get("/support")).text, "csrf_token")


async def desk_agent(harness: Harness, pool: asyncpg.Pool, role: str = "support", **kw: Any) -> str:
    """A new staff member of `role`, logged in on the harness's client; their CSRF token."""
    await add_staff(harness, pool, f"p-{role}", role, **kw)
    harness.client.cookies.clear()
    return await signed_in(harness.client, f"p-{role}")


async def audit_rows(pool: asyncpg.Pool, after: int = 0) -> list[dict[str, Any]]:
    """The audit rows (past audit_id `after`), in order, without their ids and times."""
    rows = await pool.fetch(
        "SELECT st.username, a.role, a.action, a.candidate_id, a.reason,"
        " host(a.client_addr) AS client_addr, a.detail"
        " FROM audit_log a JOIN staff st USING (staff_id) WHERE a.audit_id > $1"
        " ORDER BY a.audit_id",
        after,
    )
    return [dict(r) for r in rows]


def text_of(page: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}"[^>]*>(.*?)</', page, re.S)
    assert found, f"no #{element_id} on the page"
    return html.unescape(found.group(1)).strip()


def candidate_rows(page: str) -> list[int]:
    return [int(v) for v in re.findall(r'<tr data-candidate-id="(\d+)"', page)]


async def harness_with(settings: Settings, **changes: Any) -> AsyncIterator[Harness]:
    async for harness in make_harness(replace(settings, **changes)):
        yield harness


# -- login, sessions, CSRF ------------------------------------------------------------------------


async def test_every_console_page_requires_a_desk_login(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool
) -> None:
    client = harness.client
    target = roster[0]["candidate_id"]
    pages = ["/support", f"/support/candidates/{target}", f"/support/candidates/{target}/reveal"]
    for path in [*pages, "/support/password"]:
        response = await client.get(path)
        assert (response.status_code, response.headers["location"]) == (303, "/support/login")
    for path in (*pages, f"/support/candidates/{target}/password-reset"):
        response = await client.post(path, data={"csrf_token": "x" * 43, "reason": "ticket 1"})
        assert (response.status_code, response.headers["location"]) == (303, "/support/login")
    # A candidate's session and a JSON-API candidate token are no staff session.
    auth = await harness.login(roster[0])
    assert (await client.get("/support", headers=auth)).status_code == 303
    assert "examreg_session" in client.cookies
    assert (await client.get("/support")).headers["location"] == "/support/login"
    # An operator's console is the calendar (issue 14): the desk's pages send them there, and
    # no candidate page of the desk opens for them.
    await add_staff(harness, pool, "p-operator", "operator")
    signed_in = await console_login(client, "p-operator")
    assert signed_in.status_code == 303
    for path in pages:
        sent = await client.get(path)
        assert (sent.status_code, sent.headers["location"]) == (303, "/support/window"), path
    calendar = await client.get("/support/window")
    assert calendar.status_code == 200 and 'id="reopen-form"' in calendar.text
    assert 'id="nav-search"' not in calendar.text
    client.cookies.clear()
    # A support agent has the desk and not the calendar.
    await add_staff(harness, pool, "p-agent", "support")
    await console_login(client, "p-agent")
    refused = await client.get("/support/window")
    assert refused.status_code == 403 and "không có quyền" in refused.text
    client.cookies.clear()
    assert await audit_rows(pool) == []


async def test_login_forces_the_password_change_and_logout_ends_the_session(
    harness: Harness, pool: asyncpg.Pool
) -> None:
    client = harness.client
    await add_staff(harness, pool, "p-new", "support", must_change=True)
    page = await client.get("/support/login")
    cookie = page.headers["set-cookie"]
    assert "examreg_staff_login_csrf=" in cookie and "HttpOnly" in cookie
    assert "Path=/support/login" in cookie
    wrong = await console_login(client, "p-new", "Wrong-pass-1")
    assert wrong.status_code == 401 and "Tên đăng nhập hoặc mật khẩu không đúng" in wrong.text
    assert "Wrong-pass-1" not in wrong.text

    response = await console_login(client, "P-New")  # what the agent typed, in any case
    assert (response.status_code, response.headers["location"]) == (303, "/support/password")
    session_cookie = response.headers["set-cookie"]
    assert "examreg_staff_session=" in session_cookie and "HttpOnly" in session_cookie
    assert "SameSite=lax" in session_cookie
    forced = await client.get("/support")
    assert (forced.status_code, forced.headers["location"]) == (303, "/support/password")
    form = await client.get("/support/password")
    assert 'id="forced-notice"' in form.text and 'action="/support/password"' in form.text
    csrf = hidden(form.text, "csrf_token")
    weak = await client.post(
        "/support/password",
        data={
            "csrf_token": csrf,
            "current_password": PASSWORD,
            "new_password": "short",
            "new_password_confirm": "short",
        },
    )
    assert weak.status_code == 422 and "ít nhất 8 ký tự" in weak.text
    changed = await client.post(
        "/support/password",
        data={
            "csrf_token": csrf,
            "current_password": PASSWORD,
            "new_password": NEW_PASSWORD,
            "new_password_confirm": NEW_PASSWORD,
        },
    )
    assert (changed.status_code, changed.headers["location"]) == (303, "/support")
    home = await client.get("/support")
    assert home.status_code == 200
    csrf = hidden(home.text, "csrf_token")  # the change opened a new session, with its own token

    token = client.cookies["examreg_staff_session"]
    logout = await client.post("/support/logout", data={"csrf_token": csrf})
    assert (logout.status_code, logout.headers["location"]) == (303, "/support/login?logged_out=1")
    api = await client.get(
        "/api/v1/support/candidates",
        params={"candidate_id": "1"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert api.status_code == 401
    again = await client.get("/support", headers={"Cookie": f"examreg_staff_session={token}"})
    assert again.headers["location"] == "/support/login?expired=1"
    relogin = await client.post(
        "/api/v1/staff/login", json={"username": "p-new", "password": NEW_PASSWORD}
    )
    assert relogin.json()["must_change_password"] is False


async def test_console_logins_are_throttled_like_every_login(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    async for harness in harness_with(settings, login_max_failures=2):
        await add_staff(harness, pool, "p-locked", "support")
        for _ in range(2):
            assert (await console_login(harness.client, "p-locked", "Wrong-1")).status_code == 401
        locked = await console_login(harness.client, "p-locked")  # the right password waits
        assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
        assert "quá nhiều lần" in locked.text
        api = await harness.client.post(
            "/api/v1/staff/login", json={"username": "p-locked", "password": PASSWORD}
        )
        assert api.status_code == 429, "the page and the API count the same failures"


async def test_forged_console_posts_are_refused_and_read_or_change_nothing(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool
) -> None:
    target = roster[1]
    csrf = await desk_agent(harness, pool)
    await add_staff(harness, pool, "p-other", "support")
    async with other_client(harness) as other:
        foreign = await signed_in(other, "p-other")
    assert foreign != csrf
    base = f"/support/candidates/{target['candidate_id']}"
    posts = {
        "/support": {"name": "nguyen", "reason": "ticket 1"},
        base: {"reason": "ticket 1"},
        f"{base}/reveal": {"reason": "ticket 1"},
        f"{base}/password-reset": {"reason": "ticket 1"},
        "/support/password": {
            "current_password": PASSWORD,
            "new_password": NEW_PASSWORD,
            "new_password_confirm": NEW_PASSWORD,
        },
        "/support/logout": {"next": "/"},
    }
    for token in (None, "", "x" * 43, foreign):
        for path, fields in posts.items():
            data = {**fields, **({"csrf_token": token} if token is not None else {})}
            response = await harness.client.post(path, data=data)
            assert response.status_code == 403, (path, token)
            assert "Biểu mẫu đã hết hạn" in response.text
            assert target["national_id"] not in response.text
    # Nothing was read (no audit row), nothing changed, the session is alive.
    assert await audit_rows(pool) == []
    assert (await harness.client.get("/support")).status_code == 200
    assert (await harness.login(target))["Authorization"]  # the candidate's password is unchanged
    api = await harness.client.post(
        "/api/v1/staff/login", json={"username": "p-support", "password": PASSWORD}
    )
    assert api.status_code == 200  # and the agent's
    # The login form itself needs its double-submit cookie.
    async with other_client(harness) as fresh:
        no_cookie = await fresh.post(
            "/support/login",
            data={"csrf_token": "a" * 43, "username": "p-other", "password": PASSWORD},
        )
    assert no_cookie.status_code == 403
    assert "examreg_staff_session" not in no_cookie.headers.get("set-cookie", "")


# -- roles ---------------------------------------------------------------------------------------


async def test_a_school_account_sees_only_its_own_school_on_the_pages(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool
) -> None:
    own = roster[0]
    school = (own["province_code"], own["school_code"])
    other = next(c for c in roster if (c["province_code"], c["school_code"]) != school)
    csrf = await desk_agent(harness, pool, "school", school=school)
    page = await harness.client.get("/support")
    assert text_of(page.text, "school-scope").endswith(f"{school[0]}-{school[1]}.")

    found = await harness.client.post(
        "/support",
        data={"csrf_token": csrf, "national_id": other["national_id"], "reason": "ticket 4"},
    )
    assert found.status_code == 200 and candidate_rows(found.text) == []
    by_school = await harness.client.post(
        "/support",
        data={
            "csrf_token": csrf,
            "province_code": other["province_code"],
            "school_code": other["school_code"],
            "reason": "ticket 4",
        },
    )
    assert candidate_rows(by_school.text) == []

    for suffix in ("", "/reveal", "/password-reset"):
        refused = await harness.client.post(
            f"/support/candidates/{other['candidate_id']}{suffix}",
            data={"csrf_token": csrf, "reason": "ticket 5"},
        )
        assert refused.status_code == 404
        assert "không thuộc phạm vi tài khoản" in refused.text
        assert other["full_name"] not in refused.text
    assert (await harness.login(other))["Authorization"]  # the reset did not happen
    mine = await harness.client.post(
        f"/support/candidates/{own['candidate_id']}",
        data={"csrf_token": csrf, "reason": "ticket 6"},
    )
    assert mine.status_code == 200 and text_of(mine.text, "record-name") == own["full_name"]
    outcomes = [
        (r["action"], r["candidate_id"], r["detail"].get("outcome")) for r in await audit_rows(pool)
    ]
    assert outcomes == [
        ("search", None, None),
        ("search", None, None),
        ("detail", other["candidate_id"], "outside_school"),
        ("reveal", other["candidate_id"], "outside_school"),
        ("password_reset", other["candidate_id"], "outside_school"),
        ("detail", own["candidate_id"], "ok"),
    ]


# -- audit, masking, reveal, reset -----------------------------------------------------------------


async def test_every_page_read_is_audited_exactly_like_the_api(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool
) -> None:
    target = roster[2]
    cid = target["candidate_id"]
    csrf = await desk_agent(harness, pool)
    await harness.client.post(
        "/support", data={"csrf_token": csrf, "candidate_id": str(cid), "reason": "ticket 42"}
    )
    no_reason = await harness.client.post(f"/support/candidates/{cid}", data={"csrf_token": csrf})
    assert no_reason.status_code == 422 and 'id="f-prompt-reason-error"' in no_reason.text
    assert target["full_name"] not in no_reason.text
    await harness.client.post(
        f"/support/candidates/{cid}", data={"csrf_token": csrf, "reason": "ticket 42"}
    )
    await harness.client.post(
        f"/support/candidates/{cid}/reveal", data={"csrf_token": csrf, "reason": "ticket 42 id"}
    )
    await harness.client.post(
        f"/support/candidates/{cid}/password-reset", data={"csrf_token": csrf, "reason": "forgot"}
    )
    page_rows = await audit_rows(pool)

    # The same reads through the JSON API, by the same agent, write the same rows (the log is
    # append-only: compare what comes after the page's rows).
    last = await pool.fetchval("SELECT max(audit_id) FROM audit_log")
    token = (
        await harness.client.post(
            "/api/v1/staff/login", json={"username": "p-support", "password": PASSWORD}
        )
    ).json()["token"]
    api = {"Authorization": f"Bearer {token}"}
    url = f"/api/v1/support/candidates/{cid}"
    await harness.client.get(
        "/api/v1/support/candidates",
        params={"candidate_id": cid, "reason": "ticket 42"},
        headers=api,
    )
    await harness.client.get(url, headers=api)
    await harness.client.get(url, params={"reason": "ticket 42"}, headers=api)
    await harness.client.get(url, params={"reason": "ticket 42 id", "reveal": "1"}, headers=api)
    await harness.client.post(f"{url}/password-reset", json={"reason": "forgot"}, headers=api)
    assert await audit_rows(pool, after=last) == page_rows
    assert [(r["action"], r["reason"], r["detail"].get("outcome")) for r in page_rows] == [
        ("search", "ticket 42", None),
        ("detail", None, "no_reason"),
        ("detail", "ticket 42", "ok"),
        ("reveal", "ticket 42 id", "ok"),
        ("password_reset", "forgot", "ok"),
    ]
    assert {(r["username"], r["role"], r["client_addr"]) for r in page_rows} == {
        ("p-support", "support", "203.0.113.7")
    }
    assert page_rows[0]["detail"] == {
        "criteria": {"candidate_id": cid, "page": 1},
        "results": 1,
        "shown": [cid],
    }


async def test_search_results_and_records_are_masked_until_revealed(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool, aredis: Any
) -> None:
    target = next(c for c in roster[3:] if any(ord(ch) > 127 for ch in c["full_name"]))
    cid = target["candidate_id"]
    put = await harness.client.put(
        "/api/v1/me/registration",
        json=form_for(target),
        headers={**await harness.login(target), "Idempotency-Key": "mask-1"},
    )
    assert put.status_code == 202
    await drain(harness.settings, pool, aredis)
    csrf = await desk_agent(harness, pool)
    plain = fold_name(target["full_name"])  # "nguyen thi thu ha": no accents, lower case
    assert plain.isascii()
    results = await harness.client.post(
        "/support",
        data={
            "csrf_token": csrf,
            "name": plain,
            "date_of_birth": target["date_of_birth"].isoformat(),
            "reason": "ticket 7",
        },
    )
    assert results.status_code == 200 and candidate_rows(results.text) == [cid]
    assert target["national_id"] not in results.text
    assert html.escape(target["full_name"]) in results.text
    masked_id = target["national_id"][:3] + "*" * 7 + target["national_id"][-2:]
    assert masked_id in results.text
    # The reason typed with the search opens a record in one click.
    assert hidden(results.text, "reason") == "ticket 7"

    record = await harness.client.post(
        f"/support/candidates/{cid}", data={"csrf_token": csrf, "reason": "ticket 7"}
    )
    assert record.status_code == 200
    assert target["national_id"] not in record.text and target["phone"] not in record.text
    assert text_of(record.text, "national-id") == masked_id
    assert text_of(record.text, "current-version") == "1"
    assert 'id="reveal-prompt"' in record.text and 'id="revealed-notice"' not in record.text
    revealed = await harness.client.post(
        f"/support/candidates/{cid}/reveal", data={"csrf_token": csrf, "reason": "caller verified"}
    )
    assert text_of(revealed.text, "national-id") == target["national_id"]
    assert text_of(revealed.text, "phone") == target["phone"]
    assert text_of(revealed.text, "current-phone") == target["phone"]
    assert 'id="revealed-notice"' in revealed.text and 'id="reveal-prompt"' not in revealed.text


async def test_search_pages_through_a_school(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool
) -> None:
    schools: dict[tuple[str, str], list[int]] = {}
    for c in roster:
        schools.setdefault((c["province_code"], c["school_code"]), []).append(c["candidate_id"])
    school, members = max(schools.items(), key=lambda item: len(item[1]))
    assert len(members) > 1
    csrf = await desk_agent(harness, pool)
    data = {
        "csrf_token": csrf,
        "province_code": school[0],
        "school_code": school[1],
        "reason": "ticket 8",
    }
    seen: list[int] = []
    page_no = 1
    while True:
        response = await harness.client.post(
            "/support", data={**data, "page": str(page_no), "page_size": "1"}
        )
        assert response.status_code == 200
        seen += candidate_rows(response.text)
        if 'id="next-page"' not in response.text:
            break
        # The "next page" button carries the criteria, not the personal data, to the next POST.
        assert hidden(response.text.split('id="results"')[1], "school_code") == school[1]
        page_no += 1
    assert sorted(seen) == sorted(members)


async def test_the_password_reset_page_shows_the_one_time_password_once(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool
) -> None:
    target = roster[10]
    old = await harness.login(target)
    csrf = await desk_agent(harness, pool)
    prompt = await harness.client.get(
        f"/support/candidates/{target['candidate_id']}/password-reset"
    )
    assert prompt.status_code == 200 and 'id="prompt-form"' in prompt.text
    assert target["full_name"] not in prompt.text, "the prompt reads nothing before a reason"
    reset = await harness.client.post(
        f"/support/candidates/{target['candidate_id']}/password-reset",
        data={"csrf_token": csrf, "reason": "forgot, ticket 99"},
        follow_redirects=True,
    )
    assert reset.status_code == 200 and reset.headers["cache-control"] == "no-store"
    password = text_of(reset.text, "one-time-password")
    assert len(password) >= 8 and "1" in text_of(reset.text, "sessions-revoked")
    assert (await harness.client.get("/api/v1/me", headers=old)).status_code == 401
    login = await harness.client.post(
        "/api/v1/auth/login", json={"login": target["national_id"], "password": password}
    )
    assert login.status_code == 200 and login.json()["must_change_password"] is True


async def test_reloading_the_reset_result_never_issues_a_second_password(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool
) -> None:
    target = roster[11]
    path = f"/support/candidates/{target['candidate_id']}/password-reset"
    csrf = await desk_agent(harness, pool)
    # POST, redirect, GET: a reload repeats the GET, never the POST that issues a password.
    posted = await harness.client.post(path, data={"csrf_token": csrf, "reason": "ticket 12"})
    assert posted.status_code == 303, posted.text
    assert posted.headers["location"] == f"{path}/done"
    assert "one-time-password" not in posted.text
    shown = await harness.client.get(posted.headers["location"])
    assert shown.status_code == 200 and shown.headers["cache-control"] == "no-store"
    password = text_of(shown.text, "one-time-password")
    assert "ticket 12" in shown.text
    # Shown once: a reload (or a second tab) says so, and issues nothing.
    again = await harness.client.get(posted.headers["location"])
    assert again.status_code == 410 and 'id="reset-gone"' in again.text
    assert password not in again.text and "one-time-password" not in again.text
    # Another agent never sees someone else's result.
    await add_staff(harness, pool, "p-second", "support")
    async with other_client(harness) as other:
        await signed_in(other, "p-second")
        assert (await other.get(posted.headers["location"])).status_code == 410
    resets = [r for r in await audit_rows(pool) if r["action"] == "password_reset"]
    assert len(resets) == 1
    login = await harness.client.post(
        "/api/v1/auth/login", json={"login": target["national_id"], "password": password}
    )
    assert login.status_code == 200, "the password shown is the one in force"


# -- the pipeline state ---------------------------------------------------------------------------


async def test_the_record_shows_where_the_newest_submission_is(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool, aredis: Any
) -> None:
    queued, refused = roster[11], roster[12]
    csrf = await desk_agent(harness, pool)

    async def state(candidate: dict[str, Any]) -> str:
        page = (
            await harness.client.post(
                f"/support/candidates/{candidate['candidate_id']}",
                data={"csrf_token": csrf, "reason": "did it count?"},
            )
        ).text
        return page

    page = await state(queued)
    assert 'data-state="none"' in page and 'id="current-none"' in page
    auth = await harness.login(queued)
    receipt = (
        await harness.client.put(
            "/api/v1/me/registration",
            json=form_for(queued),
            headers={**auth, "Idempotency-Key": "pipe-1"},
        )
    ).json()["receipt_id"]
    page = await state(queued)
    assert 'data-state="in_stream"' in page and 'data-delivery="waiting"' in page
    assert text_of(page, "pipeline-receipt") == receipt
    assert text_of(page, "pipeline-shard") == str(harness.settings.shard_of(queued["candidate_id"]))
    assert re.fullmatch(r"\d+:\d\d:\d\d", text_of(page, "pipeline-age"))
    await drain(harness.settings, pool, aredis)
    page = await state(queued)
    assert 'data-state="persisted"' in page and "(GMT+7)" in text_of(page, "pipeline-persisted")
    assert re.findall(r'<tr data-version="(\d+)"', page) == ["1"]
    assert "pipe-1" in page  # the request (Idempotency-Key) of each version

    auth = await harness.login(refused)
    rid = (
        await harness.client.put(
            "/api/v1/me/registration",
            json=form_for(refused),
            headers={**auth, "Idempotency-Key": "pipe-2"},
        )
    ).json()["receipt_id"]
    await pool.execute(
        f"ALTER TABLE registration_versions ADD CONSTRAINT refuse_one CHECK (receipt_id <> '{rid}')"
    )
    await drain(harness.settings, pool, aredis)
    page = await state(refused)
    assert 'data-state="dead_lettered"' in page
    assert text_of(page, "pipeline-failure").startswith("23514")
    shard = harness.settings.shard_of(refused["candidate_id"])
    [(dead_id, _)] = await aredis.xrange(streams.dead_key(shard))
    assert text_of(page, "pipeline-dead-letter") == f"{shard}:{dead_id}"  # for the operator


# -- bad input, languages, page hygiene -----------------------------------------------------------


async def test_bad_input_gets_a_clear_4xx_page_in_the_agents_language(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool
) -> None:
    csrf = await desk_agent(harness, pool)
    cid = roster[0]["candidate_id"]
    searches = [
        ({"national_id": "12345"}, "f-national_id-error", "12 chữ số"),
        ({}, "error-summary", "Nhập số định danh"),
        ({"candidate_id": "²"}, "f-candidate_id-error", "số nguyên"),
        ({"name": "nguyen", "page": "4000000000000000000"}, "error-summary", "số nguyên"),
        ({"name": "ng\x00uyen"}, "f-name-error", "không hợp lệ"),
        ({"name": "n"}, "f-name-error", "2–80"),
        ({"date_of_birth": "2008-02-30", "name": "an"}, "f-date_of_birth-error", "Ngày"),
        ({"province_code": "01"}, "f-school_code-error", "mã trường"),
        ({"name": "nguyen", "reason": "x"}, "f-search-reason-error", "3–500"),
    ]
    for fields, element, words in searches:
        response = await harness.client.post("/support", data={"csrf_token": csrf, **fields})
        assert response.status_code == 422, fields
        assert f'id="{element}"' in response.text and words in response.text, fields
    english = await harness.client.post(
        "/support?lang=en", data={"csrf_token": csrf, "national_id": "12345"}
    )
    assert english.status_code == 422 and "A national ID has 12 digits." in english.text
    assert "lang=en" in english.headers["set-cookie"]
    harness.client.cookies.delete("lang")

    for path in (
        "/support/candidates/abc",
        "/support/candidates/²",
        f"/support/candidates/{cid}/x",
    ):
        for method in ("GET", "POST"):
            response = await harness.client.request(
                method, path, data={"csrf_token": csrf, "reason": "ticket"}
            )
            assert response.status_code == 404, (method, path)
            assert response.headers["content-type"].startswith("text/html")
    missing = await harness.client.post(
        "/support/candidates/99999999", data={"csrf_token": csrf, "reason": "ticket"}
    )
    assert missing.status_code == 404 and "Không tìm thấy thí sinh" in missing.text
    nul = await harness.client.post(
        f"/support/candidates/{cid}", data={"csrf_token": csrf, "reason": "tic\x00ket"}
    )
    assert nul.status_code == 422 and "ký tự điều khiển" in nul.text
    json_body = await harness.client.post("/support", json={"csrf_token": csrf})
    assert json_body.status_code == 415 and json_body.headers["content-type"].startswith(
        "text/html"
    )
    big = await harness.client.post("/support", data={"csrf_token": csrf, "name": "a" * 10_000})
    assert big.status_code == 413
    bad_utf8 = await harness.client.post(
        "/support",
        content=b"csrf_token=" + csrf.encode() + b"&name=%ff%fe",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert bad_utf8.status_code == 400


async def test_console_pages_keep_the_strict_csp_and_are_never_cached(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool
) -> None:
    target = roster[13]
    responses = [await harness.client.get("/support/login")]
    csrf = await desk_agent(harness, pool)
    base = f"/support/candidates/{target['candidate_id']}"
    responses += [
        await harness.client.get("/support"),
        await harness.client.post(
            "/support", data={"csrf_token": csrf, "name": "nguyen", "reason": "ticket"}
        ),
        await harness.client.get(base),
        await harness.client.post(base, data={"csrf_token": csrf, "reason": "ticket"}),
        await harness.client.post(f"{base}/reveal", data={"csrf_token": csrf, "reason": "ticket"}),
        await harness.client.post(
            f"{base}/password-reset",
            data={"csrf_token": csrf, "reason": "ticket"},
            follow_redirects=True,
        ),
        await harness.client.get("/support/password"),
        await harness.client.post(f"{base}9999", data={"csrf_token": csrf, "reason": "ticket"}),
    ]
    for response in responses:
        page = response.text
        assert "<html" in page and 'class="console"' in page
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page), "inline script"
        assert not re.search(r"<style|\sstyle=|\son[a-z]+=", page), "inline style or handler"
        assert response.headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert response.headers["x-frame-options"] == "DENY"
    english = await harness.client.get("/support?lang=en")
    assert "Find a candidate" in english.text and "Candidate support desk" in english.text
