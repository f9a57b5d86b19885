"""Password hashing yields the CPU: worker processes at a lower priority than the event loop."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from engine.adapters.passwords import HASH_NICENESS, PasswordService
from engine.settings import load

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="per-thread niceness is Linux's")


def _niceness() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def _where() -> tuple[int, int]:
    return os.getpid(), _niceness()


def test_hashes_run_in_other_processes_nicer_than_the_event_loop_thread() -> None:
    before = _niceness()
    service = PasswordService(load(env={}, login_concurrency=2))
    try:
        pid, in_pool = service._pool.submit(_where).result(timeout=60)
    finally:
        service.close()
    assert pid != os.getpid(), "the hash runs in a worker process, not in the API process"
    assert in_pool == min(19, before + HASH_NICENESS)
    assert in_pool > before
    assert _niceness() == before, "the calling (event loop) thread keeps its priority"
