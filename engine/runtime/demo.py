"""`examreg demo`: the whole engine on the embedded default, from an empty directory to serving.

Owns the demo's sequence: start embedded PostgreSQL + Valkey, migrate, seed a roster and one staff
account per role (first run only, credentials written to the data dir), start API workers and
writers under the supervisor, print where to go, and on Ctrl-C stop everything it started while
keeping the data on disk.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import dataclasses
import os
import secrets
import sys
import time
from pathlib import Path

from engine.adapters import backend, store
from engine.adapters.embedded import EmbeddedServices
from engine.adapters.files import write_private
from engine.adapters.passwords import make_hasher
from engine.runtime.launch import (
    child_env,
    children,
    listen_socket,
    wait_ready,
    with_connection,
    write_csv,
)
from engine.runtime.supervisor import Supervisor
from engine.services.roster import seed
from engine.settings import Settings

ROLES = ("support", "school", "operator", "admin")


async def _prepare(
    conn: backend.Connection, settings: Settings, data_dir: Path, candidates: int
) -> None:
    await store.migrate(conn)
    credentials = data_dir / "demo-credentials.csv"
    if not await store.has_candidates(conn):
        print(f"seeding {candidates} synthetic candidates …", flush=True)
        await seed(conn, settings, candidates, credentials)
    staff_file = data_dir / "demo-staff.csv"
    if not await store.has_staff(conn):
        hasher = make_hasher(settings)
        school = await store.first_school(conn)
        if school is None:
            raise RuntimeError("reference data is missing: run the migrations")
        rows = []
        for role in ROLES:
            password = secrets.token_urlsafe(9)
            await store.create_staff(
                conn,
                f"demo-{role}",
                hasher.hash(password),
                role,
                school if role == "school" else None,
                must_change_password=False,
            )
            rows.append((f"demo-{role}", password, role))
        write_csv(staff_file, ("username", "password", "role"), rows)


def _print_banner(port: int, data_dir: Path, ready_after: float) -> None:
    base = f"http://127.0.0.1:{port}"
    print(f"\nexamreg is ready after {ready_after:.1f}s\n")
    print(f"  Candidates    {base}/  (Vietnamese; {base}/?lang=en for English)")
    print(f"  Support desk  {base}/support  (staff logins in {data_dir / 'demo-staff.csv'})")
    print(f"  API           {base}/api/v1/window")
    print(f"  OpenAPI       {base}/openapi.json")
    print(f"  Health        {base}/readyz")
    print(f"  Metrics       {base}/metrics")
    credentials = data_dir / "demo-credentials.csv"
    if credentials.exists():
        with credentials.open() as handle:
            rows = list(csv.DictReader(handle))[:3]
        print(f"\n  Demo logins (all in {credentials}):")
        for row in rows:
            print(f"    login {row['login']}  password {row['password']}")
        if rows:
            print(
                "\n  Try:\n"
                f"    curl -s -X POST {base}/api/v1/auth/login \\\n"
                "         -H 'Content-Type: application/json' \\\n"
                f'         -d \'{{"login":"{rows[0]["login"]}",'
                f'"password":"{rows[0]["password"]}"}}\''
            )
    print(f"\n  Staff accounts: {data_dir / 'demo-staff.csv'}")
    print("\nCtrl-C stops everything (data stays in", data_dir, ")\n", flush=True)


def run_demo(args: argparse.Namespace, settings: Settings) -> int:
    started = time.monotonic()
    data_dir = Path(args.data_dir or settings.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    services = EmbeddedServices(data_dir)
    print(f"starting embedded PostgreSQL and Valkey in {data_dir} …", flush=True)
    endpoints = services.start()
    secret_file = data_dir / "secret-key"
    if not secret_file.exists():
        write_private(secret_file, secrets.token_hex(32))
    os.environ["EXAMREG_DATABASE_URL"] = endpoints.database_url
    os.environ["EXAMREG_REDIS_URL"] = endpoints.redis_url
    os.environ["EXAMREG_SECRET_KEY"] = secret_file.read_text().strip()
    settings = dataclasses.replace(
        settings, database_url=endpoints.database_url, redis_url=endpoints.redis_url
    )
    supervisor: Supervisor | None = None
    try:
        asyncio.run(
            with_connection(
                endpoints.database_url,
                lambda conn: _prepare(conn, settings, data_dir, args.candidates),
            )
        )
        sock = listen_socket("127.0.0.1", args.port)
        supervisor = Supervisor(
            children(sock, args.workers, args.writers), child_env(settings, data_dir)
        )
        supervisor.install_signal_handlers()
        supervisor.start()
        if not wait_ready(f"http://127.0.0.1:{args.port}/readyz", 60):
            print(
                "examreg: the API did not become ready within 60s; see the log above",
                file=sys.stderr,
            )
            return 1
        _print_banner(args.port, data_dir, time.monotonic() - started)
        while not supervisor.stopping:
            supervisor.poll_once()
            time.sleep(0.2)
        return 0
    finally:
        if supervisor is not None:
            supervisor.stop()
        services.stop()
        print("stopped; data kept in", data_dir, flush=True)
