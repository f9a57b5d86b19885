"""Prometheus's binaries for the tests: Debian's `prometheus` package, installed when missing.

`promtool` checks the configuration, the rules and their unit tests; `prometheus` runs for real in
tests/e2e/test_prometheus.py. When a binary is missing and the tests run as root with apt-get, the
package is installed (as the browser tests install Chromium); otherwise the test fails and says
exactly what to install. It never skips: unchecked dashboards would pass silently.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

PACKAGE = "prometheus"
ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = ROOT / "dashboards"


def _apt_install() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["apt-get", "install", "-y", "--no-install-recommends", PACKAGE],
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def binary(name: str) -> str:
    """The path of `name` (promtool or prometheus), installing Debian's package if need be."""
    found = shutil.which(name)
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.fail(
            f"`{name}` is not installed. Install Debian's `{PACKAGE}` package "
            f"(`sudo apt-get install -y {PACKAGE}`), which provides promtool and prometheus; "
            "the dashboard and alert tests need them.",
            pytrace=False,
        )
    result = _apt_install()
    if result.returncode != 0:  # a fresh image has no package lists yet
        subprocess.run(["apt-get", "update"], capture_output=True, timeout=900, check=False)
        result = _apt_install()
    found = shutil.which(name)
    if not found:
        pytest.fail(
            f"`apt-get install -y {PACKAGE}` did not provide `{name}`:\n{result.stderr[-2000:]}",
            pytrace=False,
        )
    return found


def run_promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary("promtool"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
