"""Open-loop Locust runs: a target arrival rate held regardless of answers, and log replay.

Locust's users are a closed loop: a slow server slows its own senders and hides its stall. Here
one `OpenLoopDriver` schedules every request at an intended time, sends it then (or as soon as
one of `--open-loop-concurrency` slots frees) and records its latency **from the intended time**,
so time spent waiting for a slot counts (coordinated-omission safe).

    # submissions at up to 200/s following the deadline rush, compressed into 10 minutes
    python -m loadtest -f loadtest/locust_openloop.py --headless -u 1 -t 10m \\
        --host http://127.0.0.1:8000 --credentials logins.csv \\
        --open-loop-rate 200 --load-profile deadline_rush \\
        --csv out/openloop --html out/openloop.html --max-fail-ratio 0.01 --max-p99-ms 500

    # replay an arrival log (EXAMREG_ARRIVAL_LOG=… on the API) 60 times faster
    python -m loadtest -f loadtest/locust_openloop.py --headless -u 1 -t 5m \\
        --host http://127.0.0.1:8000 --credentials logins.csv \\
        --replay loadtest/data/arrivals-window-opening.tsv --replay-factor 60

Replay sends each logged request with the same method and route template: candidates' routes with
sessions of `--open-loop-sessions` logged-in candidates, support routes with `--staff`; routes it
cannot rebuild (logout, password changes, web pages) are counted under "skipped".
"""

from __future__ import annotations

import glob
import logging
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import gevent
import orjson
from gevent.event import Event
from gevent.pool import Pool
from geventhttpclient import HTTPClient
from locust import User, constant, task

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadtest.locust_common import load_credentials, staff_account
from loadtest.payloads import build_form
from loadtest.profiles import (
    PROFILES,
    Arrival,
    arrival_times,
    read_arrival_logs,
    replay_schedule,
)

log = logging.getLogger("examreg.openloop")
SUBMIT = ("PUT", "/api/v1/me/registration")


class Sessions:
    """Logged-in candidates (and a staff session) that open-loop requests are sent as."""

    def __init__(self, http: HTTPClient, options: Any) -> None:
        self.http = http
        self.rng = random.Random(7)
        self.candidates: list[dict[str, Any]] = []
        self.staff: dict[str, str] | None = None
        self.last_submitter: dict[str, Any] | None = None
        self.credentials = load_credentials(options.credentials)
        reference = self._json("GET", "/api/v1/reference", None, {})
        for credential in self.credentials[: options.open_loop_sessions]:
            body = {"login": credential.login, "password": credential.password}
            login = self._json("POST", "/api/v1/auth/login", body, {})
            if not login:
                continue
            headers = {"Authorization": f"Bearer {login['token']}"}
            profile = self._json("GET", "/api/v1/me", None, headers)
            form = build_form(profile, reference, self.rng)
            session = {"headers": headers, "body": orjson.dumps(form), "profile": profile}
            self.candidates.append({**session, "receipt": None, "known": Event()})
        account = staff_account(options.staff)
        if account:
            body = {"username": account[0], "password": account[1]}
            staff = self._json("POST", "/api/v1/staff/login", body, {})
            self.staff = {"Authorization": f"Bearer {staff['token']}"} if staff else None

    def _json(self, method: str, path: str, body: Any, headers: dict[str, str]) -> Any:
        payload = orjson.dumps(body) if body is not None else None
        if payload is not None:
            headers = {**headers, "Content-Type": "application/json"}
        response = self.http.request(method, path, body=payload, headers=headers)
        data = response.read()
        return orjson.loads(data) if response.status_code == 200 else None

    def submitter(self, *, any_one: bool) -> dict[str, Any] | None:
        """A candidate whose submission has its receipt: any such one, or the latest submitter;
        waits (bounded) for the latest one's receipt when needed, None if it never comes."""
        if any_one:
            submitted = [s for s in self.candidates if s["known"].is_set()]
            if submitted:
                return self.rng.choice(submitted)
        session = self.last_submitter
        if session is None or not session["known"].wait(10):
            return None
        return session

    def pick(self) -> dict[str, Any]:
        return self.candidates[self.rng.randrange(len(self.candidates))]


Request = tuple[str, bytes | None, dict[str, str], dict[str, Any] | None]
JSON = {"Content-Type": "application/json"}


def build_request(arrival: Arrival, sessions: Sessions) -> Request | None:
    """(path, body, headers, session to note a receipt in) for a logged route, or None: skip."""
    method, route = arrival.method, arrival.route
    if not sessions.candidates:
        return None
    if (method, route) == SUBMIT:
        session = sessions.last_submitter = sessions.pick()
        headers = {**session["headers"], **JSON, "Idempotency-Key": uuid.uuid4().hex}
        return route, session["body"], headers, session
    if (method, route) == ("POST", "/api/v1/auth/login"):
        credential = sessions.rng.choice(sessions.credentials)
        body = orjson.dumps({"login": credential.login, "password": credential.password})
        return route, body, JSON, None
    if method != "GET":
        return None
    if route in ("/api/v1/window", "/api/v1/reference", "/healthz", "/readyz"):
        return route, None, {}, None
    if route == "/api/v1/me" or (route == "/api/v1/me/registration" and arrival.status >= 400):
        return route, None, sessions.pick()["headers"], None
    if route == "/api/v1/me/registration":
        # Logged as found: ask as a candidate who has submitted.
        session = sessions.submitter(any_one=True)
        return (route, None, session["headers"], None) if session else None
    if route == "/api/v1/me/receipts/{receipt_id}":
        # The poll follows the candidate's own submission.
        session = sessions.submitter(any_one=False)
        if session is None:
            return None
        return f"/api/v1/me/receipts/{session['receipt']}", None, session["headers"], None
    if route.startswith("/api/v1/support/candidates") and sessions.staff:
        national_id = sessions.pick()["profile"]["national_id"]
        path = f"/api/v1/support/candidates?national_id={national_id}&reason=replay"
        return path, None, sessions.staff, None
    return None


class OpenLoopDriver(User):
    """The one user of an open-loop run: it schedules, it does not wait for answers."""

    fixed_count = 1
    wait_time = constant(1)
    skipped = 0

    @task
    def drive(self) -> None:
        options = self.environment.parsed_options
        host = self.host or self.environment.host
        concurrency = options.open_loop_concurrency
        http = HTTPClient.from_url(
            host, concurrency=concurrency, connection_timeout=10, network_timeout=30
        )
        sessions = Sessions(http, options)
        schedule = self.schedule(options)
        log.info("open loop: %d arrivals, %d sessions", len(schedule), len(sessions.candidates))
        pool = Pool(concurrency)
        start = time.perf_counter()
        for arrival in schedule:
            delay = start + arrival.at - time.perf_counter()
            if delay > 0:
                gevent.sleep(delay)
            pool.spawn(self.send, http, sessions, arrival, start + arrival.at)
        pool.join(timeout=30)
        if self.skipped:
            log.warning("open loop: skipped %d arrivals of routes it cannot rebuild", self.skipped)
        gevent.spawn(self.environment.runner.quit)  # the schedule is done: end the run
        gevent.sleep(60)

    def schedule(self, options: Any) -> list[Arrival]:
        if options.replay:
            paths = [Path(p) for spec in options.replay.split(",") for p in glob.glob(spec)]
            return replay_schedule(read_arrival_logs(paths), options.replay_factor)
        duration = float(options.run_time or 60)
        profile = PROFILES[options.load_profile]
        times = arrival_times(profile, duration, options.open_loop_rate, seed=11)
        return [Arrival(t, *SUBMIT) for t in times]

    def send(self, http: HTTPClient, sessions: Sessions, arrival: Arrival, intended: float) -> None:
        request = build_request(arrival, sessions)
        if arrival.route == "/api/v1/me/receipts/{receipt_id}":
            intended = max(intended, time.perf_counter())  # it could not be sent before the receipt
        if request is None:
            self.skipped += 1
            return
        path, body, headers, session = request
        error: Exception | None = None
        length = 0
        try:
            response = http.request(arrival.method, path, body=body, headers=headers)
            data = response.read()
            length = len(data)
            # An answer that matches the logged one (a 404 before any submission) is no error.
            if response.status_code >= 400 and response.status_code != arrival.status:
                error = RuntimeError(f"HTTP {response.status_code} {_problem_code(data)}".rstrip())
            elif session is not None and response.status_code == 202:
                session["receipt"] = orjson.loads(data)["receipt_id"]
                session["known"].set()
        except (OSError, gevent.Timeout) as exc:
            error = exc
        latency = (time.perf_counter() - intended) * 1000  # from the intended send time
        self.fire(arrival.method, arrival.route, latency, length, error)

    def fire(self, kind: str, name: str, ms: float, length: int, error: Exception | None) -> None:
        self.environment.events.request.fire(
            request_type=kind,
            name=name,
            response_time=ms,
            response_length=length,
            exception=error,
            context={},
        )


def _problem_code(data: bytes) -> str:
    """The machine code of a problem+json answer (`overloaded`, `unavailable`, …), if any."""
    try:
        code = orjson.loads(data).get("code", "")
    except (orjson.JSONDecodeError, AttributeError):
        return ""
    return str(code)
