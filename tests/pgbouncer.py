"""PgBouncer in transaction mode before the tests' PostgreSQL (tests/integration/test_pgbouncer.py).

The binary is Debian's `pgbouncer` package: when it is missing and the tests run as root with
apt-get, it is installed (as the browser tests install Chromium); otherwise the tests that need it
skip and say what to install. PgBouncer refuses to run as root, so as root it runs as the user the
embedded PostgreSQL runs as (or `nobody`).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from engine.adapters.embedded import PG_USER

PACKAGE = "pgbouncer"
# The login role the services use through PgBouncer: PgBouncer refuses a `role` startup
# parameter, so the role comes from this login role's own default (ALTER ROLE … SET role).
LOGIN_ROLE = "examreg_bouncer"


def _apt_install() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["apt-get", "install", "-y", "--no-install-recommends", PACKAGE],
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def binary() -> str:
    """pgbouncer on PATH (Debian's package under /usr/sbin), installing it when root."""
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
    found = shutil.which(PACKAGE, path=path)
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip(f"pgbouncer is not installed (Debian: sudo apt-get install -y {PACKAGE})")
    result = _apt_install()
    if result.returncode != 0:  # a fresh image has no package lists yet
        subprocess.run(["apt-get", "update"], capture_output=True, timeout=900, check=False)
        result = _apt_install()
    found = shutil.which(PACKAGE, path=path)
    if not found:
        pytest.fail(f"`apt-get install -y {PACKAGE}` did not provide it:\n{result.stderr[-2000:]}")
    return found


def version(path: str) -> tuple[int, int]:
    out = subprocess.run([path, "--version"], capture_output=True, text=True, check=False).stdout
    match = re.search(r"PgBouncer (\d+)\.(\d+)", out)
    assert match, out
    return int(match[1]), int(match[2])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_as() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    for name in (PG_USER, "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    pytest.skip("running as root without a user to run pgbouncer as")


@contextlib.contextmanager
def running(server_url: str, *, pool_size: int, prepared_statements: int = 0) -> Iterator[str]:
    """A PgBouncer in transaction mode before `server_url`'s server, with at most `pool_size`
    server connections per database and user; yields the URL of `server_url`'s database through
    it as LOGIN_ROLE."""
    path = binary()
    server = urlsplit(server_url)
    port = _free_port()
    user = _run_as()
    directory = Path(tempfile.mkdtemp(prefix="examreg-pgbouncer-"))
    directory.chmod(0o755)
    settings = [
        "[databases]",
        f"* = host={server.hostname} port={server.port}",
        "[pgbouncer]",
        "listen_addr = 127.0.0.1",
        f"listen_port = {port}",
        "unix_socket_dir =",
        "auth_type = trust",
        f"auth_file = {directory / 'users.txt'}",
        "pool_mode = transaction",
        f"default_pool_size = {pool_size}",
        "max_client_conn = 200",
        f"logfile = {directory / 'pgbouncer.log'}",
    ]
    if version(path) >= (1, 21):  # older versions know no such setting and keep none
        settings.append(f"max_prepared_statements = {prepared_statements}")
    (directory / "pgbouncer.ini").write_text("\n".join(settings) + "\n")
    (directory / "users.txt").write_text(f'"{LOGIN_ROLE}" ""\n')
    if user is not None:
        for item in (directory, *directory.iterdir()):
            os.chown(item, user.pw_uid, user.pw_gid)
    output = (directory / "stderr.txt").open("wb")
    process = subprocess.Popen(
        [path, str(directory / "pgbouncer.ini")],
        user=user.pw_uid if user else None,
        group=user.pw_gid if user else None,
        stdout=output,
        stderr=output,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                logs = [directory / "stderr.txt", directory / "pgbouncer.log"]
                text = "".join(log.read_text() for log in logs if log.exists())
                pytest.fail(f"pgbouncer did not start:\n{text}")
            time.sleep(0.05)
        yield urlunsplit(
            ("postgresql", f"{LOGIN_ROLE}@127.0.0.1:{port}", server.path, server.query, "")
        )
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        output.close()
        shutil.rmtree(directory, ignore_errors=True)


LOGIN_ROLE_SQL = f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{LOGIN_ROLE}') THEN
        CREATE ROLE {LOGIN_ROLE} LOGIN;
    END IF;
END
$$;
GRANT examreg_app TO {LOGIN_ROLE};
ALTER ROLE {LOGIN_ROLE} SET role = 'examreg_app';
"""
