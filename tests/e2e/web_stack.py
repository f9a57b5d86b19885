"""Real processes and a real Chromium for the browser tests (candidate pages, support console).

`examreg serve` and `examreg writer` run as supervised processes on the test servers; Debian's
`chromium` is driven by Playwright (never a downloaded browser) and installed with apt when it is
missing and we are root. Screenshots at phone (360×740) and desktop (1280×800) width go to
`test-artifacts/screenshots/`. The test modules wrap these in their own fixtures.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 800}
SERVE = [sys.executable, "-m", "engine", "serve", "--workers", "1"]


# -- the browser ------------------------------------------------------------------------------


def install_chromium() -> None:
    """Debian's chromium through apt, when it is missing and we are root; else say what to do."""
    if CHROMIUM.exists():
        return
    how = "apt-get install chromium"
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.fail(f"Chromium is missing at {CHROMIUM}; install it as root: {how}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "chromium"]
    if subprocess.run(install, env=env, capture_output=True, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, check=False)
        done = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.fail(f"could not install Chromium ({how}): {done.stderr[-2000:]}")
    if not CHROMIUM.exists():
        pytest.fail(f"{how} ran but {CHROMIUM} is still missing")


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium. Playwright's sync API runs an event loop of its own: while it is
    open, nothing may call asyncio.run(), so open it after the database fixtures."""
    install_chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright for Python is missing: pip install -e '.[test]'")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def shoot(page: Any, name: str) -> None:
    """Full-page screenshots at phone and desktop width; the page goes back to phone width."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(size)
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{label}.png"), full_page=True)


# -- the processes ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, procs: list[subprocess.Popen[bytes]], logs: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        for proc in procs:
            assert proc.poll() is None, "\n".join(p.read_text() for p in logs.glob("*.log"))
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"{url} not ready in 60 s"
        time.sleep(0.2)


class Writer:
    """Pause and resume the writer process (its supervisor stays untouched)."""

    def __init__(self, supervisor: subprocess.Popen[bytes]) -> None:
        self.supervisor = supervisor

    def _child(self) -> psutil.Process:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            children = psutil.Process(self.supervisor.pid).children()
            if children:
                return children[0]
            time.sleep(0.1)
        raise AssertionError("the writer supervisor has no child")

    def pause(self) -> None:
        self._child().send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._child().send_signal(signal.SIGCONT)


@contextmanager
def processes(
    database_url: str,
    redis_url: str,
    tmp_path: Path,
    servers: Mapping[str, Mapping[str, str]],
) -> Iterator[dict[str, Any]]:
    """One `examreg serve` per entry of `servers` (name → extra environment) and a writer.

    Yields each server's base URL by name, and the `Writer` under "writer".
    """
    base_env = {
        **os.environ,
        "EXAMREG_DATABASE_URL": database_url,
        "EXAMREG_REDIS_URL": redis_url,
        "EXAMREG_WRITER_BLOCK_MS": "200",
        "EXAMREG_IO_TIMEOUT_SECONDS": "2",
        "EXAMREG_LOG_LEVEL": "warning",
    }
    logs = tmp_path / "logs"
    logs.mkdir()
    ports = {name: free_port() for name in servers}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    handles = []
    try:
        for name, extra in servers.items():
            handle = (logs / f"{name}.log").open("w")
            handles.append(handle)
            procs[name] = subprocess.Popen(
                [*SERVE, "--port", str(ports[name])],
                env={**base_env, **extra, "EXAMREG_DATA_DIR": str(tmp_path / name)},
                stdout=handle,
                stderr=subprocess.STDOUT,
            )
        handle = (logs / "writer.log").open("w")
        handles.append(handle)
        procs["writer"] = subprocess.Popen(
            [sys.executable, "-m", "engine", "writer", "--processes", "1"],
            env={**base_env, "EXAMREG_DATA_DIR": str(tmp_path / "writer")},
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
        urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        for url in urls.values():
            wait_ready(url, list(procs.values()), logs)
        yield {**urls, "writer": Writer(procs["writer"])}
    finally:
        for proc in procs.values():
            for child in psutil.Process(proc.pid).children(recursive=True):
                child.send_signal(signal.SIGCONT)  # a paused writer must hear the SIGTERM
            proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        for handle in handles:
            handle.close()
