"""The calendar's rules as pure code: the most specific window wins, the national close caps
every province and unit, a reopen extends only whom it names, a closed reopen changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine.domain.calendar import Calendar, Entry, Reopen, Unit, parse_instant
from engine.settings import VIETNAM, Window

NOW = datetime(2026, 4, 28, 9, 0, tzinfo=UTC)  # 16:00 in Vietnam, an hour before the lock
LOCK = datetime(2026, 4, 28, 10, 0, tzinfo=UTC)
ENV = Window(opens_at=NOW - timedelta(days=7), closes_at=LOCK)
HANOI_A, HANOI_B, HUE = Unit("01", "001"), Unit("01", "002"), Unit("46", "001")


def test_with_no_rows_the_environment_is_the_national_window() -> None:
    cw = Calendar.build(ENV, (), ()).resolve(NOW, 1, HANOI_A)
    assert cw.phase == "official" and cw.deadline == LOCK and cw.lock_at == LOCK
    assert cw.official_scope == "national" and cw.reopen is None


def test_a_unit_beats_its_province_which_beats_the_nation() -> None:
    early = LOCK - timedelta(hours=2)
    entries = [
        Entry("province", "official", None, early, province_code="01"),
        Entry("unit", "official", None, LOCK - timedelta(minutes=10), "01", "002"),
    ]
    calendar = Calendar.build(ENV, entries, ())
    assert calendar.resolve(NOW, 1, HANOI_A).phase == "closed"
    b = calendar.resolve(NOW, 2, HANOI_B)
    assert b.phase == "official" and b.official_scope == "unit"
    assert calendar.resolve(NOW, 3, HUE).official_scope == "national"


def test_no_province_runs_past_the_lock() -> None:
    late = Entry("province", "official", None, LOCK + timedelta(days=1), province_code="01")
    cw = Calendar.build(ENV, [late], ()).resolve(LOCK + timedelta(seconds=1), 1, HANOI_A)
    assert cw.phase == "closed" and cw.deadline == LOCK


def test_a_reopen_extends_only_what_it_names_and_not_once_closed() -> None:
    until = LOCK + timedelta(days=1)
    after = LOCK + timedelta(hours=1)
    unit_reopen = Reopen(1, until, "room failed", units=frozenset({"01-001"}))
    person = Reopen(2, until + timedelta(hours=1), "desk ticket", candidates=frozenset({9}))
    calendar = Calendar.build(ENV, (), [unit_reopen, person])
    a = calendar.resolve(after, 1, HANOI_A)
    assert a.phase == "official" and a.deadline == until and a.reopened_until == until
    assert calendar.resolve(after, 2, HANOI_B).phase == "closed"
    assert calendar.resolve(after, 9, HUE).deadline == until + timedelta(hours=1)
    assert calendar.resolve(until, 1, HANOI_A).phase == "closed"
    closed = Reopen(1, until, "room failed", units=frozenset({"01-001"}), closed_at=after)
    assert Calendar.build(ENV, (), [closed]).resolve(after, 1, HANOI_A).phase == "closed"


def test_a_reopen_before_the_lock_already_shows_the_later_deadline() -> None:
    until = LOCK + timedelta(hours=5)
    calendar = Calendar.build(ENV, (), [Reopen(1, until, "why", provinces=frozenset({"01"}))])
    assert calendar.resolve(NOW, 1, HANOI_A).deadline == until
    assert calendar.resolve(NOW, 3, HUE).deadline == LOCK


def test_database_national_rows_override_the_environment() -> None:
    trial = Entry("national", "trial", NOW - timedelta(days=1), NOW + timedelta(hours=1))
    cw = Calendar.build(ENV, [trial], ()).resolve(NOW)
    assert cw.phase == "trial" and cw.deadline == NOW + timedelta(hours=1)


def test_instants_parse_like_the_environment_variables() -> None:
    assert parse_instant("2026-04-28", deadline=True) == datetime(2026, 4, 28, 17, tzinfo=VIETNAM)
    assert parse_instant("2026-04-21", deadline=False) == datetime(2026, 4, 21, tzinfo=VIETNAM)
    with pytest.raises(ValueError):
        parse_instant("2026-04-28T17:00:00", deadline=True)
