"""The roster: putting candidate accounts into PostgreSQL, from a school's CSV or synthetic data.

Owns `examreg roster import` (validate every row first, import nothing if any is wrong) and
`examreg seed` (synthetic candidates from `engine.domain.rostergen`), issuing initial passwords and
writing the credentials file schools hand out (mode 0600: it holds them in plaintext). Passwords
are hashed with argon2id in a process pool; `--load-test-password` shares one hash across
accounts and is for load-test rosters only.
"""

from __future__ import annotations

import csv
import secrets
import sys
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date
from itertools import islice
from pathlib import Path
from typing import TypeVar

from engine.adapters import backend, store
from engine.adapters.files import open_private
from engine.adapters.passwords import make_hasher
from engine.domain.registration import check_national_id
from engine.domain.rostergen import generate_roster
from engine.settings import Settings

T = TypeVar("T")
_ALPHABET = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CHUNK = 10_000
IMPORT_COLUMNS = (
    "national_id",
    "full_name",
    "date_of_birth",
    "sex",
    "candidate_type",
    "province_code",
    "school_code",
)


def issue_password() -> str:
    """An initial password as a school would print it: 10 unambiguous letters and digits."""
    while True:
        password = "".join(secrets.choice(_ALPHABET) for _ in range(10))
        if any(c.isdigit() for c in password) and any(c.isalpha() for c in password):
            return password


_HASHER_SETTINGS: Settings | None = None


def _hash_one(password: str) -> str:
    assert _HASHER_SETTINGS is not None
    return make_hasher(_HASHER_SETTINGS).hash(password)


def _init_hasher(settings: Settings) -> None:
    global _HASHER_SETTINGS
    _HASHER_SETTINGS = settings


@dataclass(frozen=True, slots=True)
class Credential:
    login: str
    password: str
    candidate_id: int


class Hasher:
    """Hashes many passwords on every core, or hands out one shared hash (load tests only)."""

    def __init__(self, settings: Settings, shared_password: str | None) -> None:
        self.shared_password = shared_password
        self._shared_hash = make_hasher(settings).hash(shared_password) if shared_password else None
        self._pool = (
            None
            if shared_password
            else ProcessPoolExecutor(initializer=_init_hasher, initargs=(settings,))
        )

    def passwords_and_hashes(self, count: int) -> list[tuple[str, str]]:
        if self._shared_hash is not None:
            assert self.shared_password is not None
            return [(self.shared_password, self._shared_hash)] * count
        assert self._pool is not None
        passwords = [issue_password() for _ in range(count)]
        return list(zip(passwords, self._pool.map(_hash_one, passwords, chunksize=16), strict=True))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


async def _insert_with_passwords(
    conn: backend.Connection,
    rows: Sequence[tuple[str, str, date, str, str, str, str, str | None]],
    hasher: Hasher,
) -> list[Credential]:
    secrets_ = hasher.passwords_and_hashes(len(rows))
    candidates = [
        # One shared password is for load tests: their accounts skip the first-login change.
        store.NewCandidate(
            *row, password_hash=h, must_change_password=hasher.shared_password is None
        )
        for row, (_, h) in zip(rows, secrets_, strict=True)
    ]
    ids = await store.insert_candidates(conn, candidates)
    return [
        Credential(row[0], password, ids[row[0]])
        for row, (password, _) in zip(rows, secrets_, strict=True)
        if row[0] in ids
    ]


def _progress(done: int, total: int) -> None:
    if sys.stderr.isatty() or done == total:
        width = 30
        filled = int(width * done / max(total, 1))
        sys.stderr.write(f"\r  [{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,}")
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()


async def seed(
    conn: backend.Connection,
    settings: Settings,
    count: int,
    credentials_out: Path | None,
    *,
    shared_password: str | None = None,
    random_seed: int = 2026,
    progress: Callable[[int, int], None] = _progress,
) -> int:
    """Insert `count` synthetic candidates; write their logins; return how many were new."""
    hasher = Hasher(settings, shared_password)
    written = 0
    out = open_private(credentials_out) if credentials_out else None
    try:
        writer = csv.writer(out) if out else None
        if writer:
            writer.writerow(["login", "password", "candidate_id"])
        done = 0
        for chunk in _chunks(generate_roster(count, seed=random_seed), CHUNK):
            rows = [
                (
                    e.national_id,
                    e.full_name,
                    e.date_of_birth,
                    e.sex,
                    e.candidate_type,
                    e.province_code,
                    e.school_code,
                    e.phone,
                )
                for e in chunk
            ]
            credentials = await _insert_with_passwords(conn, rows, hasher)
            written += len(credentials)
            if writer:
                writer.writerows((c.login, c.password, c.candidate_id) for c in credentials)
            done += len(chunk)
            progress(done, count)
    finally:
        hasher.close()
        if out:
            out.close()
    return written


@dataclass(frozen=True, slots=True)
class RowProblem:
    line: int
    column: str
    message: str


def parse_import(path: Path, schools: set[tuple[str, str]]) -> tuple[list[tuple], list[RowProblem]]:  # type: ignore[type-arg]
    """Read and check a roster CSV; every problem is reported with its line number."""
    rows: list[tuple] = []  # type: ignore[type-arg]
    problems: list[RowProblem] = []
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in IMPORT_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            return [], [RowProblem(1, ",".join(missing), "missing column(s)")]
        for line, record in enumerate(reader, start=2):
            row, row_problems = _check_row(line, record, schools)
            problems.extend(row_problems)
            if row is not None:
                rows.append(row)
    return rows, problems


def _check_row(
    line: int, record: dict[str, str], schools: set[tuple[str, str]]
) -> tuple[tuple | None, list[RowProblem]]:  # type: ignore[type-arg]
    problems: list[RowProblem] = []
    name = " ".join(unicodedata.normalize("NFC", record.get("full_name") or "").split()).upper()
    if not 2 <= len(name) <= 80:
        problems.append(RowProblem(line, "full_name", "must be 2–80 characters"))
    try:
        born = date.fromisoformat((record.get("date_of_birth") or "").strip())
    except ValueError:
        problems.append(RowProblem(line, "date_of_birth", "must be an ISO date YYYY-MM-DD"))
        born = None
    sex = (record.get("sex") or "").strip()
    if sex not in ("male", "female"):
        problems.append(RowProblem(line, "sex", "must be male or female"))
    national_id = (record.get("national_id") or "").strip()
    if born is not None and sex in ("male", "female"):
        for _code, _vi, en in check_national_id(national_id, born, sex):
            problems.append(RowProblem(line, "national_id", en))
    kind = (record.get("candidate_type") or "").strip()
    if kind not in ("a", "b", "c", "d"):
        problems.append(RowProblem(line, "candidate_type", "must be a, b, c or d"))
    school = (
        (record.get("province_code") or "").strip(),
        (record.get("school_code") or "").strip(),
    )
    if school not in schools:
        problems.append(RowProblem(line, "school_code", f"unknown school {school[0]}-{school[1]}"))
    if problems:
        return None, problems
    phone = (record.get("phone") or "").strip() or None
    return (national_id, name, born, sex, kind, school[0], school[1], phone), []


async def import_roster(
    conn: backend.Connection,
    settings: Settings,
    rows: list[tuple],  # type: ignore[type-arg]
    credentials_out: Path | None,
) -> list[Credential]:
    """Insert checked rows (existing national IDs are left untouched) and issue passwords."""
    hasher = Hasher(settings, None)
    try:
        credentials: list[Credential] = []
        for chunk in _chunks(rows, CHUNK):
            credentials.extend(await _insert_with_passwords(conn, chunk, hasher))
    finally:
        hasher.close()
    if credentials_out:
        with open_private(credentials_out) as out:
            writer = csv.writer(out)
            writer.writerow(["login", "password", "candidate_id"])
            writer.writerows((c.login, c.password, c.candidate_id) for c in credentials)
    return credentials
