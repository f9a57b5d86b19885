"""The one settings object: every `EXAMREG_*` environment variable, read once at start-up.

Owns parsing and checking configuration; nothing else in the engine reads `os.environ`. Invalid
values raise `SettingsError` with a message that names the variable, at start-up, not mid-request.
"""

from __future__ import annotations

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
    max_inflight_requests: int = 64
    max_event_loop_lag_ms: int = 250  # 0: never shed on event-loop lag
    max_body_bytes: int = 32_768
    # Login (argon2id, OWASP parameters: 19 MiB, 2 passes, 1 lane).
    argon2_memory_kib: int = 19_456
    argon2_time_cost: int = 2
    argon2_parallelism: int = 1
    login_concurrency: int = 4
    login_queue_limit: int = 64
    login_max_failures: int = 5
    login_lockout_seconds: int = 900
    session_idle_seconds: int = 1800
    session_absolute_seconds: int = 8 * 3600
    secret_key: str = ""
    # Queue and writers.
    idempotency_ttl_seconds: int = 30 * 24 * 3600
    writer_batch_size: int = 500
    writer_block_ms: int = 1000
    writer_linger_ms: int = 50
    writer_claim_idle_ms: int = 30_000
    writer_max_deliveries: int = 5
    writer_shutdown_seconds: float = 10.0
    redis_check_durability: bool = True
    db_pool_size: int = 10
    io_timeout_seconds: float = 5.0
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Opt-in anonymised arrival log for load-test replay: time, method, route template, status.
    arrival_log: Path | None = None

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
_POSITIVE = {
    "stream_shards",
    "max_backlog_per_shard",
    "retry_after_seconds",
    "max_inflight_requests",
    "max_body_bytes",
    "login_concurrency",
    "writer_batch_size",
    "writer_max_deliveries",
    "db_pool_size",
    "argon2_time_cost",
    "argon2_parallelism",
}


def load(env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Build the settings from `env` (default: the process environment) and explicit overrides.

    Raises:
        SettingsError: a variable is malformed or out of range.
    """
    env = os.environ if env is None else env
    values: dict[str, object] = {}
    for f in fields(Settings):
        if f.name == "window":
            continue
        raw = env.get(f"EXAMREG_{f.name.upper()}")
        kind = _SCALARS.get(str(f.type))
        if raw is not None and raw != "" and kind is not None:
            values[f.name] = _coerce(f"EXAMREG_{f.name.upper()}", raw, kind)
        elif raw and f.name == "log_level":
            if raw not in ("debug", "info", "warning", "error"):
                raise SettingsError(f"EXAMREG_LOG_LEVEL={raw!r}: use debug, info, warning or error")
            values[f.name] = raw
    values["window"] = _window(env)
    values.update(overrides)
    settings = Settings(**values)  # type: ignore[arg-type]
    for name in _POSITIVE:
        if getattr(settings, name) < 1:
            raise SettingsError(f"EXAMREG_{name.upper()} must be at least 1")
    if not _ROLE_NAME.fullmatch(settings.database_role):
        raise SettingsError(
            f"EXAMREG_DATABASE_ROLE={settings.database_role!r}: use a plain role name"
            " (a-z, 0-9, _; at most 63) or none"
        )
    if not 0 < settings.redis_memory_limit_ratio <= 1:
        raise SettingsError("EXAMREG_REDIS_MEMORY_LIMIT_RATIO must be in (0, 1]")
    if not settings.secret_key:
        # Sessions live in Redis, so the key only salts non-secret digests; a random one is safe.
        object.__setattr__(settings, "secret_key", secrets.token_hex(32))
    return settings
