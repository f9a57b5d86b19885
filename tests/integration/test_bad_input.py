"""Bad input gets a 4xx with a machine code and changes nothing; overload and closed windows too."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from engine.adapters import store, streams
from engine.settings import Settings, Window
from tests.conftest import Harness, make_harness
from tests.support import drain, form_for

pytestmark = pytest.mark.anyio


async def _stream_total(aredis: Any, settings: Settings) -> int:
    return sum([await aredis.xlen(streams.stream_key(s)) for s in range(settings.stream_shards)])


BAD_BODIES: list[tuple[str, bytes, dict[str, str], int, str]] = [
    ("malformed JSON", b'{"full_name": ', {}, 400, "malformed_request"),
    ("not UTF-8", b'{"full_name": "\xff\xfe"}', {}, 400, "malformed_request"),
    ("a JSON array", b"[1, 2]", {}, 422, "invalid_registration"),
    ("a JSON string", b'"hello"', {}, 422, "invalid_registration"),
    ("empty body", b"", {}, 400, "malformed_request"),
    (
        "not JSON content type",
        b"full_name=A",
        {"Content-Type": "application/x-www-form-urlencoded"},
        415,
        "unsupported_media_type",
    ),
    ("oversize body", b'{"x": "' + b"a" * 40_000 + b'"}', {}, 413, "payload_too_large"),
    ("deeply nested", b"[" * 2000 + b"]" * 2000, {}, 400, "malformed_request"),
]


@pytest.mark.parametrize(
    ("case", "body", "headers", "status", "code"), BAD_BODIES, ids=[c[0] for c in BAD_BODIES]
)
async def test_unreadable_bodies_are_4xx_with_a_code_and_enqueue_nothing(
    harness: Harness,
    roster: list[dict[str, Any]],
    aredis: Any,
    case: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    auth = await harness.login(roster[0])
    response = await harness.client.put(
        "/api/v1/me/registration",
        content=body,
        headers={"Content-Type": "application/json", **auth, "Idempotency-Key": "bad", **headers},
    )
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert response.headers["content-type"] == "application/problem+json"
    assert "Traceback" not in response.text
    assert await _stream_total(aredis, harness.settings) == 0


async def test_oversize_body_without_content_length_is_refused_while_streaming(
    harness: Harness, roster: list[dict[str, Any]]
) -> None:
    auth = await harness.login(roster[0])

    async def chunks() -> Any:
        for _ in range(100):
            yield b" " * 1000

    response = await harness.client.put(
        "/api/v1/me/registration",
        content=chunks(),
        headers={"Content-Type": "application/json", **auth, "Idempotency-Key": "big"},
    )
    assert response.status_code == 413


async def test_wrong_types_and_unknown_fields_are_reported_per_field(
    harness: Harness, roster: list[dict[str, Any]], aredis: Any
) -> None:
    candidate = roster[1]
    form = form_for(candidate, electives="LI HOA", sex=1, nickname="x")
    form["residence"]["province_code"] = 1
    auth = {**await harness.login(candidate), "Idempotency-Key": "types"}
    response = await harness.client.put("/api/v1/me/registration", json=form, headers=auth)
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "invalid_registration"
    fields = {(e["field"], e["code"]) for e in body["errors"]}
    assert ("electives", "wrong_type") in fields
    assert ("sex", "wrong_type") in fields
    assert ("nickname", "unknown_field") in fields
    assert ("residence.province_code", "wrong_type") in fields
    assert all(e["message"] for e in body["errors"])
    assert await _stream_total(aredis, harness.settings) == 0


# What the hostile review of issue 12 saw answered 202 and then refused by PostgreSQL.
UNSTORABLE: list[tuple[str, str, str]] = [
    ("email", "a\u0000b@example.com", "invalid_characters"),  # text/jsonb refuse NUL (22P05)
    ("full_name", "ß" * 80, "too_long"),  # 160 characters once upper-cased (CHECK 2–80)
    ("full_name", "\ufb03" * 27, "too_long"),  # the ligature ﬃ becomes FFI: 81 characters
]


@pytest.mark.parametrize(("field", "value", "code"), UNSTORABLE, ids=["nul", "eszett", "ligature"])
async def test_what_postgresql_would_refuse_is_a_422_and_enqueues_nothing(
    harness: Harness, roster: list[dict[str, Any]], aredis: Any, field: str, value: str, code: str
) -> None:
    candidate = roster[5]
    auth = {**await harness.login(candidate), "Idempotency-Key": "unstorable"}
    response = await harness.client.put(
        "/api/v1/me/registration", json=form_for(candidate, **{field: value}), headers=auth
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert [(e["field"], e["code"]) for e in response.json()["errors"]] == [(field, code)]
    assert await _stream_total(aredis, harness.settings) == 0


async def test_national_id_must_be_the_logged_in_candidates(
    harness: Harness, roster: list[dict[str, Any]]
) -> None:
    me, other = roster[2], roster[3]
    form = form_for(me, national_id=other["national_id"])
    auth = {**await harness.login(me), "Idempotency-Key": "id"}
    response = await harness.client.put("/api/v1/me/registration", json=form, headers=auth)
    assert response.status_code == 422
    assert ("national_id", "mismatch_roster") in {
        (e["field"], e["code"]) for e in response.json()["errors"]
    }


async def test_errors_switch_to_english(harness: Harness, roster: list[dict[str, Any]]) -> None:
    candidate = roster[4]
    auth = {**await harness.login(candidate), "Idempotency-Key": "en"}
    form = form_for(candidate, electives=["CNCN", "CNNN"])
    vi = await harness.client.put("/api/v1/me/registration", json=form, headers=auth)
    en = await harness.client.put("/api/v1/me/registration?lang=en", json=form, headers=auth)
    assert vi.json()["errors"][0]["code"] == en.json()["errors"][0]["code"] == "exclusive_subjects"
    assert vi.json()["errors"][0]["message"] != en.json()["errors"][0]["message"]
    assert "Công nghệ" in vi.json()["errors"][0]["message"]


async def test_unknown_route_and_wrong_method_are_problem_json(harness: Harness) -> None:
    missing = await harness.client.get("/api/v1/nope")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    wrong = await harness.client.delete("/api/v1/window")
    assert wrong.status_code == 405 and wrong.json()["code"] == "method_not_allowed"


async def test_a_wrong_method_names_the_allowed_ones(harness: Harness) -> None:
    """RFC 9110 §15.5.6: a 405 carries `Allow` (Schemathesis' unsupported-method check)."""
    for method in ("DELETE", "TRACE"):
        wrong = await harness.client.request(method, "/api/v1/window")
        assert wrong.status_code == 405 and wrong.json()["code"] == "method_not_allowed"
        assert "GET" in wrong.headers["Allow"], wrong.headers
    # A path served by two routes (one per method) names both.
    wrong = await harness.client.request("DELETE", "/api/v1/me/registration")
    assert wrong.status_code == 405
    assert set(wrong.headers["Allow"].split(", ")) == {"GET", "HEAD", "PUT"}


async def test_login_with_malformed_bodies_is_4xx(harness: Harness) -> None:
    for body in (b"{", b"[]", b'{"login": 1, "password": 2}', b'{"login": "x"}'):
        response = await harness.client.post(
            "/api/v1/auth/login", content=body, headers={"Content-Type": "application/json"}
        )
        assert 400 <= response.status_code < 500, (body, response.text)
        assert response.json()["code"] in ("malformed_request", "invalid_request")


async def _harness_with(settings: Settings, **changes: Any) -> Any:
    return make_harness(replace(settings, **changes))


async def test_closed_window_refuses_with_409(
    settings: Settings, roster: list[dict[str, Any]], aredis: Any
) -> None:
    past = datetime.now(UTC) - timedelta(days=1)
    closed = Window(opens_at=past - timedelta(days=7), closes_at=past)
    async for harness in make_harness(replace(settings, window=closed)):
        candidate = roster[5]
        auth = {**await harness.login(candidate), "Idempotency-Key": "late"}
        response = await harness.client.put(
            "/api/v1/me/registration", json=form_for(candidate), headers=auth
        )
        assert response.status_code == 409
        assert response.json()["code"] == "window_closed"
        window = (await harness.client.get("/api/v1/window")).json()
        assert window["phase"] == "closed"
        assert await _stream_total(aredis, settings) == 0


async def test_trial_submissions_are_marked_trial_and_purgeable(
    settings: Settings, roster: list[dict[str, Any]], pool: Any, aredis: Any
) -> None:
    now = datetime.now(UTC)
    trial = Window(
        trial_opens_at=now - timedelta(hours=1),
        trial_closes_at=now + timedelta(hours=1),
        opens_at=now + timedelta(days=2),
        closes_at=now + timedelta(days=9),
    )
    async for harness in make_harness(replace(settings, window=trial)):
        candidate = roster[6]
        auth = {**await harness.login(candidate), "Idempotency-Key": "trial"}
        response = await harness.client.put(
            "/api/v1/me/registration", json=form_for(candidate), headers=auth
        )
        assert response.status_code == 202
        assert response.json()["phase"] == "trial"
        assert (await harness.client.get("/api/v1/window")).json()["phase"] == "trial"
        await drain(settings, pool, aredis)
        assert await pool.fetchval("SELECT phase FROM registration_versions") == "trial"
        async with pool.acquire() as conn:
            assert await store.purge_trial(conn) == (1, 1)
        gone = await harness.client.get("/api/v1/me/registration", headers=auth)
        assert gone.status_code == 404


async def test_full_shard_is_shed_with_503_and_retry_after(
    settings: Settings, roster: list[dict[str, Any]]
) -> None:
    async for harness in make_harness(replace(settings, max_backlog_per_shard=1)):
        candidate = roster[7]
        auth = await harness.login(candidate)
        first = await harness.client.put(
            "/api/v1/me/registration",
            json=form_for(candidate),
            headers={**auth, "Idempotency-Key": "1"},
        )
        second = await harness.client.put(
            "/api/v1/me/registration",
            json=form_for(candidate, seed=2),
            headers={**auth, "Idempotency-Key": "2"},
        )
        assert first.status_code == 202
        assert second.status_code == 503
        assert second.json()["code"] == "overloaded"
        assert int(second.headers["Retry-After"]) >= 1
        # The refused submission left no trace: its key can be used once there is room.
        registration = (await harness.client.get("/api/v1/me/registration", headers=auth)).json()
        assert registration["version"] == 1


@contextlib.asynccontextmanager
async def _writes_paused(aredis: Any) -> AsyncIterator[Callable[[], Awaitable[None]]]:
    """Valkey holds every write (CLIENT PAUSE WRITE) until the yielded `release` is awaited:
    a submission whose session and body are complete then waits in its enqueue, in flight."""
    await aredis.execute_command("CLIENT", "PAUSE", "60000", "WRITE")

    async def release() -> None:
        await aredis.execute_command("CLIENT", "UNPAUSE")

    try:
        yield release
    finally:
        await release()


async def test_past_the_in_flight_limit_api_requests_are_shed_at_once_and_pages_are_not(
    settings: Settings, roster: list[dict[str, Any]], aredis: Any
) -> None:
    limits = replace(settings, max_inflight_requests=1, io_timeout_seconds=60)
    async for harness in make_harness(limits):
        candidate = roster[8]
        auth = await harness.login(candidate)
        gate = harness.app.state.gate
        async with _writes_paused(aredis) as release:
            held = asyncio.create_task(
                harness.client.put(
                    "/api/v1/me/registration",
                    json=form_for(candidate),
                    headers={**auth, "Idempotency-Key": "held"},
                )
            )
            # Logged in, body read, waiting for Valkey: the one request in flight.
            async with asyncio.timeout(10):
                while gate.inflight < 1:
                    await asyncio.sleep(0.01)
            await _assert_shed_while_held(harness, settings, candidate, auth)
            await release()
            assert (await held).status_code == 202
        # The shed submission left nothing behind; with the slot free the API answers again.
        assert await _stream_total(aredis, settings) == 1
        again = await harness.client.put(
            "/api/v1/me/registration",
            json=form_for(candidate, seed=2),
            headers={**auth, "Idempotency-Key": "shed"},
        )
        assert again.status_code == 202 and again.json()["version"] == 2


async def _assert_shed_while_held(
    harness: Harness, settings: Settings, candidate: dict[str, Any], auth: dict[str, str]
) -> None:
    shed = await harness.client.put(
        "/api/v1/me/registration",
        json=form_for(candidate, seed=2),
        headers={**auth, "Idempotency-Key": "shed"},
    )
    assert shed.status_code == 503, shed.text
    assert shed.json()["code"] == "overloaded"
    assert int(shed.headers["Retry-After"]) >= settings.retry_after_seconds
    assert shed.headers["X-Frame-Options"] == "DENY"
    assert (await harness.client.get("/api/v1/window")).status_code == 503
    # Exempt: health, readiness, metrics; pages are counted, never refused by the gate.
    assert (await harness.client.get("/readyz")).status_code == 200
    metrics_text = (await harness.client.get("/metrics")).text
    assert 'examreg_submissions_shed_total{reason="busy"} 1.0' in metrics_text
    assert (await harness.client.get("/login")).status_code != 503


async def test_while_the_event_loop_runs_late_api_requests_are_shed(
    settings: Settings, roster: list[dict[str, Any]]
) -> None:
    async for harness in make_harness(replace(settings, max_event_loop_lag_ms=100)):
        candidate = roster[9]
        auth = await harness.login(candidate)
        lag = harness.app.state.loop_lag
        lag.interval = 3600  # the sampler sleeps from its next wake on: the test sets the lag
        await asyncio.sleep(0.1)
        for _ in range(lag.samples - 1):
            lag.record(0.5)
        assert (await harness.client.get("/api/v1/window")).status_code == 200, "one stall is not"
        lag.record(0.5)
        shed = await harness.client.put(
            "/api/v1/me/registration",
            json=form_for(candidate),
            headers={**auth, "Idempotency-Key": "k"},
        )
        assert shed.status_code == 503 and shed.json()["code"] == "overloaded"
        assert (await harness.client.get("/healthz")).status_code == 200
        lag.record(0.001)  # the loop keeps time again
        accepted = await harness.client.put(
            "/api/v1/me/registration",
            json=form_for(candidate),
            headers={**auth, "Idempotency-Key": "k"},
        )
        assert accepted.status_code == 202 and accepted.json()["version"] == 1


async def test_reference_data_is_cacheable_with_an_etag(harness: Harness) -> None:
    response = await harness.client.get("/api/v1/reference")
    assert response.status_code == 200
    body = response.json()
    assert len(body["provinces"]) == 64
    assert len(body["ethnicities"]) == 54
    assert {lang["code"] for lang in body["languages"]} == {f"N{i}" for i in range(1, 8)}
    etag = response.headers["ETag"]
    again = await harness.client.get("/api/v1/reference", headers={"If-None-Match": etag})
    assert again.status_code == 304


async def test_ops_endpoints(harness: Harness) -> None:
    assert (await harness.client.get("/healthz")).json() == {"status": "ok"}
    ready = await harness.client.get("/readyz")
    assert (
        ready.status_code == 200
        and ready.json()["postgres"] == "ok"
        and ready.json()["redis"] == "ok"
    )
    spec = (await harness.client.get("/openapi.json")).json()
    assert spec["openapi"].startswith("3.") and "/api/v1/me/registration" in spec["paths"]
    metrics = (await harness.client.get("/metrics")).text
    assert 'examreg_queue_lag{shard="0"}' in metrics
    assert "examreg_http_requests_total" in metrics
    response = await harness.client.get("/healthz")
    assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
