"""`examreg writer` with EXAMREG_WRITER_METRICS_PORT serves its process tree's own metrics.

Writers in their own container or pod share no metrics directory with an API (deploy/,
docs/deploy.md): without this port their counters never reach Prometheus. Here a real writer
tree persists a submission and its `/metrics` counts the row.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.settings import Settings
from tests.conftest import make_harness
from tests.support import form_for

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _scrape(port: int, path: str = "/metrics") -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def _rows_persisted(text: str) -> float:
    found = re.search(r"^examreg_writer_rows_persisted_total (\S+)$", text, re.M)
    return float(found[1]) if found else -1.0


@pytest.fixture
def writer_tree(
    settings: Settings, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """`examreg writer` with the metrics port, stopped with SIGTERM at the end (exit 0)."""
    port = _free_port()
    env = {
        **os.environ,
        "EXAMREG_DATABASE_URL": settings.database_url or "",
        "EXAMREG_REDIS_URL": settings.redis_url or "",
        "EXAMREG_DATA_DIR": str(tmp_path / "writer"),
        "EXAMREG_WRITER_BLOCK_MS": "200",
        "EXAMREG_WRITER_METRICS_PORT": str(port),
        "EXAMREG_LOG_LEVEL": "warning",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with (tmp_path / "writer.log").open("w") as log:
        writer = subprocess.Popen(
            [sys.executable, "-m", "engine", "writer", "--processes", "1"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield writer, port
        finally:
            writer.send_signal(signal.SIGTERM)
            writer.wait(30)
    assert writer.returncode == 0, (tmp_path / "writer.log").read_text()


async def test_the_writer_tree_serves_its_counters(
    settings: Settings,
    roster: list[dict[str, Any]],
    tmp_path: Path,
    writer_tree: tuple[subprocess.Popen[bytes], int],
) -> None:
    writer, port = writer_tree
    async for harness in make_harness(settings):
        candidate = roster[0]
        auth = await harness.login(candidate)
        put = await harness.client.put(
            "/api/v1/me/registration",
            json=form_for(candidate),
            headers={**auth, "Idempotency-Key": "writer-metrics"},
        )
        assert put.status_code == 202, put.text
    deadline = time.monotonic() + 60  # a loaded machine: the writer's start is slow
    text = ""
    while time.monotonic() < deadline:
        assert writer.poll() is None, (tmp_path / "writer.log").read_text()
        try:
            status, text = await asyncio.to_thread(_scrape, port)
        except OSError:
            status = 0
        if status == 200 and _rows_persisted(text) >= 1:
            break
        await asyncio.sleep(0.2)
    assert _rows_persisted(text) >= 1, text[-2000:] or (tmp_path / "writer.log").read_text()
    assert "examreg_writer_batches_total" in text
    assert (await asyncio.to_thread(_scrape, port, "/elsewhere"))[0] == 404
    assert candidate["national_id"] not in text  # no personal data in a label
