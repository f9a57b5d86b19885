"""The season's calendar: trial and official windows per province and unit, reopens, the lock.

Owns, as pure code, which window a candidate is in at an instant (issue 14): the national default
(the environment's `Window`, overridden field by field by the database's national rows), a
province's or a unit's own trial and official windows (the most specific row of each kind wins),
the national close as the system-wide lock ("khóa chức năng ĐKDT", domain.md §6.1: no province or
unit window runs past it) and targeted reopens, which extend one candidate's official close past
the lock. It must not do IO: `engine.services.window` loads a `Calendar` and caches it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time
from typing import Final, Literal

from engine.settings import DEADLINE_TIME, VIETNAM, Phase, Window

Scope = Literal["national", "province", "unit"]
Kind = Literal["trial", "official"]
SCOPES: Final = ("national", "province", "unit")
KINDS: Final = ("trial", "official")


@dataclass(frozen=True, slots=True)
class Unit:
    """A registration unit: for a grade-12 candidate their school (domain.md §2, §4.6 11b)."""

    province_code: str
    school_code: str

    @property
    def key(self) -> str:
        return f"{self.province_code}-{self.school_code}"


@dataclass(frozen=True, slots=True)
class Entry:
    """One row of the calendar: a window of one kind for one scope (None: the whole nation)."""

    scope: Scope
    kind: Kind
    opens_at: datetime | None
    closes_at: datetime | None
    province_code: str | None = None
    school_code: str | None = None
    updated_at: datetime | None = None
    updated_by: str | None = None

    @property
    def key(self) -> str:
        """`""` for the nation, `PP` for a province, `PP-SSS` for a unit."""
        if self.scope == "national":
            return ""
        if self.scope == "province":
            return str(self.province_code)
        return f"{self.province_code}-{self.school_code}"


@dataclass(frozen=True, slots=True)
class Reopen:
    """Registration reopened for named provinces, units or candidates until `until`."""

    reopen_id: int
    until: datetime
    reason: str
    provinces: frozenset[str] = frozenset()
    units: frozenset[str] = frozenset()  # "PP-SSS"
    candidates: frozenset[int] = frozenset()
    created_at: datetime | None = None
    created_by: str | None = None
    closed_at: datetime | None = None
    closed_by: str | None = None
    close_reason: str | None = None

    def covers(self, candidate_id: int | None, unit: Unit | None) -> bool:
        if candidate_id is not None and candidate_id in self.candidates:
            return True
        if unit is None:
            return False
        return unit.province_code in self.provinces or unit.key in self.units

    def active(self, now: datetime) -> bool:
        """Not closed early, and its time not yet up."""
        return self.closed_at is None and now < self.until


@dataclass(frozen=True, slots=True)
class CandidateWindow:
    """What one candidate's registration window is at one instant."""

    phase: Phase
    window: Window  # effective: the official close extended by a reopen, capped by the lock
    trial_scope: Scope
    official_scope: Scope
    lock_at: datetime | None  # the national close: the system-wide lock
    reopen: Reopen | None  # the reopen that sets this candidate's close, when one does

    @property
    def deadline(self) -> datetime | None:
        """The instant submissions in this phase stop being accepted (None: no end set)."""
        if self.phase == "trial":
            return self.window.trial_closes_at
        return self.window.closes_at

    @property
    def reopened_until(self) -> datetime | None:
        return self.reopen.until if self.reopen is not None else None


@dataclass(frozen=True, slots=True)
class Calendar:
    """A snapshot of the calendar: the national default, the overrides, every reopen."""

    national: Window = field(default_factory=Window)
    entries: Mapping[tuple[str, Kind], Entry] = field(default_factory=dict)
    reopens: tuple[Reopen, ...] = ()
    # The latest reopen not closed early, per candidate, unit and province: a submission looks
    # up three keys instead of scanning every reopen (built once per reload, read per request).
    _latest: Mapping[int | str, Reopen] = field(default_factory=dict)

    @classmethod
    def build(cls, env: Window, entries: Iterable[Entry], reopens: Iterable[Reopen]) -> Calendar:
        """The environment's window as the national default, the database's rows over it."""
        by_key = {(e.key, e.kind): e for e in entries}
        national = env
        trial = by_key.get(("", "trial"))
        if trial is not None:
            national = replace(
                national, trial_opens_at=trial.opens_at, trial_closes_at=trial.closes_at
            )
        official = by_key.get(("", "official"))
        if official is not None:
            national = replace(national, opens_at=official.opens_at, closes_at=official.closes_at)
        kept = tuple(reopens)
        latest: dict[int | str, Reopen] = {}
        for reopen in kept:
            if reopen.closed_at is not None:
                continue
            # Provinces as "PP", units as "PP-SSS", candidates as ints: the keys never collide.
            targets: list[int | str] = [*reopen.provinces, *reopen.units, *reopen.candidates]
            for target in targets:
                known = latest.get(target)
                if known is None or reopen.until > known.until:
                    latest[target] = reopen
        return cls(national, by_key, kept, latest)

    def _most_specific(self, unit: Unit | None, kind: Kind) -> Entry | None:
        if unit is not None:
            for key in (unit.key, unit.province_code):
                entry = self.entries.get((key, kind))
                if entry is not None:
                    return entry
        return None

    def _reopen_for(self, candidate_id: int | None, unit: Unit | None) -> Reopen | None:
        keys: list[int | str] = [] if candidate_id is None else [candidate_id]
        if unit is not None:
            keys += [unit.key, unit.province_code]
        latest = [r for r in map(self._latest.get, keys) if r is not None]
        return max(latest, key=lambda r: r.until) if latest else None

    def resolve(
        self, now: datetime, candidate_id: int | None = None, unit: Unit | None = None
    ) -> CandidateWindow:
        """The window of a candidate (or, with neither argument, the nation's) at `now`."""
        n = self.national
        lock = n.closes_at
        trial = self._most_specific(unit, "trial")
        official = self._most_specific(unit, "official")
        opens, closes = (official.opens_at, official.closes_at) if official else (n.opens_at, lock)
        if lock is not None and (closes is None or closes > lock):
            closes = lock  # the lock is system-wide: no province or unit runs past it
        chosen = self._reopen_for(candidate_id, unit) if closes is not None else None
        if chosen is not None and closes is not None and chosen.until > closes:
            closes = chosen.until
        else:
            chosen = None
        window = Window(
            trial_opens_at=trial.opens_at if trial else n.trial_opens_at,
            trial_closes_at=trial.closes_at if trial else n.trial_closes_at,
            opens_at=opens,
            closes_at=closes,
        )
        return CandidateWindow(
            phase=window.phase(now),
            window=window,
            trial_scope=trial.scope if trial is not None else "national",
            official_scope=official.scope if official is not None else "national",
            lock_at=lock,
            reopen=chosen if chosen is not None and chosen.active(now) else None,
        )

    def active_reopens(self, now: datetime) -> list[Reopen]:
        return [r for r in self.reopens if r.active(now)]


def parse_instant(raw: str, *, deadline: bool) -> datetime:
    """ISO 8601 with an offset; a bare date is 00:00 (an opening) or 17:00 (a deadline) in
    Vietnam, as for the environment's window variables (domain.md §6.1: deadlines at 17:00).

    Raises:
        ValueError: not a date or date-time, or a date-time without an offset.
    """
    text = raw.strip()
    if len(text) == 10:
        day = date.fromisoformat(text)
        return datetime.combine(day, DEADLINE_TIME if deadline else time(0, 0, tzinfo=VIETNAM))
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError("an offset is needed, e.g. 2026-04-28T17:00:00+07:00")
    return value
