"""What every examreg locustfile shares: command-line options, credentials and the pass/fail gate.

Imported by `loadtest/locustfile.py` (closed-loop journeys and shapes) and
`loadtest/locust_openloop.py` (open-loop arrivals and replay), and first of all by
`loadtest/__main__.py` so that `--help` lists the options. Importing it registers the options and
the verdict listener once. It never imports `engine` (Locust runs on gevent).
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from typing import Any

from locust import events

from loadtest.profiles import DEFAULT_MIN_REQUESTS, PROFILES, gate_limits, violations

log = logging.getLogger("examreg.loadtest")


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    """examreg's options. Locust prints `--help` before it imports a locustfile, so they show in
    it only when this module is imported first: `python -m loadtest` (loadtest/__main__.py)."""
    group = parser.add_argument_group("examreg", "examreg's load tests (loadtest/, README.md)")
    group.add_argument(
        "--credentials",
        metavar="FILE.csv",
        default="",
        help="candidates: CSV login,password[,candidate_id] (examreg seed --credentials-out)",
    )
    group.add_argument(
        "--staff",
        metavar="USERNAME:PASSWORD",
        default="",
        help="support-desk account (none: no desk)",
    )
    group.add_argument(
        "--load-profile",
        choices=sorted(PROFILES),
        default="constant",
        help="load shape over --run-time: users (closed loop) or arrivals (open loop) follow it "
        "(default: %(default)s)",
    )
    group.add_argument(
        "--edit-share",
        metavar="SHARE",
        type=float,
        default=0.3,
        help="share of journeys that edit after submitting (default: %(default)s)",
    )
    group.add_argument(
        "--think-scale",
        metavar="FACTOR",
        type=float,
        default=1.0,
        help="multiply every think time and pause: 1 is a person's pace (about 90 s a journey), "
        "0.1 ten times faster, 0 none (default: %(default)s)",
    )
    group.add_argument(
        "--page-path",
        metavar="PATH",
        default="/api/v1/window",
        help="what 'open the page' requests first (default: %(default)s)",
    )
    group.add_argument(
        "--open-loop-rate",
        metavar="PER_SECOND",
        type=float,
        default=0.0,
        help="open loop: peak submissions per second (default: %(default)s)",
    )
    group.add_argument(
        "--open-loop-sessions",
        metavar="N",
        type=int,
        default=20,
        help="open loop: candidates logged in (default: %(default)s)",
    )
    group.add_argument(
        "--open-loop-concurrency",
        metavar="N",
        type=int,
        default=256,
        help="open loop: requests in flight (default: %(default)s)",
    )
    group.add_argument(
        "--replay", metavar="FILES", default="", help="open loop: arrival logs, comma-separated"
    )
    group.add_argument(
        "--replay-factor",
        metavar="FACTOR",
        type=float,
        default=60.0,
        help="replay this many times faster (default: %(default)s)",
    )
    group.add_argument(
        "--max-fail-ratio",
        metavar="RATIO",
        type=float,
        default=None,
        help="gate: highest failure ratio",
    )
    group.add_argument(
        "--max-p95-ms", metavar="MS", type=float, default=None, help="gate: highest p95 in ms"
    )
    group.add_argument(
        "--max-p99-ms", metavar="MS", type=float, default=None, help="gate: highest p99 in ms"
    )
    group.add_argument(
        "--min-requests",
        metavar="N",
        type=int,
        default=None,
        help="gate: fewest requests a run needs to be judged; any gate option brings it "
        f"(default: {DEFAULT_MIN_REQUESTS}; 0: none)",
    )


@dataclass(frozen=True, slots=True)
class Credential:
    login: str
    password: str


_credentials: list[Credential] = []
_next = 0


def load_credentials(path: str) -> list[Credential]:
    """The candidates of a credentials CSV, read once per process."""
    global _credentials
    if not _credentials and path:
        with open(path, newline="", encoding="utf-8") as handle:
            _credentials = [Credential(r["login"], r["password"]) for r in csv.DictReader(handle)]
    return _credentials


def next_credential(path: str) -> Credential:
    """Candidates in turn (gevent is cooperative: no lock needed); raises if there are none."""
    global _next
    credentials = load_credentials(path)
    if not credentials:
        raise RuntimeError("no candidates: pass --credentials FILE.csv")
    credential = credentials[_next % len(credentials)]
    _next += 1
    return credential


def staff_account(spec: str) -> tuple[str, str] | None:
    username, sep, password = spec.partition(":")
    return (username, password) if sep and username and password else None


@events.quitting.add_listener
def _verdict(environment: Any, **_: Any) -> None:
    """Exit non-zero when the run broke a gate (too few requests, failure ratio, p95, p99) or
    raised in user code."""
    options = environment.parsed_options
    if options is None:
        return
    limits = gate_limits(
        options.max_fail_ratio, options.max_p95_ms, options.max_p99_ms, options.min_requests
    )
    if limits is None:
        return  # no gate asked for: Locust's own exit code (1 on any failure) stands
    total = environment.stats.total
    found = violations(
        limits,
        total.fail_ratio,
        total.get_response_time_percentile(0.95) or 0.0,
        total.get_response_time_percentile(0.99) or 0.0,
        requests=total.num_requests,
    )
    if environment.runner is not None and environment.runner.exceptions:
        found.append(f"{len(environment.runner.exceptions)} exception(s) in user code")
    for message in found:
        log.error("gate failed: %s", message)
    if not found:
        log.info(
            "gate passed: %d requests, failure ratio %.4f", total.num_requests, total.fail_ratio
        )
    environment.process_exit_code = 1 if found else 0
