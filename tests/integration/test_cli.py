"""The command line against real servers: migrate, roster import, seed, staff, trial purge."""

from __future__ import annotations

import asyncio
import csv
import stat
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from engine.runtime.cli import main
from engine.runtime.launch import write_csv


@pytest.fixture
def env(database_url: str, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("EXAMREG_DATABASE_URL", database_url)
    monkeypatch.setenv("EXAMREG_REDIS_URL", redis_url)
    monkeypatch.setenv("EXAMREG_DATA_DIR", str(tmp_path))
    return database_url


def _fetch(dsn: str, query: str, *args: Any) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()

    return asyncio.run(run())


def _write(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


HEADER = [
    "national_id",
    "full_name",
    "date_of_birth",
    "sex",
    "candidate_type",
    "province_code",
    "school_code",
    "phone",
]


def test_migrate_twice_applies_nothing_the_second_time(
    env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate"]) == 0
    assert "up to date" in capsys.readouterr().out


def test_roster_import_issues_passwords_for_valid_rows(
    env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _write(
        tmp_path / "school.csv",
        [
            HEADER,
            [
                "001308012345",
                "nguyễn  thị   lan",
                "2008-03-15",
                "female",
                "a",
                "01",
                "001",
                "0912345678",
            ],
            ["079208000001", "Trần Văn Bình", "2008-11-02", "male", "a", "02", "003", ""],
        ],
    )
    out = tmp_path / "logins.csv"
    assert main(["roster", "import", str(source), "--credentials-out", str(out)]) == 0
    with out.open() as handle:
        logins = list(csv.DictReader(handle))
    assert [r["login"] for r in logins] == ["001308012345", "079208000001"]
    assert all(len(r["password"]) == 10 for r in logins)
    rows = _fetch(
        env,
        "SELECT national_id, full_name, must_change_password FROM candidates"
        " WHERE national_id = ANY($1::text[]) ORDER BY 1",
        ["001308012345", "079208000001"],
    )
    assert [(r["full_name"], r["must_change_password"]) for r in rows] == [
        ("NGUYỄN THỊ LAN", True),
        ("TRẦN VĂN BÌNH", True),
    ]
    # A second import of the same file adds nobody.
    assert main(["roster", "import", str(source)]) == 0
    assert "0 new candidates" in capsys.readouterr().out


def test_roster_import_with_a_bad_row_imports_nothing_and_names_the_line(
    env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _fetch(env, "SELECT count(*) AS n FROM candidates")[0]["n"]
    source = _write(
        tmp_path / "school.csv",
        [
            HEADER,
            ["001308012346", "Lê Thị Hoa", "2008-03-15", "female", "a", "01", "001", ""],
            [
                "001208012347",
                "Lê Thị Hồng",
                "2008-03-15",
                "female",
                "a",
                "01",
                "001",
                "",
            ],  # digit 4 says male
            ["001308012348", "Lê Văn Nam", "2008-13-40", "male", "a", "99", "001", ""],
        ],
    )
    assert main(["roster", "import", str(source)]) == 2
    err = capsys.readouterr().err
    assert f"{source}:3: national_id" in err
    assert f"{source}:4: date_of_birth" in err
    assert f"{source}:4: school_code" in err
    assert "nothing imported" in err
    assert _fetch(env, "SELECT count(*) AS n FROM candidates")[0]["n"] == before


def test_roster_import_reports_a_missing_file_without_a_traceback(
    env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["roster", "import", "/nonexistent.csv"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_seed_adds_consistent_candidates_and_writes_logins(env: str, tmp_path: Path) -> None:
    out = tmp_path / "seed.csv"
    before = _fetch(env, "SELECT count(*) AS n FROM candidates")[0]["n"]
    assert (
        main(
            [
                "seed",
                "--candidates",
                "30",
                "--seed",
                "99",
                "--credentials-out",
                str(out),
                "--load-test-password",
                "Load-test-2026",
            ]
        )
        == 0
    )
    with out.open() as handle:
        logins = list(csv.DictReader(handle))
    assert len(logins) == 30 and {r["password"] for r in logins} == {"Load-test-2026"}
    assert _fetch(env, "SELECT count(*) AS n FROM candidates")[0]["n"] == before + 30
    rows = _fetch(
        env,
        "SELECT national_id, date_of_birth, sex, must_change_password FROM candidates"
        " WHERE national_id = ANY($1::text[])",
        [r["login"] for r in logins],
    )
    # Load-test accounts skip the first-login change, or every journey would stop at a 403.
    assert {row["must_change_password"] for row in rows} == {False}
    for row in rows:
        digit = int(row["national_id"][3])
        assert digit % 2 == (1 if row["sex"] == "female" else 0)
        assert row["national_id"][4:6] == f"{row['date_of_birth'].year % 100:02d}"


def test_settings_errors_are_one_line_not_a_traceback(
    env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EXAMREG_STREAM_SHARDS", "many")
    assert main(["migrate"]) == 2
    err = capsys.readouterr().err
    assert "EXAMREG_STREAM_SHARDS" in err and "Traceback" not in err


def test_commands_needing_servers_say_how_to_get_them(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("EXAMREG_DATABASE_URL", raising=False)
    monkeypatch.delenv("EXAMREG_REDIS_URL", raising=False)
    assert main(["migrate"]) == 2
    assert "examreg services start" in capsys.readouterr().err


def test_staff_create_and_trial_purge(env: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["staff", "create", "desk.one", "--role", "support", "--password", "Desk-pass-1"]) == 0
    )
    assert _fetch(env, "SELECT role FROM staff WHERE username = 'desk.one'")[0]["role"] == "support"
    assert main(["staff", "create", "school.x", "--role", "school"]) == 2
    assert main(["trial", "purge"]) == 0
    assert "purged trial data" in capsys.readouterr().out


def test_files_with_plaintext_passwords_are_written_for_their_owner_only(
    env: str, tmp_path: Path
) -> None:
    # Files that already exist, readable by everyone, are narrowed too when rewritten.
    seeded, imported, staff = tmp_path / "seed.csv", tmp_path / "logins.csv", tmp_path / "staff.csv"
    for path in (seeded, imported, staff):
        path.write_text("old\n")
        path.chmod(0o644)
    assert main(["seed", "--candidates", "3", "--seed", "5", "--credentials-out", str(seeded)]) == 0
    source = _write(
        tmp_path / "school.csv",
        [HEADER, ["001308012399", "Lê Thị Mai", "2008-03-15", "female", "a", "01", "001", ""]],
    )
    assert main(["roster", "import", str(source), "--credentials-out", str(imported)]) == 0
    write_csv(staff, ("username", "password", "role"), [("demo-admin", "s3cret-pass", "admin")])
    fresh = tmp_path / "fresh.csv"
    write_csv(fresh, ("username", "password", "role"), [])
    for path in (seeded, imported, staff, fresh):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert "password" in path.read_text().splitlines()[0]
