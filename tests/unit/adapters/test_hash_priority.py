"""Password hashing yields the CPU: its threads run at a lower priority than the event loop."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from engine.adapters.passwords import HASH_THREAD_NICENESS, PasswordService
from engine.settings import load

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="per-thread niceness is Linux's")


def _niceness() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_hash_threads_are_nicer_than_the_event_loop_thread() -> None:
    before = _niceness()
    service = PasswordService(load(env={}, login_concurrency=2))
    try:
        in_pool = service._pool.submit(_niceness).result(timeout=10)
    finally:
        service.close()
    assert in_pool == min(19, before + HASH_THREAD_NICENESS)
    assert in_pool > before
    assert _niceness() == before, "the calling (event loop) thread keeps its priority"
