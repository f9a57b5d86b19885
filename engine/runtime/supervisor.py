"""Process supervision: run API workers and writers as children; restart the ones that die.

Owns the children's lifecycle: start, watch, restart with backoff after a crash, and on SIGINT or
SIGTERM stop them all (SIGTERM, then SIGKILL after a timeout). It also prepares the shared
Prometheus multiprocess directory. It must not import the web app or the writer: children are
separate interpreters started from their command lines.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from engine.adapters import metrics

log = logging.getLogger("examreg.supervisor")

# How long a stop waits for the children after SIGTERM before it kills them. It must outlast an
# API worker's drain (cli.API_DRAIN_SECONDS) and a writer's EXAMREG_WRITER_SHUTDOWN_SECONDS, and
# a deployment's grace period must outlast it (deploy/, checked by tests/unit/test_deploy.py).
STOP_TIMEOUT_SECONDS = 15.0


@dataclass
class Child:
    """One supervised process and its restart bookkeeping."""

    name: str
    argv: list[str]
    pass_fds: tuple[int, ...] = ()
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = field(default=0.0)


def prepare_metrics_dir(path: Path) -> Path:
    """Create the multiprocess directory and drop live gauges of processes that no longer exist."""
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("gauge_live*.db"):
        pid = stale.stem.rsplit("_", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            stale.unlink(missing_ok=True)
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


class Supervisor:
    """Starts children, restarts crashed ones, stops all on a signal."""

    def __init__(
        self,
        children: Sequence[Child],
        env: dict[str, str],
        stop_timeout: float = STOP_TIMEOUT_SECONDS,
    ) -> None:
        self.children = list(children)
        self.env = env
        self.stop_timeout = stop_timeout
        self._stopping = False

    def _spawn(self, child: Child) -> None:
        child.process = subprocess.Popen(
            child.argv, env=self.env, pass_fds=child.pass_fds, start_new_session=False
        )
        child.started_at = time.monotonic()
        log.info("started %s (pid %d)", child.name, child.process.pid)

    def start(self) -> None:
        for child in self.children:
            self._spawn(child)

    @property
    def stopping(self) -> bool:
        """True once SIGINT/SIGTERM (or `request_stop`) asked the tree to stop."""
        return self._stopping

    def request_stop(self, *_: object) -> None:
        self._stopping = True

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGTERM, self.request_stop)

    def poll_once(self) -> None:
        """Restart any child that exited (after a backoff that grows with quick crashes)."""
        now = time.monotonic()
        for child in self.children:
            proc = child.process
            if proc is not None and proc.poll() is not None:
                metrics.mark_process_dead(proc.pid)
                quick = now - child.started_at < 10
                child.restarts += 1
                delay = min(30.0, 0.5 * 2 ** min(child.restarts, 6)) if quick else 0.5
                log.warning(
                    "%s (pid %d) exited with %s; restarting in %.1fs",
                    child.name,
                    proc.pid,
                    proc.returncode,
                    delay,
                )
                child.process = None
                child.next_start = now + delay
            if child.process is None and now >= child.next_start and not self._stopping:
                self._spawn(child)

    def run(self) -> None:
        """Supervise until a stop is requested, then stop every child."""
        self.start()
        try:
            while not self._stopping:
                self.poll_once()
                time.sleep(0.2)
        finally:
            self.stop()

    def stop(self) -> None:
        running = [c.process for c in self.children if c.process and c.process.poll() is None]
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        for proc in running:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("pid %d did not stop in time; killing it", proc.pid)
                proc.kill()
                proc.wait(5)
            metrics.mark_process_dead(proc.pid)


def python_argv(*args: str) -> list[str]:
    """A command line that runs `python -m engine ARGS` with this interpreter."""
    return [sys.executable, "-m", "engine", *args]
