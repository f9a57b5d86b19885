"""A real Prometheus scrapes a real API and writer and evaluates the committed rules.

`examreg serve` (1 worker) and `examreg writer` (1 process) run as in test_durability.py, sharing
one data directory, so the API's /metrics carries the writer's counters too (multiprocess mode).
Prometheus (Debian's package) runs on loopback with a 1 s scrape and evaluation interval and
dashboards/prometheus/rules.yml. After some registrations the recording rules must show arrivals,
a drain, a backlog back at zero and one writer; no rule may fail to evaluate; and the Capacity
dashboard's queries, as dashboards/preview.py runs them, must return data. A second Prometheus,
whose only target never answers, renders an alert's runbook_url from the external label
`runbook_base` (promtool 2.42's rule tests cannot set external labels).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.prometheus_bin import DASHBOARDS, ROOT, binary
from tests.support import TEST_PASSWORD, form_for

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

ARTIFACTS = ROOT / "test-artifacts" / "preview"
CANDIDATES = 16
EDITS = 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for proc in processes:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in processes:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture
def stack(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """API, writer and a Prometheus scraping the API every second."""
    api_port, prom_port = _free_port(), _free_port()
    env = {
        **os.environ,
        "EXAMREG_DATABASE_URL": database_url,
        "EXAMREG_REDIS_URL": redis_url,
        "EXAMREG_DATA_DIR": str(tmp_path),
        "EXAMREG_WRITER_BLOCK_MS": "200",
        "EXAMREG_LOG_LEVEL": "warning",
    }
    config = tmp_path / "prometheus.yml"
    # JSON is YAML: the committed rules, a 1 s cadence, the API of this test as the only target.
    config.write_text(
        json.dumps(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(DASHBOARDS / "prometheus" / "rules.yml")],
                "scrape_configs": [
                    {
                        "job_name": "examreg-api",
                        "static_configs": [{"targets": [f"127.0.0.1:{api_port}"]}],
                    }
                ],
            }
        )
    )
    logs = tmp_path / "logs"
    logs.mkdir()
    processes: list[subprocess.Popen[bytes]] = []
    handles = []
    try:
        for name, argv, extra in (
            (
                "api",
                [
                    sys.executable,
                    "-m",
                    "engine",
                    "serve",
                    "--workers",
                    "1",
                    "--port",
                    str(api_port),
                ],
                env,
            ),
            ("writer", [sys.executable, "-m", "engine", "writer", "--processes", "1"], env),
            (
                "prometheus",
                [
                    binary("prometheus"),
                    f"--config.file={config}",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    "--log.level=warn",
                ],
                None,
            ),
        ):
            handle = (logs / f"{name}.log").open("w")
            handles.append(handle)
            processes.append(
                subprocess.Popen(argv, env=extra, stdout=handle, stderr=subprocess.STDOUT)
            )
        yield {
            "api": f"http://127.0.0.1:{api_port}",
            "prometheus": f"http://127.0.0.1:{prom_port}",
            "logs": logs,
        }
    finally:
        _stop(processes)
        for handle in handles:
            handle.close()


async def _until(check: Any, what: str, within: float = 30.0) -> Any:
    """Poll `check()` until it returns something truthy; fail naming `what` after `within` s."""
    deadline = time.monotonic() + within
    while True:
        try:
            value = await check()
        except (httpx.TransportError, KeyError, IndexError, ValueError):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within:.0f}s waiting for {what}")
        await asyncio.sleep(0.5)


async def _query(client: httpx.AsyncClient, base: str, expr: str) -> float | None:
    body = (await client.get(f"{base}/api/v1/query", params={"query": expr})).json()
    assert body["status"] == "success", body
    result = body["data"]["result"]
    return float(result[0]["value"][1]) if result else None


async def _register(client: httpx.AsyncClient, candidate: dict[str, Any]) -> None:
    login = await client.post(
        "/api/v1/auth/login", json={"login": candidate["national_id"], "password": TEST_PASSWORD}
    )
    assert login.status_code == 200, login.text
    auth = {"Authorization": f"Bearer {login.json()['token']}"}
    for i in range(EDITS):
        response = await client.put(
            "/api/v1/me/registration",
            json=form_for(candidate, seed=i),
            headers={**auth, "Idempotency-Key": f"prom-{candidate['candidate_id']}-{i}"},
        )
        assert response.status_code == 202, response.text


async def test_the_recording_rules_follow_a_real_api_and_writer(
    stack: dict[str, Any], roster: list[dict[str, Any]]
) -> None:
    prom = stack["prometheus"]
    async with (
        httpx.AsyncClient(base_url=stack["api"], timeout=10) as api,
        httpx.AsyncClient(timeout=10) as client,
    ):

        async def ready() -> bool:
            api_ready = (await api.get("/readyz")).status_code == 200
            return api_ready and (await client.get(f"{prom}/-/ready")).status_code == 200

        await _until(ready, "the API and Prometheus to be ready", within=60)
        await _until(lambda: _query(client, prom, 'up{job="examreg-api"} == 1'), "the first scrape")

        await asyncio.gather(*(_register(api, c) for c in roster[:CANDIDATES]))
        accepted = CANDIDATES * EDITS

        arrivals = await _until(
            lambda: _query(client, prom, "examreg:arrivals:rate1m > 0"), "an arrival rate"
        )
        assert 0 < arrivals <= accepted  # at most everything within one second
        await _until(lambda: _query(client, prom, "examreg:drain:rate1m > 0"), "a drain rate")

        async def drained() -> bool:
            total = await _query(client, prom, "sum(examreg_writer_rows_persisted_total)")
            backlog = await _query(client, prom, "examreg:backlog:entries")
            return total == accepted and backlog == 0

        await _until(drained, "every row persisted and the backlog back at 0")
        assert await _query(client, prom, "examreg:writers:count") == 1
        assert await _query(client, prom, "examreg:api_workers:count") == 1
        assert await _query(client, prom, "examreg:backlog_limit:entries") == 200_000
        assert await _query(client, prom, "examreg:expected_wait:seconds") == 0
        ratio = await _until(
            lambda: _query(client, prom, "examreg:writer_rows_per_busy_second:ratio5m"),
            "the writers' rows per busy second",
        )
        assert ratio > 0

        # Every rule evaluated without error (a bad vector match only shows up at run time).
        groups = (await client.get(f"{prom}/api/v1/rules")).json()["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        assert len(rules) > 40
        broken = {r["name"]: r.get("lastError") for r in rules if r["health"] != "ok"}
        assert broken == {}
        firing = {r["name"] for r in rules if r["type"] == "alerting" and r["state"] == "firing"}
        assert firing == set(), "a healthy run raised alerts"

        # The preview's fetch runs the Capacity dashboard's queries against this Prometheus.
        preview = _load_preview()
        panels = {
            p.title: p for p in preview.panels(json.loads(preview.DEFAULT_DASHBOARD.read_text()))
        }
        end = time.time()
        series = await asyncio.to_thread(
            preview.fetch, prom, panels["Arrivals vs drain"], end - 120, end, 1.0
        )
        assert {s.label for s in series if s.values} >= {"arrivals", "drain"}

        # Both dashboards, drawn from this real run, beside the unit tests' synthetic ones.
        def source(panel: Any, start: float, end: float, step: float) -> Any:
            return preview.fetch(prom, panel, start, end, step)

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for board in preview.DEFAULT_DASHBOARDS:
            out = ARTIFACTS / f"e2e-{board.stem}.png"
            dashboard = json.loads(board.read_text())
            count = await asyncio.to_thread(
                preview.preview, dashboard, source, out, start=end - 60, end=end, step=1.0
            )
            assert count == len(preview.panels(dashboard))
            assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _load_preview() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("dashboards_preview", DASHBOARDS / "preview.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


RUNBOOK_BASE = "https://wiki.ops.test/examreg/runbook.md"


@pytest.fixture
def unanswered_prometheus(tmp_path: Path) -> Iterator[str]:
    """A Prometheus with the committed rules, `runbook_base` set, and a target that never
    answers (so ExamregApiDown is pending at once)."""
    prom_port, dead_port = _free_port(), _free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        json.dumps(
            {
                "global": {
                    "scrape_interval": "1s",
                    "evaluation_interval": "1s",
                    "external_labels": {"system": "examreg", "runbook_base": RUNBOOK_BASE},
                },
                "rule_files": [str(DASHBOARDS / "prometheus" / "rules.yml")],
                "scrape_configs": [
                    {
                        "job_name": "examreg-api",
                        "static_configs": [{"targets": [f"127.0.0.1:{dead_port}"]}],
                    }
                ],
            }
        )
    )
    with (tmp_path / "prometheus.log").open("w") as log:
        proc = subprocess.Popen(
            [
                binary("prometheus"),
                f"--config.file={config}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield f"http://127.0.0.1:{prom_port}"
        finally:
            _stop([proc])


async def test_runbook_urls_are_absolute_links_from_the_configured_base(
    unanswered_prometheus: str,
) -> None:
    async with httpx.AsyncClient(timeout=10) as client:

        async def api_down() -> dict[str, Any] | None:
            body = (await client.get(f"{unanswered_prometheus}/api/v1/alerts")).json()
            found = [
                a for a in body["data"]["alerts"] if a["labels"]["alertname"] == "ExamregApiDown"
            ]
            return found[0] if found else None

        alert = await _until(api_down, "ExamregApiDown to be pending", within=60)
    # The alert is rendered by Prometheus itself from prometheus.yml's external label.
    assert alert["annotations"]["runbook_url"] == f"{RUNBOOK_BASE}#examregapidown"
