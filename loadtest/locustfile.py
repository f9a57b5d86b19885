"""Closed-loop Locust scenarios: candidates' journeys, a slow-network candidate, the support desk.

    python -m loadtest -f loadtest/locustfile.py --host http://127.0.0.1:8000 \\
        --credentials logins.csv --staff desk.load:PASSWORD --think-scale 0.1 \\
        --load-profile window_opening -u 200 -r 50 -t 10m \\
        --headless --csv out/run --html out/run.html --max-fail-ratio 0.01 --max-p99-ms 1000

(`python -m loadtest` is Locust with examreg's options listed in `--help`; `locust -f …` runs the
same.) `--think-scale` multiplies every think time and pause: 1 is a person's pace (a journey
takes about 90 s, so a short run makes few submissions), 0.1 compresses it tenfold.

Users (pick some by naming them after the options; default all: candidates by weight):
- `CandidateUser`: open the page → log in → profile + reference data → submit → poll the receipt
  until persisted → edit (`--edit-share`) → check the status.
- `SlowNetworkCandidate`: submits, "loses" the answer, retries with the same Idempotency-Key and
  body; the retry must return the original receipt (`Idempotent-Replayed: true`).
- `SupportDeskUser`: staff login, search by national ID, the detail with a reason, search by name.
  Exactly one (`fixed_count`, so even `-u 3` has a desk; `--config-users` sets another count) when
  `--staff` is given; none without it.

`ProfileShape` scales the user count along `--load-profile` (loadtest/profiles.py) compressed into
`--run-time`; `constant` keeps `-u` users. Open-loop arrivals, replay: loadtest/locust_openloop.py.
"""

from __future__ import annotations

import random
import sys
import uuid
from pathlib import Path
from typing import Any

import gevent
from locust import FastHttpUser, LoadTestShape, events, task
from locust.exception import StopUser

# `locust -f loadtest/locustfile.py` puts loadtest/ on sys.path, not the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadtest.locust_common import next_credential, staff_account
from loadtest.payloads import ELECTIVE_PAIRS, build_form
from loadtest.profiles import PROFILES, users_at

RECEIPT = "/api/v1/me/receipts/{receipt_id}"
_reference: dict[str, Any] = {}  # per process: served with an ETag, cached like a browser


class Candidate(FastHttpUser):
    """Shared steps of the candidate users; not run itself."""

    abstract = True

    def on_start(self) -> None:
        self.rng = random.Random()
        self.options = self.environment.parsed_options

    def wait_time(self) -> float:
        """The pause before the next visit, scaled like every think time."""
        return self.rng.uniform(1, 3) * self.options.think_scale

    def think(self, low: float, high: float) -> None:
        scale = self.options.think_scale
        if scale > 0:
            gevent.sleep(self.rng.uniform(low, high) * scale)

    def login(self) -> dict[str, str] | None:
        credential = next_credential(self.options.credentials)
        body = {"login": credential.login, "password": credential.password}
        with self.client.post("/api/v1/auth/login", json=body, catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"login: HTTP {response.status_code}")
                return None
            return {"Authorization": f"Bearer {response.json()['token']}"}

    def reference(self) -> dict[str, Any]:
        headers = {"If-None-Match": _reference["etag"]} if _reference else {}
        with self.client.get("/api/v1/reference", headers=headers, catch_response=True) as r:
            if r.status_code == 200:
                _reference.update(body=r.json(), etag=r.headers.get("etag", ""))
            elif r.status_code == 304 and _reference:
                r.success()
            else:
                r.failure(f"reference: HTTP {r.status_code}")
        return dict(_reference.get("body") or {})

    def form(self, headers: dict[str, str]) -> dict[str, Any] | None:
        with self.client.get("/api/v1/me", headers=headers, catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"profile: HTTP {response.status_code}")
                return None
            profile = response.json()
        reference = self.reference()
        return build_form(profile, reference, self.rng) if reference else None

    def submit(
        self, headers: dict[str, str], form: dict[str, Any], key: str, name: str
    ) -> tuple[int, dict[str, Any], bool]:
        """One PUT; (status, body, replayed). 202 is the only success."""
        with self.client.put(
            "/api/v1/me/registration",
            json=form,
            headers={**headers, "Idempotency-Key": key},
            name=name,
            catch_response=True,
        ) as response:
            status = response.status_code
            if status != 202:
                response.failure(f"submit: HTTP {status}")
                return status, {}, False
            replayed = response.headers.get("idempotent-replayed") == "true"
            return status, response.json(), replayed


class CandidateUser(Candidate):
    """A 12th-grader's visit, from opening the page to checking the status."""

    weight = 20

    @task
    def journey(self) -> None:
        self.client.get(self.options.page_path, name="open page")
        self.think(3, 10)
        headers = self.login()
        form = self.form(headers) if headers else None
        if headers is None or form is None:
            return
        self.think(30, 120)  # filling in the form
        status, receipt, _ = self.submit(headers, form, uuid.uuid4().hex, "submit")
        if status != 202:
            return
        version = receipt["version"]
        self.poll(headers, receipt["receipt_id"])
        if self.rng.random() < self.options.edit_share:
            self.think(10, 60)
            edited = {**form, "electives": list(self.rng.choice(ELECTIVE_PAIRS))}
            edited["foreign_language"] = "N1" if "NN" in edited["electives"] else None
            status, receipt, _ = self.submit(headers, edited, uuid.uuid4().hex, "edit")
            if status == 202:
                version = receipt["version"]
                self.poll(headers, receipt["receipt_id"])
        self.status(headers, version)

    def poll(self, headers: dict[str, str], receipt_id: str, attempts: int = 5) -> None:
        for _ in range(attempts):
            with self.client.get(
                f"/api/v1/me/receipts/{receipt_id}",
                headers=headers,
                name=RECEIPT,
                catch_response=True,
            ) as response:
                if response.status_code != 200:
                    response.failure(f"receipt: HTTP {response.status_code}")
                    return
                if response.json().get("status") == "persisted":
                    return
            gevent.sleep(0.5)

    def status(self, headers: dict[str, str], version: int) -> None:
        with self.client.get(
            "/api/v1/me/registration", headers=headers, name="status", catch_response=True
        ) as response:
            if response.status_code != 200:
                response.failure(f"status: HTTP {response.status_code}")
            elif response.json().get("version", 0) < version:
                response.failure("status shows an older version than was acknowledged")


class SlowNetworkCandidate(Candidate):
    """On a bad connection the answer to a submission is lost; the app retries with the same key."""

    weight = 2

    @task
    def submit_and_retry(self) -> None:
        headers = self.login()
        form = self.form(headers) if headers else None
        if headers is None or form is None:
            return
        key = uuid.uuid4().hex
        first_status, first, _ = self.submit(headers, form, key, "slow: first attempt")
        self.think(2, 8)  # the spinner turns; the phone gives up on the answer and retries
        for _attempt in range(3):
            status, retry, replayed = self.submit(headers, form, key, "slow: retry, same key")
            if status == 202:
                break
            gevent.sleep(1)
        else:
            return
        if first_status == 202 and not (
            replayed and retry.get("receipt_id") == first.get("receipt_id")
        ):
            # Recorded as a failure of its own so the gate sees a broken idempotency promise.
            self.environment.events.request.fire(
                request_type="CHECK",
                name="slow: retry returned the original receipt",
                response_time=0,
                response_length=0,
                exception=AssertionError("a retry with the same key was not a replay"),
                context={},
            )


class SupportDeskUser(FastHttpUser):
    """One of the 34 desks: finds a candidate by ID, opens the record, searches by name."""

    # A fixed count, not a weight: at 20:2:1 a run of a few users never drew a desk.
    fixed_count = 1

    def on_start(self) -> None:
        self.rng = random.Random()
        self.options = self.environment.parsed_options
        account = staff_account(self.options.staff)
        if account is None:
            raise StopUser()  # named on the command line without --staff: the desk stays closed
        body = {"username": account[0], "password": account[1]}
        response = self.client.post("/api/v1/staff/login", json=body)
        if response.status_code != 200:
            raise StopUser()
        self.headers = {"Authorization": f"Bearer {response.json()['token']}"}

    def wait_time(self) -> float:
        return self.rng.uniform(2, 6) * self.options.think_scale

    @task
    def look_up(self) -> None:
        reason = "load test ticket LT-0001"
        national_id = next_credential(self.options.credentials).login
        found = self.client.get(
            "/api/v1/support/candidates",
            params={"national_id": national_id, "reason": reason},
            headers=self.headers,
            name="support: search by national ID",
        )
        results = found.json().get("results", []) if found.status_code == 200 else []
        if not results:
            return
        candidate = results[0]
        self.client.get(
            f"/api/v1/support/candidates/{candidate['candidate_id']}",
            params={"reason": reason},
            headers=self.headers,
            name="support: detail",
        )
        self.client.get(
            "/api/v1/support/candidates",
            params={"name": candidate["full_name"], "reason": reason},
            headers=self.headers,
            name="support: search by name",
        )


@events.init.add_listener
def _close_the_desk_without_staff(environment: Any, **_: Any) -> None:
    """Without --staff there is no desk to run: its fixed user would only take a candidate's."""
    options = environment.parsed_options
    if options is None or staff_account(options.staff) is not None:
        return
    others = [c for c in environment.user_classes if c is not SupportDeskUser]
    if others:
        environment.user_classes[:] = others


class ProfileShape(LoadTestShape):
    """Users along `--load-profile` peaking at `-u`, its span compressed into `--run-time`."""

    use_common_options = True

    def tick(self) -> tuple[int, float] | None:
        options = self.runner.environment.parsed_options  # type: ignore[union-attr]
        run_time = options.run_time
        elapsed = self.get_run_time()
        if run_time and elapsed >= run_time:
            return None
        profile = PROFILES[options.load_profile]
        if profile.name == "constant" or not run_time:
            return options.num_users, options.spawn_rate
        return users_at(profile, elapsed, run_time, options.num_users), options.spawn_rate
