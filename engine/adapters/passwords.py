"""argon2id hashing off the event loop: a bounded number at once, shedding past a queue limit.

Owns the hasher's parameters, the thread pool at a lower CPU priority than the event loops, and
verifying unknown accounts against a dummy hash so they cost the same as known ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from engine.adapters import metrics
from engine.domain.passwords import MAX_LENGTH, normalise_password
from engine.errors import Overloaded
from engine.settings import Settings


def make_hasher(settings: Settings) -> PasswordHasher:
    """argon2id with the configured (OWASP: 19 MiB, 2 passes, 1 lane) parameters."""
    return PasswordHasher(
        time_cost=settings.argon2_time_cost,
        memory_cost=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism,
    )


# Niceness of the hashing threads: the event loops (nice 0) win the CPU about 10:1 against them.
HASH_THREAD_NICENESS = 10


def _low_cpu_priority() -> None:
    """Thread initializer: hashing threads yield the CPU to the event loops.

    argon2id is CPU-hungry on purpose. At equal priority a login storm's hash threads (several
    per process) take the cores from the event loops and slow every other request: measured with
    loadtest/login_storm.sh on 2 cores, GET /api/v1/me fell from ~560 to ~200 req/s with a p99
    near 1 s. At a lower priority the hashes still use every idle cycle, and the bounded queue
    sheds the excess logins with 503 + Retry-After instead.
    """
    if sys.platform == "linux":  # per-thread niceness; elsewhere the id could name a process
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASH_THREAD_NICENESS)


def _hashed_form(password: str) -> str:
    """What is hashed: the NFKC form, at most MAX_LENGTH characters (the policy's limit)."""
    return normalise_password(password)[:MAX_LENGTH]


class PasswordService:
    """Hash and verify in a thread pool, at most `login_concurrency` at once per process."""

    def __init__(self, settings: Settings) -> None:
        self._hasher = make_hasher(settings)
        self._pool = ThreadPoolExecutor(
            settings.login_concurrency,
            thread_name_prefix="argon2",
            initializer=_low_cpu_priority,
        )
        self._slots = asyncio.Semaphore(settings.login_concurrency)
        self._waiting = 0
        self._queue_limit = settings.login_queue_limit
        self._retry_after = settings.retry_after_seconds
        # Verifying against a real hash for unknown accounts keeps their timing indistinguishable.
        self._dummy_hash = self._hasher.hash(secrets.token_hex(16))

    async def _run(self, operation: str, func: object, *args: str) -> object:
        if self._waiting >= self._queue_limit:
            metrics.LOGINS.labels("any", "shed").inc()
            raise Overloaded(retry_after=self._retry_after, extra={"reason": "login_concurrency"})
        self._waiting += 1
        metrics.LOGIN_IN_FLIGHT.inc()
        try:
            async with self._slots:
                started = time.perf_counter()
                loop = asyncio.get_running_loop()
                result: object = await loop.run_in_executor(self._pool, func, *args)  # type: ignore[arg-type]
                metrics.PASSWORD_HASH_SECONDS.labels(operation).observe(
                    time.perf_counter() - started
                )
                return result
        finally:
            self._waiting -= 1
            metrics.LOGIN_IN_FLIGHT.dec()

    async def hash(self, password: str) -> str:
        """The argon2id hash of the password's NFKC form."""
        return str(await self._run("hash", self._hasher.hash, _hashed_form(password)))

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True when `password` matches; unknown accounts (None) cost the same and fail.

        Hashes are of the NFKC form. A password set before that was hashed as typed, so input
        that NFKC changes is also tried as typed: the cost depends on the input alone, never on
        the account, and passwords of plain ASCII (every one a school issued) cost one hash.
        """
        target = password_hash or self._dummy_hash
        forms = [_hashed_form(password)]
        if password[:MAX_LENGTH] != forms[0]:
            forms.append(password[:MAX_LENGTH])

        def check() -> bool:
            for form in forms:
                try:
                    if self._hasher.verify(target, form):
                        return True
                except (VerifyMismatchError, VerificationError, InvalidHashError):
                    continue
            return False

        ok = bool(await self._run("verify", check))
        return ok and password_hash is not None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
