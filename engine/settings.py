"""The one settings object: every `EXAMREG_*` environment variable, read once at start-up.

Owns parsing and checking configuration; nothing else in the engine reads `os.environ`. Invalid
values raise `SettingsError` with a message that names the variable, at start-up, not mid-request.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Literal

VIETNAM = timezone(timedelta(hours=7), "Asia/Ho_Chi_Minh")
DEADLINE_TIME = time(17, 0, tzinfo=VIETNAM)  # domain.md §6.1: every deadline is 17:00 local time

Phase = Literal["before", "trial", "official", "closed"]


class SettingsError(ValueError):
    """A configuration variable has a value examreg cannot use."""


@dataclass(frozen=True, slots=True)
class Window:
    """The registration calendar: an optional trial window, then the official one."""

    trial_opens_at: datetime | None = None
    trial_closes_at: datetime | None = None
    opens_at: datetime | None = None
    closes_at: datetime | None = None

    def phase(self, now: datetime) -> Phase:
        """Which phase `now` falls in; with nothing configured the official window is open."""
        if (
            self.trial_opens_at
            and self.trial_closes_at
            and self.trial_opens_at <= now < self.trial_closes_at
        ):
            return "trial"
        if self.closes_at is not None and now >= self.closes_at:
            return "closed"
        if self.opens_at is not None and now < self.opens_at:
            return "before"
        return "official"

    def bounds(self, phase: Phase) -> tuple[datetime | None, datetime | None]:
        """When the window `phase` belongs to opens and closes: the trial's for the trial, the
        official window's for every other phase (before, official, closed)."""
        if phase == "trial":
            return self.trial_opens_at, self.trial_closes_at
        return self.opens_at, self.closes_at


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything configurable, with safe defaults (see the README's configuration table)."""

    database_url: str | None = None
    # The role the API workers and writers act as once connected (migration 0005 creates it with
    # the grants they need, and audit_log append-only); "none": the URL's own user.
    database_role: str = "examreg_app"
    redis_url: str | None = None
    data_dir: Path = Path(".examreg")
    stream_shards: int = 8
    window: Window = field(default_factory=Window)
    # Admission control (architecture §3.7).
    max_backlog_per_shard: int = 200_000
    redis_memory_limit_ratio: float = 0.8
    retry_after_seconds: int = 5
    # The API's overload gate (engine/http/gate.py): shed while the event loop's queueing delay
    # has stayed above the target for an interval (CoDel); the lag and in-flight hard bounds.
    gate_target_delay_ms: int = 50
    gate_interval_ms: int = 500
    max_inflight_requests: int = 512
    max_event_loop_lag_ms: int = 250  # 0: never shed on event-loop lag
    max_body_bytes: int = 32_768
    # A unit's keyed file of paper forms (issue 13): its size and its data rows, at most.
    keying_max_bytes: int = 8 * 2**20
    keying_max_rows: int = 20_000
    # Slow clients (issue 12): a request must finish its headers, then its body, in this time.
    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 10.0
    max_header_count: int = 100
    max_header_bytes: int = 16_384
    # Host names this deployment answers to (issue 12): `name`, `*.domain` (its subdomains) or `*`.
    trusted_hosts: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")
    # Reverse proxies (IP addresses or CIDR networks) whose X-Forwarded-For / X-Forwarded-Proto
    # are believed; from anyone else those headers are ignored. Empty: no proxy is trusted.
    trusted_proxies: tuple[str, ...] = ()
    # Login (argon2id, OWASP parameters: 19 MiB, 2 passes, 1 lane).
    argon2_memory_kib: int = 19_456
    argon2_time_cost: int = 2
    argon2_parallelism: int = 1
    login_concurrency: int = 4
    login_queue_limit: int = 64
    # Login throttle: per account, `login_max_failures` free attempts, then a delay of
    # `login_delay_seconds` doubling after each failure up to `login_lockout_seconds`; per client
    # address at most `login_address_max_failures` per `login_address_window_seconds`.
    login_max_failures: int = 5
    login_delay_seconds: float = 1.0
    login_lockout_seconds: int = 900
    login_address_max_failures: int = 300
    login_address_window_seconds: int = 900
    # NIST SP 800-63B: at least 8 (its 2024 revision asks 15 where the password is the only factor).
    password_min_length: int = 8
    session_idle_seconds: int = 1800
    session_absolute_seconds: int = 8 * 3600
    secret_key: str = ""
    # Queue and writers.
    idempotency_ttl_seconds: int = 30 * 24 * 3600
    # A writer's batch grows with its shard's backlog from `writer_batch_min` to
    # `writer_batch_size` entries, and its linger from 0 to `writer_linger_ms`; a shard's short
    # reads are at least `writer_pace_ms` apart (engine.domain.batching). It trims at most once
    # per `writer_trim_interval_ms`, and runs at `writer_nice` (added to its OS niceness) so
    # that the API gets the CPU first during a spike.
    writer_batch_size: int = 2000
    writer_batch_min: int = 50
    writer_block_ms: int = 1000
    writer_linger_ms: int = 50
    writer_pace_ms: int = 250
    writer_trim_interval_ms: int = 1000
    writer_nice: int = 5
    writer_claim_idle_ms: int = 30_000
    writer_max_deliveries: int = 5
    writer_shutdown_seconds: float = 10.0
    # `examreg writer` serves its process tree's metrics on this port (0: not served), for writers
    # that do not share an API's metrics directory (their own container or pod).
    writer_metrics_port: int = 0
    redis_check_durability: bool = True
    # On a cluster, how long a tick's WAITAOF 1 1 waits for a replica's fsync before the
    # submissions it covers are refused (503 `unavailable`); below the I/O timeout.
    redis_replica_timeout_ms: int = 1000
    db_pool_size: int = 10
    # asyncpg's prepared-statement cache per connection (asyncpg's default, 100). 0 behind a
    # pooler in transaction mode without prepared-statement support (PgBouncer < 1.21, or
    # max_prepared_statements = 0): a named statement would be looked for on another server
    # connection (docs/deploy.md, "PgBouncer").
    db_statement_cache_size: int = 100
    io_timeout_seconds: float = 5.0
    # How old an API process's copy of the window calendar may get (issue 14): a change in the
    # database applies everywhere within this many seconds, without a restart.
    window_cache_seconds: float = 5.0
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Opt-in anonymised arrival log for load-test replay: time, method, route template, status.
    arrival_log: Path | None = None
    # The form's rules that domain.md marks inferred [I] or that change by year (FormRules).
    form_old_curriculum: bool = True
    form_reserved_score_min: float = 5.0
    form_vocational_encouragement: bool = False
    form_unit_is_grade_12_school: bool = True
    form_certificates_valid_until: str | None = None  # ISO date: the exam-procedures day
    # The photo (domain.md §4.1 H3): required in the form, upload limits, where it is stored.
    photo_required: bool = False
    photo_max_bytes: int = 8 * 2**20
    photo_max_pixels: int = 40_000_000
    photo_workers: int = 2
    photo_reject_letterbox: bool = False  # V9's heuristic [I]: flat bands above and below
    photo_store: str = ""  # "": DATA_DIR/photos; "s3://bucket/prefix": S3-compatible storage
    photo_s3_endpoint: str | None = None  # e.g. http://127.0.0.1:8333; None: AWS's own
    photo_s3_region: str = "us-east-1"

    @property
    def certificates_valid_until(self) -> date | None:
        raw = self.form_certificates_valid_until
        return date.fromisoformat(raw) if raw else None

    @property
    def service_role(self) -> str | None:
        """The PostgreSQL role the long-running services switch to, or None (the URL's user)."""
        return None if self.database_role == "none" else self.database_role

    def shard_of(self, candidate_id: int) -> int:
        """The stream shard a candidate always maps to (architecture §4)."""
        return candidate_id % self.stream_shards


def _parse_instant(name: str, raw: str, *, deadline: bool) -> datetime:
    """ISO 8601 with an offset; a bare date means 00:00 (opening) or 17:00 (deadline) in Vietnam."""
    try:
        if len(raw) == 10:
            day = date.fromisoformat(raw)
            moment = DEADLINE_TIME if deadline else time(0, 0, tzinfo=VIETNAM)
            return datetime.combine(day, moment)
        value = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise SettingsError(f"{name}={raw!r} is not an ISO 8601 date or date-time") from exc
    if value.tzinfo is None:
        raise SettingsError(f"{name}={raw!r} needs an offset, e.g. 2026-04-28T17:00:00+07:00")
    return value


def _window(env: Mapping[str, str]) -> Window:
    def get(name: str, deadline: bool) -> datetime | None:
        raw = env.get(name, "").strip()
        return _parse_instant(name, raw, deadline=deadline) if raw else None

    window = Window(
        trial_opens_at=get("EXAMREG_TRIAL_OPENS_AT", False),
        trial_closes_at=get("EXAMREG_TRIAL_CLOSES_AT", True),
        opens_at=get("EXAMREG_OPENS_AT", False),
        closes_at=get("EXAMREG_CLOSES_AT", True),
    )
    if (window.trial_opens_at is None) != (window.trial_closes_at is None):
        raise SettingsError(
            "set both EXAMREG_TRIAL_OPENS_AT and EXAMREG_TRIAL_CLOSES_AT, or neither"
        )
    for start, end, what in (
        (window.trial_opens_at, window.trial_closes_at, "trial"),
        (window.opens_at, window.closes_at, "official"),
    ):
        if start and end and start >= end:
            raise SettingsError(f"the {what} window closes before it opens")
    return window


_LABEL = r"[a-z0-9]([a-z0-9-]*[a-z0-9])?"
# A name or IPv4 address, its `*.` wildcard, `*`, or an IPv6 address (two colons at least).
_HOST = re.compile(rf"\*|(\*\.)?{_LABEL}(\.{_LABEL})*|[0-9a-f]*:[0-9a-f]*:[0-9a-f:.]*")


def _hosts(name: str, raw: str) -> tuple[str, ...]:
    """A comma-separated list of host names (no ports), `*.domain` wildcards, or `*`."""
    hosts = tuple(h.strip().lower().strip("[]").rstrip(".") for h in raw.split(",") if h.strip())
    bad = [h for h in hosts if not _HOST.fullmatch(h)]
    if bad or not hosts:
        raise SettingsError(
            f"{name}={raw!r}: list host names without ports, separated by commas "
            "(e.g. thi.example.vn,*.thi.example.vn), or * for any host"
        )
    return hosts


def _trusted_proxies(raw: str) -> tuple[str, ...]:
    """`EXAMREG_TRUSTED_PROXIES`: comma-separated IP addresses or CIDR networks, normalised."""
    entries: list[str] = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        try:
            entries.append(
                str(ipaddress.ip_network(item, strict=False))
                if "/" in item
                else str(ipaddress.ip_address(item))
            )
        except ValueError as exc:
            raise SettingsError(
                f"EXAMREG_TRUSTED_PROXIES: {item!r} is not an IP address or a CIDR network"
            ) from exc
    return tuple(entries)


def _coerce(name: str, raw: str, kind: type) -> object:
    try:
        if kind is bool:
            lowered = raw.strip().lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off"}:
                return False
            raise ValueError(raw)
        if kind is Path:
            return Path(raw).expanduser()
        return kind(raw)
    except ValueError as exc:
        raise SettingsError(f"{name}={raw!r} is not a valid {kind.__name__}") from exc


_SCALARS = {
    "int": int,
    "float": float,
    "bool": bool,
    "str": str,
    "Path": Path,
    "str | None": str,
    "Path | None": Path,
}
_ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# The accepted range of every number (inclusive), checked at start-up: a value outside it is a
# typo or a setting that would quietly switch a protection off (a limit of 0 login failures,
# 8 KiB of argon2 memory, a negative session lifetime).
_RANGES: dict[str, tuple[float, float]] = {
    "stream_shards": (1, 1024),
    "max_backlog_per_shard": (1, 100_000_000),
    "retry_after_seconds": (1, 3600),
    "gate_target_delay_ms": (1, 10_000),
    "gate_interval_ms": (10, 60_000),
    "max_inflight_requests": (1, 100_000),
    "max_event_loop_lag_ms": (0, 60_000),
    "max_body_bytes": (1024, 16 * 2**20),
    "keying_max_bytes": (1024, 256 * 2**20),
    "keying_max_rows": (1, 1_000_000),
    "header_timeout_seconds": (0.5, 300),
    "body_timeout_seconds": (0.5, 300),
    "max_header_count": (16, 10_000),
    "max_header_bytes": (4096, 2**20),
    "argon2_memory_kib": (7168, 4 * 2**20),
    "argon2_time_cost": (1, 100),
    "argon2_parallelism": (1, 64),
    "login_concurrency": (1, 1024),
    "login_queue_limit": (1, 100_000),
    "login_max_failures": (1, 100),
    "login_delay_seconds": (0.01, 3600),
    "login_lockout_seconds": (60, 7 * 86_400),
    "login_address_max_failures": (1, 1_000_000),
    "login_address_window_seconds": (1, 86_400),
    "password_min_length": (8, 64),
    "session_idle_seconds": (60, 30 * 86_400),
    "session_absolute_seconds": (60, 30 * 86_400),
    "idempotency_ttl_seconds": (3600, 366 * 86_400),
    "writer_batch_size": (1, 100_000),
    "writer_batch_min": (1, 100_000),
    "writer_block_ms": (1, 60_000),
    "writer_linger_ms": (0, 10_000),
    "writer_pace_ms": (0, 10_000),
    "writer_trim_interval_ms": (0, 60_000),
    "writer_nice": (0, 19),
    "writer_claim_idle_ms": (100, 86_400_000),
    "writer_max_deliveries": (1, 1000),
    "writer_shutdown_seconds": (0.1, 3600),
    "writer_metrics_port": (0, 65535),
    "db_pool_size": (1, 1000),
    "db_statement_cache_size": (0, 10_000),
    "io_timeout_seconds": (0.1, 300),
    "redis_replica_timeout_ms": (1, 60_000),
    "window_cache_seconds": (0.1, 300),
    "form_reserved_score_min": (0, 10),
    "photo_max_bytes": (65_536, 64 * 2**20),
    "photo_max_pixels": (1_000_000, 200_000_000),
    "photo_workers": (1, 64),
}
_WHY: dict[str, str] = {
    "argon2_memory_kib": " (OWASP's least for argon2id is 7 MiB)",
    "login_max_failures": " (0 would lock every account out at once)",
}
# OWASP's argon2id table trades memory for passes at equal cost (19 MiB × 2, 12 MiB × 3, …,
# 7 MiB × 5); its weakest pair, 7168 KiB × 5 passes, is the floor of memory × passes.
_ARGON2_MIN_WORK = 7168 * 5


def _check_ranges(settings: Settings) -> None:
    """Raise `SettingsError` naming the first variable whose number is out of its range."""
    for name, (low, high) in _RANGES.items():
        value = getattr(settings, name)
        if not low <= value <= high:
            raise SettingsError(
                f"EXAMREG_{name.upper()}={value!r} is out of range: use {low:g} to {high:g}"
                + _WHY.get(name, "")
            )
    if settings.writer_batch_min > settings.writer_batch_size:
        raise SettingsError(
            f"EXAMREG_WRITER_BATCH_MIN={settings.writer_batch_min} is above "
            f"EXAMREG_WRITER_BATCH_SIZE={settings.writer_batch_size}: the smallest batch "
            "cannot be larger than the largest"
        )
    if settings.redis_replica_timeout_ms >= settings.io_timeout_seconds * 1000:
        raise SettingsError(
            f"EXAMREG_REDIS_REPLICA_TIMEOUT_MS={settings.redis_replica_timeout_ms} must be below"
            f" EXAMREG_IO_TIMEOUT_SECONDS={settings.io_timeout_seconds:g} (in ms): the"
            " enqueue's own timeout would end the wait first"
        )
    if not 0 < settings.redis_memory_limit_ratio <= 1:
        raise SettingsError("EXAMREG_REDIS_MEMORY_LIMIT_RATIO must be in (0, 1]")
    work = settings.argon2_memory_kib * settings.argon2_time_cost
    if work < _ARGON2_MIN_WORK:
        raise SettingsError(
            f"EXAMREG_ARGON2_MEMORY_KIB × EXAMREG_ARGON2_TIME_COST = {work} is below OWASP's "
            f"least for argon2id ({_ARGON2_MIN_WORK}: e.g. 19456 KiB × 2 or 7168 KiB × 5)"
        )


def load(env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Build the settings from `env` (default: the process environment) and explicit overrides.

    Raises:
        SettingsError: a variable is malformed or out of range.
    """
    env = os.environ if env is None else env
    values: dict[str, object] = {}
    for f in fields(Settings):
        if f.name in ("window", "trusted_proxies"):
            continue
        raw = env.get(f"EXAMREG_{f.name.upper()}")
        kind = _SCALARS.get(str(f.type))
        if raw is not None and raw != "" and kind is not None:
            values[f.name] = _coerce(f"EXAMREG_{f.name.upper()}", raw, kind)
        elif raw and f.name == "trusted_hosts":
            values[f.name] = _hosts("EXAMREG_TRUSTED_HOSTS", raw)
        elif raw and f.name == "log_level":
            if raw not in ("debug", "info", "warning", "error"):
                raise SettingsError(f"EXAMREG_LOG_LEVEL={raw!r}: use debug, info, warning or error")
            values[f.name] = raw
    values["trusted_proxies"] = _trusted_proxies(env.get("EXAMREG_TRUSTED_PROXIES", ""))
    values["window"] = _window(env)
    values.update(overrides)
    settings = Settings(**values)  # type: ignore[arg-type]
    _check_ranges(settings)
    if not _ROLE_NAME.fullmatch(settings.database_role):
        raise SettingsError(
            f"EXAMREG_DATABASE_ROLE={settings.database_role!r}: use a plain role name"
            " (a-z, 0-9, _; at most 63) or none"
        )
    if settings.form_certificates_valid_until:
        try:
            date.fromisoformat(settings.form_certificates_valid_until)
        except ValueError as exc:
            raise SettingsError(
                "EXAMREG_FORM_CERTIFICATES_VALID_UNTIL: use an ISO date such as 2026-06-10"
            ) from exc
    if settings.photo_store and not re.fullmatch(
        r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?", settings.photo_store
    ):
        raise SettingsError(
            "EXAMREG_PHOTO_STORE: leave it empty (photos under EXAMREG_DATA_DIR) or use "
            "s3://bucket[/prefix]"
        )
    if not settings.secret_key:
        # Sessions live in Redis, so the key only salts non-secret digests; a random one is safe.
        object.__setattr__(settings, "secret_key", secrets.token_hex(32))
    return settings
