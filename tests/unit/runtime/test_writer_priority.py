"""A writer process lowers its own CPU priority at start, so the API gets the CPU first."""

from __future__ import annotations

import os
import subprocess
import sys


def test_yield_cpu_adds_the_configured_niceness_to_the_process() -> None:
    # In a child process: niceness cannot be taken back by an unprivileged process.
    code = "import os; from engine.runtime.writer import yield_cpu; print(yield_cpu(3), os.nice(0))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    expected = min(19, os.nice(0) + 3)
    assert [int(v) for v in out] == [expected, expected]
