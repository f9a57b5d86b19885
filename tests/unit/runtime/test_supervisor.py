"""The supervisor restarts a child that dies and stops every child on request (real processes)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from engine.runtime.supervisor import Child, Supervisor, prepare_metrics_dir


def test_a_child_that_exits_is_restarted_and_all_stop_on_request(tmp_path: Path) -> None:
    counter = tmp_path / "starts"
    crashing = Child(
        "crasher",
        [sys.executable, "-c", f"open({str(counter)!r}, 'a').write('x'); raise SystemExit(3)"],
    )
    steady = Child("steady", [sys.executable, "-c", "import time; time.sleep(60)"])
    supervisor = Supervisor([crashing, steady], env={}, stop_timeout=5)
    supervisor.start()
    try:
        deadline = time.monotonic() + 10
        while not (counter.exists() and len(counter.read_text()) >= 2):
            assert time.monotonic() < deadline, "the crashed child was not restarted"
            supervisor.poll_once()
            time.sleep(0.05)
    finally:
        supervisor.stop()
    assert crashing.restarts >= 1
    assert steady.process is not None and steady.process.poll() is not None  # stopped
    assert not supervisor.stopping
    supervisor.request_stop()
    assert supervisor.stopping


def test_stale_live_gauges_of_dead_processes_are_dropped(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    (metrics / "gauge_livesum_999999.db").write_bytes(b"")
    (metrics / "counter_999999.db").write_bytes(b"")
    prepare_metrics_dir(metrics)
    assert not (metrics / "gauge_livesum_999999.db").exists()
    assert (metrics / "counter_999999.db").exists()  # counters of dead workers are kept
