"""`examreg demo` on a fresh data dir: ready, a seeded login can submit, Ctrl-C stops everything."""

from __future__ import annotations

import csv
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.adapters.embedded import EmbeddedServices
from engine.domain.rostergen import generate_roster, sample_form

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_demo_serves_a_seeded_candidate_and_stops_cleanly(tmp_path: Path, server_dir: Path) -> None:
    data_dir = server_dir / "demo"
    port = _free_port()
    log = (tmp_path / "demo.log").open("w")
    started = time.monotonic()
    demo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "engine",
            "demo",
            "--data-dir",
            str(data_dir),
            "--port",
            str(port),
            "--candidates",
            "20",
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert demo.poll() is None, (tmp_path / "demo.log").read_text()
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "demo not ready in 120 s"
            time.sleep(0.3)
        print(f"demo ready after {time.monotonic() - started:.1f}s")

        with (data_dir / "demo-credentials.csv").open() as handle:
            credentials = list(csv.DictReader(handle))
        assert len(credentials) == 20
        with (data_dir / "demo-staff.csv").open() as handle:
            assert {row["role"] for row in csv.DictReader(handle)} == {
                "support",
                "school",
                "operator",
                "admin",
            }

        # No EXAMREG_CLOSES_AT given: the window closes at 17:00 in Vietnam a few days ahead,
        # the banner says so, and the operators' forecast projects to that close.
        window = httpx.get(f"{base}/api/v1/window").json()
        closes = datetime.fromisoformat(window["closes_at"])
        assert (closes.hour, closes.minute, closes.utcoffset()) == (17, 0, timedelta(hours=7))
        assert timedelta(days=2) < closes - datetime.now(UTC) <= timedelta(days=4)
        banner = (tmp_path / "demo.log").read_text()
        # Three days after today in Vietnam: 2 d 17 h to 3 d 17 h away, by the hour of the day.
        line = rf"Window closes {closes:%Y-%m-%d} 17:00 \(UTC\+07:00\), in [23] d"
        assert re.search(line, banner), banner
        with (data_dir / "demo-staff.csv").open() as handle:
            operator = next(r for r in csv.DictReader(handle) if r["role"] == "operator")
        staff = httpx.post(
            f"{base}/api/v1/staff/login",
            json={"username": operator["username"], "password": operator["password"]},
        ).json()["token"]
        deadline = time.monotonic() + 30
        while True:  # the API samples every 5 s; the projection needs two samples
            answer = httpx.get(
                f"{base}/api/v1/ops/capacity", headers={"Authorization": f"Bearer {staff}"}
            ).json()
            if answer["projection"] is not None or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert answer["projection"] is not None, answer["notes"]
        assert re.match(r"in [23] d", answer["display"]["projection"]["closes_in"])

        login = credentials[0]
        token = httpx.post(
            f"{base}/api/v1/auth/login",
            json={"login": login["login"], "password": login["password"]},
        ).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        # The seeded password is a school-issued one: it must be replaced before anything else.
        assert httpx.get(f"{base}/api/v1/me", headers=auth).status_code == 403
        changed = httpx.post(
            f"{base}/api/v1/auth/password",
            json={"current_password": login["password"], "new_password": "Demo-new-pass-2026"},
            headers=auth,
        )
        assert changed.status_code == 200, changed.text
        auth = {"Authorization": f"Bearer {changed.json()['token']}"}
        entry = next(e for e in generate_roster(20) if e.national_id == login["login"])
        form = sample_form(entry, random.Random(3))
        put = httpx.put(
            f"{base}/api/v1/me/registration",
            json=form,
            headers={**auth, "Idempotency-Key": "demo-1"},
        )
        assert put.status_code == 202, put.text
        receipt = put.json()["receipt_id"]
        deadline = time.monotonic() + 30
        while (
            httpx.get(f"{base}/api/v1/me/receipts/{receipt}", headers=auth).json()["status"]
            != "persisted"
        ):
            assert time.monotonic() < deadline, "the demo's writer did not persist the submission"
            time.sleep(0.2)
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            demo.wait(60)
        finally:
            log.close()
    assert demo.returncode == 0, (tmp_path / "demo.log").read_text()
    # Everything it started is stopped; the data stays.
    status = EmbeddedServices(data_dir).status()
    assert status == {"postgres": "stopped", "valkey": "stopped"}
    assert (data_dir / "postgres" / "PG_VERSION").exists()


def _demo(data_dir: Path, port: int, log: Any) -> subprocess.Popen[bytes]:
    argv = ["demo", "--data-dir", str(data_dir), "--port", str(port), "--candidates", "5"]
    command = [sys.executable, "-m", "engine", *argv, "--workers", "1"]
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)


def _second_demo(data_dir: Path, port: int) -> tuple[int | None, str]:
    """Another demo, which must give up by itself: (its exit status, or None if it went on to
    serve and had to be stopped; its output)."""
    argv = ["demo", "--data-dir", str(data_dir), "--port", str(port), "--candidates", "5"]
    command = [sys.executable, "-m", "engine", *argv, "--workers", "1"]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        out = proc.communicate(timeout=30)[0]
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGINT)  # it serves: stop it as its user would
        try:
            return None, proc.communicate(timeout=60)[0]
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            return None, proc.communicate()[0]


def test_a_second_demo_leaves_the_running_one_alone(tmp_path: Path, server_dir: Path) -> None:
    data_dir = server_dir / "demo"
    port = _free_port()
    log_path = tmp_path / "demo.log"
    log = log_path.open("w")
    first = _demo(data_dir, port, log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert first.poll() is None, log_path.read_text()
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "demo not ready in 120 s"
            time.sleep(0.3)
        running = EmbeddedServices(data_dir).status()

        # `make demo` again: the same data dir and port. Then the same data dir on another port.
        seconds = [_second_demo(data_dir, other_port) for other_port in (port, _free_port())]
        # Another data dir on the first one's port: refused before any server starts.
        elsewhere = server_dir / "elsewhere"
        third = _second_demo(elsewhere, port)

        # The first demo still serves, its servers untouched.
        assert EmbeddedServices(data_dir).status() == running
        ready = httpx.get(f"{base}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
        with (data_dir / "demo-credentials.csv").open() as handle:
            login = next(csv.DictReader(handle))
        answer = httpx.post(
            f"{base}/api/v1/auth/login",
            json={"login": login["login"], "password": login["password"]},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        # And the others said why they stopped, in one line each.
        for status, said in seconds:
            assert status == 2, said
            assert f"another examreg demo (pid {first.pid})" in said
            assert "Traceback" not in said
        assert third[0] == 2 and f"cannot listen on 127.0.0.1:{port}" in third[1], third
        assert not (elsewhere / "postgres").exists() and not (elsewhere / "valkey").exists()
    finally:
        first.send_signal(signal.SIGINT)
        try:
            first.wait(60)
        finally:
            log.close()
    assert first.returncode == 0, log_path.read_text()
    assert EmbeddedServices(data_dir).status() == {"postgres": "stopped", "valkey": "stopped"}


def test_a_demo_leaves_running_the_servers_it_found_running(
    tmp_path: Path, server_dir: Path
) -> None:
    data_dir = server_dir / "demo"
    services = EmbeddedServices(data_dir)
    services.start()  # `examreg services start` before the demo
    try:
        running = services.status()
        port = _free_port()
        log_path = tmp_path / "demo.log"
        with log_path.open("w") as log:
            demo = _demo(data_dir, port, log)
            try:
                deadline = time.monotonic() + 120
                while True:
                    assert demo.poll() is None, log_path.read_text()
                    try:
                        if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).is_success:
                            break
                    except httpx.TransportError:
                        pass
                    assert time.monotonic() < deadline, "demo not ready in 120 s"
                    time.sleep(0.3)
            finally:
                demo.send_signal(signal.SIGINT)
                demo.wait(60)
        assert demo.returncode == 0, log_path.read_text()
        assert services.status() == running
        assert "left running as found" in log_path.read_text()
    finally:
        services.destroy()
