"""`examreg window|reopen|lock` against real servers: set, reopen, list, close, report; refusals
as one line with exit status 2 (synchronous tests: `main` runs its own event loop)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.runtime.cli import main
from tests.integration.test_window_calendar import unit


@pytest.fixture
def env(database_url: str, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("EXAMREG_DATABASE_URL", database_url)
    monkeypatch.setenv("EXAMREG_REDIS_URL", redis_url)
    monkeypatch.setenv("EXAMREG_DATA_DIR", str(tmp_path))
    return database_url


def test_the_commands_set_reopen_list_close_and_report(
    env: str, roster: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    target = unit(roster[0])
    until = (datetime.now(UTC) + timedelta(hours=3)).isoformat()
    base = ["--reason", "CV 45/BGDĐT", "--actor", "ops-cli"]
    assert main(["reopen", "create", "--unit", target, "--until", until, *base, "--json"]) == 0
    created = json.loads(capsys.readouterr().out)["reopen"]
    assert created["units"] == [target] and created["created_by"] == "ops-cli"
    assert main(["reopen", "list", "--open"]) == 0
    assert f"#{created['reopen_id']}" in capsys.readouterr().out
    assert (
        main(
            [
                "window",
                "set",
                "--scope",
                "province",
                "--province",
                roster[0]["province_code"],
                "--kind",
                "trial",
                "--opens",
                "2026-04-15",
                "--closes",
                "2026-04-18",
                *base,
            ]
        )
        == 0
    )
    assert (
        "set: province trial 2026-04-14T17:00:00+00:00 → 2026-04-18T10:00:00+00:00"
        in capsys.readouterr().out
    )
    assert main(["window", "show"]) == 0
    shown = capsys.readouterr().out
    assert "province  " + roster[0]["province_code"] in shown and "1 open" in shown
    assert main(["reopen", "close", str(created["reopen_id"]), *base]) == 0
    assert "closed" in capsys.readouterr().out
    # Refusals are one line on stderr with exit status 2.
    assert main(["reopen", "close", str(created["reopen_id"]), *base]) == 2
    assert "reopen_closed" in capsys.readouterr().err
    assert main(["reopen", "create", "--unit", "01-999", "--until", until, *base]) == 2
    assert "units.0: No such registration unit" in capsys.readouterr().err
    assert main(["lock", "report", "--json", "--actor", "ops-cli"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["lock_at"] is None and report["queued"]["entries"] == 0
    assert main(["lock", "report"]) == 0
    assert "final        no: the lock has not passed" in capsys.readouterr().out
