"""Unit tests of the demo's window: unless EXAMREG_CLOSES_AT is set, `examreg demo` closes the
window at 17:00 Asia/Ho_Chi_Minh a few days ahead, hands that close to its children through the
environment (so the capacity forecast shows its deadline projection), and the banner says so."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest

from engine import settings as settings_module
from engine.runtime import demo
from engine.settings import VIETNAM


def test_the_demo_closes_at_five_pm_in_vietnam_three_days_ahead() -> None:
    # 22:45 UTC is 05:45 the next morning in Vietnam: three days after 2 December.
    now = datetime(2026, 12, 1, 22, 45, tzinfo=UTC)
    closes = demo.demo_close(now, None)
    assert closes == datetime(2026, 12, 5, 17, 0, tzinfo=VIETNAM)
    assert closes.utcoffset() == timedelta(hours=7)
    # A window that opens later closes three days after its opening day.
    opens = datetime(2027, 6, 1, 0, 0, tzinfo=VIETNAM)
    assert demo.demo_close(now, opens) == datetime(2027, 6, 4, 17, 0, tzinfo=VIETNAM)


def test_the_banner_says_when_the_window_closes_and_who_chose_it() -> None:
    now = datetime(2026, 12, 1, 22, 45, tzinfo=UTC)
    closes = datetime(2026, 12, 5, 17, 0, tzinfo=VIETNAM)
    line = demo.deadline_line(closes, now, chosen=False)
    assert line == (
        "  Window closes 2026-12-05 17:00 (UTC+07:00), in 3 d 11 h: set by the demo 3 days "
        "ahead (EXAMREG_CLOSES_AT chooses another)"
    )
    assert demo.deadline_line(closes, now, chosen=True).endswith(": your EXAMREG_CLOSES_AT")


def test_an_unset_close_is_given_to_the_children_and_a_chosen_one_is_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The demo writes os.environ for its children: give it a copy without a window.
    env = {
        k: v for k, v in os.environ.items() if k not in ("EXAMREG_CLOSES_AT", "EXAMREG_OPENS_AT")
    }
    monkeypatch.setattr(os, "environ", env)
    before = datetime.now(UTC)
    chosen, closes, by_user = demo._choose_close(settings_module.load({}))
    assert not by_user and chosen.window.closes_at == closes
    assert closes.astimezone(VIETNAM).hour == 17
    assert timedelta(days=2) < closes - before <= timedelta(days=4)
    # A child process reads the same close from the environment it inherits.
    child = settings_module.load(dict(os.environ))
    assert child.window.closes_at == closes

    env["EXAMREG_CLOSES_AT"] = "2030-06-20"
    own = settings_module.load(dict(os.environ))
    kept, closes, by_user = demo._choose_close(own)
    assert by_user and kept is own
    assert closes == datetime(2030, 6, 20, 17, 0, tzinfo=VIETNAM)
    assert os.environ["EXAMREG_CLOSES_AT"] == "2030-06-20"
