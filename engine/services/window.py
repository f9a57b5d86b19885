"""The season's calendar as a service: each candidate's window, its cache, and the changes to it.

Owns (issue 14 item 1) the per-process cache of the calendar (reloaded from PostgreSQL every
`EXAMREG_WINDOW_CACHE_SECONDS`: a change takes effect in every API process within that time, with
no restart, and a PostgreSQL outage keeps the last calendar instead of closing registration), the
window of a logged-in candidate (their unit from the session, else the roster), the refusal of a
closed window and the window as JSON. The changes are `engine.services.calendar_changes`'s. It
must not read a request.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from engine.adapters import backend, calendar_store
from engine.adapters.sessions import Session
from engine.domain.calendar import (
    Calendar,
    CandidateWindow,
    Unit,
)
from engine.errors import WindowClosed
from engine.settings import VIETNAM, Window

log = logging.getLogger("examreg.window")

_UNIT: Final = re.compile(r"([0-9]{2})-([0-9]{3})")


@dataclass(frozen=True, slots=True)
class Actor:
    """Who changes the calendar: a staff member (API, console) or an operator at the CLI."""

    name: str  # the staff username, or the CLI's --actor / OS user
    role: str
    staff_id: int | None = None
    address: str | None = None


# -- the cache ------------------------------------------------------------------------------------


class CalendarCache:
    """The calendar of one process, reloaded every `ttl` seconds by `run` (and at once by the
    process that made a change). Readers never wait on PostgreSQL: the submission path needs
    only Redis, and must keep it that way while PostgreSQL is down."""

    def __init__(self, pool: backend.Pool, env: Window, ttl: float) -> None:
        self._pool = pool
        self.env = env  # the environment's window: the national default
        self.ttl = ttl
        self._calendar = Calendar.build(env, (), ())
        self.loaded_at = 0.0  # monotonic; 0: never loaded

    def current(self) -> Calendar:
        return self._calendar

    async def refresh(self) -> Calendar:
        entries = await calendar_store.entries(self._pool)
        # Reopens that ended more than a day ago no longer change anyone's window.
        since = datetime.now(UTC) - timedelta(days=1)
        reopens = await calendar_store.reopens(self._pool, since=since)
        self._calendar = Calendar.build(self.env, entries, reopens)
        self.loaded_at = time.monotonic()
        return self._calendar

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.ttl)
            try:
                await self.refresh()
            except backend.POSTGRES_ERRORS as exc:
                log.warning("calendar reload failed (%s); keeping the last one", type(exc).__name__)


# -- a candidate's window --------------------------------------------------------------------------


def unit_of_scope(scope: Mapping[str, Any]) -> Unit | None:
    match = _UNIT.fullmatch(str(scope.get("unit", "")))
    return Unit(match[1], match[2]) if match else None


async def candidate_unit(pool: backend.Pool, session: Session) -> Unit | None:
    """The candidate's unit: in the session since login, else (older sessions) the roster's."""
    unit = unit_of_scope(session.scope)
    if unit is not None:
        return unit
    return await calendar_store.candidate_unit(pool, session.subject)


async def candidate_window(
    cache: CalendarCache, pool: backend.Pool, session: Session, now: datetime | None = None
) -> CandidateWindow:
    unit = await candidate_unit(pool, session)
    return cache.current().resolve(now or datetime.now(UTC), session.subject, unit)


def _local(moment: datetime) -> str:
    return moment.astimezone(VIETNAM).strftime("%H:%M %d/%m/%Y")


def refuse_unless_open(cw: CandidateWindow) -> None:
    """Raises WindowClosed (409) unless the candidate's trial or official window is open."""
    if cw.phase in ("trial", "official"):
        return
    closes = cw.window.closes_at
    extra: dict[str, Any] = {"phase": cw.phase}
    if cw.phase == "closed" and closes is not None:
        extra["closed_at"] = closes.isoformat()
        raise WindowClosed(
            f"Chức năng đăng ký dự thi đã khóa lúc {_local(closes)} (giờ Việt Nam). Phiếu đã "
            "gửi trước thời điểm này được giữ nguyên; cần điều chỉnh, vui lòng liên hệ đơn vị "
            "đăng ký dự thi.",
            f"Registration was locked at {_local(closes)} (Vietnam time). Forms accepted "
            "before then are kept; for changes, contact your registration unit.",
            extra=extra,
        )
    raise WindowClosed(extra=extra)


def window_json(cw: CandidateWindow, *, personal: bool) -> dict[str, Any]:
    """`GET /api/v1/window`: the anonymous shape, and for a candidate where their window comes
    from and the reopen that extends it."""
    w = cw.window
    opens, closes = w.bounds(cw.phase)
    body: dict[str, Any] = {
        "phase": cw.phase,
        "opens_at": iso(opens),
        "closes_at": iso(closes),
        "trial_opens_at": iso(w.trial_opens_at),
        "trial_closes_at": iso(w.trial_closes_at),
        "locks_at": iso(cw.lock_at),
    }
    if personal:
        body["scope"] = {"trial": cw.trial_scope, "official": cw.official_scope}
        body["reopened_until"] = iso(cw.reopened_until)
    return body


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
