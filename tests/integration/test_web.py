"""The candidate web pages on real PostgreSQL and Valkey, in-process: login, CSRF, the form,
overload, window states, session expiry and lockout.

Each test drives the pages the way a browser does (form posts, cookies, redirects) and checks what
the JSON API and the queue say afterwards, so the pages are proven to use the same paths.
"""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from engine.adapters import streams
from engine.domain.registration import CandidateContext, validate_registration
from engine.pages import webform
from engine.settings import Settings, Window
from tests.conftest import Harness, make_harness
from tests.support import HIDDEN_INPUT, TEST_PASSWORD, drain, form_for, hidden

pytestmark = pytest.mark.anyio

NEW_PASSWORD = "Moi-mat-khau-2026"


def form_values(candidate: dict[str, Any], **changes: Any) -> dict[str, list[str]]:
    """The inputs a browser posts for a valid form of this candidate (optionally changed)."""
    return webform.from_form(form_for(candidate, **changes))


async def page_login(
    client: httpx.AsyncClient, candidate: dict[str, Any], password: str = TEST_PASSWORD
) -> httpx.Response:
    token = hidden((await client.get("/login")).text, "csrf_token")
    return await client.post(
        "/login",
        data={"csrf_token": token, "login": candidate["national_id"], "password": password},
    )


async def logged_in(harness: Harness, pool: asyncpg.Pool, candidate: dict[str, Any]) -> str:
    """Log in through the page past the first-login change; return the session's CSRF token."""
    harness.client.cookies.clear()
    await pool.execute(
        "UPDATE candidates SET must_change_password = false WHERE candidate_id = $1",
        candidate["candidate_id"],
    )
    response = await page_login(harness.client, candidate)
    assert response.status_code == 303 and response.headers["location"] == "/status"
    return hidden((await harness.client.get("/registration")).text, "csrf_token")


async def queued_entries(client: Any) -> int:
    return sum([await client.xlen(streams.stream_key(s)) for s in range(8)])


def set_cookie(response: httpx.Response, name: str) -> str:
    cookies = [c for c in response.headers.get_list("set-cookie") if c.startswith(name + "=")]
    assert cookies, f"no {name} cookie set"
    return cookies[0]


async def harness_with(settings: Settings, **changes: Any) -> AsyncIterator[Harness]:
    async for harness in make_harness(replace(settings, **changes)):
        yield harness


# -- login, password, cookies, CSRF -------------------------------------------------------------


async def test_first_login_sets_a_hardened_cookie_and_forces_the_password_change(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool
) -> None:
    await pool.execute(  # still on the school-issued password
        "UPDATE candidates SET must_change_password = true WHERE candidate_id = $1",
        roster[0]["candidate_id"],
    )
    client = harness.client
    page = await client.get("/login")
    csp = page.headers["content-security-policy"]
    assert "form-action 'self'" in csp and "frame-ancestors 'none'" in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert "HttpOnly" in set_cookie(page, "examreg_login_csrf")

    response = await page_login(client, roster[0])
    assert response.status_code == 303 and response.headers["location"] == "/password"
    cookie = set_cookie(response, "examreg_session")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    # Nothing else opens before the school-issued password is replaced.
    for path in ("/registration", "/status"):
        forced = await client.get(path)
        assert (forced.status_code, forced.headers["location"]) == (303, "/password")

    page = await client.get("/password")
    assert 'id="forced-notice"' in page.text
    csrf = hidden(page.text, "csrf_token")
    mismatch = await client.post(
        "/password",
        data={
            "csrf_token": csrf,
            "current_password": TEST_PASSWORD,
            "new_password": NEW_PASSWORD,
            "new_password_confirm": NEW_PASSWORD + "x",
        },
    )
    assert mismatch.status_code == 422 and 'id="f-new_password_confirm-error"' in mismatch.text
    weak = await client.post(
        "/password",
        data={
            "csrf_token": csrf,
            "current_password": TEST_PASSWORD,
            "new_password": "short",
            "new_password_confirm": "short",
        },
    )
    assert weak.status_code == 422 and "ít nhất 8 ký tự" in weak.text
    changed = await client.post(
        "/password",
        data={
            "csrf_token": csrf,
            "current_password": TEST_PASSWORD,
            "new_password": NEW_PASSWORD,
            "new_password_confirm": NEW_PASSWORD,
        },
    )
    assert changed.status_code == 303 and changed.headers["location"] == "/registration"
    assert (await client.get("/registration")).status_code == 200
    relogin = await harness.client.post(
        "/api/v1/auth/login", json={"login": roster[0]["national_id"], "password": NEW_PASSWORD}
    )
    assert relogin.status_code == 200 and relogin.json()["must_change_password"] is False


async def test_the_session_cookie_is_secure_over_https(
    harness: Harness, roster: list[dict[str, Any]]
) -> None:
    transport = harness.client._transport
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
        login_page = await client.get("/login")
        assert "Secure" in set_cookie(login_page, "examreg_login_csrf")
        response = await page_login(client, roster[0])
        assert response.status_code == 303
        assert "Secure" in set_cookie(response, "examreg_session")


async def test_a_login_post_without_the_double_submit_token_is_refused(
    harness: Harness, roster: list[dict[str, Any]]
) -> None:
    candidate = {"login": roster[1]["national_id"], "password": TEST_PASSWORD}
    no_cookie = await harness.client.post("/login", data={"csrf_token": "a" * 43, **candidate})
    assert no_cookie.status_code == 403
    await harness.client.get("/login")  # now the cookie is there, but the form lies
    forged = await harness.client.post("/login", data={"csrf_token": "b" * 43, **candidate})
    missing = await harness.client.post("/login", data=candidate)
    for response in (no_cookie, forged, missing):
        assert response.status_code == 403
        assert "examreg_session" not in response.headers.get("set-cookie", "")
        assert "Biểu mẫu đã hết hạn" in response.text


async def test_forged_form_posts_are_refused_and_change_nothing(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool, aredis: Any
) -> None:
    victim = roster[2]
    csrf = await logged_in(harness, pool, victim)
    # Another candidate's valid token is no token for this session.
    async with httpx.AsyncClient(
        transport=harness.client._transport, base_url="http://testserver"
    ) as other:
        await pool.execute("UPDATE candidates SET must_change_password = false")
        assert (await page_login(other, roster[3])).status_code == 303
        foreign = hidden((await other.get("/registration")).text, "csrf_token")
    assert foreign != csrf
    form = {**form_values(victim), "idempotency_key": ["forged-1"]}
    for token in (None, "", "x" * 43, foreign):
        data = {**form, **({"csrf_token": [token]} if token is not None else {})}
        submit = await harness.client.post("/registration", data=data)
        password = await harness.client.post(
            "/password",
            data={
                **({"csrf_token": token} if token is not None else {}),
                "current_password": TEST_PASSWORD,
                "new_password": NEW_PASSWORD,
                "new_password_confirm": NEW_PASSWORD,
            },
        )
        logout = await harness.client.post(
            "/logout", data={"csrf_token": token} if token is not None else {"next": "/"}
        )
        assert (submit.status_code, password.status_code, logout.status_code) == (403, 403, 403)
    # Nothing changed: no submission, the old password, the session alive.
    assert await queued_entries(aredis) == 0
    assert (await harness.client.get("/api/v1/me/registration")).status_code == 404
    async with httpx.AsyncClient(
        transport=harness.client._transport, base_url="http://testserver"
    ) as fresh:
        api = await fresh.post(
            "/api/v1/auth/login", json={"login": victim["national_id"], "password": TEST_PASSWORD}
        )
    assert api.status_code == 200
    assert (await harness.client.get("/status")).status_code == 200
    # The page's own token works.
    assert (await harness.client.post("/logout", data={"csrf_token": csrf})).status_code == 303


async def test_logout_revokes_the_session(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool
) -> None:
    csrf = await logged_in(harness, pool, roster[4])
    token = harness.client.cookies["examreg_session"]
    response = await harness.client.post("/logout", data={"csrf_token": csrf})
    assert response.status_code == 303 and response.headers["location"] == "/login?logged_out=1"
    assert 'examreg_session=""' in set_cookie(response, "examreg_session")
    again = await harness.client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert again.status_code == 401
    status = await harness.client.get("/status", headers={"Cookie": f"examreg_session={token}"})
    assert (status.status_code, status.headers["location"]) == (303, "/login?expired=1")


# -- the form -------------------------------------------------------------------------------------


async def test_server_errors_come_back_next_to_their_inputs_with_what_was_typed(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool, aredis: Any
) -> None:
    candidate = roster[5]
    csrf = await logged_in(harness, pool, candidate)
    data = {
        **form_values(candidate, phone="0212345678", electives=["CNCN", "CNNN"]),
        "csrf_token": [csrf],
        "idempotency_key": ["typed-key-1"],
    }
    response = await harness.client.post("/registration", data=data)
    assert response.status_code == 422
    page = response.text
    phone_error = re.search(r'id="f-phone-error">(.*?)</p>', page, re.S)
    assert phone_error and "Số điện thoại di động không hợp lệ" in phone_error.group(1)
    electives_error = re.search(r'id="f-electives-error">(.*?)</p>', page, re.S)
    assert electives_error and "Không được chọn cùng lúc" in electives_error.group(1)
    assert 'value="0212345678"' in page
    assert f'value="{html.escape(candidate["full_name"])}"' in page
    assert re.search(r'name="electives" value="CNCN" checked', page)
    assert hidden(page, "idempotency_key") == "typed-key-1"
    assert 'id="error-summary"' in page and 'href="#f-phone"' in page

    english = await harness.client.post("/registration?lang=en", data=data)
    assert "Invalid mobile number" in english.text
    assert "lang=en" in english.headers["set-cookie"]
    assert await queued_entries(aredis) == 0


async def test_the_page_submits_through_the_api_path_and_a_retry_cannot_duplicate(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool, aredis: Any
) -> None:
    candidate = roster[6]
    csrf = await logged_in(harness, pool, candidate)
    form = await harness.client.get("/registration")
    key = hidden(form.text, "idempotency_key")
    assert len(key) >= 16 and key != hidden(
        (await harness.client.get("/registration")).text, "idempotency_key"
    )
    data = {**form_values(candidate), "csrf_token": [csrf], "idempotency_key": [key]}
    first = await harness.client.post("/registration", data=data)
    assert first.status_code == 303 and first.headers["location"].startswith("/receipts/")
    # A resubmission after a network error carries the same key: the same receipt, no version 2.
    again = await harness.client.post("/registration", data=data)
    assert again.headers["location"] == first.headers["location"]

    current = (await harness.client.get("/api/v1/me/registration")).json()
    context = CandidateContext(candidate["national_id"], date.today())
    expected = validate_registration(form_for(candidate), context, harness.services.catalog)
    assert (current["version"], current["form"]) == (1, expected)

    receipt_id = first.headers["location"].rsplit("/", 1)[1]
    receipt = await harness.client.get(first.headers["location"])
    assert receipt.status_code == 200 and receipt_id in receipt.text
    assert 'data-status="queued"' in receipt.text and "data-receipt-poll=" in receipt.text
    await drain(harness.settings, pool, aredis)
    receipt = await harness.client.get(first.headers["location"])
    assert 'data-status="persisted"' in receipt.text and "data-receipt-poll=" not in receipt.text

    # Edit: the form comes back prefilled with version 1; a new key makes version 2.
    edit = await harness.client.get("/registration")
    assert f'value="{candidate["phone"]}"' in edit.text
    changed = {
        **data,
        "phone": ["0987654321"],
        "idempotency_key": [hidden(edit.text, "idempotency_key")],
    }
    second = await harness.client.post("/registration", data=changed)
    assert second.status_code == 303 and second.headers["location"] != first.headers["location"]
    status = await harness.client.get("/status")
    assert re.findall(r'data-version="(\d+)"', status.text) == ["2", "1"]
    assert 'id="current-status"' in status.text and "đang lưu" in status.text
    await drain(harness.settings, pool, aredis)
    status = await harness.client.get("/status")
    assert re.findall(r'data-version="(\d+)"', status.text) == ["2", "1"]
    assert "đang lưu" not in status.text
    versions = await pool.fetchval(
        "SELECT count(*) FROM registration_versions WHERE candidate_id = $1",
        candidate["candidate_id"],
    )
    assert versions == 2


async def test_without_javascript_a_reload_lists_the_chosen_provinces_schools(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool, aredis: Any
) -> None:
    candidate = roster[16]
    csrf = await logged_in(harness, pool, candidate)
    data = {
        **form_values(candidate, phone="0912 000 111"),
        "schools.1.province_code": ["28"],
        "schools.1.school_code": [""],
        "csrf_token": [csrf],
        "idempotency_key": ["nojs-1"],
        "action": ["reload"],
    }
    page = (await harness.client.post("/registration", data=data)).text
    select = re.search(r'<select id="f-schools-1-school_code".*?</select>', page, re.S)
    assert select is not None
    codes = re.findall(r'<option value="(\d{3})"', select.group(0))
    assert codes == ["001", "002", "003", "004", "005", "006", "800", "900"]
    assert "THPT Chuyên Thanh Hóa" in select.group(0)
    assert 'value="0912 000 111"' in page and hidden(page, "idempotency_key") == "nojs-1"
    assert await queued_entries(aredis) == 0, "a reload submits nothing"


async def test_another_candidates_receipt_is_not_found(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool
) -> None:
    owner, other = roster[7], roster[8]
    put = await harness.client.put(
        "/api/v1/me/registration",
        json=form_for(owner),
        headers={**await harness.login(owner), "Idempotency-Key": "own-1"},
    )
    receipt_id = put.json()["receipt_id"]
    await logged_in(harness, pool, other)
    assert (await harness.client.get(f"/receipts/{receipt_id}")).status_code == 404
    assert (await harness.client.get("/receipts/not-a-receipt")).status_code == 404


async def test_overload_keeps_the_typed_form_and_the_key_for_the_automatic_retry(
    settings: Settings, roster: list[dict[str, Any]], pool: asyncpg.Pool, aredis: Any
) -> None:
    candidate = roster[9]
    async for harness in harness_with(settings, max_backlog_per_shard=1, retry_after_seconds=2):
        csrf = await logged_in(harness, pool, candidate)
        put = await harness.client.put(  # fills this candidate's shard
            "/api/v1/me/registration", json=form_for(candidate), headers={"Idempotency-Key": "a"}
        )
        assert put.status_code == 202
        data = {
            **form_values(candidate, phone="0977000111"),
            "csrf_token": [csrf],
            "idempotency_key": ["retry-key-1"],
        }
        refused = await harness.client.post("/registration", data=data)
        seconds = refused.headers["retry-after"]
        assert refused.status_code == 503 and int(seconds) >= 1
        page = refused.text
        assert f'data-retry-after="{seconds}"' in page and 'id="retry-form"' in page
        carried: dict[str, list[str]] = {}
        retry_form = page[
            page.index('id="retry-form"') : page.index("</form>", page.index('id="retry-form"'))
        ]
        for name, value in HIDDEN_INPUT.findall(retry_form):
            carried.setdefault(name, []).append(html.unescape(value))
        posted = {k: v for k, v in data.items() if any(v)}
        assert {k: v for k, v in carried.items() if k in posted} == posted
        assert set(carried) == set(posted), "everything typed rides along, nothing else"

        await drain(harness.settings, pool, aredis)
        retried = await harness.client.post("/registration", data=carried)  # what app.js does
        assert retried.status_code == 303
        current = (await harness.client.get("/api/v1/me/registration")).json()
        assert (current["version"], current["form"]["phone"]) == (2, "0977000111")
        replay = await harness.client.post("/registration", data=carried)
        assert replay.headers["location"] == retried.headers["location"]


# -- window states --------------------------------------------------------------------------------


async def test_trial_window_says_the_data_will_be_discarded(
    settings: Settings, roster: list[dict[str, Any]], pool: asyncpg.Pool
) -> None:
    now = datetime.now(UTC)
    trial = Window(
        trial_opens_at=now - timedelta(hours=1), trial_closes_at=now + timedelta(hours=1)
    )
    async for harness in harness_with(settings, window=trial):
        await logged_in(harness, pool, roster[10])
        status = await harness.client.get("/status")
        assert 'data-phase="trial"' in status.text and "sẽ bị xoá" in status.text
        assert 'id="start-link"' in status.text
        form = await harness.client.get("/registration?lang=en")
        assert "will be discarded" in form.text and 'id="registration-form"' in form.text


async def test_closed_window_is_read_only(
    settings: Settings, roster: list[dict[str, Any]], pool: asyncpg.Pool, aredis: Any
) -> None:
    candidate = roster[11]
    now = datetime.now(UTC)
    closed = Window(opens_at=now - timedelta(days=10), closes_at=now - timedelta(days=1))
    async for harness in harness_with(settings, window=closed):
        csrf = await logged_in(harness, pool, candidate)
        status = await harness.client.get("/status")
        assert 'data-phase="closed"' in status.text and "không sửa được" in status.text
        assert 'href="/registration"' not in status.text
        form = await harness.client.get("/registration")
        assert form.status_code == 200
        assert (
            'id="form-closed"' in form.text
            and '<form method="post" action="/registration"' not in form.text
        )
        data = {**form_values(candidate), "csrf_token": [csrf], "idempotency_key": ["late-1"]}
        late = await harness.client.post("/registration", data=data)
        assert late.status_code == 409 and 'id="form-closed"' in late.text
        assert await queued_entries(aredis) == 0


# -- sessions and login throttling -----------------------------------------------------------------


async def test_sessions_expire_when_idle_and_after_their_absolute_lifetime(
    settings: Settings, roster: list[dict[str, Any]]
) -> None:
    async for harness in harness_with(settings, session_idle_seconds=1):
        auth = await harness.login(roster[12])
        assert (await harness.client.get("/api/v1/me", headers=auth)).status_code == 200
        await asyncio.sleep(1.3)
        assert (await harness.client.get("/api/v1/me", headers=auth)).status_code == 401
        page = await harness.client.get("/status", headers=auth)
        assert page.status_code == 303 and page.headers["location"].startswith("/login")
    async for harness in harness_with(
        settings, session_idle_seconds=60, session_absolute_seconds=1
    ):
        auth = await harness.login(roster[12])
        assert (await harness.client.get("/api/v1/me", headers=auth)).status_code == 200
        await asyncio.sleep(0.6)  # activity does not extend the absolute lifetime
        assert (await harness.client.get("/api/v1/me", headers=auth)).status_code == 200
        await asyncio.sleep(0.6)
        assert (await harness.client.get("/api/v1/me", headers=auth)).status_code == 401


async def test_login_page_locks_an_account_and_an_address_with_generic_messages(
    settings: Settings, roster: list[dict[str, Any]]
) -> None:
    async for harness in harness_with(
        settings, login_max_failures=2, login_address_max_failures=20
    ):
        client = harness.client
        target, bystander = roster[13], roster[14]
        wrong = await page_login(client, target, "Wrong-pass-1")
        unknown = await page_login(client, {"national_id": "000000000001"}, "Wrong-pass-1")
        assert wrong.status_code == unknown.status_code == 401
        message = re.compile(r'id="login-message">(.*?)</p>', re.S)
        assert message.search(wrong.text).group(1) == message.search(unknown.text).group(1)  # type: ignore[union-attr]
        assert f'value="{target["national_id"]}"' in wrong.text  # the ID stays typed
        assert "Wrong-pass-1" not in wrong.text  # the password never comes back
        await page_login(client, target, "Wrong-pass-2")
        locked = await page_login(client, target)  # even the right password now waits
        assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
        assert "quá nhiều lần" in locked.text
        assert "examreg_session" not in locked.headers.get("set-cookie", "")
        # Per address: EXAMREG_LOGIN_ADDRESS_MAX_FAILURES, whatever the accounts.
        for i in range(2, harness.settings.login_address_max_failures):
            await page_login(client, {"national_id": f"0000000000{i:02d}"}, "Wrong-pass-1")
        blocked = await page_login(client, bystander)
        assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0


# -- security headers and assets -------------------------------------------------------------------


async def test_pages_have_no_inline_script_or_style_and_the_assets_are_served(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool
) -> None:
    pages = [(await harness.client.get("/login")).text]
    csrf = await logged_in(harness, pool, roster[15])
    data = {**form_values(roster[15], phone="1"), "csrf_token": [csrf], "idempotency_key": ["k1"]}
    pages.append((await harness.client.post("/registration", data=data)).text)
    data["phone"] = [roster[15]["phone"]]
    receipt = await harness.client.post("/registration", data=data)
    missing = "/receipts/" + "0" * 20
    for path in ("/registration", "/status", "/password", receipt.headers["location"], missing):
        pages.append((await harness.client.get(path)).text)
    for page in pages:
        assert "<html" in page
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page), "inline script"
        assert not re.search(r"<style|\sstyle=|\son[a-z]+=", page), "inline style or handler"
    for name, kind in (("app.js", "javascript"), ("app.css", "text/css")):
        src = re.search(rf'"(/static/{name}\?v=\w+)"', pages[0])
        assert src, f"{name} not linked"
        asset = await harness.client.get(src.group(1))
        assert asset.status_code == 200 and kind in asset.headers["content-type"]
