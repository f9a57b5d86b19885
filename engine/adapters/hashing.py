"""The worker side of password hashing: what runs inside the argon2id processes.

Owns a worker process's set-up (a lower CPU priority, the hasher with the configured parameters,
exiting when the API process that spawned it is gone) and the two calls it answers. It imports
argon2 and the standard library only, so a spawned worker starts in a few milliseconds of imports
and writes no metrics files; `engine.adapters.passwords` owns the pool, the limits and the metrics.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# How much lower than its API process a hashing worker runs: nice +10 weighs 110 against the
# event loops' 1024 in the kernel's fair scheduler: a loop that wants the CPU gets most of it.
HASH_NICENESS = 10
_PARENT_POLL_SECONDS = 1.0

_hasher: PasswordHasher | None = None


def start_worker(time_cost: int, memory_kib: int, parallelism: int) -> None:
    """Process-pool initializer: lower this worker's priority, build the hasher, and watch the
    parent (a worker whose API process was killed would otherwise wait on its queue forever)."""
    global _hasher
    if hasattr(os, "nice"):
        with contextlib.suppress(OSError):
            os.nice(HASH_NICENESS)
    _hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)
    parent = os.getppid()
    threading.Thread(target=_exit_with, args=(parent,), name="parent-watch", daemon=True).start()


def _exit_with(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(_PARENT_POLL_SECONDS)
    sys.stderr.flush()
    os._exit(0)


def _the_hasher() -> PasswordHasher:
    if _hasher is None:
        raise RuntimeError("start_worker was not run in this process")
    return _hasher


def hash_password(form: str) -> str:
    """The argon2id hash of `form` (already normalised by the caller)."""
    return _the_hasher().hash(form)


def verify_password(target: str, forms: tuple[str, ...]) -> bool:
    """Whether any of `forms` matches `target`; every form is tried until one matches."""
    hasher = _the_hasher()
    for form in forms:
        try:
            if hasher.verify(target, form):
                return True
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            continue
    return False
