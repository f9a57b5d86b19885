"""Slow and stalled clients cannot hold the API (issue 12, item 2), on the real app in-process.

The in-flight gate counts only requests that have a session and a complete body; a body that
stalls is cut off with 408 after `EXAMREG_BODY_TIMEOUT_SECONDS`; pages authenticate before they
read a form, so an anonymous upload is never read at all. The same attack over real sockets
against a real server is `tests/e2e/test_stalled_sockets.py`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import orjson
import pytest

from engine.adapters import streams
from engine.settings import Settings
from tests.conftest import make_harness
from tests.support import form_for

pytestmark = pytest.mark.anyio

FORM = "application/x-www-form-urlencoded"


async def _stalled(started: asyncio.Event, first: bytes = b"a=") -> AsyncIterator[bytes]:
    """An upload that sends its first bytes and then nothing, ever."""
    started.set()
    yield first
    await asyncio.Event().wait()


async def _slow_body(
    body: bytes, started: asyncio.Event, release: asyncio.Event
) -> AsyncIterator[bytes]:
    """A phone on a weak link, mid-upload."""
    started.set()
    yield body[:10]
    await release.wait()
    yield body[10:]


async def _stream_total(aredis: Any, settings: Settings) -> int:
    return sum([await aredis.xlen(streams.stream_key(s)) for s in range(settings.stream_shards)])


async def test_uploads_under_way_and_anonymous_ones_hold_no_in_flight_slot(
    settings: Settings, roster: list[dict[str, Any]], aredis: Any
) -> None:
    async for harness in make_harness(replace(settings, max_inflight_requests=1)):
        candidate, other = roster[14], roster[15]
        auth = await harness.login(candidate)
        harness.client.cookies.clear()
        started, release = asyncio.Event(), asyncio.Event()
        slow = asyncio.create_task(
            harness.client.put(
                "/api/v1/me/registration",
                content=_slow_body(orjson.dumps(form_for(candidate)), started, release),
                headers={**auth, "Content-Type": "application/json", "Idempotency-Key": "slow"},
            )
        )
        stalled = [
            asyncio.create_task(
                harness.client.request(
                    method,
                    path,
                    content=_stalled(asyncio.Event()),
                    headers={"Content-Type": kind, "Content-Length": "30000"},
                )
            )
            for method, path, kind in [
                ("POST", "/registration", FORM),
                ("POST", "/registration", FORM),
                ("PUT", "/api/v1/me/registration", "application/json"),
            ]
        ]
        try:
            await asyncio.wait_for(started.wait(), 10)  # a logged-in upload, mid-body
            # One slot, yet everybody else is served: none of those uploads holds it.
            assert (await harness.client.get("/api/v1/window")).status_code == 200
            assert (await harness.client.get("/api/v1/me", headers=auth)).status_code == 200
            other_auth = await harness.login(other)
            put = await harness.client.put(
                "/api/v1/me/registration",
                json=form_for(other),
                headers={**other_auth, "Idempotency-Key": "served"},
            )
            assert put.status_code == 202, put.text
            # The anonymous uploads were answered without their bodies being read.
            done = await asyncio.wait_for(asyncio.gather(*stalled), 10)
            assert [r.status_code for r in done] == [303, 303, 401]
            assert done[0].headers["location"] == "/login"
            release.set()
            assert (await asyncio.wait_for(slow, 10)).status_code == 202
            assert await _stream_total(aredis, settings) == 2
        finally:
            for task in (slow, *stalled):
                task.cancel()


async def test_a_body_that_stalls_is_cut_off_with_408_and_changes_nothing(
    settings: Settings, roster: list[dict[str, Any]], aredis: Any
) -> None:
    async for harness in make_harness(replace(settings, body_timeout_seconds=0.5)):
        candidate = roster[16]
        auth = await harness.login(candidate)  # the page below uses the session cookie
        api = harness.client.put(
            "/api/v1/me/registration",
            content=_stalled(asyncio.Event(), b'{"full_name": "'),
            headers={**auth, "Content-Type": "application/json", "Idempotency-Key": "stall"},
        )
        response = await asyncio.wait_for(api, 10)
        assert response.status_code == 408, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "request_timeout"
        page = harness.client.post(
            "/registration", content=_stalled(asyncio.Event()), headers={"Content-Type": FORM}
        )
        response = await asyncio.wait_for(page, 10)
        assert response.status_code == 408 and "<html" in response.text
        assert await _stream_total(aredis, settings) == 0


CANDIDATE_PAGES = ["/registration", "/logout", "/password"]
CONSOLE_PAGES = [
    "/support",
    "/support/logout",
    "/support/password",
    "/support/candidates/1",
    "/support/candidates/1/reveal",
    "/support/candidates/1/password-reset",
]


@pytest.mark.parametrize("path", CANDIDATE_PAGES + CONSOLE_PAGES)
async def test_pages_authenticate_before_they_read_a_form(settings: Settings, path: str) -> None:
    async for harness in make_harness(settings):
        started = asyncio.Event()
        # A declared length under every form's limit: only reading the body could stall.
        post = harness.client.post(
            path,
            content=_stalled(started),
            headers={"Content-Type": FORM, "Content-Length": "2000"},
        )
        response = await asyncio.wait_for(post, 10)
        login = "/support/login" if path.startswith("/support") else "/login"
        assert (response.status_code, response.headers["location"]) == (303, login)
        assert not started.is_set(), "the anonymous body was read"
