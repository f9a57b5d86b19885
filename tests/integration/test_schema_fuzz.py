"""Schema fuzzing: Schemathesis against `/openapi.json` with every check, as each kind of caller.

The app runs under uvicorn on a loopback port; the Schemathesis CLI runs once authenticated as a
candidate and once as each staff role (support, school, operator, admin), with every check
(`--checks all`: no 5xx, status codes, content types, headers and bodies as documented, valid
data accepted, invalid data rejected, authentication not ignored, …). Any failure fails the test
with Schemathesis's own report. The logout operations run last, on their own: they end the
session the other operations use.

`make test` runs a few examples per operation; EXAMREG_LONG_TESTS=1 runs many more.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn

from engine.adapters.passwords import make_hasher
from engine.app import create_app
from engine.settings import Settings
from tests.support import LONG_TESTS, TEST_PASSWORD

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600 if LONG_TESTS else 300)]

MAX_EXAMPLES = 60 if LONG_TESTS else 4
STAFF_PASSWORD = "Fuzz-desk-2026"
ROLES = ("support", "school", "operator", "admin")
LOGOUT = "^/api/v1/(auth|staff)/logout$"
# A password change ends every session of the account (and changes the password the logins use):
# fuzzed last, each run with a fresh login.
PASSWORD = "^/api/v1/(auth|staff)/password$"
SESSION_ENDING = "^/api/v1/(auth|staff)/(logout|password)$"
ST = Path(sys.executable).with_name("st")


# Where a schema-valid request may still be refused with 422, and why OpenAPI cannot say more:
# each of these is checked against state or across fields, which a parameter schema cannot
# express. Everywhere else, valid data must be accepted (or be refused for the credentials).
CONFIG = """
# No undeclared parameters as "invalid data" (the long profile's stateful phase sent `&=0`):
# the API ignores query parameters it does not know, as HTTP APIs do. Undeclared body fields
# are still generated, and refused (`unknown_field`).
generation.allow-extra-parameters = false

[[operations]]
# By name: Schemathesis joins an include-path and an include-method with "or", so the method
# alone would also pick PUT /api/v1/ops/window.
include-name = "PUT /api/v1/me/registration"
# The form must carry the logged-in candidate's own national ID and existing school codes.
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "404", "409", "422", "429"]

[[operations]]
include-path = "/api/v1/me/photo"
# Bytes of the right media type need not be a picture, nor a portrait of at least 400×600:
# only decoding can tell (photo_not_an_image, photo_too_small, photo_landscape, photo_bomb).
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "413", "422", "429"]

[[operations]]
include-path = "/api/v1/support/candidates"
# At least one criterion, province and school together, names 2–80 characters once trimmed.
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "422", "429"]

[[operations]]
include-path-regex = "^/api/v1/support/candidates/[^/]+(/password-reset)?$"
# The reason counts once trimmed and must hold no control characters.
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "422", "429"]

[[operations]]
include-path-regex = "^/api/v1/(auth|staff)/password$"
# The password policy (engine.domain.passwords) refuses common passwords, passwords containing the
# login, and repeats or runs, whatever their length; and the first change ends the session.
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "422", "429"]
# Invalid bodies are refused, oversized ones before they are parsed (413 past 4 KiB).
checks.negative_data_rejection.expected-statuses = ["400", "401", "403", "413", "415", "422", "429"]

[[operations]]
include-path-regex = "^/api/v1/ops/(window|reopens)"
# Codes must exist in the reference data or the roster, instants parse and agree (opens before
# closes, a reopen ends within 31 days, a unit closes by the lock); closing twice is a 409.
checks.positive_data_acceptance.expected-statuses = [
    "2xx", "401", "403", "404", "409", "422", "429",
]

[[operations]]
include-name = "POST /api/v1/ops/reconcile"
# One reconciliation at a time (409 while another runs); the reason counts once trimmed.
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "409", "422", "429"]

[[operations]]
include-path = "/api/v1/support/audit"
# Instants are ISO 8601 (Python's reading of it), free text holds no control characters.
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "422", "429"]
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server(settings: Settings, roster: list[dict[str, Any]]) -> Iterator[str]:
    """The app under uvicorn in a thread, on a loopback port, with one staff account per role."""

    async def add_staff() -> None:
        password_hash = make_hasher(settings).hash(STAFF_PASSWORD)
        conn = await asyncpg.connect(settings.database_url)
        try:
            for role in ROLES:
                school = (
                    (roster[0]["province_code"], roster[0]["school_code"])
                    if role == "school"
                    else (None, None)
                )
                await conn.execute(
                    "INSERT INTO staff (username, password_hash, role, province_code,"
                    " school_code, must_change_password) VALUES ($1, $2, $3, $4, $5, false)",
                    f"fuzz-{role}",
                    password_hash,
                    role,
                    *school,
                )
        finally:
            await conn.close()

    asyncio.run(add_staff())
    port = _free_port()
    # Generous limits: the fuzzer's own failed logins must not lock the whole run out.
    app = create_app(replace(settings, login_max_failures=1_000_000, max_event_loop_lag_ms=0))
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    served = uvicorn.Server(config)
    thread = threading.Thread(target=served.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not served.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield base
    finally:
        served.should_exit = True
        thread.join(30)


def _token(base: str, path: str, body: dict[str, str]) -> str:
    response = httpx.post(base + path, json=body, timeout=30)
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


def _run(base: str, token: str, name: str, out: Path, *filters: str) -> dict[str, Any]:
    """One Schemathesis run; returns its size, duration and 5xx count (from the JUnit report)."""
    junit = out / f"{name}.xml"
    config = out / "schemathesis.toml"
    config.write_text(CONFIG)
    args = [
        str(ST),
        "--config-file",
        str(config),
        "run",
        f"{base}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--header",
        f"Authorization: Bearer {token}",
        "--seed",
        os.environ.get("EXAMREG_FUZZ_SEED", "20260601"),
        "--generation-database",
        "none",
        "--request-timeout",
        "30",
        "--report",
        "junit,ndjson",
        "--report-junit-path",
        str(junit),
        "--report-ndjson-path",
        str(out / f"{name}.ndjson"),
        "--no-color",
        *filters,
    ]
    started = time.monotonic()
    result = subprocess.run(args, capture_output=True, text=True, timeout=3000, cwd=out)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, f"schemathesis as {name}:\n{result.stdout}\n{result.stderr}"
    return {"name": name, "seconds": elapsed, **_sizes(out / f"{name}.ndjson")}


def _sizes(ndjson: Path) -> dict[str, int]:
    """Requests sent and 5xx answers seen, from the run's event log (one JSON event a line)."""
    requests = server_errors = 0
    for line in ndjson.read_text().splitlines():
        finished = json.loads(line).get("ScenarioFinished")
        if not finished:
            continue
        for interaction in (finished.get("recorder") or {}).get("interactions", {}).values():
            requests += 1
            status = (interaction.get("response") or {}).get("status_code") or 0
            server_errors += status >= 500
    return {"requests": requests, "server_errors": server_errors}


def _restore_candidate(settings: Settings, candidate_id: int) -> None:
    """Give the candidate TEST_PASSWORD again: the desk runs may have reset it (the fuzzer picks
    candidate IDs for the password-reset operation too)."""

    async def restore() -> None:
        conn = await asyncpg.connect(settings.database_url)
        try:
            await conn.execute(
                "UPDATE candidates SET password_hash = $2, must_change_password = false"
                " WHERE candidate_id = $1",
                candidate_id,
                make_hasher(settings).hash(TEST_PASSWORD),
            )
        finally:
            await conn.close()

    asyncio.run(restore())


def test_the_api_survives_schemathesis_as_every_caller_with_every_check(
    server: str, roster: list[dict[str, Any]], tmp_path: Path, settings: Settings
) -> None:
    candidate = _token(
        server,
        "/api/v1/auth/login",
        {"login": roster[0]["national_id"], "password": TEST_PASSWORD},
    )
    staff = {
        role: _token(
            server,
            "/api/v1/staff/login",
            {"username": f"fuzz-{role}", "password": STAFF_PASSWORD},
        )
        for role in ROLES
    }
    runs = [_run(server, candidate, "candidate", tmp_path, "--exclude-path-regex", SESSION_ENDING)]
    for role, token in staff.items():
        # The coverage phase (every boundary of every parameter) takes most of a run: in the
        # short profile it runs for the candidate and the admin, who between them reach every
        # operation; the other roles get the generated examples.
        phases = () if LONG_TESTS or role == "admin" else ("--phases", "examples,fuzzing")
        runs.append(
            _run(server, token, role, tmp_path, "--exclude-path-regex", SESSION_ENDING, *phases)
        )
    runs.append(
        _run(server, candidate, "candidate-logout", tmp_path, "--include-path-regex", LOGOUT)
    )
    runs.append(
        _run(server, staff["admin"], "staff-logout", tmp_path, "--include-path-regex", LOGOUT)
    )
    # Last: a successful change ends the session and retires the password the logins above use.
    _restore_candidate(settings, roster[0]["candidate_id"])
    fresh_candidate = _token(
        server, "/api/v1/auth/login", {"login": roster[0]["national_id"], "password": TEST_PASSWORD}
    )
    runs.append(
        _run(
            server,
            fresh_candidate,
            "candidate-password",
            tmp_path,
            "--include-path-regex",
            PASSWORD,
        )
    )
    fresh_admin = _token(
        server, "/api/v1/staff/login", {"username": "fuzz-admin", "password": STAFF_PASSWORD}
    )
    runs.append(
        _run(server, fresh_admin, "staff-password", tmp_path, "--include-path-regex", PASSWORD)
    )
    total = sum(r["requests"] for r in runs)
    print(
        f"\nschemathesis: {total} requests in {sum(r['seconds'] for r in runs):.0f} s, "
        f"{sum(r['server_errors'] for r in runs)} 5xx; "
        + ", ".join(f"{r['name']} {r['requests']} in {r['seconds']:.0f} s" for r in runs)
    )
    assert all(r["server_errors"] == 0 for r in runs)
    assert total > 100, "the fuzzer sent almost nothing: is the schema being read?"
