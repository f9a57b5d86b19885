"""The benchmark's open-loop driver holds its rate against a real server and measures every request.

A hello-world (loadtest/hello_app.py) on uvicorn, one worker, loopback; the driver as a subprocess
for about two seconds in each mode.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_durability import _free_port

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def hello(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("driver")
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "loadtest.hello_app:app", "--port", str(port),
         "--log-level", "warning", "--no-access-log"],
        cwd=ROOT,
    )  # fmt: skip
    data = tmp / "driver.tsv"
    templates = {"a": '{"national_id": "%(nid)s", "full_name": "%(name)s"}'}
    data.write_text(
        "#templates\t" + json.dumps(templates) + "\n"
        "1\ttoken1\t079208028316\tPHAN GIA HOÀNG\t2008-07-19\tmale\ta\t02\t005\n"
        "2\ttoken2\t001308012345\tLÊ THỊ AN\t2008-01-02\tfemale\ta\t01\t001\n",
        encoding="utf-8",
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/hello", timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, "hello-world did not start"
                time.sleep(0.1)
        yield {"port": port, "data": data, "tmp": tmp}
    finally:
        server.terminate()
        server.wait(15)


def _drive(hello: dict[str, Any], *args: str) -> dict[str, Any]:
    out = hello["tmp"] / "result.json"
    subprocess.run(
        [sys.executable, "-m", "loadtest.driver", "--port", str(hello["port"]), "--path",
         "/hello", "--data", str(hello["data"]), "--out", str(out), *args],
        cwd=ROOT, check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def test_open_loop_sends_every_request_at_its_rate_and_measures_from_the_intended_time(
    hello: dict[str, Any],
) -> None:
    result = _drive(hello, "--rate", "300", "--duration", "2", "--warmup", "0.5")
    assert result["scheduled"] == 600
    assert result["ok"] == result["answered"] == 600
    assert result["measured"] == 450  # the first 0.5 s are warm-up
    assert result["admitted_measured"] == 450  # every measured answer was a 2xx
    assert result["achieved_rate"] == pytest.approx(300, rel=0.02)
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]
    assert result["schedule_seconds"] == pytest.approx(2.0, abs=0.1)


def test_closed_loop_keeps_the_connections_busy_until_the_count_is_done(
    hello: dict[str, Any],
) -> None:
    result = _drive(
        hello, "--rate", "1", "--duration", "1", "--warmup", "0", "--closed-loop",
        "--count", "800", "--connections", "8", "--preconnect", "8",
    )  # fmt: skip
    assert result["ok"] == 800 and result["unfinished"] == 0
    assert result["peak_connections"] == 8
    assert result["ok_per_s"] > 100
    assert result["service_p99_ms"] > 0


@pytest.mark.parametrize("kind", ["me", "login"])
def test_get_and_login_requests_are_held_at_their_rate_like_registrations(
    hello: dict[str, Any], kind: str
) -> None:
    # hello-world answers GET and POST /hello: proves the bytes are a well-formed request
    # the server reads and answers, at the rate asked.
    result = _drive(
        hello, "--rate", "200", "--duration", "1.5", "--warmup", "0.5", "--request", kind,
        "--password", "Load-test-2026",
    )  # fmt: skip
    assert result["scheduled"] == 300
    assert result["statuses"] == {"200": 300}
    assert result["measured"] == 200
