"""A unit keys a file of paper forms: time and rows/s to validate, enqueue and persist it, and a
re-upload of the same file (which must create 0 versions). Issue 13 item 6's figure.

    .venv/bin/python -m benchmarks.keying [--rows 10000] [--data-dir DIR]

Starts its own embedded PostgreSQL and Valkey under DIR (a fresh temporary directory by default),
migrates, puts N SYNTHETIC candidates in one unit with a `school` account, runs `examreg serve`
(1 worker) and `examreg writer` (1 process), then uploads the CSV through the console exactly as a
browser does (login, CSRF, multipart), polls the job's progress endpoint until it is finished, and
waits until PostgreSQL holds every version. Then it uploads the same file again. Prints one JSON
object with the figures; stops what it started.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from engine.adapters import store
from engine.adapters.passwords import make_hasher
from engine.domain import paper_forms
from engine.domain.rostergen import generate_roster, sample_form
from engine.settings import load

STAFF, PASSWORD = "bench.unit", "Bench-unit-2026"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _examreg(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "engine", *args], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout


async def _prepare(database_url: str, rows: int) -> tuple[bytes, tuple[str, str]]:
    """N candidates in the first one's unit, the unit's account, and the keyed CSV."""
    entries = list(generate_roster(rows, seed=13))
    unit = (entries[0].province_code, entries[0].school_code)
    entries = [replace(e, province_code=unit[0], school_code=unit[1]) for e in entries]
    hasher = make_hasher(load(env={}))
    password_hash = hasher.hash(PASSWORD)
    conn = await store.connect(database_url)
    try:
        await store.insert_candidates(
            conn,
            (
                store.NewCandidate(
                    national_id=e.national_id,
                    full_name=e.full_name,
                    date_of_birth=e.date_of_birth,
                    sex=e.sex,
                    candidate_type=e.candidate_type,
                    province_code=e.province_code,
                    school_code=e.school_code,
                    phone=e.phone,
                    password_hash=password_hash,
                    must_change_password=False,
                )
                for e in entries
            ),
        )
    finally:
        await conn.close()
    pool = await store.create_pool(database_url, size=1)
    try:
        await store.create_staff(pool, STAFF, password_hash, "school", unit, False)
    finally:
        await pool.close()
    rng = random.Random(13)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(paper_forms.COLUMNS)
    for entry in entries:
        writer.writerow(paper_forms.form_row(sample_form(entry, rng)))
    return out.getvalue().encode(), unit


async def _versions(database_url: str) -> int:
    conn = await store.connect(database_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM registration_versions"))
    finally:
        await conn.close()


def _upload(client: httpx.Client, data: bytes) -> tuple[dict[str, Any], float]:
    token = _CSRF.search(client.get("/support/keying").text)
    assert token is not None
    started = time.monotonic()
    response = client.post(
        "/support/keying/upload",
        data={"csrf_token": token.group(1)},
        files={"file": ("bench.csv", data, "text/csv")},
    )
    if response.status_code != 303:
        raise SystemExit(f"upload refused: {response.status_code} {response.text[:500]}")
    location = response.headers["location"]
    while True:
        progress = client.get(f"{location}/progress").json()
        if progress["finished"]:
            return progress, time.monotonic() - started
        time.sleep(0.1)


def _wait_versions(database_url: str, count: int, within: float = 600) -> float:
    started = time.monotonic()
    while asyncio.run(_versions(database_url)) < count:
        if time.monotonic() - started > within:
            raise SystemExit(f"fewer than {count} versions persisted after {within:.0f} s")
        time.sleep(0.2)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--port", type=int, default=8731)
    args = parser.parse_args()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="examreg-keying-"))
    env = {**os.environ, "EXAMREG_DATA_DIR": str(data_dir), "EXAMREG_LOG_LEVEL": "warning"}
    env["EXAMREG_KEYING_MAX_ROWS"] = str(max(args.rows, 20_000))
    env["EXAMREG_KEYING_MAX_BYTES"] = str(64 * 2**20)
    started = _examreg("services", "start", "--data-dir", str(data_dir), env=env)
    for line in started.splitlines():
        name, _, value = line.partition("=")
        if name in ("EXAMREG_DATABASE_URL", "EXAMREG_REDIS_URL"):
            env[name] = value
    procs: list[subprocess.Popen[bytes]] = []
    try:
        _examreg("migrate", env=env)
        data, unit = asyncio.run(_prepare(env["EXAMREG_DATABASE_URL"], args.rows))
        engine = [sys.executable, "-m", "engine"]
        serve = [*engine, "serve", "--workers", "1", "--port", str(args.port)]
        procs.append(subprocess.Popen(serve, env=env))
        procs.append(subprocess.Popen([*engine, "writer", "--processes", "1"], env=env))
        base = f"http://127.0.0.1:{args.port}"
        for _ in range(200):
            try:
                if httpx.get(f"{base}/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        with httpx.Client(base_url=base, timeout=60) as client:
            token = _CSRF.search(client.get("/support/login").text)
            assert token is not None
            client.post(
                "/support/login",
                data={"csrf_token": token.group(1), "username": STAFF, "password": PASSWORD},
            )
            first, enqueue_s = _upload(client, data)
            persist_s = enqueue_s + _wait_versions(env["EXAMREG_DATABASE_URL"], args.rows)
            before = asyncio.run(_versions(env["EXAMREG_DATABASE_URL"]))
            again, again_s = _upload(client, data)
            time.sleep(2)  # anything enqueued by mistake would be persisted by now
            after = asyncio.run(_versions(env["EXAMREG_DATABASE_URL"]))
        figures = {
            "rows": args.rows,
            "file_bytes": len(data),
            "unit": "-".join(unit),
            "first_upload": {
                "state": first["state"],
                "enqueued": first["enqueued"],
                "bad": first["bad"],
                "validated_and_enqueued_s": round(enqueue_s, 2),
                "enqueue_rows_per_s": round(args.rows / enqueue_s),
                "persisted_s": round(persist_s, 2),
                "persist_rows_per_s": round(args.rows / persist_s),
            },
            "re_upload": {
                "state": again["state"],
                "enqueued": again["enqueued"],
                "replayed": again["replayed"],
                "s": round(again_s, 2),
                "rows_per_s": round(args.rows / again_s),
                "new_versions": after - before,
            },
        }
        print(json.dumps(figures, indent=2))
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        _examreg("services", "stop", "--data-dir", str(data_dir), env=env)


if __name__ == "__main__":
    main()
