"""`examreg demo`: the whole engine on the embedded default, from an empty directory to serving.

Owns the demo's sequence: start embedded PostgreSQL + Valkey, migrate, seed a roster and one staff
account per role (first run only, credentials written to the data dir), give the window a close a
few days ahead unless EXAMREG_CLOSES_AT is set (so the capacity forecast shows its deadline
projection), start API workers and writers under the supervisor, print where to go, and on Ctrl-C
stop everything it started while keeping the data on disk. One demo per data directory (a lock
file): a second one exits with a message and leaves the first one's servers alone.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import dataclasses
import fcntl
import os
import secrets
import socket
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

from engine.adapters import backend, store
from engine.adapters.embedded import EmbeddedServices, Endpoints
from engine.adapters.files import write_private
from engine.adapters.passwords import make_hasher
from engine.domain import display
from engine.runtime.launch import (
    UsageError,
    child_env,
    children,
    listen_socket,
    wait_ready,
    with_connection,
    write_csv,
)
from engine.runtime.supervisor import Supervisor
from engine.services.roster import seed
from engine.settings import DEADLINE_TIME, VIETNAM, Settings

ROLES = ("support", "school", "operator", "admin")
# The demo's window closes this many days ahead: near enough for the deadline projection to
# mean something, far enough that the candidate pages stay open while someone looks around.
DEMO_CLOSE_DAYS = 3


def demo_close(now: datetime, opens_at: datetime | None, days: int = DEMO_CLOSE_DAYS) -> datetime:
    """17:00 Asia/Ho_Chi_Minh (every deadline's hour, domain.md §6.1) `days` days after today,
    or after the opening day when the window opens later than today."""
    start = max(now, opens_at) if opens_at is not None else now
    return datetime.combine(start.astimezone(VIETNAM).date() + timedelta(days=days), DEADLINE_TIME)


def deadline_line(closes_at: datetime, now: datetime, *, chosen: bool) -> str:
    """The banner's line about the window's close, and who set it."""
    where = (
        "your EXAMREG_CLOSES_AT"
        if chosen
        else f"set by the demo {DEMO_CLOSE_DAYS} days ahead (EXAMREG_CLOSES_AT chooses another)"
    )
    when = display.due((closes_at - now).total_seconds(), float("inf"))
    return f"  Window closes {display.instant(closes_at)}, {when}: {where}"


def _choose_close(settings: Settings) -> tuple[Settings, datetime, bool]:
    """The settings with a close, the close, and whether the user chose it. The demo's own close
    goes into the environment the children inherit."""
    window = settings.window
    if window.closes_at is not None:
        return settings, window.closes_at, True
    closes_at = demo_close(datetime.now(UTC), window.opens_at)
    os.environ["EXAMREG_CLOSES_AT"] = closes_at.isoformat()
    window = dataclasses.replace(window, closes_at=closes_at)
    return dataclasses.replace(settings, window=window), closes_at, False


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


def _print_banner(port: int, data_dir: Path, ready_after: float, deadline: str) -> None:
    base = f"http://127.0.0.1:{port}"
    print(f"\nexamreg is ready after {ready_after:.1f}s\n")
    print(deadline)
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


class _DemoLock:
    """`D/demo.lock`, held (flock) while a demo runs on data dir D, with the holder's pid inside.

    Two demos on one data dir would share its servers, and the one that exits first would stop
    them under the other: a second `make demo` must find the first and leave it alone. The lock
    goes with the process, however it ends (a kill -9 leaves no stale lock behind).
    """

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "demo.lock"
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        """Raises UsageError (exit status 2) when another demo holds the lock."""
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            handle.close()
            raise UsageError(
                f"another examreg demo (pid {holder}) is running on {self.path.parent}; it is"
                " left untouched. Use it, stop it with Ctrl-C, or give this one another"
                " --data-dir and --port."
            ) from None
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def run_demo(args: argparse.Namespace, settings: Settings) -> int:
    data_dir = Path(args.data_dir or settings.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    lock = _DemoLock(data_dir)
    lock.acquire()
    try:
        # The port before anything starts: taken (another demo on another data dir, any other
        # program), the demo ends here without having started or stopped a server.
        sock = listen_socket("127.0.0.1", args.port)
        try:
            return _serve(args, settings, data_dir, sock)
        finally:
            sock.close()
    finally:
        lock.release()


def _serve(
    args: argparse.Namespace, settings: Settings, data_dir: Path, sock: socket.socket
) -> int:
    started = time.monotonic()
    services = EmbeddedServices(data_dir)
    # Servers already running (`examreg services start`) are not the demo's to stop.
    found_running = {"postgres": services.pg_running(), "valkey": services.redis_running()}
    print(f"starting embedded PostgreSQL and Valkey in {data_dir} …", flush=True)
    supervisor: Supervisor | None = None
    try:
        endpoints = services.start()
        settings = _demo_settings(settings, data_dir, endpoints)
        settings, closes_at, chosen = _choose_close(settings)
        asyncio.run(
            with_connection(
                endpoints.database_url,
                lambda conn: _prepare(conn, settings, data_dir, args.candidates),
            )
        )
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
        deadline = deadline_line(closes_at, datetime.now(UTC), chosen=chosen)
        _print_banner(args.port, data_dir, time.monotonic() - started, deadline)
        while not supervisor.stopping:
            supervisor.poll_once()
            time.sleep(0.2)
        return 0
    finally:
        if supervisor is not None:
            supervisor.stop()
        if not found_running["valkey"]:
            services.stop_redis()
        if not found_running["postgres"]:
            services.stop_postgres()
        kept = [name for name, running in found_running.items() if running]
        print(
            "stopped; data kept in",
            data_dir,
            f"({' and '.join(kept)} left running as found)" if kept else "",
            flush=True,
        )


def _demo_settings(settings: Settings, data_dir: Path, endpoints: Endpoints) -> Settings:
    """The servers' URLs and the demo's stored secret, for this process and its children."""
    secret_file = data_dir / "secret-key"
    if not secret_file.exists():
        write_private(secret_file, secrets.token_hex(32))
    os.environ["EXAMREG_DATABASE_URL"] = endpoints.database_url
    os.environ["EXAMREG_REDIS_URL"] = endpoints.redis_url
    os.environ["EXAMREG_SECRET_KEY"] = secret_file.read_text().strip()
    return dataclasses.replace(
        settings, database_url=endpoints.database_url, redis_url=endpoints.redis_url
    )
