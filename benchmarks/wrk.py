"""wrk, the closed-loop figure of `make bench`: find or install it, run it, read its report.

wrk is Debian's `wrk` package. When it is missing and the benchmark runs as root with apt-get, the
package is installed (as the tests install Prometheus); otherwise the figure is skipped and
results.json says why. `parse` is pure: it reads wrk's text report (with `--latency`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

PACKAGE = "wrk"

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_DURATION = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h),")
_PERCENTILE = re.compile(r"^\s*(50|75|90|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$")
_SOCKET = re.compile(r"connect (\d+), read (\d+), write (\d+), timeout (\d+)")


@dataclass(frozen=True)
class Wrk:
    """Where wrk is, or why it is not (`path` None)."""

    path: str | None
    note: str | None = None


def _apt_install() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["apt-get", "install", "-y", "--no-install-recommends", PACKAGE],
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def find_or_install() -> Wrk:
    """wrk on PATH; else Debian's package when root with apt-get; else the reason it is missing."""
    found = shutil.which("wrk")
    if found:
        return Wrk(found)
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return Wrk(None, "wrk is not installed (Debian package `wrk`: sudo apt-get install wrk)")
    result = _apt_install()
    if result.returncode != 0:  # a fresh image has no package lists yet
        subprocess.run(["apt-get", "update"], capture_output=True, timeout=600, check=False)
        result = _apt_install()
    found = shutil.which("wrk")
    if found:
        return Wrk(found)
    tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
    return Wrk(None, f"`apt-get install {PACKAGE}` did not provide wrk: {tail[0]}")


def _ms(value: str, unit: str) -> float:
    return round(float(value) * _UNITS_MS[unit], 3)


def parse(report: str) -> dict[str, Any]:
    """wrk's report as numbers: requests, seconds, req/s, answers that were not 2xx/3xx, socket
    errors, p50 and p99 in ms. A report without its summary line raises ValueError."""
    requests: int | None = None
    seconds = 0.0
    percentiles: dict[str, float] = {}
    non_2xx = 0
    socket_errors = 0
    rate: float | None = None
    for line in report.splitlines():
        if match := _DURATION.match(line):
            requests = int(match[1])
            seconds = _ms(match[2], match[3]) / 1000
        elif match := _PERCENTILE.match(line):
            percentiles[match[1]] = _ms(match[2], match[3])
        elif line.startswith("Requests/sec:"):
            rate = float(line.split(":", 1)[1])
        elif line.strip().startswith("Non-2xx or 3xx responses:"):
            non_2xx = int(line.split(":", 1)[1])
        elif line.strip().startswith("Socket errors:") and (match := _SOCKET.search(line)):
            socket_errors = sum(int(n) for n in match.groups())
    if requests is None or seconds <= 0:
        raise ValueError("not a wrk report: no 'N requests in T' line")
    per_s = rate if rate is not None else requests / seconds
    return {
        "requests": requests,
        "seconds": round(seconds, 3),
        "requests_per_s": round(per_s, 1),
        "non_2xx": non_2xx,
        "ok_per_s": round(per_s * (requests - non_2xx) / max(1, requests), 1),
        "socket_errors": socket_errors,
        "p50_ms": percentiles.get("50"),
        "p99_ms": percentiles.get("99"),
    }


def run(
    wrk: str,
    url: str,
    *,
    seconds: float,
    connections: int = 64,
    threads: int = 2,
    script: str | None = None,
    script_args: tuple[str, ...] = (),
) -> dict[str, Any]:
    """One bounded closed-loop run (`connections` requests always in flight), parsed."""
    argv = [wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--latency"]
    if script:
        argv += ["-s", script]
    argv.append(url)
    if script_args:
        argv += ["--", *script_args]
    out = subprocess.run(
        argv, capture_output=True, text=True, timeout=seconds + 60, check=False
    ).stdout
    return {"connections": connections, "threads": threads, **parse(out)}
