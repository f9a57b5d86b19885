"""argon2id hashing off the API process: a bounded number at once, shedding past a queue limit.

Owns the hasher's parameters, the pool of worker processes (spawned, at a lower CPU priority than
the event loops; their side is `engine.adapters.hashing`), the bounded queue in front of it, and
verifying unknown accounts against a dummy hash so they cost the same as known ones.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import secrets
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from argon2 import PasswordHasher

from engine.adapters import hashing, metrics
from engine.adapters.hashing import HASH_NICENESS
from engine.domain.passwords import MAX_LENGTH, normalise_password
from engine.errors import Overloaded
from engine.settings import Settings

__all__ = ["HASH_NICENESS", "PasswordService", "make_hasher"]

# The longest one hash may take in a worker before the login gets 503: a hash costs tens of
# milliseconds, seconds when the loops leave the workers little CPU; only a stuck worker waits
# this long.
HASH_TIMEOUT_SECONDS = 30.0


def make_hasher(settings: Settings) -> PasswordHasher:
    """argon2id with the configured (OWASP: 19 MiB, 2 passes, 1 lane) parameters."""
    return PasswordHasher(
        time_cost=settings.argon2_time_cost,
        memory_cost=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism,
    )


def _hashed_form(password: str) -> str:
    """What is hashed: the NFKC form, at most MAX_LENGTH characters (the policy's limit)."""
    return normalise_password(password)[:MAX_LENGTH]


class PasswordService:
    """Hash and verify in `login_concurrency` worker processes per API process, with at most
    `login_queue_limit` hashes running or waiting; past that, logins get 503 + Retry-After.

    argon2id is CPU-hungry on purpose. In threads of the API process (as it was) a login storm's
    hashes shared the process with its event loop; in their own processes, spawned (not forked
    from a process with a running loop and open sockets) and at nice +10, they leave the loop,
    its GIL and its memory alone and yield the CPU to the loops (loadtest/login_storm.sh measures
    GET /api/v1/me during a storm). The workers start on the first hashes.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._pool = self._start_pool()
        self._slots = asyncio.Semaphore(settings.login_concurrency)
        self._waiting = 0
        self._queue_limit = settings.login_queue_limit
        self._retry_after = settings.retry_after_seconds
        # Verifying against a real hash for unknown accounts keeps their timing indistinguishable.
        self._dummy_hash = make_hasher(settings).hash(secrets.token_hex(16))

    def _start_pool(self) -> ProcessPoolExecutor:
        settings = self._settings
        return ProcessPoolExecutor(
            settings.login_concurrency,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=hashing.start_worker,
            initargs=(
                settings.argon2_time_cost,
                settings.argon2_memory_kib,
                settings.argon2_parallelism,
            ),
        )

    async def _in_worker(self, func: Any, *args: Any) -> Any:
        """`func(*args)` in a worker; a pool broken by a dead worker is replaced, once."""
        try:
            return await self._submit(func, *args)
        except BrokenProcessPool:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._start_pool()
            return await self._submit(func, *args)

    async def _submit(self, func: Any, *args: Any) -> Any:
        future = self._pool.submit(func, *args)
        async with asyncio.timeout(HASH_TIMEOUT_SECONDS):
            return await asyncio.wrap_future(future)

    def refuse_when_full(self) -> None:
        """Raise the 503 a hash would get now, before the caller spends any work on a login.

        A refused login should cost next to nothing: during a storm most attempts are refused,
        and each one that first went through the throttle (two Redis writes, each waiting for
        an fsync) and the account lookup took that from the logged-in users.

        Raises:
            Overloaded: `login_queue_limit` hashes are running or waiting (with Retry-After).
        """
        if self._waiting >= self._queue_limit:
            metrics.LOGINS.labels("any", "shed").inc()
            raise Overloaded(retry_after=self._retry_after, extra={"reason": "login_concurrency"})

    async def _run(self, operation: str, func: Any, *args: Any) -> Any:
        self.refuse_when_full()
        self._waiting += 1
        metrics.LOGIN_IN_FLIGHT.inc()
        try:
            async with self._slots:
                started = time.perf_counter()
                try:
                    result = await self._in_worker(func, *args)
                except (TimeoutError, BrokenProcessPool) as exc:
                    raise Overloaded(
                        retry_after=self._retry_after, extra={"reason": "login_unavailable"}
                    ) from exc
                metrics.PASSWORD_HASH_SECONDS.labels(operation).observe(
                    time.perf_counter() - started
                )
                return result
        finally:
            self._waiting -= 1
            metrics.LOGIN_IN_FLIGHT.dec()

    async def hash(self, password: str) -> str:
        """The argon2id hash of the password's NFKC form."""
        return str(await self._run("hash", hashing.hash_password, _hashed_form(password)))

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
        ok = bool(await self._run("verify", hashing.verify_password, target, tuple(forms)))
        return ok and password_hash is not None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
