"""What the commands and the demo share to start things: sockets, process trees, connections.

Owns the user-fixable error (`UsageError`, printed as one line with exit status 2), the check that
the two server URLs are set, a PostgreSQL connection for one command, the listening socket the API
workers inherit, the children and environment the supervisor starts, waiting for readiness, and
the CSV files the commands write (owner-only: they hold passwords).
"""

from __future__ import annotations

import csv
import os
import socket
import time
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from engine.adapters import backend, store
from engine.adapters.files import open_private
from engine.runtime.supervisor import Child, Supervisor, prepare_metrics_dir, python_argv
from engine.settings import Settings


class UsageError(Exception):
    """Something the user can fix; printed without a traceback."""


def require_urls(settings: Settings) -> tuple[str, str]:
    if not settings.database_url or not settings.redis_url:
        raise UsageError(
            "EXAMREG_DATABASE_URL and EXAMREG_REDIS_URL are not set. For the embedded default run "
            "`examreg services start` and export the two lines it prints."
        )
    return settings.database_url, settings.redis_url


async def with_connection(dsn: str, action: Callable[[backend.Connection], Awaitable[Any]]) -> Any:
    """Run `action` on one PostgreSQL connection; an unreachable server is a `UsageError`."""
    try:
        conn = await store.connect(dsn, connect_timeout=10)
    except backend.POSTGRES_ERRORS as exc:
        raise UsageError(f"cannot connect to PostgreSQL: {exc}") from exc
    try:
        return await action(conn)
    finally:
        await conn.close()


def listen_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def children(sock: socket.socket | None, api_workers: int, writers: int) -> list[Child]:
    children = []
    if sock is not None:
        fd = sock.fileno()
        children += [
            Child(f"api-{i}", python_argv("_api-worker", "--fd", str(fd)), pass_fds=(fd,))
            for i in range(api_workers)
        ]
    children += [
        Child(
            f"writer-{i}", python_argv("_writer-process", "--index", str(i), "--of", str(writers))
        )
        for i in range(writers)
    ]
    return children


def child_env(settings: Settings, data_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(prepare_metrics_dir(data_dir / "metrics"))
    env.setdefault("EXAMREG_SECRET_KEY", settings.secret_key)
    return env


def supervise(children: list[Child], env: dict[str, str]) -> int:
    supervisor = Supervisor(children, env)
    supervisor.install_signal_handlers()
    supervisor.run()
    return 0


def wait_ready(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback URL we built
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A CSV of credentials: readable by its owner only (it holds plaintext passwords)."""
    with open_private(path) as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
