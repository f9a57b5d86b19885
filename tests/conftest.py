"""Shared fixtures: real PostgreSQL and Redis/Valkey for every integration and e2e test.

The servers are the embedded default, started once per session in a temporary directory, unless
EXAMREG_DATABASE_URL and EXAMREG_REDIS_URL point at servers of your own. The schema and a small
roster (past the first-login password change) go into a template database once; each test gets
its own copy (CREATE DATABASE … TEMPLATE), and Redis is flushed before each test (the
server-side functions survive FLUSHALL).

A Valkey Cluster (three masters, one replica each, from the same embedded binary) starts on
first use, once per session (`cluster`), unless EXAMREG_TEST_CLUSTER_URL names one; tests (or
modules) marked `topologies` run on both, through the `topology` parameter of `redis_url`.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
import redis
from hypothesis import HealthCheck, Phase
from hypothesis import settings as hypothesis_settings

from engine.adapters import store, streams
from engine.adapters.embedded import EmbeddedCluster, EmbeddedServices
from engine.settings import Settings, load
from tests.support import TEST_PASSWORD, build_roster_rows

# Property tests (Hypothesis): bounded for `make test`, many more with HYPOTHESIS_PROFILE=long.
# The examples of one test share its fixtures (one database, one Redis) on purpose: each example
# adds rows and checks its own, so the function-scoped-fixture health check does not apply.
hypothesis_settings.register_profile(
    "examreg",
    max_examples=100,
    deadline=None,
    print_blob=True,
    # No "explain" phase: on Python < 3.12 it traces every line, far too slow for real servers.
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
hypothesis_settings.register_profile(
    "long", hypothesis_settings.get_profile("examreg"), max_examples=2_000
)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "examreg"))


@dataclass(frozen=True)
class Servers:
    database_url: str  # the maintenance database; tests get their own
    redis_url: str
    embedded: EmbeddedServices | None  # None when the servers are external


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def server_dirs() -> Iterator[Path]:
    """A root for data directories the PostgreSQL server user (when we are root) must reach.

    Not under pytest's basetemp: any pytest session that starts (a concurrent run, a subprocess)
    resets /tmp/pytest-of-<user> to 0700, which would lock the server user out mid-run.
    """
    root = Path(tempfile.mkdtemp(prefix="examreg-test-"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def server_dir(server_dirs: Path) -> Path:
    """A fresh directory under `server_dirs` for one test."""
    return Path(tempfile.mkdtemp(dir=server_dirs))


@pytest.fixture(scope="session")
def servers(server_dirs: Path) -> Iterator[Servers]:
    database_url = os.environ.get("EXAMREG_DATABASE_URL")
    redis_url = os.environ.get("EXAMREG_REDIS_URL")
    if database_url and redis_url:
        yield Servers(database_url, redis_url, None)
        return
    embedded = EmbeddedServices(server_dirs / "services", redis_maxmemory="1gb")
    endpoints = embedded.start()
    try:
        yield Servers(endpoints.database_url, endpoints.redis_url, embedded)
    finally:
        embedded.destroy()


@dataclass(frozen=True)
class ClusterServers:
    """The Valkey Cluster of the session: seeds URL and, when embedded, its nodes' control."""

    redis_url: str  # redis+cluster://…
    embedded: EmbeddedCluster | None  # None when EXAMREG_TEST_CLUSTER_URL names one of your own


@pytest.fixture(scope="session")
def cluster(server_dirs: Path) -> Iterator[ClusterServers]:
    """A 3-master Valkey Cluster with one replica each (embedded, started on first use), or the
    cluster EXAMREG_TEST_CLUSTER_URL names."""
    url = os.environ.get("EXAMREG_TEST_CLUSTER_URL")
    if url:
        yield ClusterServers(url, None)
        return
    embedded = EmbeddedCluster(server_dirs / "cluster", maxmemory="512mb")
    endpoints = embedded.start()
    try:
        yield ClusterServers(endpoints.redis_url, embedded)
    finally:
        embedded.destroy()


def flush_cluster(url: str) -> None:
    """FLUSHALL on every master of the cluster `url` names (the functions survive it)."""
    seeds = streams.cluster_seeds(url)
    client = redis.RedisCluster(host=seeds[0][0], port=seeds[0][1])
    try:
        client.flushall(target_nodes=redis.RedisCluster.PRIMARIES)
    finally:
        client.close()


TEMPLATE = "examreg_test_template"


async def _build_template(servers: Servers) -> list[dict[str, Any]]:
    admin = await asyncpg.connect(servers.database_url)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {TEMPLATE}")
        await admin.execute(f"CREATE DATABASE {TEMPLATE}")
    finally:
        await admin.close()
    conn = await asyncpg.connect(_with_database(servers.database_url, TEMPLATE))
    try:
        await store.migrate(conn)
        rows, roster = build_roster_rows()
        ids = await store.insert_candidates(conn, rows)
        # The roster after the first-login change: a test of the forced change (403
        # password_change_required, the /password page) sets the flag for its own candidate.
        await conn.execute("UPDATE candidates SET must_change_password = false")
        for entry in roster:
            entry["candidate_id"] = ids[entry["national_id"]]
    finally:
        await conn.close()
    return roster


@pytest.fixture(scope="session")
def roster(servers: Servers) -> list[dict[str, Any]]:
    """The candidates of the template database (all with TEST_PASSWORD), with their ids."""
    return asyncio.run(_build_template(servers))


@contextlib.contextmanager
def database_copy(servers: Servers, prefix: str = "t") -> Iterator[str]:
    """A fresh copy of the template database, dropped (with its connections) at the end."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"

    async def execute(sql: str) -> None:
        admin = await asyncpg.connect(servers.database_url)
        try:
            await admin.execute(sql)
        finally:
            await admin.close()

    asyncio.run(execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}"))
    try:
        yield _with_database(servers.database_url, name)
    finally:
        asyncio.run(execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture
def database_url(servers: Servers, roster: list[dict[str, Any]]) -> Iterator[str]:
    """A fresh copy of the template database for one test."""
    with database_copy(servers) as url:
        yield url


TOPOLOGIES = ("single", "cluster")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test marked `topologies` runs once per topology: the same code against the single
    Valkey and against the 3-master cluster (`topology` is `single` for every other test)."""
    if metafunc.definition.get_closest_marker("topologies") and "topology" in metafunc.fixturenames:
        metafunc.parametrize("topology", TOPOLOGIES, indirect=True)


@pytest.fixture
def topology(request: pytest.FixtureRequest) -> str:
    return str(getattr(request, "param", "single"))


@pytest.fixture
def redis_url(servers: Servers, topology: str, request: pytest.FixtureRequest) -> str:
    """A flushed Redis for one test: the single node, or the cluster for `topology` cluster."""
    if topology == "cluster":
        cluster_servers: ClusterServers = request.getfixturevalue("cluster")
        flush_cluster(cluster_servers.redis_url)
        return cluster_servers.redis_url
    client = redis.Redis.from_url(servers.redis_url)
    try:
        client.flushall()
    finally:
        client.close()
    return servers.redis_url


@pytest.fixture
def settings(database_url: str, redis_url: str, tmp_path: Path) -> Settings:
    """Settings for one test: its own database, a flushed Redis, fast writer timings, and the
    in-process client's host (`testserver`) trusted."""
    return load(
        env={},
        database_url=database_url,
        redis_url=redis_url,
        data_dir=tmp_path,
        writer_block_ms=100,
        writer_claim_idle_ms=400,
        writer_max_deliveries=2,
        writer_shutdown_seconds=5.0,
        secret_key="test-secret",
        trusted_hosts=("testserver", "localhost", "127.0.0.1"),
    )


@dataclass
class Harness:
    """An app under test, reached in-process, with its services."""

    client: httpx.AsyncClient
    settings: Settings
    services: Any  # engine.app.Services
    app: Any = None  # the Starlette app (its state: services, loop_lag)

    async def login(self, candidate: dict[str, Any]) -> dict[str, str]:
        response = await self.client.post(
            "/api/v1/auth/login",
            json={"login": candidate["national_id"], "password": TEST_PASSWORD},
        )
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['token']}"}


@pytest.fixture
async def harness(settings: Settings) -> AsyncIterator[Harness]:
    async for value in make_harness(settings):
        yield value


async def make_harness(
    settings: Settings, client: tuple[str, int] = ("203.0.113.7", 50000)
) -> AsyncIterator[Harness]:
    """The app for `settings` in-process; every request comes from the peer `client`."""
    from engine.app import create_app

    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=client)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Harness(client, settings, app.state.services, app)


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    assert settings.database_url is not None
    pool = await store.create_pool(settings.database_url, size=4)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def aredis(settings: Settings) -> AsyncIterator[Any]:
    assert settings.redis_url is not None
    client = streams.connect(settings.redis_url)
    await streams.load_functions(client)
    try:
        yield client
    finally:
        await client.aclose()


def with_settings(settings: Settings, **changes: Any) -> Settings:
    return replace(settings, **changes)


def write_credentials(path: Path, roster: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["login", "password", "candidate_id"])
        for entry in roster:
            writer.writerow([entry["national_id"], TEST_PASSWORD, entry["candidate_id"]])
